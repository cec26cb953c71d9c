"""Extract the embedded market-data sample from the ``bokeh-sampledata`` package, once.

Usage (from the repository root, with ``bokeh-sampledata`` installed in the dev environment)::

    python scripts/extract_sample.py

It reads ``bokeh_sampledata/_data/stocks.csv.gz`` (Quandl WIKI daily prices of AAPL, FB, GOOG,
IBM and MSFT, 2000-03-01 .. 2013-03-01, public domain) and writes
``src/alphaloop/data/sample/stocks.parquet``. Values are copied exactly as supplied: unadjusted
open/high/low/close/volume plus the source's ``adj_close``. ``alphaloop.data`` applies the
split/dividend adjustment when it loads the file (see ``sample/README.md``).
``bokeh-sampledata`` is needed only here, never at run time.
"""

from __future__ import annotations

import hashlib
from importlib.resources import files
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "alphaloop" / "data" / "sample" / "stocks.parquet"
COLUMNS = ["ticker", "date", "open", "high", "low", "close", "volume", "adj_close"]


def main() -> None:
    """Read the raw CSV, check it is what we expect, and write the compressed Parquet file."""
    raw_path = files("bokeh_sampledata") / "_data" / "stocks.csv.gz"
    raw = pd.read_csv(str(raw_path))
    raw.columns = [c.strip().lower().replace(" ", "_") for c in raw.columns]
    if list(raw.columns) != COLUMNS:
        raise SystemExit(f"unexpected columns in {raw_path}: {list(raw.columns)}")
    raw["date"] = pd.to_datetime(raw["date"], format="%Y-%m-%d").astype("datetime64[s]")
    table = pa.Table.from_pandas(raw, preserve_index=False)
    table = table.set_column(0, "ticker", table["ticker"].dictionary_encode())
    pq.write_table(
        table,
        OUT,
        compression="zstd",
        compression_level=19,
        use_dictionary=["ticker"],
        use_byte_stream_split=["adj_close"],
    )
    digest = hashlib.sha256(OUT.read_bytes()).hexdigest()[:16]
    counts = raw.groupby("ticker")["date"].agg(["min", "max", "count"])
    print(counts.to_string())
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes, sha256 {digest}...)")


if __name__ == "__main__":
    main()
