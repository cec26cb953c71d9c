"""The backtest engine: target positions in, per-bar returns, trades and metrics out.

Semantics (bar ``t`` runs from its open ``o[t]`` to its close ``c[t]``):

- **Targets.** ``w[t]`` in [-1, 1] (fractions allowed) is decided at bar ``t``'s close.
- **Fills.** A target is filled at the next bar's open, so the position *held* during bar ``t``
  is ``h[t] = w[t-1]`` for ``t >= 1`` and ``h[0] = 0``; ``w[n-1]`` is never filled.
- **Costs.** Every trade costs ``cost = commission + slippage_bps / 1e4`` of the notional it
  trades (``commission`` is a fraction of traded notional per side); a reversal from long to
  short trades through zero, so it pays on both legs.
- **Units held** (``rebalance="change"``, the default, as brokers, backtesting.py and vectorbt
  do). The account holds cash ``C`` and ``u`` units; its equity at price ``p`` is
  ``E = C + u * p``, starting at ``E = C = 1``. At bar ``t``'s open, *if the target changed*
  (``h[t] != h[t-1]``), it trades to the notional ``x`` that is ``h[t]`` of the equity left
  after the trade's cost::

      x = h[t] * (E - |x - y| * cost)        # y = u * o[t], the notional held before

  (solved exactly; ``u = x / o[t]`` afterwards, and the cost leaves the cash). A trade that
  ends or reverses sells everything first (cost ``|y| * cost``), then opens the new side.
  Between changes the units are held and the weight ``u * p / E`` drifts with the price: a
  short that loses grows beyond its target weight.
- **Constant weight** (``rebalance="bar"``). The same account trades back to the target weight
  ``h[t]`` at every open and at every close but the last; each of these implicit rebalancing
  trades is charged at the same ``cost``. With zero costs the per-bar return is exactly
  ``(1 + h[t-1] * (o[t] / c[t-1] - 1)) * (1 + h[t] * (c[t] / o[t] - 1)) - 1``.
- **Borrow.** While short, each bar's close charges ``borrow_bps / 1e4 / bars_per_year`` of the
  short notional ``|u| * c[t]`` (an annual fee accrued per bar held; 0 by default).
- **Returns.** ``r[0] = 0`` and ``r[t] = E[t] / E[t-1] - 1`` with ``E[t]`` the equity at bar
  ``t``'s close after every cost. Equity ``e[t] = prod(1 + r[0..t])`` starts at 1.0.
- **Ruin.** If equity reaches 0 or below (only possible for a short through a > 100% move, or
  absurd costs) then ``r[t] = -1``, equity stays 0, nothing is held and every later ``r`` is 0;
  the trade that was open exits at that bar with return -1.
- **No look-ahead.** ``r[t]`` uses only ``w[..t-1]`` and prices up to ``c[t]``.
- **Trades.** A trade is a maximal run of same-signed non-zero ``h``. Entry: the date and open
  of its first bar. Exit: the date and open of the first bar after the run; a trade still open
  at the end exits at the last close on the last date with ``is_open=True``. ``bars_held`` is
  the run's length; ``side`` is "long" or "short". Its return is the account's growth over its
  life: equity after its exit cost (at the exit bar's open, or the last close if still open)
  over equity before its entry cost, minus 1. All equity changes while it is open are its own
  (cash earns nothing), so this is its P&L after every cost, resizes and borrow included, as a
  return on the account: a 0.5 long through a +10% move earns about 5%. On a reversal the two
  legs' costs are split exactly between the closing and the opening trade.

`run` validates inputs and returns a `BacktestResult`; `run_arrays` skips pandas and returns
only the metrics, for parameter grids. Metric definitions live in `alphaloop.backtest.metrics`.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import pandas as pd

from alphaloop.backtest.metrics import Metric, from_stats
from alphaloop.errors import ConfigError, DataError, StrategyError

__all__ = [
    "REBALANCE", "BacktestResult", "borrow_per_bar", "check_costs", "run", "run_arrays",
    "unit_cost",
]

_MAX_COST = 0.5
_MAX_BORROW_BPS = 100_000.0  # 1,000% a year: beyond any quoted borrow rate

#: The position models: units held until the target changes, or a constant weight.
REBALANCE = ("change", "bar")


def unit_cost(commission: float, slippage_bps: float) -> float:
    """Cost per unit of position traded; `ConfigError` if a setting is negative or absurd."""
    for name, value in (("commission", commission), ("slippage_bps", slippage_bps)):
        if not (isinstance(value, numbers.Real) and math.isfinite(value) and value >= 0):
            raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    cost = float(commission) + float(slippage_bps) / 1e4
    if cost >= _MAX_COST:
        raise ConfigError(
            f"commission + slippage_bps/1e4 = {cost:g} per unit traded is >= {_MAX_COST}; "
            "commission is a fraction (0.001 means 0.1%), slippage is in basis points"
        )
    return cost


def borrow_per_bar(borrow_bps: float, bars_per_year: float) -> float:
    """The fee per bar on short notional; `ConfigError` if ``borrow_bps`` is negative or absurd."""
    if not (isinstance(borrow_bps, numbers.Real) and math.isfinite(borrow_bps)
            and 0 <= borrow_bps <= _MAX_BORROW_BPS):
        raise ConfigError(f"borrow_bps must be a number of basis points a year in "
                          f"[0, {_MAX_BORROW_BPS:,.0f}], got {borrow_bps!r} (100 means 1%/year)")
    return float(borrow_bps) / 1e4 / _check_bars_per_year(bars_per_year)


def _every_bar(rebalance: str) -> bool:
    if rebalance not in REBALANCE:
        raise ConfigError(f"rebalance must be 'change' (units held until the target changes) "
                          f"or 'bar' (constant weight), got {rebalance!r}")
    return rebalance == "bar"


def check_costs(commission: float, slippage_bps: float, borrow_bps: float = 0.0,
                rebalance: str = "change") -> None:
    """`ConfigError` naming the first cost setting that cannot be right (before any work)."""
    unit_cost(commission, slippage_bps)
    borrow_per_bar(borrow_bps, 1.0)
    _every_bar(rebalance)


def _check_bars_per_year(bars_per_year: float) -> float:
    if not (isinstance(bars_per_year, numbers.Real) and math.isfinite(bars_per_year)
            and bars_per_year > 0):
        raise ConfigError(f"bars_per_year must be a finite number > 0, got {bars_per_year!r}")
    return float(bars_per_year)


def _bar(i: int, index: pd.Index | None) -> str:
    if index is None:
        return f"bar {i}"
    label = index[i]
    if isinstance(label, pd.Timestamp) and label == label.normalize():
        label = label.date()
    return f"bar {label} (index {i})"


def _validate(o: np.ndarray, c: np.ndarray, w: np.ndarray, index: pd.Index | None) -> None:
    """Raise `DataError` for a bad price, `StrategyError` for a bad position (first bad bar)."""
    n = o.shape[0]
    if w.ndim != 1 or w.shape[0] != n:
        raise StrategyError(
            f"positions have shape {w.shape}, data has {n} bars; return one value per bar")
    k = _kernels()
    code, i = k.first_invalid(o, c, w)
    if code == k.OK:
        return
    if code in (k.BAD_OPEN, k.BAD_CLOSE):
        name, arr = ("open", o) if code == k.BAD_OPEN else ("close", c)
        raise DataError(f"{name} price at {_bar(i, index)} is {float(arr[i])!r}; "
                        "prices must be finite and > 0 (drop or fill those bars)")
    if code == k.NAN_TARGET:
        raise StrategyError(f"position at {_bar(i, index)} is NaN; "
                            "fill warm-up bars with 0 (e.g. .fillna(0))")
    raise StrategyError(f"position at {_bar(i, index)} is {float(w[i])!r}; "
                        "positions must lie in [-1, 1] (clip them)")


def _column(data: pd.DataFrame, name: str) -> np.ndarray:
    """A private float64 copy of one price column (the result keeps it for its trade prices).

    ``data[name]`` builds a Series (~9 us in pandas 3, about 1/4 of a whole backtest); the
    private ``_get_column_array`` takes 0.4 us and exists in pandas 2.x and 3.x. The public path
    is the fallback. Either may share memory with ``data``, hence the copy (~1 us).
    """
    loc = data.columns.get_loc(name)
    if isinstance(loc, int) and hasattr(data, "_get_column_array"):
        values = data._get_column_array(loc)
    else:
        column = data[name]
        if isinstance(column, pd.DataFrame):
            raise DataError(f"data has more than one column named {name!r}")
        values = column.to_numpy()
    try:
        return np.array(values, dtype=np.float64, order="C")
    except (TypeError, ValueError) as exc:
        raise DataError(f"column {name!r} is not numeric ({exc}); use float prices") from None


def _f64(values: Any) -> np.ndarray:
    # Contiguous, writeable float64: numba compiles (and caches) a separate specialisation for
    # read-only arrays, which pandas' copy-on-write hands out; one copy of a column costs ~1 us.
    return np.require(values, dtype=np.float64, requirements=("C", "W"))


def _as_float_array(values: Any, what: str) -> np.ndarray:
    try:
        arr = _f64(values)
    except (TypeError, ValueError) as exc:
        raise StrategyError(f"{what} are not numeric ({exc}); return floats in [-1, 1]") from None
    return arr


def _kernels() -> Any:
    # Imported on first use so that importing the engine does not import numba (~0.25 s).
    from alphaloop.backtest import _kernels as k

    return k


def run_arrays(
    open_: np.ndarray,
    close: np.ndarray,
    positions: np.ndarray,
    *,
    commission: float = 0.001,
    slippage_bps: float = 0.0,
    bars_per_year: float = 252.0,
    borrow_bps: float = 0.0,
    rebalance: str = "change",
) -> dict[str, Metric]:
    """Metrics of one backtest on plain arrays (no pandas), for parameter grids.

    Same semantics and validation as `run` (errors name the bar by its position); prices must
    be float64 arrays of one length, ``positions`` the targets ``w`` of the same length.
    """
    cost = unit_cost(commission, slippage_bps)
    bpy = _check_bars_per_year(bars_per_year)
    borrow = borrow_per_bar(borrow_bps, bpy)
    every_bar = _every_bar(rebalance)
    o = _f64(open_)
    c = _f64(close)
    if o.ndim != 1 or o.shape != c.shape or o.shape[0] == 0:
        raise DataError(f"open and close must be non-empty 1-d arrays of one length, "
                        f"got shapes {o.shape} and {c.shape}")
    w = _as_float_array(positions, "positions")
    _validate(o, c, w, None)
    return from_stats(_kernels().backtest_stats(o, c, w, cost, borrow, every_bar), bpy)


class BacktestResult:
    """The outcome of one backtest: eager metrics, lazily built series and trades.

    Immutable: attributes cannot be set, each property returns a new object (a copy of the
    metrics dict; a shallow copy-on-write view of the cached Series/DataFrame), and the
    underlying arrays are read-only.
    """

    __slots__ = ("_cache", "_index", "_metrics", "_raw")

    def __init__(self, index: pd.Index, metrics: dict[str, Metric], raw: tuple) -> None:
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_metrics", metrics)
        object.__setattr__(self, "_raw", raw)
        object.__setattr__(self, "_cache", {})

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"BacktestResult is immutable (cannot set {name!r})")

    def __repr__(self) -> str:
        m = self._metrics
        return (f"BacktestResult(bars={len(self._index)}, trades={m['num_trades']}, "
                f"total_return={m['total_return']!r}, sharpe_ratio={m['sharpe_ratio']!r})")

    @property
    def metrics(self) -> dict[str, Metric]:
        """Every metric in `METRIC_KEYS` order (a fresh dict; None where undefined)."""
        return dict(self._metrics)

    def _series(self, key: str, pos: int) -> pd.Series:
        cached = self._cache.get(key)
        if cached is None:
            cached = pd.Series(self._raw[pos], index=self._index, name=key, copy=False)
            self._cache[key] = cached
        return cached.copy(deep=False)

    @property
    def returns(self) -> pd.Series:
        """Per-bar returns ``r`` (``r[0] = 0``) on the data index."""
        return self._series("returns", 0)

    @property
    def equity(self) -> pd.Series:
        """Equity growth curve ``e[t] = prod(1 + r[0..t])``, starting at 1.0."""
        return self._series("equity", 1)

    @property
    def positions(self) -> pd.Series:
        """Held positions ``h`` (``h[t] = w[t-1]``, ``h[0] = 0``) on the data index."""
        return self._series("positions", 2)

    @property
    def trades(self) -> pd.DataFrame:
        """One row per trade: entry_date, exit_date, side, entry_price, exit_price, return,
        bars_held, is_open (see the module docstring for what each means)."""
        cached = self._cache.get("trades")
        if cached is None:
            cached = self._build_trades()
            self._cache["trades"] = cached
        return cached.copy(deep=False)

    def _build_trades(self) -> pd.DataFrame:
        _, _, _, entry, exit_, side, ret, is_open, k, open_, close = self._raw
        entry, exit_, side, is_open = entry[:k], exit_[:k], side[:k], is_open[:k]
        exit_price = np.where(is_open, close[exit_], open_[exit_])
        return pd.DataFrame({
            "entry_date": self._index.take(entry),
            "exit_date": self._index.take(exit_),
            "side": np.where(side > 0, "long", "short"),  # pandas 3: str dtype, even if empty
            "entry_price": open_[entry],
            "exit_price": exit_price,
            "return": ret[:k].copy(),
            "bars_held": exit_ - entry + is_open.astype(np.int64),
            "is_open": is_open.copy(),
        })


def run(
    data: pd.DataFrame,
    positions: np.ndarray | pd.Series,
    *,
    commission: float = 0.001,
    slippage_bps: float = 0.0,
    bars_per_year: float = 252.0,
    borrow_bps: float = 0.0,
    rebalance: str = "change",
) -> BacktestResult:
    """Backtest target ``positions`` on ``data`` (see the module docstring for the semantics).

    - data: bars with a DatetimeIndex and float columns ``open`` and ``close`` (others ignored).
    - positions: target position per bar in [-1, 1], decided at that bar's close; a Series must
      carry exactly ``data``'s index. Bad values raise `StrategyError` naming the first bad bar.
    - commission: fraction of traded notional per side (0.001 = 0.1%); `ConfigError` if < 0.
    - slippage_bps: extra cost per unit traded, in basis points; `ConfigError` if < 0.
    - bars_per_year: annualisation factor of the metrics and the borrow fee (252 for daily bars).
    - borrow_bps: annual fee on short notional in basis points, accrued per bar (default 0).
    - rebalance: "change" (units held until the target changes, the default) or "bar"
      (constant weight, rebalanced at every open and close at the same cost).
    """
    cost = unit_cost(commission, slippage_bps)
    bpy = _check_bars_per_year(bars_per_year)
    borrow = borrow_per_bar(borrow_bps, bpy)
    every_bar = _every_bar(rebalance)
    if not isinstance(data, pd.DataFrame) or not isinstance(data.index, pd.DatetimeIndex):
        raise DataError("data must be a DataFrame with a DatetimeIndex (use alphaloop.data.load)")
    missing = [col for col in ("open", "close") if col not in data.columns]
    if missing:
        raise DataError(f"data lacks column(s) {', '.join(missing)}; need open and close")
    index = data.index
    n = len(index)
    if n == 0:
        raise DataError("data has no bars")
    o = _column(data, "open")
    c = _column(data, "close")
    if isinstance(positions, pd.Series) and not positions.index.equals(index):
        raise StrategyError("positions index does not match the data index; "
                            "build the Series on data.index (or pass a numpy array)")
    w = _as_float_array(positions, "positions")
    _validate(o, c, w, index)
    out = _kernels().backtest(o, c, w, cost, borrow, every_bar)
    stats, raw = out[0], out[1:]
    raw = (*raw, o, c)
    for arr in raw:
        if isinstance(arr, np.ndarray):
            arr.flags.writeable = False
    return BacktestResult(index, from_stats(stats, bpy), raw)
