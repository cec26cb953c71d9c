"""The two analysts of the routing step, behind the agents' protocols: `LLMFailureAnalyst`
(`FailureAnalyst`) recommends one of the design's actions with its reasoning;
`LLMTrajectoryAnalyzer` (`TrajectoryAdvisor`, the design's LLMTrajectoryAnalyzer) says
CONTINUE / PIVOT / ABANDON from the best gate score per iteration. Both only advise: the
routing engine keeps the design's order and limits. Each asks its offline counterpart first
(it is cheap, deterministic, and its view goes into the prompt) and answers with it when the
model fails, or without a call when a limit already decides."""

from __future__ import annotations

from collections.abc import Sequence

from alphaloop.agents.failure import RuleBasedFailureAnalyst
from alphaloop.agents.llm._replay import ExchangeStore
from alphaloop.agents.llm._types import ChatModel
from alphaloop.agents.llm.prompts import (
    AnalystReply,
    Blind,
    TrajectoryReply,
    failure_messages,
    sanitise_findings,
    trajectory_messages,
)
from alphaloop.agents.llm.roles._base import FALLBACK_ERRORS, ReplyInvalid, Role, Tally
from alphaloop.agents.protocols import (
    FailureAnalysis,
    FailureAnalysisInput,
    FailureAnalyst,
    RecordsSummary,
    TrajectoryAdvice,
    TrajectoryAdvisor,
    TrajectoryStats,
)
from alphaloop.agents.trajectory import RuleBasedTrajectoryAdvisor

__all__ = ["LLMFailureAnalyst", "LLMTrajectoryAnalyzer"]

MIN_SCORED = 3
"""Scored iterations below which the trajectory is not worth a call (the offline advisor's
'too few to judge')."""


def _check_analysis(reply: AnalystReply) -> None:
    if not reply.reasoning.strip():
        raise ReplyInvalid("reasoning is empty; say why, citing the numbers")


def _check_trajectory(reply: TrajectoryReply) -> None:
    if not reply.reasoning.strip():
        raise ReplyInvalid("reasoning is empty; say why, citing the scores")


class LLMFailureAnalyst(Role):
    """`FailureAnalyst` backed by a model, ``fallback`` (`RuleBasedFailureAnalyst`) offline.

    The model sees the latest in-sample verdict, the history by iteration, the sanitised
    findings, the start of the code and the offline analysis (rule and reasoning), and replies
    an `AnalystReply`. The result keeps the offline ``bug_detection`` (measured, not opined),
    and ``rule`` is ``"llm"`` when the model answered. When the offline rule is R0 (the
    iteration budget is spent) the answer is fixed: no call."""

    role = "failure_analyst"

    def __init__(self, model: ChatModel, fallback: FailureAnalyst | None = None, *,
                 max_tokens: int = 1024, blind: Blind | None = None,
                 store: ExchangeStore | None = None, seed: int | None = None,
                 retries: int = 2) -> None:
        super().__init__(model, blind=blind, store=store, seed=seed, retries=retries)
        self.fallback = fallback or RuleBasedFailureAnalyst()
        self.max_tokens = max_tokens

    def analyze_failure(self, inp: FailureAnalysisInput) -> FailureAnalysis:
        """See `FailureAnalyst.analyze_failure`."""
        offline = self.fallback.analyze_failure(inp)
        if offline.rule == "R0":
            self._note("rule", reason="iteration budget spent")
            return offline
        tally = Tally()
        try:
            findings, _ = sanitise_findings(inp.research_findings, self.blind)
            messages = failure_messages(inp, offline, self.blind, findings=findings)
            reply = self.ask_json(messages, AnalystReply, tally, check=_check_analysis,
                                  max_tokens=self.max_tokens)
        except FALLBACK_ERRORS as exc:
            self._note("offline", tally, error=exc)
            return offline
        self._note("model", tally)
        return FailureAnalysis(
            recommendation=reply.recommendation,
            reasoning=f"model: {' '.join(reply.reasoning.split())}",
            specific_actions=[" ".join(a.split()) for a in reply.specific_actions[:6]],
            bug_detection=offline.bug_detection,
            confidence=min(max(float(reply.confidence), 0.0), 1.0),
            rule="llm",
        )


class LLMTrajectoryAnalyzer(Role):
    """The design's LLMTrajectoryAnalyzer: a `TrajectoryAdvisor` backed by a model,
    ``fallback`` (`RuleBasedTrajectoryAdvisor`) offline.

    The model sees the best in-sample gate score of each iteration (``scores``, when the
    caller passes them), their statistics, the records summary and the offline advice, and
    replies a `TrajectoryReply`; the classification and statistics stay the measured ones.
    No call with fewer than `MIN_SCORED` scored iterations, or with the iteration budget
    spent: the offline advice stands."""

    role = "trajectory_analyst"

    def __init__(self, model: ChatModel, fallback: TrajectoryAdvisor | None = None, *,
                 max_tokens: int = 512, blind: Blind | None = None,
                 store: ExchangeStore | None = None, seed: int | None = None,
                 retries: int = 2) -> None:
        super().__init__(model, blind=blind, store=store, seed=seed, retries=retries)
        self.fallback = fallback or RuleBasedTrajectoryAdvisor()
        self.max_tokens = max_tokens

    def analyze_trajectory(self, records_summary: RecordsSummary, stats: TrajectoryStats,
                           scores: Sequence[float] | None = None) -> TrajectoryAdvice:
        """See `TrajectoryAdvisor.analyze_trajectory`; ``scores``: the best gate score per
        iteration (`alphaloop.agents.best_scores_per_iteration`), oldest first."""
        offline = self.fallback.analyze_trajectory(records_summary, stats)
        s = records_summary
        if stats.n < MIN_SCORED or (s.max_iterations is not None
                                    and s.iterations >= s.max_iterations):
            self._note("rule", reason="too few scored iterations or the budget spent")
            return offline
        tally = Tally()
        try:
            messages = trajectory_messages(s, stats, offline, self.blind, scores=scores)
            reply = self.ask_json(messages, TrajectoryReply, tally, check=_check_trajectory,
                                  max_tokens=self.max_tokens)
        except FALLBACK_ERRORS as exc:
            self._note("offline", tally, error=exc)
            return offline
        self._note("model", tally)
        return TrajectoryAdvice(next_action=reply.next_action,
                                reasoning=f"model: {' '.join(reply.reasoning.split())}",
                                classification=stats.classification, stats=stats)
