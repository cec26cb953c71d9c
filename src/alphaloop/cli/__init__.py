"""The ``alphaloop`` command. Thin: it parses arguments, calls the library and prints.

Bad input (any :class:`alphaloop.errors.AlphaloopError`) is printed as one line on stderr and
the process exits with code 2, never with a traceback.
"""

from __future__ import annotations

import logging
import os
import sys

import typer
from rich.console import Console
from rich.logging import RichHandler

from alphaloop.errors import AlphaloopError

app = typer.Typer(
    name="alphaloop",
    help="Search for trading strategies the way a careful quant team would.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


err_console = Console(stderr=True)
"""Standard error: errors, the live display and log lines share it so they do not collide."""


def _configure_logging() -> None:
    """Warnings (a task that gave up, a queue without WAL) by default; more with
    ``ALPHALOOP_LOG_LEVEL=INFO`` (e.g. when the pool holds back for CPU or memory)."""
    level = os.environ.get("ALPHALOOP_LOG_LEVEL", "WARNING").upper()
    handler = RichHandler(console=err_console, show_time=False, show_path=False)
    logging.basicConfig(level=getattr(logging, level, logging.WARNING), format="%(message)s",
                        handlers=[handler])


def _register() -> None:
    # Each command group lives in its own module; importing it registers its commands.
    from alphaloop.cli import _backtest, _data, _strategies, _workflow  # noqa: F401


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    _register()
    _configure_logging()
    try:
        app(args=argv, standalone_mode=True)
    except AlphaloopError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
