"""Performance metrics of a backtest, computed from its per-bar returns, holdings and trades.

All values are fractions (0.12 means 12%), never percent. ``n`` is the number of bars,
``r[0..n-1]`` the per-bar returns *including* the engine's ``r[0] = 0``, ``bpy`` the bars per
year, ``e[t] = prod(1 + r[0..t])`` the equity curve starting from 1.0. The risk-free rate is 0.

==========================  =====================================================================
key                         definition
==========================  =====================================================================
total_return                ``e[n-1] - 1``
cagr                        ``e[n-1] ** (bpy / n) - 1`` (empyrical's convention: years = n / bpy)
annual_volatility           ``std(r, ddof=1) * sqrt(bpy)``
sharpe_ratio                ``mean(r) / std(r, ddof=1) * sqrt(bpy)``
sortino_ratio               ``mean(r) * bpy / (sqrt(mean(min(r, 0) ** 2)) * sqrt(bpy))``
                            (empyrical's, required return 0, downside mean over all n bars)
calmar_ratio                ``cagr / max_drawdown``
max_drawdown                ``max(1 - e[t] / peak[t])`` with ``peak[t] = max(1.0, e[0..t])``:
                            positive, 0.20 means a 20% fall; the starting equity 1.0 is a peak
max_drawdown_duration       longest underwater stretch, in bars: from the peak bar ``p`` (the last
                            bar at the running peak before equity drops below it) to the recovery
                            bar ``q`` (the first later bar with ``e[q] >= e[p]``), i.e. ``q - p``;
                            ``n - 1 - p`` if never recovered; a one-bar dip counts 2; 0 if never
                            below a peak (int). The starting 1.0 counts as a peak at bar 0
                            (only matters to `compute` when ``r[0] < 0``)
win_rate                    share of trades with return > 0
profit_factor               sum of winning trade returns / abs(sum of losing trade returns)
num_trades                  number of trades, a trade still open at the end included (int)
avg_trade_return            mean trade return (after costs)
exposure                    share of bars with a non-zero holding ``h[t]``
turnover                    annualised notional traded, in units of equity: the sum over the
                            engine's trades of ``|notional traded| / equity before the trade``,
                            times ``bpy / n`` (a reversal from +1 to -1 trades about 2; with
                            `compute`, ``sum(abs(h[t] - h[t-1]))`` with ``h[-1] = 0`` instead)
==========================  =====================================================================

A value that is undefined is ``None`` (JSON ``null``), never NaN or inf:

==========================  =====================================================================
None means                  when
==========================  =====================================================================
annual_volatility           fewer than 2 bars (a sample std needs 2); it is 0.0 for flat returns
sharpe_ratio                fewer than 2 bars, or the returns do not vary (std <= 1e-14: a
                            strategy that never trades, or constant returns up to rounding)
sortino_ratio               no bar has a negative return (no downside to divide by)
calmar_ratio                max_drawdown is 0 (never below a peak), or cagr is None
cagr                        only on float overflow; -1.0 after ruin (equity 0)
win_rate, avg_trade_return  no trades
profit_factor               no trades, or no losing trade (nothing to divide by)
==========================  =====================================================================

Any remaining non-finite value (an overflow on absurd inputs) is also reported as None.

`compute` takes plain arrays and is what tests compare against empyrical; the engine calls
`from_stats` on the vector its kernel already produced, so both paths share one implementation
(`_kernels.summarize`). `json_safe` makes any metrics dict safe for ``json.dumps``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

METRIC_KEYS: tuple[str, ...] = (
    "total_return",
    "cagr",
    "annual_volatility",
    "sharpe_ratio",
    "sortino_ratio",
    "calmar_ratio",
    "max_drawdown",
    "max_drawdown_duration",
    "win_rate",
    "profit_factor",
    "num_trades",
    "avg_trade_return",
    "exposure",
    "turnover",
)

Metric = float | int | None

#: Standard deviations at or below this are treated as zero (constant returns): a ratio over
#: floating-point noise is not a Sharpe ratio.
_STD_EPS = 1e-14


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def from_stats(stats: np.ndarray, bars_per_year: float) -> dict[str, Metric]:
    """Build the metrics dict (keys in `METRIC_KEYS` order) from a `_kernels.summarize` vector."""
    (n, final, mean, std, downside, max_dd, max_dur, trades, wins, win_sum, loss_sum, losses,
     trade_sum, exposed, traded) = stats.tolist()
    bpy = bars_per_year
    if n < 1:
        raise ValueError("metrics need at least one bar")
    cagr = _finite(final ** (bpy / n) - 1.0) if final > 0.0 else -1.0
    has_std = n >= 2 and std > _STD_EPS
    sharpe = _finite(mean / std * math.sqrt(bpy)) if has_std else None
    sortino = _finite(mean * bpy / (downside * math.sqrt(bpy))) if downside > 0.0 else None
    calmar = _finite(cagr / max_dd) if max_dd > 0.0 and cagr is not None else None
    annual_vol = (std * math.sqrt(bpy) if has_std else 0.0) if n >= 2 else None
    return {
        "total_return": _finite(final - 1.0),
        "cagr": cagr,
        "annual_volatility": annual_vol,
        "sharpe_ratio": sharpe,
        "sortino_ratio": sortino,
        "calmar_ratio": calmar,
        "max_drawdown": max_dd,
        "max_drawdown_duration": int(max_dur),
        "win_rate": wins / trades if trades else None,
        "profit_factor": _finite(win_sum / loss_sum) if losses else None,
        "num_trades": int(trades),
        "avg_trade_return": _finite(trade_sum / trades) if trades else None,
        "exposure": exposed / n,
        "turnover": _finite(traded * bpy / n),
    }


def compute(
    returns: np.ndarray,
    positions: np.ndarray | None = None,
    trade_returns: np.ndarray | None = None,
    *,
    bars_per_year: float = 252.0,
) -> dict[str, Metric]:
    """Metrics of per-bar ``returns`` (see the module docstring for every definition).

    ``positions`` are the held positions ``h`` per bar (default: flat, so exposure and turnover
    are 0); ``trade_returns`` the after-cost return of each trade (default: no trades). Pass the
    engine's ``r`` including its ``r[0] = 0``: the metrics count every bar given.
    """
    from alphaloop.backtest import _kernels

    r = np.require(returns, dtype=np.float64, requirements=("C", "W"))
    if r.ndim != 1 or r.shape[0] == 0:
        raise ValueError("returns must be a non-empty 1-d array")
    h = np.zeros_like(r) if positions is None else np.require(positions, np.float64, ("C", "W"))
    if h.shape != r.shape:
        raise ValueError(f"positions has {h.shape[0]} bars, returns has {r.shape[0]}")
    tr = np.zeros(0) if trade_returns is None else np.require(trade_returns, np.float64, ("C", "W"))
    equity = np.cumprod(1.0 + r)
    traded = float(np.abs(np.diff(h, prepend=0.0)).sum())
    stats = _kernels.summarize(r, equity, h, tr, tr.shape[0], traded)
    return from_stats(stats, bars_per_year)


def json_safe(metrics: Mapping[str, object]) -> dict[str, object]:
    """A copy of ``metrics`` that ``json.dumps(..., allow_nan=False)`` accepts.

    numpy scalars become Python numbers, NaN/inf become None.
    """
    out: dict[str, object] = {}
    for key, value in metrics.items():
        if isinstance(value, (bool, np.bool_)):
            out[key] = bool(value)
        elif isinstance(value, (int, np.integer)):
            out[key] = int(value)
        elif isinstance(value, (float, np.floating)):
            out[key] = float(value) if math.isfinite(value) else None
        else:
            out[key] = value
    return out


_MOMENTS_STD_EPS = 1e-14


def return_moments(returns: np.ndarray) -> tuple[float, int, float, float] | None:
    """``(sharpe, T, skewness, kurtosis)`` of per-bar returns, or None when undefined.

    Undefined means fewer than 3 finite returns or zero dispersion. Non-finite returns are an
    error (a ValueError), not silently dropped: they mean the backtest is broken.
    """
    r = np.asarray(returns, dtype=np.float64).ravel()
    if not np.all(np.isfinite(r)):
        raise ValueError("returns contain NaN or infinite values")
    t = r.size
    if t < 3:
        return None
    centred = r - r.mean()
    m2 = float(np.mean(centred**2))
    std = float(np.std(r, ddof=1))
    # Same threshold as backtest.metrics: a ratio over floating-point noise is not a Sharpe.
    if m2 <= 0.0 or std <= _MOMENTS_STD_EPS:
        return None
    m3 = float(np.mean(centred**3))
    m4 = float(np.mean(centred**4))
    return float(r.mean()) / std, t, m3 / m2**1.5, m4 / m2**2
