"""Metrics: agreement with empyrical, hand-computed drawdowns, and None where undefined."""

from __future__ import annotations

import json
import math

import empyrical
import numpy as np
import pytest

from alphaloop.backtest import metrics
from alphaloop.backtest.metrics import METRIC_KEYS, compute, json_safe

BPY = 252


def _series() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(42)
    random = rng.normal(0.0004, 0.015, 800)
    positive = rng.uniform(0.0001, 0.01, 300)
    # a rise, a 30% slide, a partial recovery: the drawdown is known to be large
    slide = np.concatenate([np.full(50, 0.01), np.full(40, -0.009), rng.normal(0.002, 0.01, 60)])
    # engine convention: r[0] = 0 (the bar nothing is held)
    return {name: np.concatenate(([0.0], r)) for name, r in
            {"random": random, "all_positive": positive, "drawdown": slide}.items()}


SERIES = _series()


@pytest.mark.parametrize("name", sorted(SERIES))
def test_ratios_match_empyrical(name: str) -> None:
    r = SERIES[name]
    m = compute(r, bars_per_year=BPY)
    assert m["sharpe_ratio"] == pytest.approx(empyrical.sharpe_ratio(r, annualization=BPY))
    assert m["annual_volatility"] == pytest.approx(
        empyrical.annual_volatility(r, annualization=BPY))
    assert m["cagr"] == pytest.approx(empyrical.cagr(r, annualization=BPY))
    assert m["cagr"] == pytest.approx(empyrical.annual_return(r, period="daily"))
    assert m["total_return"] == pytest.approx(empyrical.cum_returns_final(r))
    # empyrical reports drawdowns as negative numbers; ours are positive fractions
    assert m["max_drawdown"] == pytest.approx(-empyrical.max_drawdown(r))
    assert m["max_drawdown"] >= 0.0
    if name == "all_positive":
        assert m["sortino_ratio"] is None  # no downside: empyrical gives inf
        assert math.isinf(empyrical.sortino_ratio(r, annualization=BPY))
        assert m["max_drawdown"] == 0.0 and m["calmar_ratio"] is None
    else:
        assert m["sortino_ratio"] == pytest.approx(empyrical.sortino_ratio(r, annualization=BPY))
        assert m["calmar_ratio"] == pytest.approx(
            empyrical.calmar_ratio(r, annualization=BPY))


def test_drawdown_series_is_large_and_positive() -> None:
    m = compute(SERIES["drawdown"], bars_per_year=BPY)
    assert m["max_drawdown"] == pytest.approx(1 - 0.991**40)
    assert m["calmar_ratio"] == pytest.approx(m["cagr"] / m["max_drawdown"])


def test_drawdown_peak_includes_starting_equity() -> None:
    # the first bar already loses 10%: a 10% drawdown from the starting 1.0
    m = compute(np.array([-0.1, 0.05]))
    assert m["max_drawdown"] == pytest.approx(0.1)
    assert m["max_drawdown_duration"] == 1  # peak = start (bar 0 counts as the peak bar) to end


def test_drawdown_duration_peak_bar_to_recovery_bar() -> None:
    # equity: 1, 1.1, 1.045, 0.99275, 1.1913, 1.07217
    r = np.array([0.0, 0.1, -0.05, -0.05, 0.2, -0.1])
    m = compute(r)
    # peak at bar 1, recovered at bar 4 -> 3 bars; then peak bar 4, still under at bar 5 -> 1
    assert m["max_drawdown_duration"] == 3
    assert isinstance(m["max_drawdown_duration"], int)
    assert m["max_drawdown"] == pytest.approx(0.1)  # 1.1913 -> 1.07217 beats 1.1 -> 0.99275
    # a one-bar dip counts 2 (peak bar to recovery bar)
    assert compute(np.array([0.0, 0.1, -0.01, 0.02]))["max_drawdown_duration"] == 2
    # never recovered: to the last bar
    assert compute(np.array([0.0, 0.1, -0.01, -0.01, 0.001]))["max_drawdown_duration"] == 3
    assert compute(np.array([0.0, 0.1, 0.1]))["max_drawdown_duration"] == 0


def test_trade_statistics() -> None:
    trades = np.array([0.10, -0.05, 0.02, -0.01, 0.0])
    m = compute(np.zeros(10), trade_returns=trades)
    assert m["num_trades"] == 5 and isinstance(m["num_trades"], int)
    assert m["win_rate"] == pytest.approx(2 / 5)  # 0.0 is not a win
    assert m["profit_factor"] == pytest.approx(0.12 / 0.06)
    assert m["avg_trade_return"] == pytest.approx(0.06 / 5)


def test_exposure_and_turnover_from_positions() -> None:
    h = np.array([0.0, 1.0, 1.0, -1.0, -0.5, 0.0, 0.0, 0.0])
    m = compute(np.zeros(8), positions=h, bars_per_year=BPY)
    assert m["exposure"] == pytest.approx(4 / 8)
    assert m["turnover"] == pytest.approx((1 + 2 + 0.5 + 0.5) * BPY / 8)


def test_undefined_values_are_none_never_nan() -> None:
    m = compute(np.zeros(20))
    assert list(m) == list(METRIC_KEYS)
    assert m["sharpe_ratio"] is None and m["sortino_ratio"] is None
    assert m["calmar_ratio"] is None
    assert m["win_rate"] is None and m["profit_factor"] is None
    assert m["avg_trade_return"] is None and m["num_trades"] == 0
    assert m["annual_volatility"] == 0.0 and m["total_return"] == 0.0 and m["cagr"] == 0.0
    text = json.dumps(m, allow_nan=False)
    assert "null" in text and "NaN" not in text

    one_bar = compute(np.array([0.0]))
    assert one_bar["sharpe_ratio"] is None and one_bar["annual_volatility"] is None
    # constant non-zero returns: std is only rounding noise, not a basis for a ratio
    assert compute(np.full(30, 0.001))["sharpe_ratio"] is None
    # only winners: profit factor has nothing to divide by
    assert compute(np.zeros(5), trade_returns=np.array([0.1, 0.2]))["profit_factor"] is None


def test_ruined_equity_has_finite_metrics() -> None:
    m = compute(np.array([0.0, 0.1, -1.0, 0.0]))
    assert m["total_return"] == -1.0 and m["cagr"] == -1.0
    assert m["max_drawdown"] == pytest.approx(1.0)
    json.dumps(m, allow_nan=False)


def test_json_safe_converts_numpy_and_non_finite() -> None:
    raw = {"a": np.float64("nan"), "b": np.inf, "c": np.int64(3), "d": np.float32(0.5),
           "e": None, "f": np.bool_(True)}
    safe = json_safe(raw)
    assert safe == {"a": None, "b": None, "c": 3, "d": 0.5, "e": None, "f": True}
    assert type(safe["c"]) is int and type(safe["d"]) is float
    json.dumps(safe, allow_nan=False)


def test_compute_rejects_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        compute(np.array([]))
    with pytest.raises(ValueError, match="positions"):
        compute(np.zeros(3), positions=np.zeros(4))


def test_metric_keys_are_the_documented_set() -> None:
    assert METRIC_KEYS == (
        "total_return", "cagr", "annual_volatility", "sharpe_ratio", "sortino_ratio",
        "calmar_ratio", "max_drawdown", "max_drawdown_duration", "win_rate", "profit_factor",
        "num_trades", "avg_trade_return", "exposure", "turnover",
    )
    for key in METRIC_KEYS:
        assert key in metrics.__doc__
