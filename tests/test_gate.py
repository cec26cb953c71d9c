"""Quality gate: criteria parsing, the verdict and its score, DSR/PSR, the holdout split."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from alphaloop.errors import ConfigError
from alphaloop.workflow import _dsr
from alphaloop.workflow.gate import (
    DEFAULT_CRITERIA,
    METRIC_DIRECTIONS,
    METRIC_SCALE_FLOORS,
    Criterion,
    QualityCriteria,
    deflated_sharpe,
    evaluate,
    expected_max_sharpe,
    holdout_start,
    holdout_with_warmup,
    parse_criterion,
    per_bar_sharpe,
    probabilistic_sharpe,
    split_dates,
)

EULER = 0.5772156649015329

# ---------------------------------------------------------------- criteria parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sharpe_ratio>=1.0", Criterion("sharpe_ratio", ">=", 1.0)),
        ("  max_drawdown <= 0.2 ", Criterion("max_drawdown", "<=", 0.2)),
        ("max_drawdown<=20%", Criterion("max_drawdown", "<=", 0.2)),
        ("num_trades <= 500", Criterion("num_trades", "<=", 500.0)),  # against nature: allowed
        ("total_return>=-0.05", Criterion("total_return", ">=", -0.05)),
        ("cagr>=1e-2", Criterion("cagr", ">=", 0.01)),
    ],
)
def test_parse_criterion(text: str, expected: Criterion) -> None:
    assert parse_criterion(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("sharpe_ratio>1.0", "operator '>' is not supported"),
        ("sharpe_ratio<1.0", "operator '<' is not supported"),
        ("sharpe_ratio=1.0", "operator '=' is not supported"),
        ("sharpe_ratio==1.0", "operator '==' is not supported"),
        ("sharpe>=1", "did you mean 'sharpe_ratio'?"),
        ("max_drawdwn<=0.2", "did you mean 'max_drawdown'?"),
        ("sharpe_ratio>=abc", "not a number"),
        ("sharpe_ratio>=inf", "must be finite"),
        ("sharpe_ratio>=nan", "must be finite"),
        ("sharpe_ratio", "cannot parse"),
        (">=1", "cannot parse"),
        ("", "cannot parse"),
    ],
)
def test_parse_criterion_rejects_with_one_line(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_criterion(text)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_unknown_metric_message_lists_valid_metrics() -> None:
    with pytest.raises(ConfigError, match="valid metrics: total_return, cagr"):
        parse_criterion("alpha>=0.1")


def test_metric_table_covers_engine_metrics() -> None:
    metrics = pytest.importorskip("alphaloop.backtest.metrics")
    assert set(METRIC_DIRECTIONS) == {*metrics.METRIC_KEYS, "deflated_sharpe"}
    assert set(METRIC_SCALE_FLOORS) == set(METRIC_DIRECTIONS)


def test_natural_directions() -> None:
    uppers = {m for m, op in METRIC_DIRECTIONS.items() if op == "<="}
    assert uppers == {"max_drawdown", "max_drawdown_duration", "annual_volatility", "turnover"}


def test_defaults() -> None:
    assert QualityCriteria.default() is DEFAULT_CRITERIA
    assert DEFAULT_CRITERIA.to_expressions() == [
        "sharpe_ratio>=1",
        "max_drawdown<=0.2",
        "win_rate>=0.5",
        "num_trades>=10",
    ]
    assert DEFAULT_CRITERIA.to_dict() == {
        "sharpe_ratio": 1.0,
        "max_drawdown": 0.2,
        "win_rate": 0.5,
        "num_trades": 10.0,
    }


def test_from_dict_uses_natural_directions() -> None:
    qc = QualityCriteria.from_dict({"sharpe_ratio": 1.0, "max_drawdown": 0.20, "win_rate": 0.5})
    assert list(qc) == [
        Criterion("sharpe_ratio", ">=", 1.0),
        Criterion("max_drawdown", "<=", 0.2),
        Criterion("win_rate", ">=", 0.5),
    ]


def test_dict_round_trip_keeps_unnatural_and_band_criteria() -> None:
    qc = QualityCriteria.from_expressions("num_trades>=10, num_trades<=500, sharpe_ratio>=0.5")
    as_dict = qc.to_dict()
    assert as_dict == {"num_trades": 10.0, "num_trades<=": 500.0, "sharpe_ratio": 0.5}
    assert QualityCriteria.from_dict(as_dict) == qc


def test_from_expressions_accepts_lists_and_commas() -> None:
    qc = QualityCriteria.from_expressions(["sharpe_ratio>=1.5, max_drawdown<=0.1", "win_rate>=0.6"])
    assert qc.to_expressions() == ["sharpe_ratio>=1.5", "max_drawdown<=0.1", "win_rate>=0.6"]


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: QualityCriteria.from_expressions("sharpe_ratio>=1, sharpe_ratio>=2"), "twice"),
        (lambda: QualityCriteria.from_expressions([]), "no criteria"),
        (lambda: QualityCriteria.from_dict({"sharp_ratio": 1.0}), "did you mean"),
        (lambda: QualityCriteria.from_dict({"sharpe_ratio": "1.0"}), "not a number"),
        (lambda: QualityCriteria.from_dict({"sharpe_ratio": True}), "not a number"),
        (lambda: Criterion("sharpe_ratio", ">", 1.0), "not supported"),
    ],
)
def test_bad_criteria_sets(build, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        build()


def test_merged_overrides_same_metric_and_op() -> None:
    merged = DEFAULT_CRITERIA.merged(
        QualityCriteria.from_expressions("sharpe_ratio>=1.5, deflated_sharpe>=0.95")
    )
    assert merged.to_expressions() == [
        "sharpe_ratio>=1.5",
        "max_drawdown<=0.2",
        "win_rate>=0.5",
        "num_trades>=10",
        "deflated_sharpe>=0.95",
    ]


# ---------------------------------------------------------------- evaluate: hand-worked numbers

GOOD = {"sharpe_ratio": 1.2, "max_drawdown": 0.15, "win_rate": 0.55, "num_trades": 20}


def test_pass_score_hand_worked() -> None:
    # margins: (1.2-1)/1 = 0.2; (0.2-0.15)/0.2 = 0.25; (0.55-0.5)/0.5 = 0.1; (20-10)/10 = 1.0
    result = evaluate(GOOD)
    assert result.passed
    assert result.failed_criteria == []
    assert result.margins == pytest.approx(
        {
            "sharpe_ratio>=1": 0.2,
            "max_drawdown<=0.2": 0.25,
            "win_rate>=0.5": 0.1,
            "num_trades>=10": 1.0,
        }
    )
    assert result.score == pytest.approx(1.0 + (0.2 + 0.25 + 0.1 + 1.0) / 4)  # 1.3875


def test_fail_score_hand_worked_and_bounds_are_inclusive() -> None:
    # Only sharpe misses: margin (0.85-1)/1 = -0.15; the others sit exactly on their bounds.
    metrics = {"sharpe_ratio": 0.85, "max_drawdown": 0.20, "win_rate": 0.50, "num_trades": 10}
    result = evaluate(metrics)
    assert not result.passed
    assert result.score == pytest.approx(-0.15 / 4)
    [failed] = result.failed_criteria
    assert failed["metric"] == "sharpe_ratio"
    assert (failed["value"], failed["op"], failed["threshold"]) == (0.85, ">=", 1.0)
    assert failed["margin"] == pytest.approx(-0.15)
    assert failed["reason"] == "sharpe_ratio 0.85, needs >= 1"


def test_margins_are_clipped_and_floored() -> None:
    crit = QualityCriteria.from_expressions("total_return>=0, profit_factor>=1.5")
    # total_return scale = max(|0|, 0.01): 0.005 -> 0.5; profit_factor inf -> clipped to 2.
    result = evaluate({"total_return": 0.005, "profit_factor": math.inf}, crit)
    assert result.margins == {"total_return>=0": pytest.approx(0.5), "profit_factor>=1.5": 2.0}
    assert result.score == pytest.approx(1.0 + (0.5 + 2.0) / 2)
    far = evaluate({"total_return": -10.0, "profit_factor": 1.5}, crit)
    assert far.margins["total_return>=0"] == -2.0
    assert far.score == pytest.approx(-1.0)


def test_none_metric_fails_with_reason() -> None:
    result = evaluate({**GOOD, "sharpe_ratio": None})
    assert not result.passed
    [failed] = result.failed_criteria
    assert failed["value"] is None
    assert failed["margin"] == -2.0
    assert failed["reason"].startswith("sharpe_ratio undefined (no volatility")
    assert result.score == pytest.approx(-2.0 / 4)
    assert evaluate({**GOOD, "sharpe_ratio": float("nan")}).failed_criteria == [failed]


def test_missing_metric_fails_and_says_so() -> None:
    crit = QualityCriteria.from_expressions("deflated_sharpe>=0.95")
    result = evaluate(GOOD, crit)
    assert not result.passed
    assert "missing from metrics" in result.failed_criteria[0]["reason"]


def test_against_nature_criterion_uses_its_own_op() -> None:
    crit = QualityCriteria.from_expressions("num_trades<=500")
    assert evaluate({"num_trades": 400}, crit).margins["num_trades<=500"] == pytest.approx(0.2)
    assert not evaluate({"num_trades": 600}, crit).passed


def test_accepts_dict_criteria_and_numpy_values() -> None:
    metrics = {"sharpe_ratio": np.float64(1.1), "num_trades": np.int64(12)}
    result = evaluate(metrics, {"sharpe_ratio": 1.0, "num_trades": 10})
    assert result.passed
    assert "PASS" in result.summary()


def test_result_is_frozen_and_failed_criteria_are_copies() -> None:
    result = evaluate({**GOOD, "win_rate": 0.1})
    with pytest.raises(AttributeError):
        result.passed = True  # type: ignore[misc]
    result.failed_criteria[0]["value"] = 99
    assert result.failed_criteria[0]["value"] == 0.1


def test_near_miss_outranks_far_miss() -> None:
    near = evaluate({**GOOD, "sharpe_ratio": 0.95})
    far = evaluate({**GOOD, "sharpe_ratio": 0.2})
    undefined = evaluate({**GOOD, "sharpe_ratio": None})
    assert near.score > far.score > undefined.score


# ---------------------------------------------------------------- evaluate: properties

_metric_names = st.sampled_from(sorted(METRIC_DIRECTIONS))
_values = st.one_of(
    st.none(),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    st.sampled_from([math.inf, -math.inf, 0.0, 1.0, 0.2, 0.5, 10.0]),
)
_thresholds = st.floats(min_value=-100, max_value=100, allow_nan=False)


@st.composite
def _criteria(draw) -> QualityCriteria:
    """Criteria on distinct metrics (a band would make "improve one metric" ill-defined)."""
    names = draw(st.lists(_metric_names, min_size=1, max_size=6, unique=True))
    ops = [draw(st.sampled_from([">=", "<="])) for _ in names]
    return QualityCriteria(
        tuple(Criterion(n, o, draw(_thresholds)) for n, o in zip(names, ops, strict=True))
    )


@settings(max_examples=300, deadline=None)
@given(crit=_criteria(), data=st.data())
def test_every_pass_outranks_every_fail(crit: QualityCriteria, data) -> None:
    results = [evaluate({c.metric: data.draw(_values) for c in crit}, crit) for _ in range(4)]
    for r in results:
        assert (1.0 <= r.score <= 3.0) if r.passed else (-2.0 <= r.score < 0.0)
        assert r.passed == all(o.passed for o in r.outcomes)


@settings(max_examples=500, deadline=None)
@given(
    crit=_criteria(),
    data=st.data(),
    step=st.floats(min_value=0.0, max_value=1e6, allow_nan=False),
)
def test_improving_one_metric_never_lowers_the_score(
    crit: QualityCriteria, data, step: float
) -> None:
    metrics = {c.metric: data.draw(_values) for c in crit}
    target = data.draw(st.sampled_from(list(crit)))
    before = metrics[target.metric]
    if before is None:
        after = data.draw(st.floats(allow_nan=False))  # any defined value beats undefined
    else:
        after = before + step if target.op == ">=" else before - step
    assume(not math.isnan(after))
    base = evaluate(metrics, crit)
    better = evaluate({**metrics, target.metric: after}, crit)
    assert better.score >= base.score
    if base.passed:
        assert better.passed


@settings(max_examples=200, deadline=None)
@given(
    threshold=_thresholds,
    op=st.sampled_from([">=", "<="]),
    a=st.floats(min_value=-1e3, max_value=1e3),
    b=st.floats(min_value=-1e3, max_value=1e3),
)
def test_margin_sign_matches_pass(threshold: float, op: str, a: float, b: float) -> None:
    c = Criterion("sharpe_ratio", op, threshold)  # type: ignore[arg-type]
    for v in (a, b, threshold):
        m = c.margin(v)
        assert -2.0 <= m <= 2.0
        assert (m >= 0.0) == c.passes(v)


# ---------------------------------------------------------------- DSR / PSR


def test_paper_worked_example() -> None:
    # Bailey & López de Prado (2014): annualised SR 2.5, 5 years of daily bars (T = 1250),
    # N = 100 trials with annualised V[SR] = 0.5, skewness -3, kurtosis 10 -> DSR ~ 0.90.
    bpy = 250
    sr = per_bar_sharpe(2.5, bpy)
    assert sr == pytest.approx(0.158114, abs=1e-6)
    sr0 = expected_max_sharpe(100, 0.5 / bpy)
    # Independent arithmetic: sqrt(0.002) * (0.42278 * 2.32635 + 0.57722 * 2.68021) = 0.1132
    z = (1 - EULER) * 2.3263478740 + EULER * 2.6802104450  # Φ⁻¹(0.99), Φ⁻¹(1 - 1/(100e))
    assert sr0 == pytest.approx(math.sqrt(0.5 / bpy) * z, rel=1e-8)
    assert sr0 == pytest.approx(0.1132, abs=1e-4)  # the paper's SR0
    dsr = _dsr.deflated_sharpe_from_moments(sr, 1250, -3.0, 10.0, 100, 0.5 / bpy)
    # (0.158114 - 0.113172) * sqrt(1249) / sqrt(1 + 3 * 0.158114 + 9/4 * 0.025) = 1.2838
    assert dsr == pytest.approx(0.9004, abs=1e-4)  # the paper reports DSR ~ 0.9004


def test_psr_hand_worked_two_point_series() -> None:
    # r = [0.03, -0.01] * 2: mean 0.01, sample std sqrt(4 * 0.0004 / 3), SR = sqrt(3)/4,
    # skewness 0, kurtosis 1 -> z = SR * sqrt(T-1) / sqrt(1 + 0 + 0) = 3/4.
    r = np.array([0.03, -0.01, 0.03, -0.01])
    sr, t, skew, kurt = _dsr.return_moments(r)
    assert (sr, t) == (pytest.approx(math.sqrt(3) / 4), 4)
    assert skew == pytest.approx(0.0, abs=1e-12)
    assert kurt == pytest.approx(1.0)
    assert probabilistic_sharpe(r) == pytest.approx(0.7733726, abs=1e-6)  # Φ(0.75)


def test_dsr_matches_an_independent_scipy_route() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(7)
    returns = rng.standard_t(df=4, size=500) * 0.01 + 0.001
    tried = [0.01, 0.03, -0.02, 0.05, 0.04, 0.0, 0.02]
    sr = returns.mean() / returns.std(ddof=1)
    g3 = stats.skew(returns)
    g4 = stats.kurtosis(returns, fisher=False)
    n, v = len(tried), np.var(tried, ddof=1)
    sr0 = math.sqrt(v) * (
        (1 - np.euler_gamma) * stats.norm.ppf(1 - 1 / n)
        + np.euler_gamma * stats.norm.ppf(1 - 1 / (n * math.e))
    )
    denominator = math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    expected = stats.norm.cdf((sr - sr0) * math.sqrt(len(returns) - 1) / denominator)
    assert deflated_sharpe(returns, tried) == pytest.approx(expected, rel=1e-9)
    # Annualised trials at 252 bars per year give the same answer.
    annual = [s * math.sqrt(252) for s in tried]
    assert deflated_sharpe(returns, annual, bars_per_year=252) == pytest.approx(expected, rel=1e-9)
    assert probabilistic_sharpe(returns, sr0) == pytest.approx(expected, rel=1e-9)


def test_dsr_edge_cases() -> None:
    rng = np.random.default_rng(1)
    returns = rng.normal(0.001, 0.01, 300)
    psr0 = probabilistic_sharpe(returns)
    assert deflated_sharpe(returns, [0.3]) == pytest.approx(psr0)  # N = 1 -> SR0 = 0
    assert deflated_sharpe(returns, [0.1] * 50) == pytest.approx(psr0)  # V = 0 -> SR0 = 0
    assert deflated_sharpe(returns, [0.1, None, math.nan]) == pytest.approx(psr0)  # V of 1 value
    assert deflated_sharpe(np.array([0.01, 0.02]), [0.1, 0.2]) is None  # T < 3
    assert deflated_sharpe(np.full(100, 0.001), [0.1, 0.2]) is None  # zero std
    assert probabilistic_sharpe(np.zeros(50)) is None
    with pytest.raises(ValueError, match="include the winner"):
        deflated_sharpe(returns, [])
    with pytest.raises(ValueError, match="NaN"):
        deflated_sharpe(np.array([0.01, np.nan, 0.02, 0.0]), [0.1])


def test_more_trials_deflate_more() -> None:
    rng = np.random.default_rng(3)
    returns = rng.normal(0.002, 0.01, 500)
    tried = list(rng.normal(0.0, 0.05, 200))
    few = deflated_sharpe(returns, tried[:5])
    many = deflated_sharpe(returns, tried, n_trials=None)
    effective = deflated_sharpe(returns, tried, n_trials=1000)
    assert 0.0 <= effective < many < few <= 1.0


def test_expected_max_sharpe_guards() -> None:
    assert expected_max_sharpe(1, 0.3) == 0.0
    assert expected_max_sharpe(10, 0.0) == 0.0
    assert expected_max_sharpe(2, 0.02) > 0.0
    with pytest.raises(ValueError):
        expected_max_sharpe(0, 0.1)
    with pytest.raises(ValueError):
        _dsr.probabilistic_sharpe_from_moments(0.1, 100, 2.0, 3.0)  # kurt < 1 + skew²


# ---------------------------------------------------------------- holdout split


def _bars(n: int) -> pd.DataFrame:
    index = pd.date_range("2020-01-01", periods=n, freq="D", name="date")
    return pd.DataFrame({"close": np.arange(n, dtype=float)}, index=index)


def test_split_by_position_without_overlap() -> None:
    data = _bars(100)
    in_sample, holdout = split_dates(data)
    assert (len(in_sample), len(holdout)) == (70, 30)
    assert in_sample.index[-1] < holdout.index[0]
    assert pd.concat([in_sample, holdout]).equals(data)
    # 100 * 0.57 is 56.99999999999999 in floats: still 57 in-sample bars, not 56.
    assert holdout_start(100, 0.57) == 57
    assert holdout_start(200, 0.29) == 58


@pytest.mark.parametrize(
    ("n", "fraction", "fragment"),
    [
        (100, 0.05, "between 0.1 and 0.95"),
        (100, 0.99, "between 0.1 and 0.95"),
        (100, 1.0, "between 0.1 and 0.95"),
        (59, 0.5, "at least 30"),
        (100, 0.8, "holdout 20"),
        (100, 0.2, "in-sample 20"),
    ],
)
def test_split_rejects(n: int, fraction: float, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        split_dates(_bars(n), fraction)


def test_holdout_with_warmup() -> None:
    data = _bars(100)
    frame, first = holdout_with_warmup(data, 0.7, warmup=20)
    assert first == data.index[70]
    assert len(frame) == 50
    assert frame.index[0] == data.index[50]
    assert len(frame.loc[first:]) == 30
    no_warmup, _ = holdout_with_warmup(data, 0.7)
    assert no_warmup.equals(split_dates(data)[1])
    with pytest.raises(ConfigError, match="warmup"):
        holdout_with_warmup(data, 0.7, warmup=71)
    with pytest.raises(ConfigError, match="warmup"):
        holdout_with_warmup(data, 0.7, warmup=-1)
