"""Operations on loaded bars: date slicing and a stable fingerprint."""

from __future__ import annotations

import hashlib
from datetime import date

import numpy as np
import pandas as pd

from alphaloop.data._read import COLUMNS, format_timestamp
from alphaloop.errors import DataError

DateLike = str | date | pd.Timestamp | None


def _span(df: pd.DataFrame) -> str:
    if df.empty:
        return "no bars at all"
    return f"data covers {format_timestamp(df.index[0])} .. {format_timestamp(df.index[-1])}"


def _as_timestamp(value: DateLike, which: str, df: pd.DataFrame) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        stamp = pd.NaT
    if pd.isna(stamp):
        raise DataError(f"bad {which} date {value!r}; use YYYY-MM-DD; {_span(df)}")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp


def slice_dates(df: pd.DataFrame, start: DateLike = None, end: DateLike = None) -> pd.DataFrame:
    """Bars with ``start <= date <= end`` (both optional, inclusive).

    Dates are strings (``"2010-01-31"``, ``"2010-01-31 14:00"``), ``date``/``datetime`` or
    ``Timestamp``; timezone-aware ones are converted to UTC, like the data. An ``end`` at
    midnight (a plain date) includes that whole day, so intraday bars of the end day are kept.
    Raises ``DataError`` for an unparseable date, ``start`` after ``end`` or an empty result,
    naming the range the data covers.
    """
    lo = _as_timestamp(start, "start", df)
    hi = _as_timestamp(end, "end", df)
    if lo is not None and hi is not None and lo > hi:
        raise DataError(f"start {start} is after end {end}; swap them; {_span(df)}")
    index = df.index
    left = 0 if lo is None else int(index.searchsorted(lo, side="left"))
    if hi is None:
        right = len(index)
    elif hi == hi.normalize():  # a whole day: everything before the next midnight
        right = int(index.searchsorted(hi + pd.Timedelta(days=1), side="left"))
    else:
        right = int(index.searchsorted(hi, side="right"))
    if left >= right:
        raise DataError(
            f"no bars between {start or 'the start'} and {end or 'the end'}; {_span(df)}"
        )
    return df.iloc[left:right]


def fingerprint(df: pd.DataFrame) -> str:
    """First 16 hex digits of a SHA-256 over the timestamps (int64 ns) and OHLCV values.

    Equal bars give equal fingerprints across processes, machines and file formats, so a
    record can name exactly the data it was computed on.
    """
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(df.index.as_unit("ns").asi8, dtype="<i8").tobytes())
    for column in COLUMNS:
        digest.update(column.encode())
        digest.update(np.ascontiguousarray(df[column].to_numpy(), dtype="<f8").tobytes())
    return digest.hexdigest()[:16]
