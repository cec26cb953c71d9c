"""The routing engine: the design's three-tier feedback loop, decision by decision.

`RoutingEngine.determine_next_action` follows the design (central-orchestrator.md, "Routing
Engine") step by step:

1. SUCCESS if any variant passed — here that means passed in-sample *and* on the holdout; the best
   passing record by ``gate_score`` wins.
2. Otherwise failure analysis of the latest record (the orchestrator passes an iteration's records
   best-last, so "latest" is the most informative one).
3. With two or more records, trajectory analysis of the best in-sample gate score per iteration
   may override: ABANDON stops, PIVOT goes back to research (REFINE_RESEARCH).
4. Iteration limits (`StateManager.check_iteration_limits`): exceeded -> ABANDON.
5. Routing by the analyst's recommendation; REFINE_ALGORITHM becomes REFINE_RESEARCH from the
   third strategy iteration on; anything unknown -> ABANDON.

One deviation, so the design's limits always hold: a trajectory PIVOT is subject to the limits of
step 4 (the design checks them only after the override, which would let repeated pivots run past
``max_research_iterations``). Every decision carries a lesson with its reason
(``RoutingDecision.lesson``) and, by default, appends it to the state. The orchestrator passes
``record_lesson=False`` and writes the lesson in the same atomic state write as the counters and
the next phase, so a crash can never leave the lesson without the transition or repeat it.

Inputs are in-sample only: the records carry in-sample metrics, and of a holdout nothing but the
boolean ``holdout_failed``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from alphaloop.agents.protocols import (
    FailureAnalysisInput,
    FailureAnalyst,
    Finding,
    IterationRecord,
    QualityGateResults,
    RecordsSummary,
    TrajectoryAdvisor,
)
from alphaloop.agents.trajectory import TrajectoryAnalyzer, best_scores_per_iteration
from alphaloop.workflow.state import StateManager

__all__ = ["Action", "RoutingDecision", "RoutingEngine"]

Action = Literal[
    "SUCCESS", "TUNE_PARAMETERS", "FIX_BUG", "REFINE_ALGORITHM", "REFINE_RESEARCH", "ABANDON"
]
TIER = {
    "SUCCESS": "done",
    "TUNE_PARAMETERS": "tier 1",
    "FIX_BUG": "tier 1",
    "REFINE_ALGORITHM": "tier 1",
    "REFINE_RESEARCH": "tier 2",
    "ABANDON": "tier 3",
}


class RoutingDecision(BaseModel):
    """What to do next, why, and the evidence (failure analysis, trajectory advice)."""

    model_config = ConfigDict(frozen=True)

    action: Action
    reason: str
    details: dict[str, Any] = Field(default_factory=dict)
    best_index: int | None = None
    lesson: str = Field(
        default="",
        description="The lesson this decision teaches: iteration, action, tier and reason",
    )


class RoutingEngine:
    """Decides the next action from an iteration's records (design: ``RoutingEngine``)."""

    def __init__(
        self,
        state: StateManager,
        failure_analyst: FailureAnalyst,
        trajectory_advisor: TrajectoryAdvisor,
    ) -> None:
        self.state = state
        self.failure_analyst = failure_analyst
        self.trajectory_advisor = trajectory_advisor

    def determine_next_action(
        self,
        experiment_records: Sequence[IterationRecord],
        quality_gate_results: QualityGateResults,
        *,
        history: Sequence[IterationRecord] = (),
        research_findings: Sequence[Finding] = (),
        favoured_families: Sequence[str] = (),
        strategy_code: str = "",
        record_lesson: bool = True,
    ) -> RoutingDecision:
        """Route one iteration. `history` is every earlier record of the workflow (in-sample).

        The decision's ``lesson`` is appended to the state when ``record_lesson`` (the
        design's behaviour); with False nothing is written and the caller persists it."""
        decision = self._decide(
            list(experiment_records),
            quality_gate_results,
            list(history),
            list(research_findings),
            list(favoured_families),
            strategy_code,
        )
        s = self.state.state
        lesson = (
            f"[research {s.research_iteration}, strategy {s.strategy_iteration}] "
            f"{decision.action} ({TIER[decision.action]}): {decision.reason}"
        )
        decision = decision.model_copy(update={"lesson": lesson})
        if record_lesson:
            self.state.add_lesson_learned(lesson)
        return decision

    def _decide(
        self,
        records: list[IterationRecord],
        gate: QualityGateResults,
        history: list[IterationRecord],
        findings: list[Finding],
        families: list[str],
        code: str,
    ) -> RoutingDecision:
        if not records:
            return RoutingDecision(action="ABANDON", reason="no variant produced a result")
        passed = [i for i, r in enumerate(records) if r.gate_passed]
        if passed:
            best = max(passed, key=lambda i: records[i].gate_score or 0.0)
            r = records[best]
            return RoutingDecision(
                action="SUCCESS",
                best_index=best,
                reason=f"{r.strategy_name} passed the gate in-sample and on the holdout "
                f"(in-sample gate_score {r.gate_score:.3f})",
            )
        s = self.state.state
        latest = records[-1]
        everything = [*history, *records]
        analysis = self.failure_analyst.analyze_failure(
            FailureAnalysisInput(
                strategy_name=latest.strategy_name,
                strategy_code=code,
                research_findings=findings,
                favoured_families=families,
                backtest_metrics=latest.metrics,
                quality_gate_results=gate,
                iteration_history=everything,
                current_iteration=s.strategy_iteration,
                max_iterations=s.max_strategy_iterations,
            )
        )
        details: dict[str, Any] = {"failure_analysis": analysis.model_dump()}
        if len(everything) >= 2:
            scores = best_scores_per_iteration(everything)
            stats = TrajectoryAnalyzer(scores).analyze_trajectory()
            summary = RecordsSummary(
                iterations=s.total_iterations + 1,
                max_iterations=s.max_total_iterations,
                best_score=stats.best,
                families_tried=sorted({r.family_name for r in everything}),
            )
            if "scores" in inspect.signature(
                    self.trajectory_advisor.analyze_trajectory).parameters:
                # a model-backed advisor reads the scores themselves, not only their statistics
                advice = self.trajectory_advisor.analyze_trajectory(  # type: ignore[call-arg]
                    summary, stats, scores=scores)
            else:
                advice = self.trajectory_advisor.analyze_trajectory(summary, stats)
            details["trajectory_analysis"] = advice.model_dump()
            if advice.next_action == "ABANDON":
                return RoutingDecision(
                    action="ABANDON",
                    details=details,
                    reason=f"trajectory analysis indicates no convergence: {advice.reasoning}",
                )
            if advice.next_action == "PIVOT":
                exceeded, why = self.state.check_iteration_limits()
                if exceeded:
                    return RoutingDecision(action="ABANDON", reason=why, details=details)
                return RoutingDecision(
                    action="REFINE_RESEARCH",
                    details=details,
                    reason=f"trajectory analysis recommends pivoting to research: "
                    f"{advice.reasoning}",
                )
        exceeded, why = self.state.check_iteration_limits()
        if exceeded:
            return RoutingDecision(action="ABANDON", reason=why, details=details)
        rec = analysis.recommendation
        because = f"{analysis.reasoning}"
        if rec == "REFINE_ALGORITHM" and s.strategy_iteration >= 3:
            return RoutingDecision(
                action="REFINE_RESEARCH",
                details=details,
                reason=f"multiple strategy refinements failed ({s.strategy_iteration} strategy "
                f"iterations), need better research; analyst said: {because}",
            )
        if rec in ("TUNE_PARAMETERS", "FIX_BUG", "REFINE_ALGORITHM", "REFINE_RESEARCH", "ABANDON"):
            return RoutingDecision(action=rec, reason=because, details=details)
        return RoutingDecision(action="ABANDON", reason="unknown failure classification")
