"""The five language-model roles of issue 9, each behind the agents' protocols and each with
an offline fallback: every step goes to the model and, on any `LLMError` (unavailable,
rejected, budget spent, no valid reply after 2 re-asks), the offline agent takes it. Each role
keeps a `RoleOutcome` per step (`take_outcomes`): who answered, and if the offline agent did,
why; the orchestrator turns those into lessons and the ``llm`` counters.

- `LLMResearcher` (`Researcher`): hypotheses from the offline researchers' findings.
- `StrategyWriter` (`StrategyDeveloper`): new strategy code for a hypothesis, REFINE_ALGORITHM
  rewrites, FIX_BUG through the `BugFixer`; gated (`alphaloop.agents.llm.codegate`).
- `BugFixer`: failing code and its exact error in, fixed code out.
- `LLMFailureAnalyst` (`FailureAnalyst`): one of the design's actions, with reasoning.
- `LLMTrajectoryAnalyzer` (`TrajectoryAdvisor`): CONTINUE / PIVOT / ABANDON.

Prompts and their honesty rules: `alphaloop.agents.llm.prompts`. See ``docs/llm.md``.
"""

from alphaloop.agents.llm.roles._base import Role, RoleName, RoleOutcome
from alphaloop.agents.llm.roles.analysts import LLMFailureAnalyst, LLMTrajectoryAnalyzer
from alphaloop.agents.llm.roles.research import LLMResearcher, OfflineHypothesizer
from alphaloop.agents.llm.roles.writer import (
    PREFIX,
    BugFixer,
    Candidate,
    StrategyWriter,
    WriterContext,
)

__all__ = [
    "PREFIX",
    "BugFixer",
    "Candidate",
    "LLMFailureAnalyst",
    "LLMResearcher",
    "LLMTrajectoryAnalyzer",
    "OfflineHypothesizer",
    "Role",
    "RoleName",
    "RoleOutcome",
    "StrategyWriter",
    "WriterContext",
]
