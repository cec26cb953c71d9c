"""``load`` and ``list_datasets``: validated bars by ticker, cached per process."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import pandas as pd

from alphaloop.data._read import read_file
from alphaloop.data._sample import sample_frames
from alphaloop.data._sources import resolve
from alphaloop.data._timeframes import check_timeframe, describe, detect_timeframe, resample
from alphaloop.data._validate import MIN_BARS, validate
from alphaloop.errors import DataError


@dataclass(frozen=True)
class DatasetInfo:
    """One ticker available to :func:`load`: its span, bar count and native timeframe."""

    ticker: str
    first: datetime
    last: datetime
    bars: int
    timeframe: str
    source: str


def load(ticker: str, timeframe: str = "1d", data_path: str | Path | None = None) -> pd.DataFrame:
    """Validated OHLCV bars of ``ticker`` at ``timeframe``.

    Args:
        ticker: case-insensitive; for user data, the file name without its suffix.
        timeframe: one of ``TIMEFRAMES``; coarser than the data's own bars means resampling,
            finer raises ``DataError``.
        data_path: a CSV/Parquet file, a folder of ``<TICKER>.csv|.csv.gz|.parquet`` files, or
            None for the embedded (split/dividend adjusted) sample.

    Returns a DataFrame indexed by a tz-naive, strictly increasing ``DatetimeIndex`` named
    ``date`` with float64 columns ``open, high, low, close, volume``. Results are cached per
    process, keyed by ticker, timeframe, resolved file and its modification time; the frame
    returned is a cheap copy-on-write view of the cached one, but do not mutate it in place.
    """
    tf = check_timeframe(timeframe)
    source = resolve(data_path)
    key, path = source.find(ticker)
    frame = _bars(key, tf, str(path), _mtime(path), source.sample)
    return frame.copy(deep=False)


def list_datasets(data_path: str | Path | None = None) -> list[DatasetInfo]:
    """Every ticker available from ``data_path`` (None: the embedded sample), sorted by ticker.

    Each file is read and validated, so a bad file raises its ``DataError`` here too.
    """
    source = resolve(data_path)
    infos = []
    for ticker in sorted(source.files):
        path = source.files[ticker]
        bars = _native(ticker, str(path), _mtime(path), source.sample)
        infos.append(
            DatasetInfo(
                ticker=ticker,
                first=bars.index[0].to_pydatetime(),
                last=bars.index[-1].to_pydatetime(),
                bars=len(bars),
                timeframe=detect_timeframe(bars.index),
                source=source.describe(ticker),
            )
        )
    return infos


def clear_cache() -> None:
    """Forget every cached dataset (tests; a long-lived process after files changed in place)."""
    _bars.cache_clear()
    _native.cache_clear()
    sample_frames.cache_clear()


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}; check the path") from None


@lru_cache(maxsize=32)
def _native(ticker: str, file: str, mtime_ns: int, sample: bool) -> pd.DataFrame:
    """Validated bars of one ticker at the data's own timeframe."""
    if sample:
        return sample_frames(file, mtime_ns)[ticker]
    return validate(read_file(Path(file)))


@lru_cache(maxsize=64)
def _bars(ticker: str, timeframe: str, file: str, mtime_ns: int, sample: bool) -> pd.DataFrame:
    native = _native(ticker, file, mtime_ns, sample)
    bars = resample(native, timeframe, ticker)
    if len(bars) < MIN_BARS:
        raise DataError(
            f"{ticker} gives only {len(bars)} {describe(timeframe)} bars; at least {MIN_BARS} "
            f"are needed; use a finer timeframe than {timeframe} or a longer history"
        )
    return bars
