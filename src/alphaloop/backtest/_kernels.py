"""Numba kernels of the backtest engine: simulation and summary statistics.

Private to `alphaloop.backtest`; the semantics are documented in `engine` (simulation) and
`metrics` (statistics). Everything here works on contiguous float64 arrays and is compiled with
``cache=True`` (the first call in a fresh environment compiles and writes the cache; later
processes load it in ~0.2 s) and ``nogil=True`` (threads may run backtests in parallel).

The engine calls `first_invalid`, then `backtest` (`run`, which needs the arrays) or
`backtest_stats` (`run_arrays`, which needs only the statistics: boxing nine arrays back into
Python costs ~2 us, a tenth of a backtest). A parameter grid (`alphaloop.backtest.grid`) checks
the prices once and calls `backtest_stats_many` on all its columns at once; every path runs the
same `simulate_into` and `summarize`.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
from numba import njit


def load_cpu_target() -> None:
    """Load numba's CPU target (its typing and lowering registries) now, without letting it
    import ``scipy.linalg``. Idempotent, cheap once done.

    numba loads the target on the first compile or cache load in a process, and
    ``numba.np.arraymath`` then imports ``scipy.linalg.cython_blas`` to learn whether a BLAS
    is there; scipy's ``linalg`` pulls in its array-API layer, which walks numpy and imports
    ``numpy.f2py`` on the way: ~0.4-0.5 s of a worker's start-up and ~40 MB of memory, for
    functions no kernel here calls (``np.dot``, ``np.linalg``; a kernel that does still
    compiles: numba imports scipy when it types one). Only the answer to "is there a BLAS"
    changes: ``np.cov``/``np.corrcoef`` compiled afterwards use numba's own loop instead.
    Done only when no other thread runs (one could be importing scipy right now) and scipy's
    ``linalg`` is not loaded yet (then it costs nothing)."""
    from numba.core.registry import cpu_target

    hide = "scipy.linalg" not in sys.modules and threading.active_count() == 1
    if hide:
        sys.modules["scipy.linalg"] = None  # type: ignore[assignment]  # import -> ImportError
    try:
        cpu_target.typing_context.refresh()
        cpu_target.target_context.refresh()
    finally:
        if hide and sys.modules.get("scipy.linalg", 0) is None:
            del sys.modules["scipy.linalg"]


load_cpu_target()

#: Layout of the statistics vector returned by `summarize` (and by `backtest`).
STAT_N = 0  # number of bars
STAT_FINAL = 1  # final equity (growth of 1.0)
STAT_MEAN = 2  # mean per-bar return
STAT_STD = 3  # sample standard deviation (ddof=1) of per-bar returns; nan if n < 2
STAT_DOWNSIDE = 4  # sqrt(mean(min(r, 0) ** 2))
STAT_MAX_DD = 5  # max drawdown, positive fraction
STAT_MAX_DD_DUR = 6  # longest underwater stretch, bars
STAT_TRADES = 7  # number of trades (open one included)
STAT_WINS = 8  # trades with return > 0
STAT_WIN_SUM = 9  # sum of winning trade returns
STAT_LOSS_SUM = 10  # |sum of losing trade returns|
STAT_LOSSES = 11  # trades with return < 0
STAT_TRADE_SUM = 12  # sum of all trade returns
STAT_EXPOSED = 13  # bars with a non-zero holding
STAT_TRADED = 14  # sum of |h[t] - h[t-1]| (units traded)
N_STATS = 15


@njit(cache=True, nogil=True)
def _sign(x: float) -> int:
    if x > 0.0:
        return 1
    if x < 0.0:
        return -1
    return 0


#: Codes returned by `first_invalid`.
OK, BAD_OPEN, BAD_CLOSE, NAN_TARGET, OUT_OF_RANGE = 0, 1, 2, 3, 4


@njit(cache=True, nogil=True)
def first_invalid(open_, close, target):  # pragma: no cover - compiled
    """(code, bar) of the first invalid input, or (OK, -1).

    Prices must be finite and > 0; targets must be non-NaN and within [-1, 1]. Prices are
    checked before targets, so a bad price is reported first.
    """
    n = close.shape[0]
    bad = False
    for t in range(n):  # branch-free pass (vectorises); the slow search runs only on failure
        x = open_[t]
        y = close[t]
        z = target[t]
        bad |= (not x > 0.0) | (x == np.inf) | (not y > 0.0) | (y == np.inf) | (z != z)
        bad |= abs(z) > 1.0
    if not bad:
        return OK, -1
    for t in range(n):
        x = open_[t]
        if not (x > 0.0 and x < np.inf):
            return BAD_OPEN, t
        x = close[t]
        if not (x > 0.0 and x < np.inf):
            return BAD_CLOSE, t
    for t in range(n):
        x = target[t]
        if x != x:
            return NAN_TARGET, t
        if abs(x) > 1.0:
            return OUT_OF_RANGE, t
    return OK, -1


@njit(cache=True, nogil=True)
def _to_weight(equity, notional, h, cost):  # pragma: no cover - compiled
    """The notional ``x`` that is weight ``h`` of the equity left after trading to it.

    Solves ``x = h * (equity - |x - notional| * cost)``: its left side minus its right side
    grows strictly with ``x`` (slope ``1 +- h * cost > 0``), so exactly one of the two
    branches (buying, ``x >= notional``; selling, ``x < notional``) is consistent.
    """
    x = h * (equity + notional * cost) / (1.0 + h * cost)
    if x < notional:
        x = h * (equity - notional * cost) / (1.0 - h * cost)
    return x


@njit(cache=True, nogil=True)
def simulate(open_, close, target, cost, borrow, every_bar):  # pragma: no cover - compiled
    """Fill targets at the next open; return (r, equity, held, trade arrays..., n_trades, traded).

    The account holds cash and a number of units (growth of 1.0 starts as cash). With
    ``every_bar`` False (units held) it trades only when the target changes; with it True
    (constant weight) it trades back to the target at every open and every close but the last.
    ``borrow`` is the fee per bar on short notional, charged at each close while short.
    Trade arrays have length n (an upper bound) and are valid up to ``n_trades``: entry bar,
    exit bar (the bar whose open closed it, or n-1 if still open), side (+1/-1), return after
    costs, open flag. ``traded`` is the sum over trades of notional traded / equity before it.
    """
    n = close.shape[0]
    held = np.zeros(n)
    ret = np.zeros(n)
    equity = np.zeros(n)
    t_entry = np.empty(n, dtype=np.int64)
    t_exit = np.empty(n, dtype=np.int64)
    t_side = np.empty(n, dtype=np.int8)
    t_ret = np.empty(n)
    t_open = np.zeros(n, dtype=np.bool_)
    k, traded = simulate_into(
        open_, close, target, cost, borrow, every_bar,
        ret, equity, held, t_entry, t_exit, t_side, t_ret, t_open,
    )
    return ret, equity, held, t_entry, t_exit, t_side, t_ret, t_open, k, traded


@njit(cache=True, nogil=True)
def simulate_into(
    open_, close, target, cost, borrow, every_bar,
    ret, equity, held, t_entry, t_exit, t_side, t_ret, t_open,
):  # pragma: no cover - compiled
    """`simulate` writing into the caller's arrays (length n each; reused across the columns
    of a grid, so every element the results are read from is written here); (n_trades, traded).
    """
    n = close.shape[0]
    k = 0
    traded = 0.0
    if n == 0:
        return k, traded
    held[0] = 0.0
    ret[0] = 0.0
    equity[0] = 1.0
    cash = 1.0
    units = 0.0
    prev = 1.0  # equity at the previous close
    base = 1.0  # equity of the open trade before its entry cost
    start = 0
    side = 0  # side of the open trade, 0 when flat
    for t in range(1, n):
        hp = held[t - 1]
        hn = target[t - 1]
        held[t] = hn
        sp = _sign(hp)
        sn = _sign(hn)
        o = open_[t]
        e = cash + units * o
        if e > 0.0 and (every_bar or hn != hp):
            y = units * o
            if sp != 0 and sn != sp:  # the trade ends at this open: sell it all first
                traded += abs(y) / e
                e -= abs(y) * cost
                t_entry[k] = start
                t_exit[k] = t
                t_side[k] = sp
                t_ret[k] = max(e / base, 0.0) - 1.0
                t_open[k] = False
                k += 1
                y = 0.0
                units = 0.0
                cash = e
                side = 0
            if sn != 0 and sp != sn:
                base = e
                start = t
                side = sn
            if e > 0.0:
                x = _to_weight(e, y, hn, cost)
                traded += abs(x - y) / e
                e -= abs(x - y) * cost
                units = x / o
                cash = e - x
        if e > 0.0:
            c = close[t]
            e = cash + units * c
            if units < 0.0:
                fee = -units * c * borrow
                cash -= fee
                e -= fee
            if every_bar and t < n - 1 and units != 0.0 and e > 0.0:
                y = units * c
                x = _to_weight(e, y, hn, cost)
                traded += abs(x - y) / e
                e -= abs(x - y) * cost
                units = x / c
                cash = e - x
        if not e > 0.0:  # ruin: the account is wiped out and stays so
            ret[t] = -1.0
            if side != 0:
                t_entry[k] = start
                t_exit[k] = t
                t_side[k] = side
                t_ret[k] = -1.0
                t_open[k] = False
                k += 1
            equity[t] = 0.0
            for u in range(t + 1, n):  # nothing is held after ruin
                held[u] = 0.0
                ret[u] = 0.0
                equity[u] = 0.0
            return k, traded
        equity[t] = e
        ret[t] = e / prev - 1.0
        prev = e
    if _sign(held[n - 1]) != 0:
        t_entry[k] = start
        t_exit[k] = n - 1
        t_side[k] = _sign(held[n - 1])
        t_ret[k] = prev / base - 1.0
        t_open[k] = True
        k += 1
    return k, traded


@njit(cache=True, nogil=True)
def summarize(ret, equity, held, trade_ret, n_trades, traded):  # pragma: no cover - compiled
    """Summary statistics of one backtest as a float64 vector (layout: the STAT_* constants).

    ``traded`` is the notional traded in units of equity (the simulation knows it).
    """
    n = ret.shape[0]
    out = np.zeros(N_STATS)
    out[STAT_N] = n
    out[STAT_FINAL] = equity[n - 1] if n > 0 else 1.0
    total = 0.0
    down = 0.0
    exposed = 0
    peak = 1.0
    peak_at = 0
    max_dd = 0.0
    max_dur = 0
    for t in range(n):
        r = ret[t]
        total += r
        if r < 0.0:
            down += r * r
        h = held[t]
        if h != 0.0:
            exposed += 1
        e = equity[t]
        if e >= peak:
            if t - peak_at > max_dur and peak_at < t - 1:
                max_dur = t - peak_at
            peak = e
            peak_at = t
        else:
            dd = 1.0 - e / peak
            if dd > max_dd:
                max_dd = dd
    if n > 0 and equity[n - 1] < peak and n - 1 - peak_at > max_dur:
        max_dur = n - 1 - peak_at
    mean = total / n if n > 0 else 0.0
    ss = 0.0
    for t in range(n):
        d = ret[t] - mean
        ss += d * d
    out[STAT_MEAN] = mean
    out[STAT_STD] = np.sqrt(ss / (n - 1)) if n > 1 else np.nan
    out[STAT_DOWNSIDE] = np.sqrt(down / n) if n > 0 else 0.0
    out[STAT_MAX_DD] = max_dd
    out[STAT_MAX_DD_DUR] = max_dur
    out[STAT_EXPOSED] = exposed
    out[STAT_TRADED] = traded
    wins = 0
    losses = 0
    win_sum = 0.0
    loss_sum = 0.0
    trade_sum = 0.0
    for i in range(n_trades):
        x = trade_ret[i]
        trade_sum += x
        if x > 0.0:
            wins += 1
            win_sum += x
        elif x < 0.0:
            losses += 1
            loss_sum -= x
    out[STAT_TRADES] = n_trades
    out[STAT_WINS] = wins
    out[STAT_WIN_SUM] = win_sum
    out[STAT_LOSS_SUM] = loss_sum
    out[STAT_LOSSES] = losses
    out[STAT_TRADE_SUM] = trade_sum
    return out


@njit(cache=True, nogil=True)
def backtest(open_, close, target, cost, borrow, every_bar):  # pragma: no cover - compiled
    """`simulate` then `summarize`: (stats, r, equity, held, trade arrays..., n_trades)."""
    ret, equity, held, t_entry, t_exit, t_side, t_ret, t_open, k, traded = simulate(
        open_, close, target, cost, borrow, every_bar
    )
    stats = summarize(ret, equity, held, t_ret, k, traded)
    return stats, ret, equity, held, t_entry, t_exit, t_side, t_ret, t_open, k


@njit(cache=True, nogil=True)
def backtest_stats(open_, close, target, cost, borrow, every_bar):  # pragma: no cover - compiled
    """`backtest` returning only the statistics vector (no arrays to hand back to Python)."""
    ret, equity, held, _, _, _, t_ret, _, k, traded = simulate(
        open_, close, target, cost, borrow, every_bar
    )
    return summarize(ret, equity, held, t_ret, k, traded)


@njit(cache=True, nogil=True)
def first_bad_target(target):  # pragma: no cover - compiled
    """(code, bar) of the first NaN or out-of-range target, or (OK, -1) (prices not looked at)."""
    bad = False
    for t in range(target.shape[0]):  # branch-free pass first, as in `first_invalid`
        z = target[t]
        bad |= (z != z) | (abs(z) > 1.0)
    if not bad:
        return OK, -1
    for t in range(target.shape[0]):
        z = target[t]
        if z != z:
            return NAN_TARGET, t
        if abs(z) > 1.0:
            return OUT_OF_RANGE, t
    return OK, -1


@njit(cache=True, nogil=True)
def backtest_stats_many(
    open_, close, targets, cost, borrow, every_bar, stats, codes, bars
):  # pragma: no cover - compiled
    """`backtest_stats` of every row of ``targets`` (k x n, one parameter set per row) in one
    call, the work arrays allocated once. Prices must have been checked (`first_invalid`).

    Writes row j's statistics to ``stats[j]`` (k x N_STATS), or, for a row with a NaN or
    out-of-range target, its `first_bad_target` code and bar to ``codes[j]`` and ``bars[j]``
    (``codes[j]`` is OK otherwise). The arithmetic is `backtest_stats`'s, so each row's
    statistics are the ones a single run of that row gives, to the last bit.
    """
    n = close.shape[0]
    held = np.zeros(n)
    ret = np.zeros(n)
    equity = np.zeros(n)
    t_entry = np.empty(n, dtype=np.int64)
    t_exit = np.empty(n, dtype=np.int64)
    t_side = np.empty(n, dtype=np.int8)
    t_ret = np.empty(n)
    t_open = np.zeros(n, dtype=np.bool_)
    for j in range(targets.shape[0]):
        w = targets[j]
        code, bar = first_bad_target(w)
        codes[j] = code
        bars[j] = bar
        if code != OK:
            continue
        k, traded = simulate_into(
            open_, close, w, cost, borrow, every_bar,
            ret, equity, held, t_entry, t_exit, t_side, t_ret, t_open,
        )
        stats[j, :] = summarize(ret, equity, held, t_ret, k, traded)
