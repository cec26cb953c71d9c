"""``alphaloop data``: list the available datasets and export bars as CSV."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from alphaloop import data
from alphaloop.cli import app
from alphaloop.errors import clean_message

data_app = typer.Typer(name="data", help="Inspect and export market data.", no_args_is_help=True)
app.add_typer(data_app, name="data")

_TIMEFRAME_HELP = f"Bar size, one of {', '.join(data.TIMEFRAMES)}; coarser than the data resamples."
_DATA_HELP = "CSV/Parquet file or folder of <TICKER>.csv|.parquet files (default: embedded sample)."
_NO_ADJUST_HELP = (
    "Use prices as given: ignore an Adj Close column (with a warning) instead of adjusting "
    "open/high/low/close by Adj Close / Close."
)


@data_app.command("list")
def list_command(
    data_path: Path | None = typer.Option(None, "--data", help=_DATA_HELP),
    no_adjust: bool = typer.Option(False, "--no-adjust", help=_NO_ADJUST_HELP),
) -> None:
    """Show every ticker available, with its span, bar count, native timeframe and source.

    A file that cannot be used is reported on stderr, one line each (``error: <file>: <what is
    wrong>; <fix>``), after the table of the good ones; the exit code is then 2.
    """
    scan = data.scan_datasets(data_path, adjust=not no_adjust)
    table = Table(title="datasets")
    for column in ("ticker", "first", "last", "bars", "timeframe", "source"):
        table.add_column(column, justify="right" if column == "bars" else "left")
    for info in scan.datasets:
        table.add_row(
            info.ticker,
            _when(info.first),
            _when(info.last),
            f"{info.bars:,}",
            info.timeframe,
            info.source,
        )
    Console().print(table)
    for problem in scan.problems:
        typer.echo(clean_message(f"error: {problem.message}"), err=True)
    if scan.problems:
        raise typer.Exit(code=2)


@data_app.command("export")
def export_command(
    ticker: str = typer.Argument(..., help="Ticker (case-insensitive)."),
    timeframe: str = typer.Option("1d", "--timeframe", help=_TIMEFRAME_HELP),
    data_path: Path | None = typer.Option(None, "--data", help=_DATA_HELP),
    no_adjust: bool = typer.Option(False, "--no-adjust", help=_NO_ADJUST_HELP),
) -> None:
    """Write the validated (and resampled) bars to stdout as CSV: date,open,high,low,close,volume.

    Dates are ISO (YYYY-MM-DD, with THH:MM:SS when any bar has a time of day); numbers keep
    full precision, so the file loads back to identical bars.
    """
    bars = data.load(ticker, timeframe, data_path, adjust=not no_adjust)
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
