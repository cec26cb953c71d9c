"""``load`` and ``list_datasets``: validated bars by ticker, cached per process."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import pandas as pd

from alphaloop.data._adjust import adjusted_raw, warn_unadjusted
from alphaloop.data._read import read_file
from alphaloop.data._sample import sample_frames
from alphaloop.data._sources import Source, resolve
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


@dataclass(frozen=True)
class DatasetProblem:
    """A data file :func:`scan_datasets` could not use, and why (a one-line message)."""

    ticker: str
    file: str
    message: str


@dataclass(frozen=True)
class Scan:
    """What :func:`scan_datasets` found: the usable datasets and the files it could not use."""

    datasets: list[DatasetInfo]
    problems: list[DatasetProblem]


def load(
    ticker: str,
    timeframe: str = "1d",
    data_path: str | Path | None = None,
    *,
    adjust: bool = True,
) -> pd.DataFrame:
    """Validated OHLCV bars of ``ticker`` at ``timeframe``.

    Args:
        ticker: case-insensitive; for user data, the file name without its suffix.
        timeframe: one of ``TIMEFRAMES``; coarser than the data's own bars means resampling,
            finer raises ``DataError``.
        data_path: a CSV/Parquet file, a folder of ``<TICKER>.csv|.csv.gz|.parquet`` files, or
            None for the embedded (split/dividend adjusted) sample.
        adjust: scale each bar by ``Adj Close / Close`` when the data has an adjusted close
            (the embedded sample does; see ``_adjust``). False uses the prices as given and
            logs a warning that ``Adj Close`` is ignored (the CLI's ``--no-adjust``).

    Returns a DataFrame indexed by a tz-naive, strictly increasing ``DatetimeIndex`` named
    ``date`` with float64 columns ``open, high, low, close, volume``. Results are cached per
    process, keyed by ticker, timeframe, resolved file and its modification time; the frame
    returned is a cheap copy-on-write view of the cached one, but do not mutate it in place.
    """
    tf = check_timeframe(timeframe)
    source = resolve(data_path)
    key, path = source.find(ticker)
    frame = _bars(key, tf, str(path), _mtime(path), source.sample, bool(adjust))
    return frame.copy(deep=False)


def list_datasets(data_path: str | Path | None = None, *, adjust: bool = True) -> list[DatasetInfo]:
    """Every ticker available from ``data_path`` (None: the embedded sample), sorted by ticker.

    Each file is read and validated, so a bad file raises its ``DataError`` here too (see
    :func:`scan_datasets` to list the good files and collect the bad ones).
    """
    source = resolve(data_path)
    return [_info(source, ticker, adjust) for ticker in sorted(source.files)]


def scan_datasets(data_path: str | Path | None = None, *, adjust: bool = True) -> Scan:
    """Like :func:`list_datasets`, but a file that cannot be used is reported in
    ``Scan.problems`` (with its one-line message, which names the file) instead of raised.
    A ``data_path`` that is missing or holds no data file still raises ``DataError``."""
    source = resolve(data_path)
    datasets, problems = [], []
    for ticker in sorted(source.files):
        try:
            datasets.append(_info(source, ticker, adjust))
        except DataError as exc:
            file = str(source.files[ticker])
            message = exc.args[0] if exc.args else str(exc)
            if file not in message:
                message = f"{file}: {message}"
            problems.append(DatasetProblem(ticker, file, message))
    return Scan(datasets, problems)


def _info(source: Source, ticker: str, adjust: bool) -> DatasetInfo:
    path = source.files[ticker]
    bars = _native(ticker, str(path), _mtime(path), source.sample, bool(adjust))
    return DatasetInfo(
        ticker=ticker,
        first=bars.index[0].to_pydatetime(),
        last=bars.index[-1].to_pydatetime(),
        bars=len(bars),
        timeframe=detect_timeframe(bars.index),
        source=source.describe(ticker),
    )


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
def _native(ticker: str, file: str, mtime_ns: int, sample: bool, adjust: bool) -> pd.DataFrame:
    """Validated bars of one ticker at the data's own timeframe, adjusted if asked and possible.

    Prices are validated as the file gives them (so messages quote the file's numbers), then
    adjusted, then validated again (an adjustment may not push a price out of range)."""
    if sample:
        if not adjust:
            warn_unadjusted(f"{file} ({ticker})")
        return sample_frames(file, mtime_ns, adjust)[ticker]
    raw = read_file(Path(file))
    frame = validate(raw)
    if raw.adj_close is None:
        return frame
    if not adjust:
        warn_unadjusted(file)
        return frame
    return validate(adjusted_raw(raw))


@lru_cache(maxsize=64)
def _bars(
    ticker: str, timeframe: str, file: str, mtime_ns: int, sample: bool, adjust: bool
) -> pd.DataFrame:
    native = _native(ticker, file, mtime_ns, sample, adjust)
    bars = resample(native, timeframe, ticker)
    if len(bars) < MIN_BARS:
        raise DataError(
            f"{ticker} gives only {len(bars)} {describe(timeframe)} bars; at least {MIN_BARS} "
            f"are needed; use a finer timeframe than {timeframe} or a longer history"
        )
    return bars
