"""``alphaloop data``: list the available datasets and export bars as CSV."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from alphaloop import data
from alphaloop.cli import app

data_app = typer.Typer(name="data", help="Inspect and export market data.", no_args_is_help=True)
app.add_typer(data_app, name="data")

_TIMEFRAME_HELP = f"Bar size, one of {', '.join(data.TIMEFRAMES)}; coarser than the data resamples."
_DATA_HELP = "CSV/Parquet file or folder of <TICKER>.csv|.parquet files (default: embedded sample)."


@data_app.command("list")
def list_command(
    data_path: Path | None = typer.Option(None, "--data", help=_DATA_HELP),
) -> None:
    """Show every ticker available, with its span, bar count, native timeframe and source."""
    table = Table(title="datasets")
    for column in ("ticker", "first", "last", "bars", "timeframe", "source"):
        table.add_column(column, justify="right" if column == "bars" else "left")
    for info in data.list_datasets(data_path):
        table.add_row(
            info.ticker,
            _when(info.first),
            _when(info.last),
            f"{info.bars:,}",
            info.timeframe,
            info.source,
        )
    Console().print(table)


@data_app.command("export")
def export_command(
    ticker: str = typer.Argument(..., help="Ticker (case-insensitive)."),
    timeframe: str = typer.Option("1d", "--timeframe", help=_TIMEFRAME_HELP),
    data_path: Path | None = typer.Option(None, "--data", help=_DATA_HELP),
) -> None:
    """Write the validated (and resampled) bars to stdout as CSV: date,open,high,low,close,volume.

    Dates are ISO (YYYY-MM-DD, with THH:MM:SS when any bar has a time of day); numbers keep
    full precision, so the file loads back to identical bars.
    """
    bars = data.load(ticker, timeframe, data_path)
    intraday = bool((bars.index != bars.index.normalize()).any())
    bars.to_csv(
        sys.stdout,
        index_label="date",
        date_format="%Y-%m-%dT%H:%M:%S" if intraday else "%Y-%m-%d",
        lineterminator="\n",
    )


def _when(moment: object) -> str:
    text = str(moment)
    return text.removesuffix(" 00:00:00")
