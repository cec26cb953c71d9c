"""``alphaloop strategies``: list the strategy library and show one strategy's code and space."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from alphaloop.backtest.strategy import Strategy, library_names, load_strategy
from alphaloop.cli import app

strategies_app = typer.Typer(
    name="strategies", help="Browse the strategy library.", no_args_is_help=True
)
app.add_typer(strategies_app, name="strategies")


def _param_summary(strategy: Strategy) -> str:
    if not strategy.parameters:
        return "-"
    return ", ".join(f"{name}={spec.default}" for name, spec in strategy.parameters.items())


def _space_table(strategy: Strategy) -> Table:
    table = Table(title=f"{strategy.name}: parameters")
    for column in ("name", "type", "default", "range / choices"):
        table.add_column(column)
    for name, spec in strategy.parameters.items():
        if spec.kind == "choice":
            space = ", ".join(str(c) for c in spec.choices)
        else:
            space = f"{spec.low:g} .. {spec.high:g}"
            if spec.step:
                space += f" step {spec.step:g}"
            if spec.kind == "float" and spec.log:
                space += " (log)"
        table.add_row(name, spec.kind, str(spec.default), space)
    return table


@strategies_app.command("list")
def list_command() -> None:
    """Show every library strategy: name, one-line description and default parameters."""
    table = Table(title="strategy library")
    table.add_column("name", no_wrap=True)
    table.add_column("description")
    table.add_column("parameters (defaults)")
    for name in library_names():
        strategy = load_strategy(name)
        table.add_row(name, strategy.summary, _param_summary(strategy))
    Console().print(table)


@strategies_app.command("show")
def show_command(
    name: Annotated[str, typer.Argument(help="Library strategy name or path to a .py file.")],
) -> None:
    """Print a strategy's source (syntax-highlighted) and its parameter space."""
    strategy = load_strategy(name)
    console = Console()
    console.print(f"[bold]{strategy.name}[/bold]  (code hash {strategy.code_hash})")
    console.print(Syntax(strategy.source, "python", line_numbers=True, word_wrap=True))
    if strategy.parameters:
        console.print(_space_table(strategy))
    else:
        console.print("no parameters")
