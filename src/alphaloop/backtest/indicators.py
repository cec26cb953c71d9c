"""Indicator helpers that strategy code may import, built on TA-Lib, with a per-process memo.

Use from strategy source as ``from alphaloop.backtest import indicators as ind``::

    close = data["close"].to_numpy()
    fast = ind.sma(close, 10)

Contract
--------
- Inputs are 1-D price arrays (numpy arrays or pandas Series); they are converted to
  contiguous float64 once. Outputs are float64 numpy arrays of the same length (numpy, not
  Series: a strategy builds its one result Series at the end). Warm-up bars are NaN.
- Every value at bar ``t`` depends on inputs up to ``t`` only (no look-ahead).
- Outputs are **read-only**: the same array is handed to every caller that asks for the same
  indicator of the same data. Copy it (``x.copy()``) or use ``np.where`` to derive new arrays.

The memo
--------
A parameter grid (4,851 ``sma_crossover`` combinations) asks for the same ``sma(close, n)``
over and over. Results are kept in a bounded LRU (``MEMO_ENTRIES`` entries, ``MEMO_BYTES``
bytes) keyed by the indicator, its parameters and the *content* of its inputs:

- ``id()`` alone is unsafe (ids are reused once an array dies) and numpy arrays cannot be
  weak-referenced, so the content key is ``(length, 64-bit hash of the bytes)`` (a false hit
  needs a 64-bit collision between two arrays of one length).
- Hashing costs about as much as a short SMA, so read-only inputs (the columns of a pandas
  frame; pandas hands out read-only views) are recognised by their memory region
  ``(address, length, stride)``. That identity table **pins** the array it saw (keeps a
  reference), so the address cannot be freed and reused by another array while the entry
  lives; a sample of the values (first, last and ~64 evenly spaced) guards against the region
  being rewritten. Writeable inputs (arrays the caller computed, and may still modify) are
  always hashed in full.
- The one case this does not catch: the memory behind a *read-only* input rewritten in place
  (e.g. a loaded frame mutated with ``df.iloc[i, j] = x``) at positions the sample skips.
  ``alphaloop.data.load`` frames are shared and must not be mutated anyway; call
  `clear_memo()` if you do.
- At 2,148 daily bars a memo hit (~3 µs) costs about what TA-Lib's SMA does; the memo pays for
  the heavier indicators (MACD, Bollinger, RSI) and for long intraday series.

`clear_memo()` empties both tables; `memo_info()` reports hits and sizes. The memo is
thread-safe (one lock around its tables; indicators are computed outside it).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import talib

__all__ = [
    "MEMO_BYTES",
    "MEMO_ENTRIES",
    "MemoInfo",
    "atr",
    "bars_per_year",
    "bbands",
    "clear_memo",
    "crossover_side",
    "crossover_sides",
    "donchian",
    "ema",
    "latch",
    "macd",
    "memo_info",
    "returns",
    "rolling_max",
    "rolling_min",
    "rolling_std",
    "rsi",
    "sma",
]

#: Maximum number of cached indicator results.
MEMO_ENTRIES = 512
#: Maximum total size of cached indicator results, bytes.
MEMO_BYTES = 256 * 1024 * 1024
#: Maximum number of read-only input arrays remembered (and pinned) by memory region.
_IDENTITY_ENTRIES = 64
#: Number of evenly spaced values compared to detect a rewritten memory region.
_SAMPLES = 64

ArrayLike = Any  # numpy array, pandas Series or a sequence of numbers


@dataclass(frozen=True)
class MemoInfo:
    """A snapshot of the memo's counters."""

    hits: int
    misses: int
    entries: int
    bytes: int
    pinned_inputs: int


def _digest(a: np.ndarray) -> int:
    """64-bit hash of a contiguous array's bytes (SipHash, per-process seed)."""
    return hash(a.tobytes())


class _Memo:
    """LRU of indicator results keyed by (indicator, params, input content keys)."""

    def __init__(self) -> None:
        self.results: OrderedDict[Hashable, Any] = OrderedDict()
        self.sizes: dict[Hashable, int] = {}
        self.nbytes = 0
        self.identity: OrderedDict[tuple[int, int, int], tuple[np.ndarray, bytes, tuple]] = (
            OrderedDict()
        )
        self.hits = 0
        self.misses = 0
        self.lock = threading.Lock()

    def clear(self) -> None:
        with self.lock:
            self._clear()

    def _clear(self) -> None:
        self.results.clear()
        self.sizes.clear()
        self.identity.clear()
        self.nbytes = 0
        self.hits = 0
        self.misses = 0

    # -- input keys -------------------------------------------------------------------------
    def content_key(self, a: np.ndarray) -> tuple:
        """Key of a contiguous float64 array's content (see the module docstring)."""
        n = a.shape[0]
        if a.flags.writeable or n == 0:
            return (n, _digest(a))
        region = (a.ctypes.data, n, a.strides[0])
        sample = a[:: max(1, n // _SAMPLES)].tobytes() + a[-1:].tobytes()
        with self.lock:
            seen = self.identity.get(region)
            if seen is not None and seen[1] == sample:
                self.identity.move_to_end(region)
                return seen[2]
        key = (n, _digest(a))
        with self.lock:
            self.identity[region] = (a, sample, key)  # pins `a`: the region stays allocated
            self.identity.move_to_end(region)
            while len(self.identity) > _IDENTITY_ENTRIES:
                self.identity.popitem(last=False)
        return key

    # -- results ----------------------------------------------------------------------------
    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self.lock:
            hit = self.results.get(key)
            if hit is not None:
                self.results.move_to_end(key)
                self.hits += 1
                return hit
            self.misses += 1
        value = compute()  # outside the lock: threads may compute different indicators at once
        arrays = value if isinstance(value, tuple) else (value,)
        size = 0
        for arr in arrays:
            arr.flags.writeable = False
            size += arr.nbytes
        with self.lock:
            if key in self.results:  # another thread got there first: share its arrays
                return self.results[key]
            self.results[key] = value
            self.sizes[key] = size
            self.nbytes += size
            while self.results and (len(self.results) > MEMO_ENTRIES or self.nbytes > MEMO_BYTES):
                old, _ = self.results.popitem(last=False)
                self.nbytes -= self.sizes.pop(old)
        return value


_MEMO = _Memo()


def clear_memo() -> None:
    """Forget every cached result and pinned input (tests, or to release memory)."""
    _MEMO.clear()


def memo_info() -> MemoInfo:
    """Counters of the memo: hits, misses, entries, bytes held, pinned inputs."""
    return MemoInfo(
        hits=_MEMO.hits,
        misses=_MEMO.misses,
        entries=len(_MEMO.results),
        bytes=_MEMO.nbytes,
        pinned_inputs=len(_MEMO.identity),
    )


def _as_float64(x: ArrayLike, what: str = "input") -> np.ndarray:
    """Contiguous 1-D float64 view (or copy) of ``x``."""
    if isinstance(x, np.ndarray):
        a = x
    elif hasattr(x, "to_numpy"):
        a = x.to_numpy()
    else:
        a = np.asarray(x)
    if a.dtype != np.float64 or not a.flags.c_contiguous:
        a = np.ascontiguousarray(a, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"indicator {what} must be 1-D, got shape {a.shape}")
    return a


def _period(value: object, name: str, low: int = 1) -> int:
    """Validate an integer window length."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _cached(name: str, params: tuple, inputs: tuple[np.ndarray, ...], fn: Callable[[], Any]):
    key = (name, params, *(_MEMO.content_key(a) for a in inputs))
    value = _MEMO.get_or_compute(key, fn)
    # views of the read-only arrays: numpy will not let a view be made writeable again, so a
    # caller cannot poison the memo for the next one (the array itself could be)
    if isinstance(value, tuple):
        return tuple(a.view() for a in value)
    return value.view()


def _nan_like(a: np.ndarray) -> np.ndarray:
    return np.full(a.shape[0], np.nan)


# -- moving averages ------------------------------------------------------------------------
def sma(x: ArrayLike, period: int) -> np.ndarray:
    """Simple moving average of the last ``period`` values (first ``period - 1`` are NaN)."""
    a = _as_float64(x)
    n = _period(period, "period")
    if n == 1:
        return _cached("sma", (1,), (a,), lambda: a.copy())
    return _cached("sma", (n,), (a,), lambda: talib.SMA(a, timeperiod=n))


def ema(x: ArrayLike, period: int) -> np.ndarray:
    """Exponential moving average, alpha = 2 / (period + 1), seeded with the first SMA.

    The first ``period - 1`` values are NaN (TA-Lib's convention).
    """
    a = _as_float64(x)
    n = _period(period, "period")
    if n == 1:
        return _cached("ema", (1,), (a,), lambda: a.copy())
    return _cached("ema", (n,), (a,), lambda: talib.EMA(a, timeperiod=n))


def rolling_std(x: ArrayLike, period: int, ddof: int = 0) -> np.ndarray:
    """Rolling standard deviation over ``period`` values (population, ``ddof=0``, by default)."""
    a = _as_float64(x)
    n = _period(period, "period", low=2)
    if ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 or 1, got {ddof!r}")

    def compute() -> np.ndarray:
        out = talib.STDDEV(a, timeperiod=n, nbdev=1.0)
        if ddof == 1:
            out = out * np.sqrt(n / (n - 1))
        return out

    return _cached("std", (n, ddof), (a,), compute)


# -- oscillators ----------------------------------------------------------------------------
def rsi(x: ArrayLike, period: int = 14) -> np.ndarray:
    """Wilder's relative strength index in [0, 100]; the first ``period`` values are NaN."""
    a = _as_float64(x)
    n = _period(period, "period", low=2)
    return _cached("rsi", (n,), (a,), lambda: talib.RSI(a, timeperiod=n))


def macd(
    x: ArrayLike, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MACD line (EMA fast - EMA slow), its signal line (EMA of the line) and the histogram.

    Returns ``(macd, signal, hist)``; values are NaN until ``slow + signal - 2`` bars.
    Requires ``fast < slow``.
    """
    a = _as_float64(x)
    f = _period(fast, "fast", low=2)
    s = _period(slow, "slow", low=2)
    g = _period(signal, "signal")
    if f >= s:
        raise ValueError(f"macd needs fast < slow, got fast={f}, slow={s}")
    return _cached(
        "macd",
        (f, s, g),
        (a,),
        lambda: talib.MACD(a, fastperiod=f, slowperiod=s, signalperiod=g),
    )


def bbands(
    x: ArrayLike, period: int = 20, k: float = 2.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bollinger bands: ``(upper, middle, lower)`` = SMA ± k · rolling population std."""
    a = _as_float64(x)
    n = _period(period, "period", low=2)
    kk = float(k)
    if not kk > 0:
        raise ValueError(f"k must be > 0, got {k!r}")
    return _cached(
        "bbands",
        (n, kk),
        (a,),
        lambda: talib.BBANDS(a, timeperiod=n, nbdevup=kk, nbdevdn=kk, matype=0),
    )


# -- ranges ---------------------------------------------------------------------------------
def atr(high: ArrayLike, low: ArrayLike, close: ArrayLike, period: int = 14) -> np.ndarray:
    """Wilder's average true range; the first ``period`` values are NaN."""
    h, lo, c = _as_float64(high, "high"), _as_float64(low, "low"), _as_float64(close, "close")
    if not h.shape == lo.shape == c.shape:
        raise ValueError("atr needs high, low and close of the same length")
    n = _period(period, "period")
    return _cached("atr", (n,), (h, lo, c), lambda: talib.ATR(h, lo, c, timeperiod=n))


def rolling_max(x: ArrayLike, period: int) -> np.ndarray:
    """Highest value of the last ``period`` values, the current one included."""
    a = _as_float64(x)
    n = _period(period, "period")
    if n == 1:
        return _cached("max", (1,), (a,), lambda: a.copy())
    return _cached("max", (n,), (a,), lambda: talib.MAX(a, timeperiod=n))


def rolling_min(x: ArrayLike, period: int) -> np.ndarray:
    """Lowest value of the last ``period`` values, the current one included."""
    a = _as_float64(x)
    n = _period(period, "period")
    if n == 1:
        return _cached("min", (1,), (a,), lambda: a.copy())
    return _cached("min", (n,), (a,), lambda: talib.MIN(a, timeperiod=n))


def donchian(high: ArrayLike, low: ArrayLike, period: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Donchian channel of the *previous* ``period`` bars: ``(upper, lower)``.

    ``upper[t] = max(high[t-period .. t-1])`` (the current bar excluded), so ``close[t] >
    upper[t]`` is a breakout above the prior range. The first ``period`` values are NaN.
    """
    h, lo = _as_float64(high, "high"), _as_float64(low, "low")
    if h.shape != lo.shape:
        raise ValueError("donchian needs high and low of the same length")
    n = _period(period, "period")

    def compute() -> tuple[np.ndarray, np.ndarray]:
        up, dn = _nan_like(h), _nan_like(lo)
        up[1:] = rolling_max(h, n)[:-1]
        dn[1:] = rolling_min(lo, n)[:-1]
        return up, dn

    return _cached("donchian", (n,), (h, lo), compute)


def returns(x: ArrayLike, period: int = 1) -> np.ndarray:
    """Simple return over ``period`` bars: ``x[t] / x[t - period] - 1`` (first ``period`` NaN)."""
    a = _as_float64(x)
    n = _period(period, "period")

    def compute() -> np.ndarray:
        out = _nan_like(a)
        if a.shape[0] > n:
            out[n:] = a[n:] / a[:-n] - 1.0
        return out

    return _cached("returns", (n,), (a,), compute)


# -- time -----------------------------------------------------------------------------------
_HOUR_NS = 3_600_000_000_000
_DAY_NS = 24 * _HOUR_NS
_WEEK_NS = 7 * _DAY_NS


def bars_per_year(index: ArrayLike) -> np.ndarray:
    """Bars per year of the data at each bar, from its timestamps up to that bar: the factor
    that annualises (``vol * np.sqrt(ind.bars_per_year(data.index))``) on any bar size.

    ``index`` is ``data.index`` (or datetime64 values). Daily bars give 252, weekly 52,
    monthly 12, as `alphaloop.data.bars_per_year` does; the bar size is the class of the
    median gap between bars so far (under 5.5 days daily, under 20 days weekly). Bars at
    least a quarter of whose gaps so far are under 20 hours are intraday: their rate is the
    bars counted in the whole weeks since the first bar, per year (365.25 days), so a 24-hour
    market and an exchange session each get their own (FX 4-hour bars about 1,560, NYSE
    hourly about 1,800). NaN at the first bar and, for intraday bars, until a week has
    passed. Causal: bar ``t`` uses timestamps up to ``t`` only, so the data cut at ``t``
    gives the same values (the look-ahead check's test). Not memoised (it is cheap).
    """
    a = np.asarray(index)
    if a.dtype.kind != "M":
        raise ValueError(f"bars_per_year needs timestamps (data.index), got dtype {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"bars_per_year needs a 1-D index, got shape {a.shape}")
    ns = a.astype("datetime64[ns]").view(np.int64)
    n = ns.shape[0]
    out = np.full(n, np.nan)
    if n >= 2:
        gaps = np.diff(ns)
        seen = np.arange(1, n)  # gaps known at bars 1..n-1
        intraday = 4 * np.cumsum(gaps < 20 * _HOUR_NS) >= seen
        median = (seen + 1) // 2  # rank of the (lower) median gap
        coarse = np.where(
            np.cumsum(gaps < 5.5 * _DAY_NS) >= median,
            252.0,
            np.where(np.cumsum(gaps < 20 * _DAY_NS) >= median, 52.0, 12.0),
        )
        weeks = (ns[1:] - ns[0]) // _WEEK_NS
        counted = np.searchsorted(ns, ns[0] + weeks * _WEEK_NS, side="left")
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(weeks > 0, counted * (365.25 / 7.0) / weeks, np.nan)
        out[1:] = np.where(intraday, rate, coarse)
    out.flags.writeable = False
    return out


# -- signal helpers (not memoised: their inputs are usually fresh arrays) --------------------
def _crossover_loop(x, y, out):  # pragma: no cover - compiled
    last = 0.0  # last non-zero sign of x - y seen
    crossed = False
    for t in range(out.shape[0]):
        d = x[t] - y[t]
        side = 1.0 if d > 0.0 else (-1.0 if d < 0.0 else 0.0)  # NaN compares False: 0
        if side != 0.0:
            if last != 0.0 and side != last:
                crossed = True
            last = side
        out[t] = last if crossed else 0.0
    return out


def crossover_side(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Side of the most recent crossing of ``a`` over ``b``, per bar.

    ``+1`` after ``a`` crossed above ``b``, ``-1`` after it crossed below, ``0`` before the
    first crossing. A crossing is a change in the sign of ``a - b``; bars where ``a == b`` (or
    either is NaN, e.g. during warm-up) keep the previous sign, so touching is not crossing.
    The sign ``a - b`` has when both first become valid is *not* a crossing: the result stays 0
    until the sign first changes. Causal: bar ``t`` uses ``a[..t]`` and ``b[..t]`` only.
    """
    x, y = _as_float64(a, "a"), _as_float64(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"crossover_side needs inputs of one length, got {x.shape} and {y.shape}")
    return _jit(_crossover_loop)(x, y, np.empty(x.shape[0]))


def _crossover_rows(table, first, second, out):  # pragma: no cover - compiled
    for r in range(out.shape[0]):  # `_crossover_loop` on table[first[r]], table[second[r]]
        x = table[first[r]]
        y = table[second[r]]
        row = out[r]
        last = 0.0
        crossed = False
        for t in range(row.shape[0]):
            d = x[t] - y[t]
            side = 1.0 if d > 0.0 else (-1.0 if d < 0.0 else 0.0)
            if side != 0.0:
                if last != 0.0 and side != last:
                    crossed = True
                last = side
            row[t] = last if crossed else 0.0
    return out


def crossover_sides(table: ArrayLike, first: ArrayLike, second: ArrayLike) -> np.ndarray:
    """`crossover_side` of many pairs at once, for strategies that take arrays of parameters.

    ``table`` is a 2-D array of series, one per row (e.g. ``np.stack([sma(close, n) for n in
    windows])``); ``first`` and ``second`` are equal-length integer arrays of row numbers.
    Returns a ``(len(first), n_bars)`` array whose row ``r`` is
    ``crossover_side(table[first[r]], table[second[r]])``, value for value.
    """
    tab = np.ascontiguousarray(table, dtype=np.float64)
    i = np.ascontiguousarray(first, dtype=np.int64)
    j = np.ascontiguousarray(second, dtype=np.int64)
    if tab.ndim != 2 or i.ndim != 1 or i.shape != j.shape:
        raise ValueError(f"crossover_sides needs a 2-D table and two row-number arrays of one "
                         f"length, got shapes {tab.shape}, {i.shape} and {j.shape}")
    rows = tab.shape[0]
    if i.size and (min(i.min(), j.min()) < 0 or max(i.max(), j.max()) >= rows):
        raise ValueError(f"crossover_sides: row numbers must lie in [0, {rows})")
    return _jit(_crossover_rows)(tab, i, j, np.empty((i.shape[0], tab.shape[1])))


def _latch_loop(long_entry, long_exit, short_entry, short_exit, out):  # pragma: no cover - compiled
    state = 0.0
    for t in range(out.shape[0]):
        if (state > 0.0 and long_exit[t]) or (state < 0.0 and short_exit[t]):
            state = 0.0
        if long_entry[t] and not short_entry[t]:
            state = 1.0
        elif short_entry[t] and not long_entry[t]:
            state = -1.0
        out[t] = state
    return out


def _latch_rows(long_entry, long_exit, short_entry, short_exit, out):  # pragma: no cover - compiled
    for r in range(out.shape[0]):  # `_latch_loop` on each row
        state = 0.0
        for t in range(out.shape[1]):
            if (state > 0.0 and long_exit[r, t]) or (state < 0.0 and short_exit[r, t]):
                state = 0.0
            if long_entry[r, t] and not short_entry[r, t]:
                state = 1.0
            elif short_entry[r, t] and not long_entry[r, t]:
                state = -1.0
            out[r, t] = state
    return out


_JITTED: dict[Callable[..., Any], Callable[..., Any]] = {}
_DISK_CACHE = True


def _jit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` compiled by numba (imported on first use: it costs ~0.25 s to import)."""
    compiled = _JITTED.get(fn)
    if compiled is None:
        from numba import njit

        from alphaloop.backtest import _kernels  # noqa: F401  (numba's target, loaded lean)

        compiled = _JITTED[fn] = njit(cache=_DISK_CACHE, nogil=True)(fn)
    return compiled


def no_disk_cache() -> None:
    """Compile without numba's on-disk cache from now on, in this process (a confined
    strategy process cannot write one: a new signature would fail to save)."""
    global _DISK_CACHE
    _DISK_CACHE = False
    from numba.core.caching import NullCache

    for dispatcher in _JITTED.values():
        dispatcher._cache = NullCache()  # type: ignore[attr-defined]


def warm_up() -> None:
    """Compile (or load from numba's cache) the helpers' loops for the argument types
    strategies pass: float64 inputs writeable or read-only (memoised indicators are)."""
    x = np.linspace(1.0, 2.0, 8)
    ro = x.copy()
    ro.flags.writeable = False
    for a, b in ((x, x[::-1].copy()), (ro, ro), (ro, x), (x, ro)):
        crossover_side(a, b)
    latch(x > 1.5, x < 1.2, x < 1.1, x > 1.9)
    latch(x > 1.5, x < 1.2)
    rows = np.stack([x, ro])
    latch(rows > 1.5, rows < 1.2, rows < 1.1, rows > 1.9)
    crossover_sides(rows, np.array([0, 1]), np.array([1, 0]))


def _bool_array(x: ArrayLike | None, shape: tuple[int, ...], what: str) -> np.ndarray:
    if x is None:
        return np.zeros(shape, dtype=np.bool_)
    a = np.asarray(x.to_numpy() if hasattr(x, "to_numpy") else x)
    if a.shape != shape:
        raise ValueError(f"latch: {what} has shape {a.shape}, expected {shape}")
    if a.dtype != np.bool_:
        # NaN (e.g. a comparison against a warm-up NaN done in float) counts as "no signal".
        a = np.nan_to_num(a.astype(np.float64), nan=0.0) != 0.0
    return np.ascontiguousarray(a)


def latch(
    long_entry: ArrayLike,
    long_exit: ArrayLike,
    short_entry: ArrayLike | None = None,
    short_exit: ArrayLike | None = None,
) -> np.ndarray:
    """Turn entry/exit signals into a held position in {-1, 0, +1}, bar by bar.

    Starting flat, at each bar: a long is closed if ``long_exit`` is true, a short if
    ``short_exit`` is true; then ``long_entry`` goes (or stays) long and ``short_entry`` goes
    short (a reversal if the opposite side was held). Entries on both sides at once cancel (no
    new position). Signals are boolean arrays (NaN counts as false); omitted short signals mean
    long-only. Causal: bar ``t`` uses signals up to ``t`` only.

    2-D signals (one row per parameter set, bars along the rows, as a strategy that takes
    arrays of parameters builds them) latch each row on its own: the result has their shape.
    """
    shape = np.shape(long_entry)
    if len(shape) not in (1, 2):
        raise ValueError(f"latch: long_entry must be 1-D (bars) or 2-D (rows of bars), "
                         f"got shape {shape}")
    le = _bool_array(long_entry, shape, "long_entry")
    lx = _bool_array(long_exit, shape, "long_exit")
    se = _bool_array(short_entry, shape, "short_entry")
    sx = _bool_array(short_exit, shape, "short_exit")
    loop = _latch_loop if len(shape) == 1 else _latch_rows
    return _jit(loop)(le, lx, se, sx, np.empty(shape))
