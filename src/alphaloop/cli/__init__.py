"""The ``alphaloop`` command. Thin: it parses arguments, calls the library and prints.

Bad input (any :class:`alphaloop.errors.AlphaloopError`), and a write the file system refuses
(a full disk, a read-only folder), is printed as ONE line on stderr — ``error: <message>``,
terminal control characters escaped, at most 300 characters (:func:`fail`) — and the process
exits with code 2, never with a traceback.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
from typing import NoReturn

import typer
from rich.console import Console
from rich.logging import RichHandler

from alphaloop._entry import start_template
from alphaloop.errors import AlphaloopError, clean_message, storage_problem

app = typer.Typer(
    name="alphaloop",
    help="Search for trading strategies the way a careful quant team would.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


err_console = Console(stderr=True)
"""Standard error: errors, the live display and log lines share it so they do not collide."""


class _SafeFormatter(logging.Formatter):
    """Log lines with terminal control characters escaped (they may quote a file)."""

    def format(self, record: logging.LogRecord) -> str:
        return clean_message(super().format(record), limit=None)


def _configure_logging() -> None:
    """Warnings (a task that gave up, a queue without WAL) by default; more with
    ``ALPHALOOP_LOG_LEVEL=INFO`` (e.g. when the pool holds back for CPU or memory). On a
    terminal they are rendered by rich; in a pipe or a file each is one plain line
    (``WARNING <message>``), never wrapped."""
    level = os.environ.get("ALPHALOOP_LOG_LEVEL", "WARNING").upper()
    handler: logging.Handler
    if err_console.is_terminal:
        handler = RichHandler(console=err_console, show_time=False, show_path=False)
        handler.setFormatter(_SafeFormatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_SafeFormatter("%(levelname)s %(message)s"))
    logging.basicConfig(level=getattr(logging, level, logging.WARNING), handlers=[handler])


# the module that registers each command: one command's run imports only its own
_COMMAND_MODULES = {
    "run": "_workflow", "resume": "_workflow", "status": "_workflow", "show": "_workflow",
    "backtest": "_backtest", "grid": "_grid", "data": "_data", "strategies": "_strategies",
    "report": "_report", "export": "_export", "dashboard": "_dashboard", "llm": "_llm",
}


def _register(args: list[str] | None = None) -> None:
    """Import the command groups; importing one registers its commands. For a known command
    (``args[0]``), only its module and `_workflow` (typer runs an app's lone command without
    its name, so the app always holds several): ``alphaloop status`` then never imports
    pandas for ``data``'s sake (~0.5 s). Otherwise (help, a typo: typer lists or suggests the
    commands) all of them, in the order help shows them."""
    import importlib

    name = _COMMAND_MODULES.get(args[0]) if args else None
    if name is not None:
        importlib.import_module("alphaloop.cli._workflow")
        importlib.import_module(f"alphaloop.cli.{name}")
        return
    import alphaloop.cli._dashboard  # noqa: F401
    from alphaloop.cli import (  # noqa: F401
        _backtest,
        _data,
        _export,
        _grid,
        _llm,
        _report,
        _strategies,
        _workflow,
    )


def fail(message: object, code: int = 2) -> NoReturn:
    """Print ``error: <message>`` as one safe line (control characters escaped, at most
    :data:`alphaloop.errors.MAX_MESSAGE` characters) on stderr and exit with ``code``. Every
    error the command prints goes through here."""
    typer.echo(clean_message(f"error: {message}"), err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    args = sys.argv[1:] if argv is None else list(argv)
    start_template(args)  # (the console script did already)
    _register(args)
    _configure_logging()
    try:
        code = app(args=argv, prog_name="alphaloop", standalone_mode=False)
    except typer.TyperException as exc:  # click's usage errors: a bad option value, a typo
        line, code = _usage_line(exc), getattr(exc, "exit_code", 2)
        if not line:
            sys.exit(code)  # a bare group: its help was the answer
        fail(line, code)
    except typer.Abort:  # end of input at a prompt
        fail("aborted", 1)
    except AlphaloopError as exc:
        fail(Exception.__str__(exc))  # the raw text: fail() escapes and caps the whole line
    except (OSError, sqlite3.Error) as exc:
        # a write refused outside the places that name their workflow (they raise HomeError)
        what = storage_problem(exc)
        if what is None:
            raise
        where = getattr(exc, "filename", None)
        fail(f"cannot write{f' {where}' if where else ''} ({what}); free some space or make "
             "the folder writable, then try again")
    sys.exit(code if isinstance(code, int) else 0)  # typer.Exit(n) returns n here


def _usage_line(exc: Exception) -> str:
    """A usage error as one line (typer draws a box of several), with where to read more;
    empty if it says nothing."""
    text = getattr(exc, "format_message", exc.__str__)()
    text = "; ".join(line.strip() for line in str(text).splitlines() if line.strip())
    if not text:
        return ""
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "alphaloop"
    return f"{text} (see '{where} --help')"
