"""The strategy library: every strategy loads through the sandbox, gives valid causal positions
on real data, and follows its documented rule; the runner's single and grid paths agree."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphaloop import data
from alphaloop.backtest import engine, runner
from alphaloop.backtest.strategy import from_source, library_names, load_strategy, lookahead_check

pytestmark = pytest.mark.usefixtures("in_process")

GOOG = data.load("GOOG")
NAMES = library_names()

EXPECTED = {
    "sma_crossover",
    "ema_crossover",
    "rsi_reversion",
    "bollinger_reversion",
    "donchian_breakout",
    "macd",
    "momentum",
    "buy_and_hold",
}

# Non-default parameter sets exercising each strategy's options.
VARIANTS: dict[str, list[dict[str, object]]] = {
    "sma_crossover": [{"fast": 5, "slow": 20, "allow_short": False}, {"fast": 50, "slow": 200}],
    "ema_crossover": [{"fast": 5, "slow": 60, "allow_short": False}],
    "rsi_reversion": [{"period": 5, "lower": 20, "upper": 80, "allow_short": True}],
    "bollinger_reversion": [{"period": 50, "k": 1.0, "allow_short": True}],
    "donchian_breakout": [{"period": 55, "exit_period": 20, "allow_short": True}],
    "macd": [{"fast": 8, "slow": 40, "signal": 5, "allow_short": False}],
    "momentum": [
        {"lookback": 20, "long_only": True},
        {"lookback": 252, "vol_target": 0.15, "vol_window": 40},
    ],
    "buy_and_hold": [],
}


def test_library_is_complete():
    assert set(NAMES) == EXPECTED


@pytest.mark.parametrize("name", NAMES)
def test_strategy_loads_and_describes_itself(name):
    s = load_strategy(name)
    assert s.summary and len(s.description.splitlines()) >= 2  # a rule, not just a title
    for pname, spec in s.parameters.items():
        assert spec.low <= spec.default <= spec.high if spec.kind != "choice" else True, pname


@pytest.mark.parametrize("name", NAMES)
def test_strategy_gives_valid_causal_positions_on_real_data(name):
    s = load_strategy(name)
    for params in [{}, *VARIANTS[name]]:
        pos = s.positions(GOOG, s.resolve_params(params))
        assert pos.shape == (len(GOOG),) and pos.dtype == np.float64
        assert np.isfinite(pos).all() and (np.abs(pos) <= 1.0).all()
        if name != "buy_and_hold":
            assert pos[0] == 0.0, "warm-up bars must be flat"
            assert (pos != 0).any(), f"{name} {params} never trades"
        assert lookahead_check(s, GOOG, params, cuts=16) == [], (name, params)


@pytest.mark.parametrize("name", NAMES)
def test_strategy_works_on_synthetic_and_short_data(name):
    rng = np.random.default_rng(3)
    n = 60
    close = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    bars = pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": 1.0},
        index=pd.bdate_range("2020-01-01", periods=n, name="date"),
    )
    pos = load_strategy(name).positions(bars)  # windows longer than the data: flat, no error
    assert pos.shape == (n,) and np.isfinite(pos).all()


# -- sma_crossover, by hand ---------------------------------------------------------------------
def bars_from_close(close: list[float]) -> pd.DataFrame:
    c = np.asarray(close, dtype=float)
    return pd.DataFrame(
        {"open": c, "high": c, "low": c, "close": c, "volume": 1.0},
        index=pd.bdate_range("2021-01-04", periods=len(c), name="date"),
    )


def test_sma_crossover_hand_worked_example():
    #        bar:   0  1  2  3  4  5  6  7  8  9 10 11
    close = [1, 2, 3, 4, 5, 4, 3, 2, 1, 2, 3, 4]
    # sma2:       -  1.5 2.5 3.5 4.5 4.5 3.5 2.5 1.5 1.5 2.5 3.5
    # sma3:       -  -   2   3   4  4.33  4   3   2  1.67  2   3
    # sign(2-3):  -  -   +   +   +   +    -   -   -   -    +   +
    # Already above when both exist (bar 2): no crossover yet -> flat; cross below at bar 6
    # -> short; cross above at bar 10 -> long.
    s = load_strategy("sma_crossover")
    bars = bars_from_close(close)
    expected = [0, 0, 0, 0, 0, 0, -1, -1, -1, -1, 1, 1]
    assert s.positions(bars, {"fast": 2, "slow": 3}).tolist() == expected
    long_only = s.positions(bars, {"fast": 2, "slow": 3, "allow_short": False})
    assert long_only.tolist() == [0] * 10 + [1, 1]


def test_sma_crossover_touch_is_not_a_cross():
    # sma2 - sma3 = (c[t] + c[t-1] - 2 c[t-2]) / 6: below at bar 2, touching (0) at bar 3, below
    # again at bar 4, above at bar 5. The touch is not a crossover; bar 5 is the first one.
    close = [10, 8, 6, 10, 1, 25, 26]
    diff = pd.Series(close).rolling(2).mean() - pd.Series(close).rolling(3).mean()
    assert np.sign(diff).tolist()[2:] == [-1, 0, -1, 1, 1]
    s = load_strategy("sma_crossover")
    pos = s.positions(bars_from_close(close), {"fast": 2, "slow": 3})
    assert pos.tolist() == [0, 0, 0, 0, 0, 1, 1]


def test_sma_crossover_fast_not_below_slow_is_flat():
    s = load_strategy("sma_crossover")
    assert (s.positions(GOOG, {"fast": 30, "slow": 30}) == 0).all()
    assert (s.positions(GOOG, {"fast": 40, "slow": 30}) == 0).all()


def reference_crossover(close: pd.Series, fast: int, slow: int, allow_short: bool) -> np.ndarray:
    """A plain loop over pandas rolling means: the documented rule, written the slow way."""
    diff = (close.rolling(fast).mean() - close.rolling(slow).mean()).to_numpy()
    out, last, crossed = [], 0, False
    for d in diff:
        side = 0 if np.isnan(d) or d == 0 else (1 if d > 0 else -1)
        if side:
            crossed = crossed or (last != 0 and side != last)
            last = side
        pos = last if crossed else 0
        out.append(pos if allow_short or pos > 0 else 0)
    return np.array(out, dtype=float)


@pytest.mark.parametrize(
    ("fast", "slow", "short"), [(10, 50, True), (3, 7, False), (20, 100, True)]
)
def test_sma_crossover_matches_reference_on_real_data(fast, slow, short):
    s = load_strategy("sma_crossover")
    got = s.positions(GOOG, {"fast": fast, "slow": slow, "allow_short": short})
    assert np.array_equal(got, reference_crossover(GOOG["close"], fast, slow, short))


def test_rsi_reversion_matches_reference_on_real_data():
    import talib

    close = GOOG["close"].to_numpy()
    rsi = talib.RSI(close, 14)
    expected, pos = [], 0.0
    for r in rsi:
        if (pos > 0 and r > 50) or (pos < 0 and r < 50):
            pos = 0.0
        if r < 30:
            pos = 1.0
        elif r > 70:
            pos = -1.0
        expected.append(pos)
    got = load_strategy("rsi_reversion").positions(GOOG, {"allow_short": True})
    assert np.array_equal(got, np.array(expected))


def test_donchian_breakout_matches_reference_on_real_data():
    h, lo, c = GOOG["high"], GOOG["low"], GOOG["close"]
    up20, dn10 = h.rolling(20).max().shift(1), lo.rolling(10).min().shift(1)
    expected, pos = [], 0.0
    for close, up, dn in zip(c, up20, dn10, strict=True):
        if pos > 0 and close < dn:
            pos = 0.0
        if close > up:
            pos = 1.0
        expected.append(pos)
    got = load_strategy("donchian_breakout").positions(GOOG)
    assert np.array_equal(got, np.array(expected))


def test_buy_and_hold_is_long_from_the_first_bar():
    assert (load_strategy("buy_and_hold").positions(GOOG) == 1.0).all()


# -- look-ahead in a library-shaped strategy ------------------------------------------------
PEEKING_CROSSOVER = '''"""SMA crossover that peeks one bar ahead (for testing lookahead_check)."""
import pandas as pd

from alphaloop.backtest import indicators as ind

PARAMETERS = {"fast": {"default": 10, "low": 2, "high": 100},
              "slow": {"default": 50, "low": 3, "high": 300}}


def generate_positions(data, fast=10, slow=50):
    close = data["close"].shift(-1).to_numpy()  # tomorrow's close: look-ahead
    return pd.Series(ind.crossover_side(ind.sma(close, fast), ind.sma(close, slow)),
                     index=data.index)
'''


def test_lookahead_check_catches_a_peeking_crossover():
    s = from_source(PEEKING_CROSSOVER, "peeking_crossover")
    s.positions(GOOG)  # valid positions: nothing but the check gives it away
    assert len(lookahead_check(s, GOOG)) >= 3


# -- runner ---------------------------------------------------------------------------------
def test_backtest_runs_the_engine():
    s = load_strategy("sma_crossover")
    result = runner.backtest(s, GOOG, {"fast": "20", "slow": "100"})
    assert isinstance(result, engine.BacktestResult)
    assert result.metrics["num_trades"] > 0
    same = engine.run(GOOG, s.positions(GOOG, {"fast": 20, "slow": 100}))
    assert result.metrics == same.metrics


def test_run_grid_matches_backtest():
    s = load_strategy("sma_crossover")
    grid = [{"fast": 5, "slow": 20}, {"fast": 10, "slow": 50, "allow_short": False}]
    metrics = runner.run_grid(s, GOOG, grid, commission=0.0005, slippage_bps=2.0)
    for params, got in zip(grid, metrics, strict=True):
        want = runner.backtest(s, GOOG, params, commission=0.0005, slippage_bps=2.0).metrics
        assert got == pytest.approx(want, nan_ok=True)


def test_run_grid_covers_the_4851_grid_and_matches_single_backtests():
    # Speed is measured in benchmarks/bench_backtest.py; here: the grid gives the same numbers
    # as one backtest per combination.
    s = load_strategy("sma_crossover")
    grid = [{"fast": f, "slow": sl} for f in range(2, 101) for sl in range(f + 1, 101)]
    assert len(grid) == 4851
    metrics = runner.run_grid(s, GOOG, grid)
    assert len(metrics) == 4851
    for k in (0, 1234, 4850):
        single = runner.backtest(s, GOOG, grid[k]).metrics
        assert metrics[k] == pytest.approx(single, nan_ok=True)
