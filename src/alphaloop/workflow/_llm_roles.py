"""The language-model roles of one workflow (``--llm``), wired into the orchestrator's phases.

Split from `alphaloop.workflow.orchestrator`, which builds `LLMRoles` only when a model is
given (an offline run never imports this module's agents). `LLMSetup` is what `api` hands
the orchestrator: the guarded model, its budget and its record store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from alphaloop.agents.development import DevelopmentInput
from alphaloop.workflow.orchestrator import _best_rank
from alphaloop.workflow.routing import RoutingEngine

if TYPE_CHECKING:
    from alphaloop.workflow.orchestrator import Orchestrator

SMOKE_PASSED = "gates passed (1-5: static, smoke backtest, look-ahead)"
"""The outcome a written strategy's exchange gets once its smoke run passed (gates 4-5)."""


@dataclass
class LLMSetup:
    """A workflow's language model: ``model`` already guarded (`agents.llm.guard`: the
    ``budget`` outermost, then record/replay in ``store``), its ``PROVIDER:MODEL`` spec."""

    spec: str
    model: Any
    budget: Any
    store: Any


class LLMRoles:
    """The five language-model roles of one workflow (``--llm``), wired into the phases:
    the researcher after the swarm, the strategy writer (and its bug fixer) before the
    batch, the two analysts in routing. Each falls back to its offline agent; every step's
    outcome becomes a lesson when it did, and the counts go into the state's ``llm``."""

    def __init__(self, orch: Orchestrator, setup: LLMSetup) -> None:
        from alphaloop.agents.llm.prompts import Blind, DataBrief
        from alphaloop.agents.llm.roles import (
            LLMFailureAnalyst,
            LLMResearcher,
            LLMTrajectoryAnalyzer,
            StrategyWriter,
        )

        self.orch = orch
        self.spec = setup.spec
        self.budget = setup.budget
        self.store = setup.store
        s = orch.p.state.state
        self.blind = Blind.for_run(s.ticker, orch.in_sample.index, data_path=s.data_path)
        self.data = DataBrief(bars=len(orch.in_sample), bars_per_year=orch.bars_per_year,
                              timeframe=s.timeframe)
        common: dict[str, Any] = {"blind": self.blind, "store": self.store, "seed": s.seed}
        self.researcher = LLMResearcher(setup.model, timeframe=s.timeframe, **common)
        self.writer = StrategyWriter(setup.model, orch.p.developer, **common)
        router = orch.p.router
        self.failure = LLMFailureAnalyst(setup.model, router.failure_analyst, **common)
        self.trajectory = LLMTrajectoryAnalyzer(setup.model, router.trajectory_advisor,
                                                **common)
        orch.p.router = RoutingEngine(router.state, self.failure, self.trajectory)
        kept = s.llm or {}
        self.fallbacks = int(kept.get("fallbacks", 0))
        self.rejected = int(kept.get("rejected_strategies", 0))

    # -- counts ------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """What the state keeps (written at every step)."""
        return {"spec": self.spec, "budget": self.budget.to_dict(),
                "fallbacks": self.fallbacks, "rejected_strategies": self.rejected}

    def summary(self) -> dict[str, Any]:
        """The result's ``llm`` object."""
        from alphaloop.agents.llm._spec import split_spec

        provider, model = split_spec(self.spec)
        b = self.budget.to_dict()
        return {"provider": provider, "model": model, "calls": b["calls"],
                "prompt_tokens": b["prompt_tokens"],
                "completion_tokens": b["completion_tokens"],
                "replayed_calls": b["replayed_calls"], "fallbacks": self.fallbacks,
                "rejected_strategies": self.rejected}

    def _outcomes(self) -> list[Any]:
        return [*self.researcher.take_outcomes(), *self.writer.take_outcomes(),
                *self.failure.take_outcomes(), *self.trajectory.take_outcomes()]

    def lessons(self) -> list[str]:
        """The lessons of every role step since the last call (the offline agent took the
        step, and why), counted as fallbacks and rejections."""
        out = []
        for o in self._outcomes():
            self.rejected += int(o.kind == "gate")
            if o.fallback:
                self.fallbacks += 1
                out.append(o.lesson())
        return [x for x in out if x]

    def forget(self) -> None:
        """Drop the outcomes of steps whose lessons were already written (a regenerated
        research file)."""
        self._outcomes()

    # -- phases ------------------------------------------------------------------------------
    def research(self, swarm: Any, directive: str,
                 tried: dict[str, float | None]) -> dict[str, Any]:
        """The researcher's hypotheses for this round, with the sanitised findings they cite
        (kept in ``research_<n>.json`` for the writer)."""
        from alphaloop.agents.llm.prompts import ResearchBrief

        brief = ResearchBrief.from_swarm(swarm, self.data, self.blind, directive=directive,
                                         tried=tried)
        hypotheses = self.researcher.hypothesize(brief)
        return {"hypotheses": [h.model_dump() for h in hypotheses],
                "brief_findings": [f.model_dump() for f in brief.findings]}

    def develop(self, exp_id: str, research: dict[str, Any], inp: DevelopmentInput
                ) -> tuple[int, list[str]]:
        """New code from the writer, each piece smoke-tested in a worker on the in-sample
        bars with the look-ahead check (gates 4 and 5; task ``<exp>_g<k>``, logged as an
        in-sample record of ``exp_id``); a rejection sent back once; a pass joins its family
        and is that strategy's default variant. Returns the passes and the phase's lessons."""
        from alphaloop.agents.llm import codegate
        from alphaloop.agents.llm.prompts import FindingBrief, Hypothesis
        from alphaloop.agents.llm.roles import WriterContext

        ctx = WriterContext(
            data=self.data,
            hypotheses=[Hypothesis(**h) for h in research.get("hypotheses", [])],
            findings=[FindingBrief(**f) for f in research.get("brief_findings", [])],
            analysis=self._analysis(), base=self._base(), errors=self._errors(inp))
        candidates = self.writer.write(inp, ctx)
        passed, k, rejected = 0, 0, []
        for first in candidates:
            c: Any = first
            for attempt in range(2):
                verdict = self._smoke(exp_id, f"g{k:02d}", c)
                k += 1
                if self.store is not None and c.key:
                    self.store.set_outcome(
                        c.key, SMOKE_PASSED if verdict.passed else verdict.outcome())
                if verdict.passed:
                    self.writer.join(c)
                    passed += 1
                    break
                rejected.append(verdict)
                if attempt == 1:
                    self.rejected += 1  # the fix failed too (a None fix is noted by the writer)
                    break
                c = self.writer.resubmit(c, verdict, inp)
                if c is None:
                    break
        lessons = self.lessons()
        if rejected:
            lessons.append(f"language model, strategy writer: {codegate.lesson(rejected)}")
        return passed, lessons

    def _smoke(self, exp_id: str, vid: str, c: Any) -> Any:
        from alphaloop.agents.llm.codegate import task_verdict

        o = self.orch
        task = o._task(exp_id, vid, c.proposal)
        o.p.queue.enqueue_batch([task], exist_ok=True)
        o._drain()
        result = o.p.queue.get_result(task.task_id)
        error = None if result is not None else (o.p.queue.get_error(task.task_id) or "failed")
        if o.p.tracker.record_for_task(task.task_id) is None:
            own = [] if result is None or result["metrics"].get("sharpe_ratio") is None else [
                float(result["metrics"]["sharpe_ratio"])]
            trials = o._trials(exclude=exp_id) + o._smoke_trials(exp_id) + own
            o.p.tracker.log_record(o._record(exp_id, vid, task.task_id, c.proposal,
                                             "in_sample", trials))
        return task_verdict(c.name, result, error, code_hash=c.code_hash)

    def _analysis(self) -> Any:
        """The last routing decision's failure analysis, if any."""
        from alphaloop.agents.protocols import FailureAnalysis

        last = self.orch.p.state.state.current_experiment_id
        for e in self.orch.p.tracker.experiments():
            if e.experiment_id == last and e.action_details:
                d = e.action_details.get("failure_analysis")
                if isinstance(d, dict):
                    try:
                        return FailureAnalysis(**d)
                    except ValueError:
                        return None
        return None

    def _base(self) -> Any:
        """The best in-sample record so far, as agents may see it (to refine)."""
        o = self.orch
        scored = [r for r in o._history() if r.gate_score is not None and not r.error
                  and not o._peeks(r)]
        if not scored:
            return None
        best = min(scored, key=_best_rank)
        return o._view(best, {look.variant: look for look in o.looks()})

    def _errors(self, inp: DevelopmentInput) -> dict[str, str]:
        """The exact error (or look-ahead finding) of each failing variant, by variant id."""
        failing = {p.variant_id for p in inp.failing}
        out = {}
        for r in self.orch._history():
            key = f"{r.experiment_id}/{r.variant_id}"
            if key in failing:
                text = r.error or "; ".join(f for f in r.failed_criteria
                                            if f.startswith("look-ahead"))
                if text:
                    out[key] = text
        return out
