"""Failure analysis rules R0-R7 and trajectory statistics, classification and advice."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from alphaloop.agents import (
    FAMILIES,
    FailureAnalysisInput,
    FailureAnalyst,
    GateCriterion,
    IterationRecord,
    RecordsSummary,
    RuleBasedFailureAnalyst,
    RuleBasedTrajectoryAdvisor,
    TrajectoryAdvisor,
    TrajectoryAnalyzer,
    best_scores_per_iteration,
    describe,
    is_near_miss,
)
from alphaloop.agents.failure import BENCHMARKS
from alphaloop.agents.trajectory import T_CAP

GOOD = {
    "sharpe_ratio": 1.2,
    "total_return": 0.3,
    "max_drawdown": 0.15,
    "num_trades": 40.0,
    "win_rate": 0.55,
}


def crit(metric: str, value: float | None, op: str, threshold: float) -> dict[str, Any]:
    return {"metric": metric, "value": value, "op": op, "threshold": threshold}


def rec(
    name: str = "sma_crossover", it: int = 1, score: float = -0.5, failed: Any = (), **kw: Any
) -> IterationRecord:
    return IterationRecord(
        strategy_name=name,
        iteration=it,
        gate_score=score,
        failed_criteria=list(failed),
        metrics=kw.pop("metrics", GOOD),
        parameters=kw.pop("parameters", {"fast": 10, "slow": 50}),
        **kw,
    )


FAR = [crit("sharpe_ratio", 0.3, ">=", 1.0)]  # 70 % short
NEAR = [crit("sharpe_ratio", 0.85, ">=", 1.0)]  # 15 % short


def analyse(
    history: list[IterationRecord], failed: Any = FAR, metrics: dict | None = None, **kw: Any
) -> Any:
    inp = FailureAnalysisInput(
        strategy_name=history[-1].strategy_name if history else "sma_crossover",
        backtest_metrics=metrics if metrics is not None else GOOD,
        quality_gate_results={"passed": False, "score": -0.5, "failed_criteria": list(failed)},
        iteration_history=history,
        current_iteration=kw.pop("current", 1),
        max_iterations=kw.pop("max_iterations", 5),
        **kw,
    )
    return RuleBasedFailureAnalyst().analyze_failure(inp)


# --------------------------------------------------------------------------- failure rules
def test_analyst_satisfies_protocol() -> None:
    assert isinstance(RuleBasedFailureAnalyst(), FailureAnalyst)


def test_r1_error_is_a_bug_with_location() -> None:
    out = analyse([rec(error="ZeroDivisionError: division by zero", metrics={}, score=None)])
    assert (out.recommendation, out.rule) == ("FIX_BUG", "R1")
    assert out.bug_detection.has_bug
    assert out.bug_detection.bug_locations == [
        "variant sma_crossover(fast=10, slow=50): raised ZeroDivisionError: division by zero"
    ]


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"metrics": {**GOOD, "num_trades": 0.0}}, "no trades"),
        ({"metrics": {**GOOD, "sharpe_ratio": float("nan")}}, "metric sharpe_ratio is nan"),
        ({"metrics": {**GOOD, "sharpe_ratio": None}}, "metric sharpe_ratio is None"),
        ({"lookahead": True}, "look-ahead"),
    ],
)
def test_r1_no_trades_nan_lookahead(kw: dict[str, Any], needle: str) -> None:
    out = analyse([rec(**kw)], failed=NEAR)
    assert out.recommendation == "FIX_BUG"
    assert any(needle in b for b in out.bug_detection.bug_locations)


def test_r1_one_odd_variant_is_not_a_bug_but_most_of_the_batch_is() -> None:
    silent = {**GOOD, "num_trades": 0.0, "sharpe_ratio": None}
    odd = rec(parameters={"fast": 90, "slow": 95}, metrics=silent, failed=NEAR)
    out = analyse([odd, rec(failed=NEAR), rec(failed=NEAR, score=-0.1)], failed=NEAR)
    assert out.recommendation == "TUNE_PARAMETERS" and not out.bug_detection.has_bug
    out = analyse([odd, odd, odd, rec(failed=NEAR, score=-0.1)], failed=NEAR)
    assert out.recommendation == "FIX_BUG"
    assert out.bug_detection.bug_locations[0].startswith("variant sma_crossover(fast=90, slow=95)")
    # an exception in any variant is a bug
    boom = rec(error="ValueError: window must be > 0", metrics={}, score=None)
    assert analyse([boom, rec(failed=NEAR, score=-0.1)], failed=NEAR).recommendation == "FIX_BUG"


def test_r0_budget_spent_abandons_even_on_near_miss() -> None:
    out = analyse([rec(failed=NEAR)], failed=NEAR, current=5, max_iterations=5)
    assert (out.recommendation, out.rule) == ("ABANDON", "R0")


def test_r2_holdout_failure_refines_algorithm_before_tuning() -> None:
    out = analyse([rec(failed=NEAR, holdout_failed=True)], failed=NEAR)
    assert (out.recommendation, out.rule) == ("REFINE_ALGORITHM", "R2")
    assert any(a.startswith("simplify") for a in out.specific_actions)


def test_r3_near_miss_tunes_with_concrete_actions() -> None:
    out = analyse([rec(failed=NEAR)], failed=NEAR)
    assert (out.recommendation, out.rule) == ("TUNE_PARAMETERS", "R3")
    assert out.specific_actions[0].startswith("sharpe_ratio 0.85 < 1.00: ")
    assert "fast=10, slow=50" in out.specific_actions[-1]
    assert 0.5 <= out.confidence <= 0.9


def test_near_miss_band_edges_and_gate_margin() -> None:
    edge = GateCriterion(**crit("win_rate", 0.375, ">=", 0.5))  # exactly 25 % short
    past = GateCriterion(**crit("win_rate", 0.37, ">=", 0.5))
    assert is_near_miss([edge]) and not is_near_miss([past])
    assert is_near_miss([GateCriterion(**crit("max_drawdown", 0.24, "<=", 0.2))])  # 20 % over
    assert not is_near_miss([GateCriterion(**crit("sharpe_ratio", None, ">=", 1.0))])
    # the gate's own margin wins over the recomputed shortfall
    assert not is_near_miss([GateCriterion(**crit("win_rate", 0.45, ">=", 0.5), margin=-0.4)])


def test_actions_are_concrete() -> None:
    assert describe(GateCriterion(**crit("max_drawdown", 0.34, "<=", 0.20))) == (
        "max_drawdown 0.34 > 0.20: add a trend filter or volatility targeting"
    )
    assert describe(GateCriterion(**crit("win_rate", 0.41, ">=", 0.50))) == (
        "win_rate 0.41 < 0.50: widen the exit band or take profits sooner"
    )
    assert describe(GateCriterion(**crit("num_trades", 4, ">=", 10))).startswith(
        "num_trades 4 < 10: shorten lookbacks"
    )


def test_r7_first_far_miss_widens_the_search() -> None:
    out = analyse([rec(failed=FAR)])
    assert (out.recommendation, out.rule) == ("TUNE_PARAMETERS", "R7")
    assert out.specific_actions[-1] == "widen the parameter ranges of sma_crossover"


def test_r5_far_miss_after_two_tuned_iterations_refines_algorithm() -> None:
    hist = [rec(it=1, failed=FAR), rec(it=2, failed=FAR), rec(it=2, failed=FAR, score=-0.4)]
    out = analyse(hist, current=2)
    assert (out.recommendation, out.rule) == ("REFINE_ALGORITHM", "R5")


def test_r6_far_miss_on_every_favoured_family_refines_research() -> None:
    hist = [rec("rsi_reversion", it=1, failed=FAR), rec("bollinger_reversion", it=2, failed=FAR)]
    favoured = ["rsi_reversion", "bollinger_reversion", "buy_and_hold"]
    out = analyse(hist, current=2, favoured_families=favoured)
    assert (out.recommendation, out.rule) == ("REFINE_RESEARCH", "R6")
    # one favoured family not yet tried: no reason to doubt the research yet
    out = analyse(hist, current=2, favoured_families=[*favoured, "macd"])
    assert out.rule == "R7"


def test_r4_deteriorating_with_one_iteration_left_abandons() -> None:
    hist = [rec("macd", it=i, failed=FAR, score=s) for i, s in enumerate([-0.2, -0.4, -0.6], 1)]
    out = analyse(
        [*hist[:1], rec("rsi_reversion", it=1, score=-0.1, failed=FAR), *hist[1:]],
        current=4,
        max_iterations=5,
    )
    assert (out.recommendation, out.rule) == ("ABANDON", "R4")
    # the same history with budget to spare does not abandon
    assert analyse(hist, current=2, max_iterations=5).recommendation != "ABANDON"


def test_r4_every_family_far_missed_abandons() -> None:
    families = [f for f in FAMILIES if f not in BENCHMARKS]  # buy-and-hold is the yardstick
    assert len(families) == 7
    hist = [rec(f, it=i, failed=FAR, score=-0.5) for i, f in enumerate(families, 1)]
    out = analyse(hist, current=7, max_iterations=10)
    assert (out.recommendation, out.rule) == ("ABANDON", "R4")


def test_tracker_style_record_is_accepted() -> None:
    r = IterationRecord.model_validate(
        {
            "strategy_name": "macd",
            "strategy_code": "...",
            "record_id": "x",
            "gate_score": -0.1,
            "metrics": {**GOOD, "sharpe_ratio": 0.9},
            "failed_criteria": ("sharpe_ratio>=1", "max_drawdown<=20%"),
        }
    )
    assert r.failed_criteria[0] == GateCriterion(
        metric="sharpe_ratio", value=0.9, op=">=", threshold=1.0
    )
    assert r.failed_criteria[1].threshold == pytest.approx(0.2)
    assert not r.lookahead
    noted = IterationRecord.model_validate(
        {
            "strategy_name": "macd",
            "failed_criteria": ["look-ahead: positions change with future bars"],
        }
    )
    assert noted.lookahead and noted.failed_criteria == []


# --------------------------------------------------------------------------- trajectory stats
def test_stats_of_a_perfect_line() -> None:
    s = TrajectoryAnalyzer([0.1, 0.3, 0.5, 0.7]).analyze_trajectory()
    assert s.slope == pytest.approx(0.2) and s.slope_t == T_CAP
    assert s.mean_improvement == pytest.approx(0.2) and s.last_improvement == pytest.approx(0.2)
    assert s.sign_changes == 0 and s.volatility == pytest.approx(0.0, abs=1e-12)


def test_stats_match_scipy_linregress() -> None:
    stats = pytest.importorskip("scipy.stats")
    y = [-0.9, -0.5, -0.7, -0.2, -0.4, 0.1]
    s = TrajectoryAnalyzer(y).analyze_trajectory()
    lr = stats.linregress(np.arange(len(y)), y)
    assert s.slope == pytest.approx(lr.slope)
    assert s.slope_t == pytest.approx(lr.slope / lr.stderr)
    assert s.sign_changes == 4  # + - + - +
    assert s.volatility == pytest.approx(np.std(np.diff(y), ddof=1))
    assert s.iterations_since_best == 0 and s.best == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([-0.5, -0.2], "insufficient_data"),
        ([-1.0, -0.8, -0.6, -0.45, -0.3], "converging"),
        ([-0.5, -0.3, -0.2, -0.2, -0.2], "plateau"),
        ([-0.3, -0.305, -0.298, -0.302], "plateau"),
        ([-0.2, -0.3, -0.45, -0.6], "diverging"),
        ([-0.1, -0.3, -0.2, -0.5, -0.4, -0.7], "diverging"),
        ([-0.5, -0.2, -0.5, -0.2, -0.5, -0.2], "oscillating"),
    ],
)
def test_classification(scores: list[float], expected: str) -> None:
    assert TrajectoryAnalyzer(scores).analyze_trajectory().classification == expected


def test_non_finite_scores_are_dropped() -> None:
    s = TrajectoryAnalyzer([-0.5, float("nan"), -0.4, math.inf, -0.3]).analyze_trajectory()
    assert s.n == 3


def test_best_scores_per_iteration_groups_by_iteration() -> None:
    hist = [
        rec(it=1, score=-0.5),
        rec(it=1, score=-0.2),
        rec(it=2, score=None),
        rec(it=3, score=-0.3),
        rec(it=2, score=-0.9),
    ]
    assert best_scores_per_iteration(hist) == [-0.2, -0.9, -0.3]


@settings(max_examples=60, deadline=None)
@given(hst.lists(hst.floats(-2, 3), min_size=3, max_size=12), hst.floats(-1, 1))
def test_stats_shift_invariant(scores: list[float], c: float) -> None:
    a = TrajectoryAnalyzer(scores).analyze_trajectory()
    b = TrajectoryAnalyzer([s + c for s in scores]).analyze_trajectory()
    assert b.slope == pytest.approx(a.slope, abs=1e-9)
    assert b.mean_improvement == pytest.approx(a.mean_improvement, abs=1e-9)


# --------------------------------------------------------------------------- advice
def advise(scores: list[float], **summary: Any) -> Any:
    stats = TrajectoryAnalyzer(scores).analyze_trajectory()
    return RuleBasedTrajectoryAdvisor().analyze_trajectory(RecordsSummary(**summary), stats)


def test_advisor_satisfies_protocol() -> None:
    assert isinstance(RuleBasedTrajectoryAdvisor(), TrajectoryAdvisor)


@pytest.mark.parametrize(
    ("scores", "action"),
    [
        ([-0.9, -0.1], "CONTINUE"),  # too few points
        ([-1.0, -0.8, -0.6, -0.45, -0.3], "CONTINUE"),  # converging
        ([-0.5, -0.2, -0.2, -0.2], "CONTINUE"),  # flat, but the best is only 2 iterations old
        ([-0.5, -0.2, -0.2, -0.2, -0.2], "PIVOT"),  # plateau for 3 iterations
        ([-0.2, -0.3, -0.45, -0.6], "PIVOT"),  # three straight declines: pivot, keep the best
        ([0.0, -0.1, -0.2, -0.3, -0.4, -0.5, -0.6], "ABANDON"),  # no new best for 6
        ([-0.5, -0.2, -0.5, -0.2, -0.5, -0.25], "PIVOT"),  # oscillating, no new best for 4
    ],
)
def test_advice(scores: list[float], action: str) -> None:
    assert advise(scores).next_action == action


def test_advice_budget_spent_abandons() -> None:
    out = advise([-0.9, -0.6, -0.3], iterations=5, max_iterations=5)
    assert out.next_action == "ABANDON" and "budget" in out.reasoning


def test_advisor_rejects_bad_patience() -> None:
    with pytest.raises(ValueError, match="patience"):
        RuleBasedTrajectoryAdvisor(patience=4, abandon_after=3)


# --------------------------------------------------------------------------- layering
def test_agents_never_import_workflow() -> None:
    code = (
        "import sys, alphaloop.agents, alphaloop.agents.research, alphaloop.agents.failure, "
        "alphaloop.agents.trajectory; "
        "print(sorted(m for m in sys.modules if m.startswith('alphaloop.workflow')))"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_inputs_carry_no_holdout_metrics() -> None:
    for model in (FailureAnalysisInput, IterationRecord, RecordsSummary):
        fields = [f for f in model.model_fields if "holdout" in f]
        assert fields in ([], ["holdout_failed"]), model
    assert IterationRecord.model_fields["holdout_failed"].annotation is bool
