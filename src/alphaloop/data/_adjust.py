"""Split and dividend adjustment by an adjusted close, the same rule for the sample and user files.

Each bar is scaled by ``factor = adj_close / close``: ``open``, ``high``, ``low`` and ``close``
are multiplied by it (so the adjusted close is the file's ``Adj Close`` and the bar keeps its
shape: low <= open, close <= high), and ``volume`` is divided by it, so the traded notional
``close * volume`` of every bar is unchanged. A file whose prices are already adjusted (``Adj
Close`` equal to ``Close``) is left as it is.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from alphaloop.data._read import RawBars
from alphaloop.data._validate import _fail
from alphaloop.errors import DataError

logger = logging.getLogger("alphaloop.data")

_SKIP = "or pass --no-adjust to use the prices as they are"


def adjust_by(frame: pd.DataFrame, adj_close: np.ndarray) -> pd.DataFrame:
    """``frame`` (columns ``open, high, low, close, volume``) scaled by ``adj_close / close``."""
    factor = adj_close / frame["close"].to_numpy()
    out = pd.DataFrame(
        {
            "open": frame["open"].to_numpy() * factor,
            "high": frame["high"].to_numpy() * factor,
            "low": frame["low"].to_numpy() * factor,
            "close": frame["close"].to_numpy() * factor,
            "volume": frame["volume"].to_numpy(dtype="float64") / factor,
        },
        index=frame.index,
    )
    return out


def adjusted_raw(raw: RawBars) -> RawBars:
    """``raw`` with its bars adjusted by its ``Adj Close`` column (checked row by row).

    Call it on bars that passed validation; validate the result again (the range of prices).
    """
    assert raw.adj_close is not None
    values = raw.adj_close
    if pd.api.types.is_bool_dtype(values.dtype):
        raise DataError(f"{raw.file}: column Adj Close holds true/false values; it needs numbers")
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
    _fail(
        raw,
        np.isnan(numbers) & values.notna().to_numpy(),
        lambda i: f"Adj Close {values.iloc[i]!r} is not a number",
        f"write plain numbers like 123.45, {_SKIP}",
    )
    _fail(raw, np.isnan(numbers), "Adj Close is empty", f"fill it in, remove the row, {_SKIP}")
    _fail(
        raw,
        ~np.isfinite(numbers) | (numbers <= 0),
        lambda i: f"Adj Close is {numbers[i]:.10g}, not a positive number",
        f"fix the row, {_SKIP}",
    )
    frame = adjust_by(raw.frame, numbers)
    return RawBars(frame, raw.rows, raw.file, raw.is_csv, raw.has_volume)


def warn_unadjusted(file: str) -> None:
    """Log that a file's ``Adj Close`` column is ignored (``adjust=False``)."""
    logger.warning(
        "%s: Adj Close ignored (--no-adjust): prices are used as given, not adjusted for "
        "splits and dividends",
        file,
    )
