"""Backtest engine: a hand-worked example, a literal reference model, no look-ahead, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaloop.backtest import engine, metrics
from alphaloop.backtest.metrics import METRIC_KEYS
from alphaloop.errors import ConfigError, DataError, StrategyError


def frame(open_: list[float], close: list[float], start: str = "2024-01-01") -> pd.DataFrame:
    index = pd.bdate_range(start, periods=len(close), name="date")
    return pd.DataFrame({"open": open_, "close": close, "volume": 1.0}, index=index)


# ---------------------------------------------------------------- hand-worked example
# bar  date        open  close  target w   held h = w[t-1]
#  0   2024-01-01  100   100     1          0
#  1   2024-01-02  102   104     1          1    long entry at 102
#  2   2024-01-03  103   100    -1          1
#  3   2024-01-04   99    98     0         -1    reversal at 99: 2 units traded
#  4   2024-01-05  100   101     0.5        0    short closed at 100
#  5   2024-01-08  100   110     1          0.5  long 0.5 entry at 100, open at the end
# w[5] = 1 is never filled. cost per unit = commission 0.0005 + 5 bps slippage = 0.001.
HAND = frame([100, 102, 103, 99, 100, 100], [100, 104, 100, 98, 101, 110])
HAND_W = np.array([1.0, 1.0, -1.0, 0.0, 0.5, 1.0])
COST = 0.001


def hand_result() -> engine.BacktestResult:
    return engine.run(HAND, HAND_W, commission=0.0005, slippage_bps=5.0)


C = COST
# Units held by hand (the default model). Long entry at 102 buys x = 1 / (1 + C) of equity,
# paying x * C; the reversal at 99 sells everything (equity E1 = y * (1 - C)) and shorts
# E1 / (1 + C); the 0.5 long at 100 buys 0.5 * E / (1 + 0.5 * C).
X1 = 1 / (1 + C)
E1 = X1 * 99 / 102 * (1 - C)  # equity after selling the long at bar 3's open
S = E1 / (1 + C)  # short notional at bar 3's open; cash 2 * S afterwards
E4 = S * (2 - 100 / 99) - S * 100 / 99 * C  # equity after buying the short back at bar 4


def test_hand_example_returns_and_equity() -> None:
    res = hand_result()
    expected = [
        0.0,
        X1 * 104 / 102 - 1,  # bought at the open (cost), held to the close
        100 / 104 - 1,  # held: all equity is in the stock
        S * (2 - 98 / 99) / (X1 * 100 / 102) - 1,  # cash 2S, short units S / 99 at 98
        E4 / (S * (2 - 98 / 99)) - 1,  # bought back at 100, flat for the rest of the bar
        0.5 * (0.1 - C) / (1 + 0.5 * C),  # 0.5 long: x (1 + 0.5 C) = 0.5 E, +10% on x, cost x C
    ]
    assert res.returns.to_numpy() == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert res.equity.to_numpy() == pytest.approx(np.cumprod(1 + np.array(expected)), rel=1e-12)
    assert res.positions.tolist() == [0.0, 1.0, 1.0, -1.0, 0.0, 0.5]
    assert res.returns.index.equals(HAND.index) and res.equity.iloc[0] == 1.0


def test_hand_example_trades() -> None:
    trades = hand_result().trades
    assert list(trades.columns) == ["entry_date", "exit_date", "side", "entry_price",
                                    "exit_price", "return", "bars_held", "is_open"]
    d = pd.Timestamp
    assert trades["entry_date"].tolist() == [d("2024-01-02"), d("2024-01-04"), d("2024-01-08")]
    assert trades["exit_date"].tolist() == [d("2024-01-04"), d("2024-01-05"), d("2024-01-08")]
    assert trades["side"].tolist() == ["long", "short", "long"]
    assert trades["entry_price"].tolist() == [102.0, 99.0, 100.0]
    assert trades["exit_price"].tolist() == [99.0, 100.0, 110.0]  # open trade: last close
    assert trades["bars_held"].tolist() == [2, 1, 1]
    assert trades["is_open"].tolist() == [False, False, True]
    expected = [
        E1 - 1,  # equity after its exit cost over 1.0 before its entry cost
        E4 / E1 - 1,  # the reversal's two legs are split exactly: each pays its own notional
        0.5 * (0.1 - C) / (1 + 0.5 * C),  # still open: no exit cost
    ]
    assert trades["return"].to_numpy() == pytest.approx(expected, rel=1e-12)


def test_hand_example_metrics() -> None:
    m = hand_result().metrics
    assert list(m) == list(METRIC_KEYS)
    assert m["num_trades"] == 3
    assert m["exposure"] == pytest.approx(4 / 6)  # held at bars 1, 2, 3, 5
    # notional traded over equity before each trade: X1 (bar 1); the long sold, 1, and the
    # short opened, 1 / (1 + C) (bar 3); the short bought back (bar 4); 0.5 / (1 + 0.5 C)
    back = (100 / 99) / (2 - 100 / 99)
    traded = X1 + 1 + 1 / (1 + C) + back + 0.5 / (1 + 0.5 * C)
    assert m["turnover"] == pytest.approx(traded * 252 / 6)
    assert m["win_rate"] == pytest.approx(1 / 3)  # only the open 0.5 long gains
    # the peak is bar 1 and equity never gets back to it: 5 - 1 = 4 bars
    assert m["max_drawdown_duration"] == 4
    eq = hand_result().equity.to_numpy()
    assert m["max_drawdown"] == pytest.approx(1 - eq[4] / eq[1])
    assert m["total_return"] == pytest.approx(eq[-1] - 1)
    arrays = engine.run_arrays(HAND["open"].to_numpy(), HAND["close"].to_numpy(), HAND_W,
                               commission=0.0005, slippage_bps=5.0)
    assert arrays == m


# ---------------------------------------------------------------- an independent broker
def broker(o: np.ndarray, c: np.ndarray, w: np.ndarray, cost: float, borrow: float = 0.0,
           every_bar: bool = False):
    """The spec as a broker's ledger: cash, shares and orders, bar by bar, with no speed.

    The target size is found by fixed-point iteration (not the engine's closed form), a trade
    that ends or reverses is two orders (sell all, then open), and each trade's return comes
    from the ledger's equity before its first order and after its last one.
    """
    n = len(c)
    h = np.concatenate(([0.0], w[:-1]))
    cash, shares = 1.0, 0.0
    closes = [1.0]
    trades: list[list] = []  # [entry bar, exit bar, side, equity at entry, return, open]

    def order(qty: float, price: float) -> None:
        nonlocal cash, shares
        cash -= qty * price + abs(qty) * price * cost
        shares += qty

    def resize(weight: float, price: float) -> None:
        equity = cash + shares * price
        x = weight * equity
        for _ in range(200):  # x = weight * (equity - |x - held| * cost): a contraction
            x = weight * (equity - abs(x - shares * price) * cost)
        order(x / price - shares, price)

    for t in range(1, n):
        if cash + shares * o[t] <= 0:
            break
        side_before, side_now = np.sign(h[t - 1]), np.sign(h[t])
        if every_bar or h[t] != h[t - 1]:
            if side_before != 0 and side_now != side_before:
                order(-shares, o[t])
                trades[-1][1] = t
                trades[-1][4] = cash / trades[-1][3] - 1
            if side_now != 0 and side_now != side_before:
                trades.append([t, None, side_now, cash + shares * o[t], None, False])
            resize(h[t], o[t])
        if shares < 0:
            cash -= -shares * c[t] * borrow
        if every_bar and t < n - 1 and shares != 0:
            resize(h[t], c[t])
        if cash + shares * c[t] <= 0:
            break
        closes.append(cash + shares * c[t])
    ruined = len(closes) < n
    if ruined:
        closes += [0.0] * (n - len(closes))
        if trades and trades[-1][1] is None:
            trades[-1][1], trades[-1][4] = len([x for x in closes if x > 0]), -1.0
    elif trades and trades[-1][1] is None:
        trades[-1][1], trades[-1][4], trades[-1][5] = n - 1, closes[-1] / trades[-1][3] - 1, True
    e = np.array(closes)
    r = np.concatenate(([0.0], np.where(e[:-1] > 0, e[1:] / np.where(e[:-1] > 0, e[:-1], 1) - 1,
                                        0.0)))
    return r, h, trades


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 60), st.sampled_from([0.0, 0.001, 0.01]),
       st.sampled_from(["change", "bar"]), st.sampled_from([0.0, 250.0]))
def test_engine_matches_an_independent_broker(seed: int, n: int, cost: float, rebalance: str,
                                              borrow_bps: float) -> None:
    rng = np.random.default_rng(seed)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    o = c * np.exp(rng.normal(0, 0.01, n))
    w = rng.choice([-1.0, -0.5, 0.0, 0.0, 0.3, 1.0], n)
    df = frame(list(o), list(c))
    res = engine.run(df, w, commission=cost, rebalance=rebalance, borrow_bps=borrow_bps)
    r, h, trades = broker(o, c, w, cost, borrow_bps / 1e4 / 252, rebalance == "bar")
    np.testing.assert_allclose(res.returns.to_numpy(), r, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(res.positions.to_numpy(), h)
    got = res.trades
    assert len(got) == len(trades) == res.metrics["num_trades"]
    for row, (s, x, side, _, ret, is_open) in zip(got.itertuples(), trades, strict=True):
        assert row.entry_date == df.index[s] and row.exit_date == df.index[x]
        assert row.side == ("long" if side > 0 else "short")
        assert row.entry_price == o[s]
        assert row.exit_price == (c[-1] if is_open else o[x])
        assert row.is_open == is_open
        assert row._6 == pytest.approx(ret, rel=1e-9, abs=1e-12)  # the "return" column


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 60))
def test_constant_weight_without_costs_is_the_textbook_formula(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    o = c * np.exp(rng.normal(0, 0.01, n))
    w = rng.choice([-1.0, -0.5, 0.0, 0.3, 1.0], n)
    res = engine.run(frame(list(o), list(c)), w, commission=0.0, rebalance="bar")
    h = np.concatenate(([0.0], w[:-1]))
    expected = [0.0] + [(1 + h[t - 1] * (o[t] / c[t - 1] - 1)) * (1 + h[t] * (c[t] / o[t] - 1))
                        - 1 for t in range(1, n)]
    np.testing.assert_allclose(res.returns.to_numpy(), expected, rtol=1e-12, atol=1e-14)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 60), st.sampled_from([0.0, 0.002]))
def test_all_in_or_flat_is_the_same_in_both_models(seed: int, n: int, cost: float) -> None:
    # a weight of 1 or 0 never drifts, so units held and constant weight trade alike
    rng = np.random.default_rng(seed)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    o = c * np.exp(rng.normal(0, 0.01, n))
    w = rng.choice([0.0, 1.0], n)
    df = frame(list(o), list(c))
    a = engine.run(df, w, commission=cost).metrics
    b = engine.run(df, w, commission=cost, rebalance="bar").metrics
    assert [k for k in a if a[k] is None] == [k for k in b if b[k] is None]
    assert {k: v for k, v in a.items() if v is not None} == pytest.approx(
        {k: v for k, v in b.items() if v is not None}, rel=1e-9, abs=1e-12)


def test_a_short_held_drifts_and_only_constant_weight_pays_to_rebalance() -> None:
    # short 1 at 100; the price goes 100 -> 110 -> 121: the units held lose 10 then 11 on a
    # notional that grows; constant weight re-shorts its whole equity every open and close
    df = frame([100, 100, 110, 121], [100, 110, 121, 121])
    w = np.array([-1.0, -1.0, -1.0, 0.0])
    held = engine.run(df, w, commission=0.0)
    # cash 2 after shorting 1 unit of equity at 100; units -0.01
    assert held.equity.tolist() == pytest.approx([1.0, 2 - 1.1, 2 - 1.21, 2 - 1.21])
    weight = engine.run(df, w, commission=0.0, rebalance="bar")
    assert weight.equity.tolist() == pytest.approx([1.0, 0.9, 0.9 * 0.9, 0.9 * 0.9])
    costly = engine.run(df, w, commission=0.01, rebalance="bar").metrics
    assert costly["turnover"] > engine.run(df, w, commission=0.01).metrics["turnover"]


def test_borrow_is_charged_per_bar_on_short_notional_only() -> None:
    df = frame([100.0] * 6, [100.0] * 6)
    bpy, bps = 252.0, 252.0  # 1 bp a bar
    short = engine.run(df, np.array([-1.0] * 5 + [0.0]), commission=0.0, borrow_bps=bps)
    # shorted at bar 1's open and held through bar 5's close: 5 closes, 1 bp of 1.0 each
    # (flat prices keep the notional at 1.0 while cash pays the fee)
    assert short.metrics["total_return"] == pytest.approx(-5e-4 * 1.0, rel=1e-9)
    assert short.trades["return"].tolist() == pytest.approx([-5e-4])
    long_ = engine.run(df, np.array([1.0] * 6), commission=0.0, borrow_bps=bps)
    assert long_.metrics["total_return"] == 0.0
    assert engine.borrow_per_bar(bps, bpy) == pytest.approx(1e-4)


def test_units_held_on_goog_matches_the_independent_event_loop_figures() -> None:
    """SMA crossover 10/20 long/short on the embedded GOOG, commission 0.002: an independent
    event loop holding units measured total return 4.75 and max drawdown 34.4% (issue 11).
    backtesting.py's copy of GOOG differs in a few prices; on it, ours gives +478.10% against
    backtesting.py's +478.08% (benchmarks/bench_parity.py, which needs backtesting.py)."""
    from alphaloop.backtest import indicators as ind
    from alphaloop.data import load

    data = load("GOOG", "1d", adjust=False)
    close = data["close"].to_numpy()
    pos = ind.crossover_side(ind.sma(close, 10), ind.sma(close, 20))
    m = engine.run(data, pos, commission=0.002).metrics
    assert m["total_return"] == pytest.approx(4.75, abs=0.005)
    assert m["max_drawdown"] == pytest.approx(0.344, abs=0.0005)
    constant = engine.run(data, pos, commission=0.002, rebalance="bar").metrics
    assert constant["total_return"] < 4.0  # rebalancing every bar is not free


# ---------------------------------------------------------------- no look-ahead
@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(3, 40), st.data())
def test_no_look_ahead(seed: int, n: int, data: st.DataObject) -> None:
    rng = np.random.default_rng(seed)
    c = 50 * np.exp(np.cumsum(rng.normal(0, 0.03, n)))
    o = c * np.exp(rng.normal(0, 0.01, n))
    w = np.round(rng.uniform(-1, 1, n), 2)
    t = data.draw(st.integers(0, n - 2), label="t")
    base = engine.run(frame(list(o), list(c)), w, commission=0.002)

    # changing the decision at bar t changes nothing up to and including bar t
    w2 = w.copy()
    w2[t] = data.draw(st.sampled_from([-1.0, 0.0, 0.5, 1.0]).filter(lambda x: x != w[t]))
    moved = engine.run(frame(list(o), list(c)), w2, commission=0.002)
    _assert_same_until(base, moved, t)
    assert moved.positions.iloc[t + 1] == w2[t]  # ... and it is filled at bar t+1

    # changing any price after bar t changes nothing up to and including bar t
    o3, c3 = o.copy(), c.copy()
    o3[t + 1:] *= rng.uniform(0.5, 1.5, n - t - 1)
    c3[t + 1:] *= rng.uniform(0.5, 1.5, n - t - 1)
    _assert_same_until(base, engine.run(frame(list(o3), list(c3)), w, commission=0.002), t)


def _assert_same_until(a: engine.BacktestResult, b: engine.BacktestResult, t: int) -> None:
    np.testing.assert_array_equal(a.returns.to_numpy()[: t + 1], b.returns.to_numpy()[: t + 1])
    np.testing.assert_array_equal(a.equity.to_numpy()[: t + 1], b.equity.to_numpy()[: t + 1])
    np.testing.assert_array_equal(a.positions.to_numpy()[: t + 1],
                                  b.positions.to_numpy()[: t + 1])
    last = a.returns.index[t]
    closed_a = a.trades[(a.trades["exit_date"] <= last) & ~a.trades["is_open"]]
    closed_b = b.trades[(b.trades["exit_date"] <= last) & ~b.trades["is_open"]]
    pd.testing.assert_frame_equal(closed_a, closed_b)


# ---------------------------------------------------------------- undefined values, ruin
def test_flat_positions_have_no_trades_and_null_ratios() -> None:
    res = engine.run(HAND, np.zeros(6))
    m = res.metrics
    assert m["num_trades"] == 0 and res.trades.empty
    assert len(res.trades.columns) == 8 and res.trades.columns[0] == "entry_date"
    assert m["sharpe_ratio"] is None and m["sortino_ratio"] is None
    assert m["calmar_ratio"] is None and m["win_rate"] is None
    assert m["profit_factor"] is None and m["avg_trade_return"] is None
    assert m["total_return"] == 0.0 and m["exposure"] == 0.0 and m["turnover"] == 0.0
    text = json.dumps(m, allow_nan=False)
    assert text.count("null") == 6 and "NaN" not in text


def test_short_through_a_doubling_is_ruin_not_negative_equity() -> None:
    df = frame([10, 10, 25, 30], [10, 10, 26, 31])
    res = engine.run(df, np.array([-1.0, -1.0, 0.0, 0.0]), commission=0.0)
    # bar 1: short 0.1 units at 10 (cash 2), flat intraday; bar 2: equity at the open
    # 2 - 0.1 * 25 < 0 -> wiped out; bar 3: nothing left, r = 0
    assert res.returns.tolist() == [0.0, 0.0, -1.0, 0.0]
    assert res.equity.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert res.trades["return"].tolist() == [-1.0]
    m = res.metrics
    assert m["total_return"] == -1.0 and m["cagr"] == -1.0 and m["max_drawdown"] == 1.0


# ---------------------------------------------------------------- inputs and result object
def test_series_positions_must_share_the_data_index() -> None:
    same = pd.Series(HAND_W, index=HAND.index)
    assert engine.run(HAND, same).metrics == hand_metrics_default()
    shifted = pd.Series(HAND_W, index=HAND.index + pd.Timedelta(days=1))
    with pytest.raises(StrategyError, match="index"):
        engine.run(HAND, shifted)


def hand_metrics_default() -> dict:
    return engine.run(HAND, HAND_W).metrics


@pytest.mark.parametrize(("bad", "message"), [
    (np.array([1.0, 0.0, np.nan, 0.0, 0.0, 0.0]), r"2024-01-03 \(index 2\) is NaN"),
    (np.array([0.0, 0.0, 0.0, 1.5, 0.0, 0.0]), r"2024-01-04 \(index 3\) is 1.5.*\[-1, 1\]"),
    (np.array([0.0, 0.0, 0.0, 0.0, -1.01, 0.0]), r"2024-01-05 \(index 4\)"),
    (np.zeros(5), "shape \\(5,\\), data has 6 bars"),
    (np.zeros((6, 2)), "shape"),
    (["a"] * 6, "not numeric"),
])
def test_invalid_positions_raise_strategy_error_naming_the_bar(bad, message: str) -> None:
    with pytest.raises(StrategyError, match=message):
        engine.run(HAND, bad)


def test_invalid_positions_in_run_arrays_name_the_bar_index() -> None:
    o = HAND["open"].to_numpy()
    with pytest.raises(StrategyError, match=r"bar 3 is 1\.5"):
        engine.run_arrays(o, o, np.array([0, 0, 0, 1.5, 0, 0]))


@pytest.mark.parametrize("kwargs", [
    {"commission": -0.001}, {"slippage_bps": -1.0}, {"commission": float("nan")},
    {"commission": 0.6}, {"bars_per_year": 0}, {"bars_per_year": float("inf")},
    {"borrow_bps": -1.0}, {"borrow_bps": float("nan")}, {"borrow_bps": 1e6},
    {"rebalance": "weekly"},
])
def test_bad_settings_raise_config_error(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        engine.run(HAND, HAND_W, **kwargs)
    with pytest.raises(ConfigError):
        engine.run_arrays(HAND["open"].to_numpy(), HAND["close"].to_numpy(), HAND_W, **kwargs)


def test_bad_data_raises_data_error() -> None:
    broken = HAND.copy()
    broken.iloc[2, broken.columns.get_loc("open")] = np.nan
    with pytest.raises(DataError, match=r"open price at bar 2024-01-03 \(index 2\)"):
        engine.run(broken, HAND_W)
    with pytest.raises(DataError, match="close"):
        engine.run(HAND.drop(columns="close"), HAND_W)
    with pytest.raises(DataError, match="DatetimeIndex"):
        engine.run(HAND.reset_index(drop=True), HAND_W)
    with pytest.raises(DataError, match="no bars"):
        engine.run(HAND.iloc[:0], np.zeros(0))


def test_result_is_immutable_and_outputs_are_copies() -> None:
    res = hand_result()
    with pytest.raises(AttributeError):
        res.metrics = {}  # type: ignore[misc]
    res.metrics["num_trades"] = 99
    assert res.metrics["num_trades"] == 3
    eq = res.equity
    eq.iloc[0] = 42.0
    assert res.equity.iloc[0] == 1.0
    trades = res.trades
    trades.loc[0, "return"] = 42.0
    assert res.trades.loc[0, "return"] != 42.0
    assert "trades=3" in repr(res)
    # the result does not share memory with the caller's frame (trades are built lazily)
    data = HAND.astype(float)
    fresh = engine.run(data, HAND_W)
    data.iloc[1, 0] = 1.0  # in place: pandas does not know the engine read this block
    assert fresh.trades["entry_price"].tolist() == [102.0, 99.0, 100.0]


def test_single_bar_and_json_round_trip() -> None:
    res = engine.run(HAND.iloc[:1], np.array([1.0]))
    m = res.metrics
    assert m["num_trades"] == 0 and m["sharpe_ratio"] is None and m["total_return"] == 0.0
    json.loads(json.dumps(m, allow_nan=False))


def test_engine_metrics_agree_with_compute_and_empyrical() -> None:
    import empyrical

    rng = np.random.default_rng(3)
    n = 500
    c = 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.015, n)))
    o = c * np.exp(rng.normal(0, 0.004, n))
    w = np.clip(np.round(np.cumsum(rng.normal(0, 0.2, n)), 1), -1, 1)
    res = engine.run(frame(list(o), list(c)), w, commission=0.0005, bars_per_year=252)
    m = res.metrics
    again = metrics.compute(res.returns.to_numpy(), res.positions.to_numpy(),
                            res.trades["return"].to_numpy(), bars_per_year=252)
    # turnover: the engine counts the notional it traded, compute the change in h
    assert again.pop("turnover") > 0 and m.pop("turnover") > 0
    assert again == pytest.approx(m, rel=1e-12)
    r = res.returns
    assert m["sharpe_ratio"] == pytest.approx(empyrical.sharpe_ratio(r, annualization=252))
    assert m["sortino_ratio"] == pytest.approx(empyrical.sortino_ratio(r, annualization=252))
    assert m["max_drawdown"] == pytest.approx(-empyrical.max_drawdown(r))
    assert m["cagr"] == pytest.approx(empyrical.cagr(r, annualization=252))
    assert m["num_trades"] == len(res.trades) > 5


def test_trade_columns_keep_their_types_when_empty() -> None:
    some = hand_result().trades.dtypes
    none = engine.run(HAND, np.zeros(6)).trades.dtypes
    pd.testing.assert_series_equal(some, none)
