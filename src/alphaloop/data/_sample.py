"""The embedded sample: adjusted daily bars of AAPL, FB, GOOG, IBM and MSFT, 2000-03-01..2013-03-01.

The file ``sample/stocks.parquet`` holds the Quandl WIKI prices exactly as supplied (unadjusted
open/high/low/close/volume and the source's ``adj_close``); see ``sample/README.md``. On load,
each row is adjusted for splits and dividends with ``factor = adj_close / close``: open, high,
low and close are multiplied by ``factor`` and volume is divided by it, so the traded notional
(price x volume) of every bar is unchanged (``_adjust``, the same rule as for user files).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from alphaloop.data._adjust import adjust_by
from alphaloop.data._read import RawBars
from alphaloop.data._validate import validate

SAMPLE_PATH = Path(__file__).resolve().parent / "sample" / "stocks.parquet"
SAMPLE_SOURCE = "embedded sample (Quandl WIKI, public domain)"
SAMPLE_TICKERS: tuple[str, ...] = ("AAPL", "FB", "GOOG", "IBM", "MSFT")


@lru_cache(maxsize=4)
def sample_frames(file: str, mtime_ns: int, adjust: bool = True) -> dict[str, pd.DataFrame]:
    """Validated bars per ticker, adjusted unless ``adjust`` is False (then the raw prices, as
    printed at the time); ``mtime_ns`` is only part of the cache key."""
    table = pd.read_parquet(file)
    tickers = table["ticker"].astype(str).to_numpy()
    raw = pd.DataFrame(
        {c: table[c].to_numpy(dtype="float64") for c in ("open", "high", "low", "close", "volume")},
        index=pd.DatetimeIndex(table["date"], name="date").as_unit("ns"),
    )
    bars = adjust_by(raw, table["adj_close"].to_numpy()) if adjust else raw
    rows = np.arange(1, len(table) + 1)
    frames = {}
    for ticker in SAMPLE_TICKERS:
        mask = tickers == ticker
        frames[ticker] = validate(
            RawBars(bars.loc[mask], rows[mask], f"{file} ({ticker})", False, True)
        )
    return frames
