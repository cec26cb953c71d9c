"""Seeded synthetic daily OHLCV series whose truth is known, for calibrating the search.

Every generator returns a DataFrame indexed by business days (``date``, 3,000 bars from
2010-01-04 by default) with the columns ``open, high, low, close, volume`` that
``alphaloop.data.load`` returns, plus two columns that state the truth and that the loader
ignores:

- ``drift``: the expected log return of the bar's close over the previous close, given
  everything known at the previous close;
- ``vol``: the standard deviation of that log return.

A family has an *edge* when ``drift`` is non-zero and predictable from past bars (a strategy
that knows it could make money), and *no edge* when ``drift`` is zero on every bar: then no
strategy, however chosen, has a positive expected return before costs.

The close follows ``log(close_t) = log(close_{t-1}) + drift_t + vol_t * z_t``. The day's move
is split into an overnight gap (10% of the variance, so ``open`` differs from the previous
close) and the session, with the drift spread pro rata; ``high``/``low`` extend beyond
``max``/``min(open, close)`` by half-normal amounts of the session's scale. Volume is
log-normal around 1e6 and larger on big moves. Same arguments and seed, same bars.

>>> from alphaloop.data import synthetic
>>> bars = synthetic.random_walk(daily_vol=0.015, seed=3)
>>> synthetic.write_csv(bars, "/tmp/data/RW003.csv")   # alphaloop run --ticker RW003 --data ...
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "N_BARS",
    "START",
    "garch_walk",
    "mean_reversion",
    "random_walk",
    "regime_trend",
    "weekday_effect",
    "write_csv",
]

N_BARS = 3000
START = "2010-01-04"
_GAP_SHARE = 0.1
"""Share of a day's variance that falls overnight (between the previous close and the open)."""


def _bars(
    drift: np.ndarray,
    vol: np.ndarray,
    shocks: np.ndarray,
    rng: np.random.Generator,
    start: str,
    price0: float = 100.0,
) -> pd.DataFrame:
    """OHLCV around the closes ``price0 * exp(cumsum(drift + vol * shocks))``, truth attached."""
    n = len(drift)
    gap_sd, session_sd = np.sqrt(_GAP_SHARE), np.sqrt(1.0 - _GAP_SHARE)
    # the overnight part of each shock, drawn given the day's total shock (z_gap standard
    # normal, and the session's part, shocks - gap_sd * z_gap, independent of it)
    z_gap = gap_sd * shocks + session_sd * rng.standard_normal(n)
    gap = _GAP_SHARE * drift + vol * gap_sd * z_gap
    log_close = np.log(price0) + np.cumsum(drift + vol * shocks)
    log_open = np.concatenate(([np.log(price0)], log_close[:-1])) + gap
    session = vol * session_sd
    log_high = np.maximum(log_open, log_close) + 0.5 * session * np.abs(rng.standard_normal(n))
    log_low = np.minimum(log_open, log_close) - 0.5 * session * np.abs(rng.standard_normal(n))
    move = np.abs(drift + vol * shocks - gap) / np.maximum(session, 1e-12)
    volume = np.round(1e6 * np.exp(0.3 * rng.standard_normal(n) + 0.3 * move))
    frame = pd.DataFrame(
        {
            "open": np.exp(log_open),
            "high": np.exp(log_high),
            "low": np.exp(log_low),
            "close": np.exp(log_close),
            "volume": volume,
            "drift": drift,
            "vol": vol,
        },
        index=pd.bdate_range(start, periods=n, name="date").as_unit("ns"),
    )
    # exp() of equal logs can differ in the last bit; keep low <= open, close <= high exactly
    frame["high"] = frame[["open", "high", "close"]].max(axis=1)
    frame["low"] = frame[["open", "low", "close"]].min(axis=1)
    return frame


def random_walk(
    n_bars: int = N_BARS,
    *,
    daily_vol: float = 0.015,
    drift: float = 0.0,
    seed: int = 0,
    start: str = START,
) -> pd.DataFrame:
    """Geometric random walk: i.i.d. normal log returns with mean ``drift`` and std ``daily_vol``.

    Truth: no edge when ``drift`` is 0 (the default): past bars say nothing about the next one.
    """
    rng = np.random.default_rng(seed)
    shocks = rng.standard_normal(n_bars)
    return _bars(np.full(n_bars, drift), np.full(n_bars, daily_vol), shocks, rng, start)


def garch_walk(
    n_bars: int = N_BARS,
    *,
    daily_vol: float = 0.015,
    alpha: float = 0.08,
    beta: float = 0.9,
    seed: int = 0,
    start: str = START,
) -> pd.DataFrame:
    """Zero-drift random walk with GARCH(1,1) volatility clustering.

    ``vol_t² = ω + alpha * e_{t-1}² + beta * vol_{t-1}²`` with ``ω = daily_vol² (1 - alpha -
    beta)``, so ``daily_vol`` is the long-run daily volatility (``alpha + beta < 1``).
    Truth: no edge — volatility is predictable, the direction is not (drift 0 on every bar).
    """
    if not (alpha >= 0 and beta >= 0 and alpha + beta < 1):
        raise ValueError(f"need alpha, beta >= 0 and alpha + beta < 1, got {alpha}, {beta}")
    rng = np.random.default_rng(seed)
    shocks = rng.standard_normal(n_bars)
    omega = daily_vol**2 * (1.0 - alpha - beta)
    var = np.empty(n_bars)
    var[0] = daily_vol**2
    for t in range(1, n_bars):
        var[t] = omega + alpha * var[t - 1] * shocks[t - 1] ** 2 + beta * var[t - 1]
    return _bars(np.zeros(n_bars), np.sqrt(var), shocks, rng, start)


def regime_trend(
    n_bars: int = N_BARS,
    *,
    drift: float = 0.0015,
    flip_prob: float = 1 / 120,
    daily_vol: float = 0.012,
    seed: int = 0,
    start: str = START,
) -> pd.DataFrame:
    """Trending regimes: daily drift ``±drift`` whose sign flips with probability ``flip_prob``
    each day (regimes last ``1 / flip_prob`` days on average), plus ``daily_vol`` noise.

    Truth: edge. A trader who knows the regime earns a Sharpe ratio of
    ``drift / daily_vol * sqrt(252)`` (about 2 with the defaults); a trend follower, which
    learns of a flip only some days late, earns less. The first regime's sign is random.
    """
    rng = np.random.default_rng(seed)
    shocks = rng.standard_normal(n_bars)
    flips = rng.random(n_bars) < flip_prob
    flips[0] = False
    sign = (1.0 if rng.random() < 0.5 else -1.0) * np.where(np.cumsum(flips) % 2 == 0, 1.0, -1.0)
    return _bars(drift * sign, np.full(n_bars, daily_vol), shocks, rng, start)


def mean_reversion(
    n_bars: int = N_BARS,
    *,
    kappa: float = 0.1,
    daily_vol: float = 0.015,
    level_vol: float = 0.002,
    seed: int = 0,
    start: str = START,
) -> pd.DataFrame:
    """Log price = a slowly wandering level + an Ornstein–Uhlenbeck deviation from it.

    The deviation ``u`` follows ``u_t = (1 - kappa) u_{t-1} + daily_vol * z_t`` (half-life
    ``ln 2 / kappa`` days, about 7 with the defaults; stationary std ``daily_vol /
    sqrt(kappa (2 - kappa))``, about 3.4%); the level is a random walk with ``level_vol`` daily
    steps. The ``vol`` column is the total one-day std, ``sqrt(daily_vol² + level_vol²)``.
    Truth: edge — the expected next return is ``-kappa * u``, so buying well below the level
    (a Bollinger-band or RSI reversion strategy) pays.
    """
    if not 0 < kappa < 1:
        raise ValueError(f"kappa must be in (0, 1), got {kappa}")
    rng = np.random.default_rng(seed)
    total = np.hypot(daily_vol, level_vol)
    shocks = rng.standard_normal(n_bars)  # the total one-day shock, in units of `total`
    # the deviation's own shock, given the total: shock = (daily_vol*e_u + level_vol*e_m)/total
    e_u = (daily_vol * shocks + level_vol * rng.standard_normal(n_bars)) / total
    drift = np.empty(n_bars)
    u = 0.0  # the deviation at the previous close
    for t in range(n_bars):
        drift[t] = -kappa * u
        u = (1.0 - kappa) * u + daily_vol * e_u[t]
    # the level's step is what the total shock leaves once the deviation's step is taken
    return _bars(drift, np.full(n_bars, total), shocks, rng, start)


def weekday_effect(
    n_bars: int = N_BARS,
    *,
    weekday_means: dict[int, float] | None = None,
    daily_vol: float = 0.012,
    seed: int = 0,
    start: str = START,
) -> pd.DataFrame:
    """Random walk whose mean log return depends on the weekday (0 = Monday .. 4 = Friday).

    ``weekday_means`` defaults to ``{0: +0.0025, 4: -0.0025}``: Mondays rise, Fridays fall, the
    other days have zero mean, so buy-and-hold has no drift. Truth: edge (long from Monday's
    open to its close, short on Fridays: Sharpe about 2 before costs, but four fills a week) —
    for a strategy that looks at the calendar, which none of the library strategies does.
    """
    means = {0: 0.0025, 4: -0.0025} if weekday_means is None else weekday_means
    rng = np.random.default_rng(seed)
    shocks = rng.standard_normal(n_bars)
    days = pd.bdate_range(start, periods=n_bars).day_of_week.to_numpy()
    drift = np.array([means.get(int(d), 0.0) for d in days])
    return _bars(drift, np.full(n_bars, daily_vol), shocks, rng, start)


def write_csv(bars: pd.DataFrame, path: str | Path) -> Path:
    """Write ``date, open, high, low, close, volume`` (full precision) for ``--data``.

    The file's name without ``.csv`` is the ticker (``RW003.csv`` -> ``RW003``). The truth
    columns are left out; the parent folder is created. Returns the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = bars[["open", "high", "low", "close", "volume"]]
    out.to_csv(path, index_label="date", date_format="%Y-%m-%d")
    return path
