"""Bar timeframes: naming, detecting a dataset's native timeframe, resampling, annualisation.

Resampling convention (no look-ahead): a coarse bar aggregates the native bars of one period
(open of the first, highest high, lowest low, close of the last, summed volume) and is labelled
with the timestamp of the *last* native bar it contains, so a decision taken "at the close" of a
resampled bar uses nothing that was not known at that timestamp. Periods are: clock hours,
4-hour blocks from midnight (00-04, 04-08, ...), calendar days, ISO weeks (Monday..Sunday, so
for stocks a week ends on its last trading day, usually Friday) and calendar months. Periods
without any bar (weekends, holidays, gaps) produce no bar; nothing is filled in.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from alphaloop.errors import DataError

TIMEFRAMES: tuple[str, ...] = ("1h", "4h", "1d", "1w", "1mo")
"""The timeframes :func:`alphaloop.data.load` can produce, finest first."""

INTRADAY_BARS_PER_YEAR: dict[str, float] = {"1h": 252 * 6.5, "4h": 252 * 2.0}
"""Defaults for intraday timeframes when no index is given: a US equity session
(252 trading days of 6.5 hours: 1638 hourly bars, 504 four-hour bars)."""

_FIXED_BARS_PER_YEAR: dict[str, float] = {"1d": 252.0, "1w": 52.0, "1mo": 12.0}

_NAMES = {
    "1h": "hourly",
    "2h": "2-hourly",
    "4h": "4-hourly",
    "1d": "daily",
    "1w": "weekly",
    "1mo": "monthly",
}

# Native timeframe bands on the median spacing between bars: (upper bound, label, rank).
# Rank orders labels by coarseness; TIMEFRAMES[i] has rank i.
_HOUR = pd.Timedelta(hours=1)
_DAY = pd.Timedelta(days=1)
_BANDS: tuple[tuple[pd.Timedelta, str, float], ...] = (
    (pd.Timedelta(minutes=50), "", -1.0),  # finer than hourly; labelled e.g. "15min"
    (1.5 * _HOUR, "1h", 0.0),
    (3 * _HOUR, "2h", 0.5),
    (16 * _HOUR, "4h", 1.0),
    (3 * _DAY, "1d", 2.0),
    (20 * _DAY, "1w", 3.0),
    (100 * _DAY, "1mo", 4.0),
)
_NS_PER_HOUR = 3_600_000_000_000
_NS_PER_DAY = 24 * _NS_PER_HOUR


def check_timeframe(timeframe: str) -> str:
    """Return ``timeframe`` normalised (stripped, lower case) or raise ``DataError``."""
    tf = str(timeframe).strip().lower()
    if tf not in TIMEFRAMES:
        raise DataError(f"unknown timeframe {timeframe!r}; use one of {', '.join(TIMEFRAMES)}")
    return tf


def describe(label: str) -> str:
    """Human name of a native timeframe label, e.g. ``"daily (1d)"``."""
    minute = f"{label.removesuffix('min')}-minute" if label.endswith("min") else label
    name = _NAMES.get(label, minute)
    return f"{name} ({label})"


def detect_timeframe(index: pd.DatetimeIndex) -> str:
    """Native timeframe of sorted bars, from the median spacing between consecutive bars.

    Returns a member of :data:`TIMEFRAMES`, ``"2h"``, or ``"<n>min"`` for data finer than an
    hour. Raises ``DataError`` for fewer than two bars or bars more than ~3 months apart.
    """
    return _classify(index)[0]


def _classify(index: pd.DatetimeIndex) -> tuple[str, float]:
    if len(index) < 2:
        raise DataError("cannot tell the timeframe of fewer than 2 bars; supply more data")
    median = pd.Timedelta(int(np.median(np.diff(index.as_unit("ns").asi8))))
    for upper, label, rank in _BANDS:
        if median < upper:
            if not label:
                minutes = max(1, round(median / pd.Timedelta(minutes=1)))
                label = f"{minutes}min"
            return label, rank
    raise DataError(
        f"bars are {median.days} days apart (median); alphaloop handles at most monthly bars"
    )


def _period_keys(index: pd.DatetimeIndex, timeframe: str) -> np.ndarray:
    ns = index.as_unit("ns").asi8
    if timeframe == "1h":
        return ns // _NS_PER_HOUR
    if timeframe == "4h":
        return ns // (4 * _NS_PER_HOUR)
    days = ns // _NS_PER_DAY
    if timeframe == "1d":
        return days
    if timeframe == "1w":
        return (days + 3) // 7  # 1970-01-01 was a Thursday; weeks start on Monday
    return np.asarray(index.year, dtype=np.int64) * 12 + np.asarray(index.month) - 1


def resample(df: pd.DataFrame, timeframe: str, name: str = "the") -> pd.DataFrame:
    """Bars of ``df`` (validated, native timeframe) at ``timeframe`` (see module docstring).

    Returns ``df`` itself when ``timeframe`` is its native one. ``name`` (a ticker) is used in
    the error raised when ``timeframe`` is finer than the data.
    """
    tf = check_timeframe(timeframe)
    native, rank = _classify(df.index)
    wanted = float(TIMEFRAMES.index(tf))
    if wanted == rank:
        return df
    if wanted < rank:
        raise DataError(
            f"{name} data is {describe(native)}; cannot produce {tf} bars; "
            f"use --timeframe {TIMEFRAMES[math.ceil(rank)]} or coarser"
        )
    keys = _period_keys(df.index, tf)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:] - 1, len(keys) - 1]
    out = pd.DataFrame(
        {
            "open": df["open"].to_numpy()[starts],
            "high": np.maximum.reduceat(df["high"].to_numpy(), starts),
            "low": np.minimum.reduceat(df["low"].to_numpy(), starts),
            "close": df["close"].to_numpy()[ends],
            "volume": np.add.reduceat(df["volume"].to_numpy(), starts),
        },
        index=df.index[ends],
    )
    out.index.name = "date"
    return out


def bars_per_year(timeframe: str, index: pd.DatetimeIndex | None = None) -> float:
    """Bars in a year, to annualise returns and volatility.

    252 for ``1d``, 52 for ``1w``, 12 for ``1mo``. For ``1h``/``4h`` it is estimated from
    ``index`` as bars per calendar year spanned (``len(index) / ((last - first) / 365.25
    days)``), so a 24/7 market and a stock exchange each get their own rate; without an index
    (or with fewer than two bars) the US equity session defaults of
    :data:`INTRADAY_BARS_PER_YEAR` are used.
    """
    tf = check_timeframe(timeframe)
    if tf in _FIXED_BARS_PER_YEAR:
        return _FIXED_BARS_PER_YEAR[tf]
    if index is not None and len(index) >= 2:
        span = (index[-1] - index[0]) / pd.Timedelta(days=365.25)
        if span > 0:
            return float(len(index) / span)
    return INTRADAY_BARS_PER_YEAR[tf]
