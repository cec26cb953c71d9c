"""Research swarm: each statistic against an independent computation, then the swarm's verdicts
on simulated processes and the directive keyword table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from alphaloop.agents import (
    BreakoutResearcher,
    MeanReversionResearcher,
    Researcher,
    ResearchReport,
    ResearchSwarm,
    SwarmResult,
    TrendResearcher,
    VolatilityResearcher,
    parse_directive,
)
from alphaloop.agents import _stats as st
from alphaloop.agents._directive import REVERSION, TREND
from alphaloop.agents.research import DIRECTIVE_BOOST
from alphaloop.errors import DataError

N = 3000


def frame(logp: np.ndarray) -> pd.DataFrame:
    """OHLCV bars around a log-price path (only the close matters to the researchers)."""
    c = np.exp(logp)
    idx = pd.date_range("2000-01-03", periods=len(c), freq="B", name="date")
    return pd.DataFrame(
        {"open": c, "high": c * 1.001, "low": c * 0.999, "close": c, "volume": 1e6}, index=idx
    )


def random_walk(seed: int = 0, n: int = N) -> np.ndarray:
    return np.cumsum(np.random.default_rng(seed).normal(0, 0.01, n))


def ar_returns(phi: float, drift: float = 0.0, seed: int = 1, n: int = N) -> np.ndarray:
    """Log returns following AR(1) with coefficient `phi` (persistent when phi > 0)."""
    e = np.random.default_rng(seed).normal(0, 0.01, n)
    r = np.zeros(n)
    for i in range(1, n):
        r[i] = phi * r[i - 1] + e[i] + drift
    return r


def ou_logprice(phi: float = 0.9, seed: int = 2, n: int = N) -> np.ndarray:
    """Log price following AR(1) around 0: a discretised Ornstein–Uhlenbeck process."""
    e = np.random.default_rng(seed).normal(0, 0.01, n)
    y = np.zeros(n)
    for i in range(1, n):
        y[i] = phi * y[i - 1] + e[i]
    return y


# --------------------------------------------------------------------------- statistics
@pytest.mark.parametrize("lag", [1, 5, 10, 20])
def test_autocorr_matches_pandas(lag: int) -> None:
    r = ar_returns(0.3, n=500)
    assert st.autocorr(r, lag) == pytest.approx(pd.Series(r).autocorr(lag), abs=1e-12)


def test_variance_ratio_matches_hand_computation() -> None:
    r = np.array([0.01, -0.02, 0.03, 0.005, -0.01, 0.02, 0.0, -0.015, 0.01, 0.025])
    q, t, mu = 3, len(r), r.mean()
    var_a = pd.Series(r).var(ddof=1)
    sums = pd.Series(r).rolling(q).sum().dropna()
    var_c = ((sums - q * mu) ** 2).sum() / (q * (t - q + 1) * (1 - q / t))
    vr, z = st.variance_ratio(r, q)
    assert vr == pytest.approx(var_c / var_a, rel=1e-12)
    assert z == pytest.approx((vr - 1) / math.sqrt(2 * (2 * q - 1) * (q - 1) / (3 * q * t)))


def test_variance_ratio_random_walk_near_one_and_ar_near_theory() -> None:
    rw = np.diff(random_walk(n=5000))
    for q in (2, 5, 10):
        vr, z = st.variance_ratio(rw, q)
        assert vr == pytest.approx(1.0, abs=0.1)
        assert abs(z) < 3
    vr2, z2 = st.variance_ratio(ar_returns(0.3, n=5000), 2)
    assert vr2 == pytest.approx(1.3, abs=0.05)  # VR(2) = 1 + rho_1 and rho_1 = phi
    assert z2 > 5


def test_hurst_random_walk_and_antipersistent() -> None:
    assert st.hurst_aggvar(np.diff(random_walk(n=5000))) == pytest.approx(0.5, abs=0.1)
    e = np.random.default_rng(3).normal(size=5001)
    assert st.hurst_aggvar(np.diff(e)) < 0.2  # over-differenced noise: H -> 0


def test_dickey_fuller_ar1_half_life() -> None:
    y = ou_logprice(0.9, n=5000)
    df = st.dickey_fuller(y)
    slope = np.polyfit(y[:-1], y[1:], 1)[0]  # AR(1) y_t = c + phi y_{t-1}: same regression
    assert df["phi"] == pytest.approx(slope, abs=1e-10)
    assert df["phi"] == pytest.approx(0.9, abs=0.02)
    assert st.half_life(0.9) == pytest.approx(6.579, abs=1e-3)
    assert 5.0 < df["half_life"] < 9.0
    x = y[:-1] - y[:-1].mean()
    dy = np.diff(y)
    b = (x @ (dy - dy.mean())) / (x @ x)
    resid = dy - dy.mean() - b * x
    se = math.sqrt(resid @ resid / (len(dy) - 2) / (x @ x))
    assert df["t_stat"] == pytest.approx(b / se, rel=1e-8)
    assert df["t_stat"] < st.DF_CRITICAL["1%"]


def test_dickey_fuller_random_walk_not_stationary() -> None:
    df = st.dickey_fuller(random_walk())
    assert df["t_stat"] > st.DF_CRITICAL["5%"]
    assert df["half_life"] > 200
    assert st.half_life(1.0) == math.inf
    assert math.isnan(st.half_life(-0.5))


@pytest.mark.parametrize("k", [1, 2, 5, 6])
@pytest.mark.parametrize("x", [0.5, 3.0, 11.07, 25.0])
def test_chi2_sf_matches_scipy(k: int, x: float) -> None:
    stats = pytest.importorskip("scipy.stats")
    assert st.chi2_sf(x, k) == pytest.approx(stats.chi2.sf(x, k), rel=1e-9)


def test_arch_lm_detects_garch_not_iid() -> None:
    rng = np.random.default_rng(4)
    n, r, var = 3000, np.zeros(3000), 1e-4
    for i in range(1, n):
        var = 1e-6 + 0.15 * r[i - 1] ** 2 + 0.8 * var
        r[i] = math.sqrt(var) * rng.normal()
    lm, p = st.arch_lm(r, 5)
    assert p < 1e-3 and lm > 11.07
    _, p_iid = st.arch_lm(rng.normal(size=3000), 5)
    assert p_iid > 0.01


def test_arch_lm_matches_hand_regression() -> None:
    r = np.random.default_rng(6).normal(size=60)
    e2 = (r - r.mean()) ** 2
    y = e2[2:]
    x = np.column_stack([np.ones(58), e2[1:-1], e2[:-2]])  # lags 1 and 2
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    r2 = 1 - ((y - x @ beta) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    lm, p = st.arch_lm(r, 2)
    assert lm == pytest.approx(58 * r2, rel=1e-9)
    assert p == pytest.approx(math.exp(-lm / 2), rel=1e-9)  # chi2(2) survival


def test_drawdown_profile_hand_worked() -> None:
    dd = st.drawdown_profile(np.array([100.0, 120, 90, 130, 65, 70]))
    assert dd["max_drawdown"] == pytest.approx(0.5)  # 130 -> 65
    assert dd["time_under_water"] == pytest.approx(3 / 6)  # 90, 65, 70
    assert dd["longest_drawdown_bars"] == 2
    assert dd["mean_drawdown"] == pytest.approx((0.25 + 0.5 + 60 / 130) / 6)


def test_breakout_edge_hand_worked() -> None:
    close = np.array([10.0, 11, 10, 12, 13, 12, 14, 13])
    b = st.breakout_edge(close, lookback=2, horizon=1)
    # new 2-bar highs with a next bar: idx 3 (12>11), 4 (13>12), 6 (14>13); next moves +,-,-
    assert b["events"] == 3
    assert b["hit_rate"] == pytest.approx(1 / 3)
    assert b["hit_rate_all"] == pytest.approx(4 / 7)  # next moves +,-,+,+,-,+,-


# --------------------------------------------------------------------------- researchers
def test_researchers_satisfy_protocol_and_report_numbers() -> None:
    data = frame(random_walk())
    for researcher in (
        TrendResearcher(),
        MeanReversionResearcher(),
        VolatilityResearcher(),
        BreakoutResearcher(),
    ):
        assert isinstance(researcher, Researcher)
        report = researcher.study(data, "", 252.0)
        assert isinstance(report, ResearchReport) and report.researcher == researcher.name
        assert report.findings, researcher.name
        for f in report.findings:
            assert isinstance(f.value, float) and any(ch.isdigit() for ch in f.statement)


def test_trend_findings_carry_band_and_z() -> None:
    report = TrendResearcher().study(frame(random_walk()), "", 252.0)
    by = {f.statistic: f for f in report.findings}
    assert by["acf_1"].detail["band"] == pytest.approx(1.96 / math.sqrt(N - 1))
    assert {"variance_ratio_2", "variance_ratio_5", "variance_ratio_10", "hurst"} <= set(by)
    assert by["hurst"].detail["method"] == "aggregated_variance"


def test_persistence_score_follows_documented_formula() -> None:
    report = TrendResearcher().study(frame(np.cumsum(ar_returns(0.05, seed=7))), "", 252.0)
    by = {f.statistic: f for f in report.findings}
    z = np.mean([by[f"variance_ratio_{q}"].detail["z"] for q in (2, 5, 10)])
    parts = [
        z / 4,
        (by["hurst"].value - 0.5) / 0.15,
        by["acf_1"].value / (2 * by["acf_1"].detail["band"]),
    ]
    expected = float(np.mean(np.clip(parts, -1, 1)))
    assert by["persistence"].value == pytest.approx(expected, abs=1e-12)


def test_swarm_trending_series_favours_trend_families() -> None:
    result = ResearchSwarm().run(frame(np.cumsum(ar_returns(0.2, drift=3e-4))), "", 252.0)
    assert result.ranked[0].family in TREND
    assert set(result.top(3)) <= set(TREND)
    weights = {r.family: r.weight for r in result.ranked}
    assert all(weights[f] < 0 for f in REVERSION)


def test_swarm_ou_series_favours_reversion_families() -> None:
    result = ResearchSwarm().run(frame(ou_logprice(0.9)), "", 252.0)
    assert {r.family for r in result.ranked[:2]} == set(REVERSION)
    weights = {r.family: r.weight for r in result.ranked}
    assert all(weights[f] < 0 for f in TREND)
    hl = next(f for f in result.findings if f.statistic == "half_life")
    assert 5.0 < hl.value < 10.0


def test_swarm_random_walk_has_no_strong_view() -> None:
    result = ResearchSwarm().run(frame(random_walk()), "", 252.0)
    assert all(abs(r.weight) <= 0.5 for r in result.ranked if r.family != "buy_and_hold")


def test_swarm_is_deterministic_and_ranks_by_weight_then_name() -> None:
    data = frame(ou_logprice())
    a, b = (
        ResearchSwarm().run(data, "momentum", 252.0),
        ResearchSwarm().run(data, "momentum", 252.0),
    )
    assert a == b
    keys = [(-r.weight, r.family) for r in a.ranked]
    assert keys == sorted(keys)


def test_directive_boosts_and_excludes() -> None:
    data = frame(ou_logprice())
    plain = {r.family: r.weight for r in ResearchSwarm().run(data, "", 252.0).ranked}
    steered = ResearchSwarm().run(data, "trend following, avoid bollinger, low drawdown", 252.0)
    w = {r.family: r.weight for r in steered.ranked}
    for f in TREND:
        assert w[f] == pytest.approx(plain[f] + DIRECTIVE_BOOST)
    assert "bollinger_reversion" not in w
    assert w["buy_and_hold"] == pytest.approx(plain["buy_and_hold"] - DIRECTIVE_BOOST)


def test_swarm_records_failing_researcher() -> None:
    class Broken:
        name = "broken"

        def study(self, data: pd.DataFrame, directive: str, bars_per_year: float) -> ResearchReport:
            raise RuntimeError("boom")

    result = ResearchSwarm([TrendResearcher(), Broken()]).run(frame(random_walk()), "", 252.0)
    assert result.errors == {"broken": "RuntimeError: boom"}
    assert [r.researcher for r in result.reports] == ["trend"]


def test_swarm_rejects_bad_data() -> None:
    swarm = ResearchSwarm()
    with pytest.raises(DataError, match="at least 100"):
        swarm.run(frame(random_walk(n=50)), "", 252.0)
    with pytest.raises(DataError, match="DatetimeIndex"):
        swarm.run(frame(random_walk()).reset_index(drop=True), "", 252.0)
    with pytest.raises(DataError, match="'close'"):
        swarm.run(frame(random_walk()).drop(columns="close"), "", 252.0)


def test_volatility_researcher_suggests_targeting_on_clustered_series() -> None:
    rng = np.random.default_rng(5)
    r, var = np.zeros(N), 1e-4
    for i in range(1, N):
        var = 2e-6 + 0.15 * r[i - 1] ** 2 + 0.8 * var
        r[i] = math.sqrt(var) * rng.normal()
    report = VolatilityResearcher().study(frame(np.cumsum(r)), "", 252.0)
    assert any(s.startswith("volatility targeting") for s in report.suggestions)


# --------------------------------------------------------------------------- directive
@pytest.mark.parametrize(
    ("text", "styles", "families", "excluded", "long_only", "low_dd"),
    [
        ("", [], [], [], False, False),
        ("trend following, long only", ["trend"], list(TREND), [], True, False),
        ("Mean reversion with LOW DRAWDOWN", ["mean_reversion"], list(REVERSION), [], False, True),
        ("breakout strategies", ["breakout"], ["donchian_breakout"], [], False, False),
        ("momentum, no shorting", ["momentum"], ["momentum", "macd"], [], True, False),
        ("trend but avoid mean reversion", ["trend"], list(TREND), list(REVERSION), False, False),
        ("capital preservation, rsi", ["mean_reversion"], ["rsi_reversion"], [], False, True),
        ("try sma_crossover", [], ["sma_crossover"], [], False, False),
    ],
)
def test_parse_directive_keyword_table(
    text: str,
    styles: list[str],
    families: list[str],
    excluded: list[str],
    long_only: bool,
    low_dd: bool,
) -> None:
    d = parse_directive(text)
    assert d.preferred_styles == styles
    assert sorted(d.preferred_families) == sorted(families)
    assert sorted(d.excluded_families) == sorted(excluded)
    assert (d.long_only, d.low_drawdown) == (long_only, low_dd)


def test_constant_prices_give_no_view_and_no_errors() -> None:
    idx = pd.date_range("2020-01-01", periods=150, freq="D", name="date")
    data = pd.DataFrame({c: 10.0 for c in ("open", "high", "low", "close", "volume")}, index=idx)
    result = ResearchSwarm().run(data, "", 252.0)
    assert result.errors == {}
    assert max(r.weight for r in result.ranked) == 0.0
    # inf half-life and NaN autocorrelations survive a JSON round trip
    again = SwarmResult.model_validate_json(result.model_dump_json())
    half = next(f for f in again.findings if f.statistic == "half_life")
    assert half.value == math.inf
    assert math.isnan(next(f for f in again.findings if f.statistic == "acf_1").value)
