"""The search fits the data's bar size: lookbacks declared in days are scaled to bars and capped
by what the data supports, and volatility is annualised with the data's own bars per year."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphaloop import data
from alphaloop.agents.development import (
    FIXES,
    REFINEMENTS,
    DevelopmentInput,
    OptunaDeveloper,
    PastResult,
    clashes,
    fit_to_bars,
    refine,
)
from alphaloop.backtest import indicators as ind
from alphaloop.backtest.strategy import (
    IntRange,
    from_source,
    library_names,
    load_strategy,
    lookahead_check,
    parse_parameters,
    scale_lookbacks,
)
from alphaloop.errors import StrategyError

GOOG = data.load("GOOG")
LIBRARY = {n: load_strategy(n) for n in library_names()}
PAIRS = {"sma_crossover": ("fast", "slow"), "ema_crossover": ("fast", "slow"),
         "macd": ("fast", "slow"), "donchian_breakout": ("exit_period", "period")}


def intraday(hours: int, session: tuple[int, int], weekdays: int, days: int = 730,
             seed: int = 0, vol: float = 0.001) -> pd.DataFrame:
    """Bars every ``hours`` within ``session`` (first hour, end hour) on the first
    ``weekdays`` days of each week, a random walk of ``vol`` a bar."""
    stamps = pd.date_range("2020-01-06", periods=days * 24 // hours, freq=f"{hours}h")
    stamps = stamps[(stamps.day_of_week < weekdays) & (stamps.hour >= session[0])
                    & (stamps.hour < session[1])]
    rng = np.random.default_rng(seed)
    close = 1.1 * np.exp(np.cumsum(rng.normal(0.0, vol, len(stamps))))
    opens = np.r_[close[0], close[:-1]]
    return pd.DataFrame({"open": opens, "high": np.maximum(opens, close) * 1.0005,
                         "low": np.minimum(opens, close) * 0.9995, "close": close,
                         "volume": 1.0}, index=pd.DatetimeIndex(stamps, name="date"))


FX4H = intraday(4, (0, 24), 5)          # 24-hour market, Monday to Friday: 6 bars a day
EQ1H = intraday(1, (10, 17), 5)         # a 7-hour session: 7 bars a day
BTC4H = intraday(4, (0, 24), 7, 400)    # every day of the week


def expected(value: int, bars_per_day: float) -> int:
    return max(2, math.floor(value * bars_per_day + 0.5))


# -- the marker and the scaling -----------------------------------------------------------------
def test_days_marker_is_declared_and_checked() -> None:
    specs = parse_parameters({"n": {"default": 20, "low": 5, "high": 100, "unit": "days"}}, "s")
    assert specs["n"].unit == "days" and specs["n"].to_dict()["unit"] == "days"
    assert "days" in specs["n"].describe()
    with pytest.raises(StrategyError, match="needs an integer range"):
        parse_parameters({"k": {"default": 2.0, "low": 1.0, "high": 3.0, "unit": "days"}}, "s")
    with pytest.raises(StrategyError, match="parameter 'n'"):
        parse_parameters({"n": {"default": 20, "low": 5, "high": 100, "unit": "bars"}}, "s")
    with pytest.raises(StrategyError, match="unknown key 'unit'"):
        parse_parameters({"b": {"default": True, "choices": [True, False], "unit": "days"}}, "s")
    # every library lookback carries it; nothing else does
    for name, strat in LIBRARY.items():
        marked = {k for k, v in strat.parameters.items() if getattr(v, "unit", None)}
        assert all(isinstance(strat.parameters[k], IntRange) for k in marked), name
        if name not in ("buy_and_hold",):
            assert marked, name


@pytest.mark.parametrize("name", sorted(LIBRARY))
def test_daily_spaces_are_unchanged(name: str) -> None:
    strat = LIBRARY[name]
    assert scale_lookbacks(strat.parameters, 1.0) == dict(strat.parameters)
    assert fit_to_bars(strat, 252.0, None) is strat
    assert fit_to_bars(strat, 252.0, 100_000) is strat  # no cap below a declared bound
    dev = OptunaDeveloper(LIBRARY)
    assert dev.strategy(name, 252.0, 3 * 504 + 2) is strat  # trusted library code, as shipped


@pytest.mark.parametrize(("bars", "tf"), [(FX4H, "4h"), (EQ1H, "1h"), (BTC4H, "4h")])
def test_intraday_spaces_scale_by_the_measured_bars_per_day(bars: pd.DataFrame, tf: str) -> None:
    bpy = data.bars_per_year(tf, bars.index)
    f = bpy / 252.0
    strat = fit_to_bars(LIBRARY["momentum"], bpy, None)
    declared = LIBRARY["momentum"].parameters
    for key in ("lookback", "vol_window"):
        spec, was = strat.parameters[key], declared[key]
        assert (spec.low, spec.default, spec.high) == tuple(
            expected(getattr(was, k), f) for k in ("low", "default", "high")), key
        assert spec.unit is None  # a range of bars now: never scaled twice
    assert strat.parameters["vol_target"] == declared["vol_target"]  # not a lookback
    assert f"x{f:.3g}" in strat.source.splitlines()[-1]


def test_fx_and_exchange_hours_scale_differently() -> None:
    fx = data.bars_per_year("4h", FX4H.index) / 252.0
    equity = data.bars_per_year("1h", EQ1H.index) / 252.0
    assert fx == pytest.approx(6 * 5 * 365.25 / 7 / 252, rel=0.01)  # ~6.2 bars a day
    assert equity == pytest.approx(7 * 5 * 365.25 / 7 / 252, rel=0.01)  # ~7.2 bars a day
    slow_fx = fit_to_bars(LIBRARY["sma_crossover"], fx * 252, None).parameters["slow"]
    assert slow_fx.default == expected(50, fx)


@pytest.mark.parametrize(("bpy", "tf"), [(52.0, "1w"), (12.0, "1mo")])
def test_weekly_and_monthly_spaces_scale_down_keeping_order(bpy: float, tf: str) -> None:
    assert data.bars_per_year(tf) == bpy
    for name, strat in LIBRARY.items():
        fitted = fit_to_bars(strat, bpy, None)
        for key, spec in strat.parameters.items():
            new = fitted.parameters[key]
            if getattr(spec, "unit", None):
                assert new.high <= spec.high and new.low >= min(spec.low, 2), (name, key)
                assert new.high == expected(spec.high, bpy / 252), (name, key)
        if name in PAIRS:
            a, b = PAIRS[name]
            assert fitted.parameters[a].default < fitted.parameters[b].default, name
            assert fitted.parameters[a].low < fitted.parameters[b].low, name
    assert fit_to_bars(LIBRARY["momentum"], 52.0, None).parameters["lookback"].default == 26


@pytest.mark.parametrize("n", [30, 300, 1503])
def test_upper_bounds_are_clipped_to_a_third_of_the_in_sample_bars(n: int) -> None:
    for bpy in (252.0, 1560.0, 52.0):
        for name, strat in LIBRARY.items():
            fitted = fit_to_bars(strat, bpy, n)
            for key, spec in fitted.parameters.items():
                if getattr(strat.parameters[key], "unit", None):
                    assert spec.high <= max(n // 3, 2), (bpy, name, key)
                    assert spec.low <= spec.default <= spec.high
            if name in PAIRS and n >= 300:
                a, b = PAIRS[name]
                assert fitted.parameters[a].default < fitted.parameters[b].default, (bpy, name)
    # GOOG's daily in-sample (70% of 2,148 bars): momentum's 504-day lookback is capped
    goog = fit_to_bars(LIBRARY["momentum"], 252.0, 1503)
    assert goog.parameters["lookback"].high == 501
    assert goog.parameters["vol_window"] == LIBRARY["momentum"].parameters["vol_window"]


def test_scaling_keeps_a_strict_declared_order_at_the_floor_and_the_cap() -> None:
    specs = parse_parameters({
        "a": {"default": 3, "low": 2, "high": 40, "unit": "days"},
        "b": {"default": 4, "low": 3, "high": 60, "unit": "days"},
        "c": {"default": 5, "low": 3, "high": 90, "unit": "days"},
        "w": {"default": 5, "low": 1, "high": 9},
    }, "s")
    down = scale_lookbacks(specs, 0.1)
    assert [down[k].default for k in "abc"] == [2, 3, 4] and down["w"] is specs["w"]
    assert [down[k].low for k in "abc"] == [2, 3, 3]  # b and c were declared equal
    up = scale_lookbacks(specs, 10.0, max_bars=35)
    assert [(up[k].low, up[k].high) for k in "abc"] == [(20, 35), (30, 35), (30, 35)]
    assert [up[k].default for k in "abc"] == [30, 34, 35]  # b and c both capped: b moves down
    assert scale_lookbacks(specs, 1.0) == specs and scale_lookbacks(specs, 1.0, 90) == specs


# -- bars per year from the data ----------------------------------------------------------------
def test_bars_per_year_helper_matches_the_data_module_and_is_causal() -> None:
    for tf in ("1d", "1w", "1mo"):
        bars = data.load("AAPL", tf)
        got = ind.bars_per_year(bars.index)
        assert np.isnan(got[0]) and (got[1:] == data.bars_per_year(tf)).all(), tf
        assert not got.flags.writeable
    for bars, tf in ((FX4H, "4h"), (EQ1H, "1h"), (BTC4H, "4h")):
        got = ind.bars_per_year(bars.index)
        week = np.searchsorted(bars.index, bars.index[0] + pd.Timedelta(days=7))
        assert np.isnan(got[:week]).all() and np.isfinite(got[week:]).all()
        assert got[-1] == pytest.approx(data.bars_per_year(tf, bars.index), rel=0.01)
        for k in (3, week + 5, len(bars) // 3):  # the data cut at a bar: the same values
            np.testing.assert_array_equal(ind.bars_per_year(bars.index[:k]), got[:k])
    with pytest.raises(ValueError, match="timestamps"):
        ind.bars_per_year(np.arange(5.0))


def test_momentum_vol_target_annualises_with_the_data_bars_per_year(in_process: None) -> None:
    mom = LIBRARY["momentum"]
    params = mom.resolve_params({"lookback": 60, "vol_target": 0.1, "vol_window": 20})
    # daily: exactly the old sqrt(252)
    close = GOOG["close"].to_numpy()
    old = np.nan_to_num(np.sign(ind.returns(close, 60)))
    with np.errstate(divide="ignore", invalid="ignore"):
        size = np.minimum(1.0, 0.1 / (ind.rolling_std(ind.returns(close, 1), 20) * np.sqrt(252.0)))
    np.testing.assert_array_equal(mom.positions(GOOG, params), old * np.nan_to_num(size, nan=0.0))
    # 4-hour FX: the size is sqrt(252 / ~1,617) of what a daily annualisation gives
    params = mom.resolve_params({"lookback": 60, "vol_target": 0.001, "vol_window": 20})
    close = FX4H["close"].to_numpy()
    pos = mom.positions(FX4H, params)
    with np.errstate(divide="ignore", invalid="ignore"):
        daily_style = np.sign(ind.returns(close, 60)) * np.minimum(
            1.0, 0.001 / (ind.rolling_std(ind.returns(close, 1), 20) * np.sqrt(252.0)))
    live = (pos != 0) & np.isfinite(daily_style) & (daily_style != 0)
    assert live.sum() > len(pos) * 0.9
    bpy = ind.bars_per_year(FX4H.index)[live]
    np.testing.assert_allclose(pos[live] / daily_style[live], np.sqrt(252.0 / bpy), rtol=1e-12)
    assert np.sqrt(252.0 / bpy).max() < 0.41
    assert lookahead_check(mom, FX4H, params, cuts=12) == []


def test_vol_target_refinement_annualises_with_the_data_bars_per_year(in_process: None) -> None:
    base = LIBRARY["sma_crossover"]

    def old_rule(bars: pd.DataFrame, window: int, annual: float | np.ndarray) -> np.ndarray:
        pos = pd.Series(base.positions(bars, base.defaults()), index=bars.index)
        realised = bars["close"].pct_change().rolling(window).std() * annual
        return (pos * (0.05 / realised).clip(upper=1.0)).fillna(0.0).clip(-1, 1).to_numpy()

    daily = refine(base, "vol_target")
    assert "252" not in daily.source.split("alphaloop refinement")[1]
    got = daily.positions(GOOG, daily.resolve_params({"target_vol": 0.05}))
    np.testing.assert_array_equal(got, old_rule(GOOG, 20, 252 ** 0.5))  # as before, to the bit
    bars = intraday(4, (0, 24), 5, 500, seed=1, vol=0.003)  # ~12% a year: sized below 1
    bpy = data.bars_per_year("4h", bars.index)
    fx = OptunaDeveloper(LIBRARY).strategy("sma_crossover+vol_target", bpy, len(bars))
    params = fx.resolve_params({"target_vol": 0.05})
    window = expected(20, bpy / 252)
    assert f".rolling({window})" in fx.source and 120 < window < 130  # 20 days of 4h bars
    got = fx.positions(bars, params)
    base = fit_to_bars(base, bpy, len(bars))
    want = old_rule(bars, window, np.sqrt(ind.bars_per_year(bars.index)))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert np.abs(got).max() < 0.6  # with sqrt(252) it would be sized 1 nearly everywhere
    assert np.abs(old_rule(bars, window, 252 ** 0.5)).max() == 1.0


# -- consistent refinements ---------------------------------------------------------------------
@pytest.mark.parametrize("refinement", sorted(REFINEMENTS))
def test_refinements_never_yield_contradictory_parameters(refinement: str) -> None:
    dev = OptunaDeveloper(LIBRARY)
    for name in sorted(LIBRARY):
        assert clashes(LIBRARY[name], refinement) == [], (name, refinement)
        full = f"{name}+{refinement}"
        refined = dev.strategy(full, 1560.0, 3000)
        fixed = {k: v for k, v in FIXES.get(refinement, {}).items()
                 if k in LIBRARY[name].parameters}
        assert not set(fixed) & set(refined.parameters), full  # decided, so not searched
        if fixed:  # ... and recorded where it is done
            note = ", ".join(f"{k}={v!r}" for k, v in fixed.items())
            assert f"refinement: {refinement} (fixes {note})" in refined.source
        past = [PastResult(variant_id="v0", strategy_name=full, strategy_code=refined.source,
                           parameters=refined.defaults(), gate_score=0.1)]
        props = dev.propose(DevelopmentInput(action="TUNE_PARAMETERS", families=[name],
                                             history=past, n_variants=3, seed=2,
                                             bars_per_year=1560.0, in_sample_bars=3000))
        for p in props:
            assert p.strategy_code == refined.source
            assert refined.resolve_params(p.parameters) == p.parameters
            assert not set(fixed) & set(p.parameters)
            if refinement == "long_only" or p.parameters.get("long_only") is True:
                assert p.parameters.get("allow_short") is not True


def test_a_refinement_parameter_a_user_strategy_declares_is_refused() -> None:
    user = from_source(
        '"""Above a trend."""\nimport numpy as np\nimport pandas as pd\n'
        'PARAMETERS = {"trend_window": {"default": 50, "low": 5, "high": 100}}\n'
        "def generate_positions(data, trend_window=50):\n"
        "    return pd.Series(np.zeros(len(data.index)), index=data.index)\n", "mine")
    assert clashes(user, "trend_filter") == ["trend_window"]
    with pytest.raises(ValueError, match="trend_window"):
        refine(user, "trend_filter")
    dev = OptunaDeveloper({"mine": user})
    past = [PastResult(variant_id="v0", strategy_name="mine", strategy_code=user.source,
                       parameters=user.defaults(), gate_score=0.2)]
    props = dev.propose(DevelopmentInput(action="REFINE_ALGORITHM", families=["mine"],
                                         history=past, n_variants=3))
    assert props and "mine+trend_filter" not in {p.strategy_name for p in props}


# -- the developer and the workflow -----------------------------------------------------------
def test_developer_proposes_scaled_lookbacks_and_says_so() -> None:
    dev = OptunaDeveloper(LIBRARY)
    bpy = data.bars_per_year("4h", FX4H.index)
    inp = DevelopmentInput(action="INITIAL", families=["momentum", "sma_crossover"], n_variants=6,
                           seed=1, bars_per_year=bpy, in_sample_bars=len(FX4H))
    props = dev.propose(inp)
    assert props[0].parameters["lookback"] == expected(126, bpy / 252) == 784  # ~6.2 a day
    assert props[1].parameters["slow"] == expected(50, bpy / 252)
    for p in props:
        fitted = dev.strategy(p.strategy_name, bpy, len(FX4H))
        assert p.strategy_code == fitted.source
        assert fitted.resolve_params(p.parameters) == p.parameters
        assert f"lookbacks in days x{bpy / 252:.3g} ({bpy:.0f} bars a year)" in p.description
    lookbacks = [p.parameters["lookback"] for p in props if p.strategy_name == "momentum"]
    assert min(lookbacks) >= expected(5, bpy / 252)
    daily = dev.propose(inp.model_copy(update={"bars_per_year": 252.0, "in_sample_bars": None}))
    assert daily[0].parameters == LIBRARY["momentum"].defaults()
    assert daily[0].strategy_code == LIBRARY["momentum"].source
    assert "lookbacks" not in daily[0].description


def test_the_workflow_tells_the_developer_its_bars(tmp_path: Path) -> None:
    from alphaloop.agents.failure import RuleBasedFailureAnalyst
    from alphaloop.agents.research import ResearchSwarm
    from alphaloop.agents.trajectory import RuleBasedTrajectoryAdvisor
    from alphaloop.execution import QUEUE_FILENAME, TaskQueue
    from alphaloop.execution.task_runner import run_task_in_process
    from alphaloop.workflow.gate import QualityCriteria
    from alphaloop.workflow.orchestrator import Orchestrator, Parts
    from alphaloop.workflow.routing import RoutingEngine
    from alphaloop.workflow.state import StateManager, workflow_dir
    from alphaloop.workflow.tracker import ExperimentTracker

    FX4H.to_csv(tmp_path / "EURUSD.csv")
    seen: list[DevelopmentInput] = []

    class Spy(OptunaDeveloper):
        def propose(self, inp: DevelopmentInput) -> list:
            seen.append(inp)
            return super().propose(inp)

    criteria = QualityCriteria.coerce(["sharpe_ratio>=5"])
    state = StateManager.create(tmp_path, research_directive="", ticker="EURUSD",
                                quality_criteria=criteria.to_dict(), timeframe="4h",
                                data_path=str(tmp_path), seed=1)
    wid = state.state.workflow_id
    parts = Parts(state=state, tracker=ExperimentTracker(tmp_path, wid),
                  queue=TaskQueue(workflow_dir(tmp_path, wid) / QUEUE_FILENAME),
                  executor=None, task_fn=run_task_in_process,  # type: ignore[arg-type]
                  swarm=ResearchSwarm(), developer=Spy({"momentum": LIBRARY["momentum"]}),
                  router=RoutingEngine(state, RuleBasedFailureAnalyst(),
                                       RuleBasedTrajectoryAdvisor()),
                  criteria=criteria, n_variants=2)
    orch = Orchestrator(parts)
    try:  # the tool check passed (not run here: nothing is backtested), then research, develop
        orch._write_json("tools.json", {"momentum": {"ok": True, "problem": None}})
        state.complete_step(current_phase="RESEARCH_SWARM", pending_action="INITIAL")
        orch._research()
        orch._develop()
        (proposals,) = workflow_dir(tmp_path, wid).glob("*_proposals.json")
        recorded = proposals.read_text()
    finally:
        parts.tracker.close()
        parts.queue.close()
    bpy = data.bars_per_year("4h", orch.in_sample.index)
    assert seen[0].in_sample_bars == len(orch.in_sample)
    assert seen[0].bars_per_year == bpy and bpy / 252 == pytest.approx(6.2, abs=0.1)
    assert f"lookbacks in days x{bpy / 252:.3g}" in recorded
    first = json.loads(recorded)[0]
    fitted = OptunaDeveloper(LIBRARY).strategy("momentum", bpy, len(orch.in_sample))
    assert first["parameters"] == fitted.defaults() and first["strategy_code"] == fitted.source
    # 126 days of 4-hour bars, capped at a third of the in-sample bars
    assert first["parameters"]["lookback"] == min(expected(126, bpy / 252),
                                                  len(orch.in_sample) // 3)
