"""Market data: validated OHLCV bars by ticker, from the embedded sample or the user's files.

>>> from alphaloop import data
>>> bars = data.load("aapl", timeframe="1w")          # embedded, split/dividend adjusted
>>> raw = data.load("aapl", adjust=False)             # as printed at the time (warns)
>>> bars = data.slice_dates(bars, "2005-01-01", "2009-12-31")
>>> data.bars_per_year("1w"), data.fingerprint(bars)

User data (``data_path``) is a CSV/Parquet file named after its ticker or a folder of them;
see ``docs/data.md``, ``alphaloop.data._read`` for the accepted layouts, ``_validate`` for the
checks and ``_adjust`` for the ``Adj Close`` adjustment.
"""

from alphaloop.data._frames import fingerprint, slice_dates
from alphaloop.data._load import (
    DatasetInfo,
    DatasetProblem,
    Scan,
    clear_cache,
    list_datasets,
    load,
    scan_datasets,
)
from alphaloop.data._sample import SAMPLE_SOURCE, SAMPLE_TICKERS
from alphaloop.data._timeframes import (
    INTRADAY_BARS_PER_YEAR,
    TIMEFRAMES,
    bars_per_year,
    detect_timeframe,
    resample,
)
from alphaloop.data._validate import MIN_BARS

__all__ = [
    "INTRADAY_BARS_PER_YEAR",
    "MIN_BARS",
    "SAMPLE_SOURCE",
    "SAMPLE_TICKERS",
    "TIMEFRAMES",
    "DatasetInfo",
    "DatasetProblem",
    "Scan",
    "bars_per_year",
    "clear_cache",
    "detect_timeframe",
    "fingerprint",
    "list_datasets",
    "load",
    "resample",
    "scan_datasets",
    "slice_dates",
]
