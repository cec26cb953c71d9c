"""The routing engine follows the design's decision order; each branch pinned by a case."""

from __future__ import annotations

from pathlib import Path

import pytest

from alphaloop.agents.protocols import (
    FailureAnalysis,
    FailureAnalysisInput,
    IterationRecord,
    QualityGateResults,
    RecordsSummary,
    TrajectoryAdvice,
    TrajectoryStats,
)
from alphaloop.workflow.routing import RoutingEngine
from alphaloop.workflow.state import StateManager


class Analyst:
    def __init__(self, recommendation: str) -> None:
        self.recommendation = recommendation
        self.calls: list[FailureAnalysisInput] = []

    def analyze_failure(self, inp: FailureAnalysisInput) -> FailureAnalysis:
        self.calls.append(inp)
        return FailureAnalysis(recommendation=self.recommendation, reasoning="because",
                               confidence=0.5)


class Advisor:
    def __init__(self, next_action: str = "CONTINUE") -> None:
        self.next_action = next_action
        self.calls = 0

    def analyze_trajectory(self, summary: RecordsSummary, stats: TrajectoryStats
                           ) -> TrajectoryAdvice:
        self.calls += 1
        return TrajectoryAdvice(next_action=self.next_action, reasoning="trend",
                                classification=stats.classification, stats=stats)


def rec(score: float, passed: bool = False, it: int = 0) -> IterationRecord:
    return IterationRecord(strategy_name="sma_crossover", iteration=it, gate_score=score,
                           gate_passed=passed, metrics={"sharpe_ratio": score})


GATE = QualityGateResults(passed=False, score=-0.5)


@pytest.fixture
def state(tmp_path: Path) -> StateManager:
    return StateManager.create(tmp_path, research_directive="", ticker="GOOG",
                               quality_criteria={"sharpe_ratio": 1.0})


def route(state: StateManager, records: list[IterationRecord], rec_: str = "TUNE_PARAMETERS",
          advice: str = "CONTINUE", history: list[IterationRecord] | None = None):
    engine = RoutingEngine(state, Analyst(rec_), Advisor(advice))
    return engine.determine_next_action(records, GATE, history=history or [])


def test_success_picks_the_best_passing_record(state: StateManager) -> None:
    d = route(state, [rec(1.2, True), rec(2.5, True), rec(-0.1)])
    assert d.action == "SUCCESS" and d.best_index == 1
    assert "SUCCESS" in state.state.lessons_learned[-1]


@pytest.mark.parametrize("recommendation", ["TUNE_PARAMETERS", "FIX_BUG", "REFINE_ALGORITHM",
                                            "REFINE_RESEARCH", "ABANDON"])
def test_routes_by_recommendation(state: StateManager, recommendation: str) -> None:
    d = route(state, [rec(-0.5)], recommendation)
    assert d.action == recommendation
    assert recommendation in state.state.lessons_learned[-1]


def test_refine_algorithm_becomes_research_from_third_strategy_iteration(
        state: StateManager) -> None:
    for _ in range(3):
        state.increment_strategy_iteration()
    assert route(state, [rec(-0.5)], "REFINE_ALGORITHM").action == "REFINE_RESEARCH"


def test_trajectory_override_needs_two_records(state: StateManager) -> None:
    engine = RoutingEngine(state, Analyst("TUNE_PARAMETERS"), advisor := Advisor("ABANDON"))
    assert engine.determine_next_action([rec(-0.5)], GATE).action == "TUNE_PARAMETERS"
    assert advisor.calls == 0
    d = engine.determine_next_action([rec(-0.5, it=1)], GATE, history=[rec(-0.4, it=0)])
    assert d.action == "ABANDON" and advisor.calls == 1


def test_pivot_goes_to_research_unless_limits_are_spent(state: StateManager) -> None:
    two = [rec(-0.4, it=0), rec(-0.5, it=1)]
    assert route(state, two, advice="PIVOT").action == "REFINE_RESEARCH"
    for _ in range(3):
        state.increment_research_iteration()
    d = route(state, two, advice="PIVOT")
    assert d.action == "ABANDON" and "Research iteration limit" in d.reason


def test_limits_abandon_before_recommendation(state: StateManager) -> None:
    for _ in range(5):
        state.increment_strategy_iteration()
    d = route(state, [rec(-0.5)], "TUNE_PARAMETERS")
    assert d.action == "ABANDON" and d.reason == "Strategy iteration limit exceeded"


def test_analyst_sees_latest_record_and_history(state: StateManager) -> None:
    analyst = Analyst("TUNE_PARAMETERS")
    engine = RoutingEngine(state, analyst, Advisor())
    earlier = [rec(-0.9, it=0)]
    engine.determine_next_action([rec(-0.7, it=1), rec(-0.2, it=1)], GATE, history=earlier)
    seen = analyst.calls[0]
    assert seen.backtest_metrics == {"sharpe_ratio": -0.2}  # the latest (best-last) record
    assert len(seen.iteration_history) == 3


def test_no_records_abandons(state: StateManager) -> None:
    assert route(state, []).action == "ABANDON"


def test_the_lesson_travels_with_the_decision_and_is_written_only_when_asked(
        state: StateManager) -> None:
    engine = RoutingEngine(state, Analyst("TUNE_PARAMETERS"), Advisor())
    quiet = engine.determine_next_action([rec(-0.5)], GATE, record_lesson=False)
    assert quiet.lesson == "[research 0, strategy 0] TUNE_PARAMETERS (tier 1): because"
    assert state.state.lessons_learned == [] and state.state.revision == 0  # nothing written
    loud = engine.determine_next_action([rec(-0.5)], GATE)
    assert loud.lesson == quiet.lesson
    assert state.state.lessons_learned == [loud.lesson]
