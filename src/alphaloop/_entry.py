"""The ``alphaloop`` console script: start the worker template, then the command.

Kept apart from `alphaloop.cli` on purpose: importing the command (typer, rich and every
command group, ~0.1 s) would delay the template by as much. Here the template starts after
Python itself and this module's few standard imports, and the command's imports overlap its
warm-up (`benchmarks/bench_launch.py`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys

# commands that run strategy code in local workers, forked from the worker template
WORKER_COMMANDS = frozenset({"run", "resume", "backtest", "grid", "report"})


def start_template(args: list[str]) -> None:
    """Start the worker template (`alphaloop.execution._template`) now, before the imports of
    the command, when the command will fork local workers from it: its ~1 s of imports and
    warm-up then overlaps them instead of following them. A guess from the words alone: a
    command that turns out to need none (bad input) just ends it. Idempotent.
    ``ALPHALOOP_EARLY_TEMPLATE=0``: the pool starts it, as before (the benchmark's reference)."""
    if not args or args[0] not in WORKER_COMMANDS or "--help" in args or "-h" in args:
        return
    if "--backend=dask" in args or any(
        a == "--backend" and b == "dask" for a, b in itertools.pairwise(args)
    ):
        return
    if os.environ.get("ALPHALOOP_EARLY_TEMPLATE", "1") == "0":  # the benchmark's reference
        return
    from alphaloop.execution._template import shared

    # a problem here: the first worker starts it (or falls back) and reports it
    with contextlib.suppress(Exception):
        shared()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    start_template(sys.argv[1:] if argv is None else list(argv))
    from alphaloop.cli import main as command

    command(argv)
