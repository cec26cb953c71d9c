"""The ``alphaloop`` command. Thin: it parses arguments, calls the library and prints.

Bad input (any :class:`alphaloop.errors.AlphaloopError`) is printed as one line on stderr and
the process exits with code 2, never with a traceback.
"""

from __future__ import annotations

import sys

import typer

from alphaloop.errors import AlphaloopError

app = typer.Typer(
    name="alphaloop",
    help="Search for trading strategies the way a careful quant team would.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Each command group lives in its own module; importing it registers its commands.
    from alphaloop.cli import _backtest, _data, _strategies, _workflow  # noqa: F401


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    _register()
    try:
        app(args=argv, standalone_mode=True)
    except AlphaloopError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
