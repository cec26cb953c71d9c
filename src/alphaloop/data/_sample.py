"""The embedded sample: adjusted daily bars of AAPL, FB, GOOG, IBM and MSFT, 2000-03-01..2013-03-01.

The file ``sample/stocks.parquet`` holds the Quandl WIKI prices exactly as supplied (unadjusted
open/high/low/close/volume and the source's ``adj_close``); see ``sample/README.md``. On load,
each row is adjusted for splits and dividends with ``factor = adj_close / close``: open, high,
low and close are multiplied by ``factor`` and volume is divided by it, so the traded notional
(price x volume) of every bar is unchanged.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from alphaloop.data._read import RawBars
from alphaloop.data._validate import validate

SAMPLE_PATH = Path(__file__).resolve().parent / "sample" / "stocks.parquet"
SAMPLE_SOURCE = "embedded sample (Quandl WIKI, public domain)"
SAMPLE_TICKERS: tuple[str, ...] = ("AAPL", "FB", "GOOG", "IBM", "MSFT")


@lru_cache(maxsize=2)
def sample_frames(file: str, mtime_ns: int) -> dict[str, pd.DataFrame]:
    """Adjusted, validated bars per ticker; ``mtime_ns`` is only part of the cache key."""
    table = pd.read_parquet(file)
    tickers = table["ticker"].astype(str).to_numpy()
    factor = (table["adj_close"] / table["close"]).to_numpy()
    adjusted = pd.DataFrame(
        {
            "open": table["open"].to_numpy() * factor,
            "high": table["high"].to_numpy() * factor,
            "low": table["low"].to_numpy() * factor,
            "close": table["close"].to_numpy() * factor,
            "volume": table["volume"].to_numpy(dtype="float64") / factor,
        },
        index=pd.DatetimeIndex(table["date"], name="date").as_unit("ns"),
    )
    rows = np.arange(1, len(table) + 1)
    frames = {}
    for ticker in SAMPLE_TICKERS:
        mask = tickers == ticker
        raw = RawBars(adjusted.loc[mask], rows[mask], f"{file} ({ticker})", False, True)
        frames[ticker] = validate(raw)
    return frames
