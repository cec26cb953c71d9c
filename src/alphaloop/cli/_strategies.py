"""``alphaloop strategies``: list the library, show one strategy, check strategy files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table

from alphaloop.backtest.strategy import Strategy, library_names, load_strategy
from alphaloop.cli import app
from alphaloop.cli._limits import (
    MemoryOpt,
    TimeoutOpt,
    UnconfinedOpt,
    check_confinement,
    parse_bytes,
    positive_seconds,
    strategy_task,
)
from alphaloop.errors import ConfigError, StrategyError, clean_message

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
            if spec.kind == "int" and spec.unit:
                space += f" {spec.unit}"
                table.caption = (
                    "days: a lookback in bars declared for daily bars; `run` scales its range "
                    "to the data's bar size (docs/strategies.md)"
                )
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
    title = escape(clean_message(strategy.name, 80))
    console.print(f"[bold]{title}[/bold]  (code hash {strategy.code_hash})")
    # a file may hold terminal control sequences: show them escaped, never act on them
    source = "\n".join(clean_message(line, None) for line in strategy.source.split("\n"))
    console.print(Syntax(source, "python", line_numbers=True, word_wrap=True))
    if strategy.parameters:
        console.print(_space_table(strategy))
    else:
        console.print("no parameters")


def _files(path: str) -> list[Path]:
    p = Path(path).expanduser()
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(f for f in p.glob("*.py") if not f.name.startswith("_"))
        if files:
            return files
        raise ConfigError(f"no strategy files (*.py) in folder {str(p)!r}")
    raise ConfigError(f"{str(p)!r} is neither a strategy file nor a folder of them")


@strategies_app.command("check")
def check_command(
    path: Annotated[str, typer.Argument(help="A strategy .py file or a folder of them.")],
    ticker: Annotated[str, typer.Option("--ticker", "-t", help="Ticker of the smoke test.")] = (
        "GOOG"
    ),
    timeframe: Annotated[str, typer.Option(help="Bar size of the smoke test.")] = "1d",
    data: Annotated[
        str | None, typer.Option("--data", help="CSV/Parquet file or folder of them.")
    ] = None,
    timeout: TimeoutOpt = 60.0,
    memory: MemoryOpt = "2GiB",
    unconfined: UnconfinedOpt = False,
) -> None:
    """Check strategy files: sandbox rules, interface and PARAMETERS (read, not run), then a
    smoke backtest with the look-ahead check in a confined process. One line per file; exit 0
    only if every file passes, 1 otherwise."""
    from alphaloop.cli._backtest import limit_hint, lookahead_problem
    from alphaloop.data import load
    from alphaloop.execution import TaskFailed
    from alphaloop.execution._host import Host
    from alphaloop.execution.task_runner import run_task

    positive_seconds(timeout, "--timeout")
    memory_limit = parse_bytes(memory)
    files = _files(path)
    host = Host(memory_limit=memory_limit).start()  # imports while the files are read
    try:
        bars = load(ticker, timeframe, data)
        read: dict[Path, Strategy | str] = {}
        for f in files:
            try:
                read[f] = load_strategy(f)
            except StrategyError as exc:
                read[f] = str(exc)
        untrusted = [s.name for s in read.values() if isinstance(s, Strategy) and not s.is_library]
        check_confinement(unconfined, untrusted)
    except BaseException:
        host.close()
        raise
    failed = 0
    with host:
        for f, strat in read.items():
            name = clean_message(f.stem, 80)
            if isinstance(strat, str):
                failed += 1
                typer.echo(f"FAIL {name}: {strat}")
                continue
            task = strategy_task(
                strat,
                f"check-{strat.code_hash}",
                unconfined=unconfined,
                ticker=ticker,
                timeframe=timeframe,
                data_path=data,
                check_lookahead=True,
            )
            try:
                result = host.run(run_task, task, timeout=timeout)
            except TaskFailed as exc:
                failed += 1
                typer.echo(f"FAIL {name}: {clean_message(limit_hint(exc.detail, strat.name))}")
                continue
            if result["lookahead"]:
                failed += 1
                typer.echo(f"FAIL {name}: {lookahead_problem(result['lookahead'])}")
                continue
            m = result["metrics"]
            sharpe = m.get("sharpe_ratio")
            shown = "n/a" if sharpe is None else f"{sharpe:.2f}"
            typer.echo(
                f"ok   {name}: {m.get('num_trades')} trades, Sharpe {shown} on "
                f"{ticker.upper()} {timeframe} ({len(bars)} bars)"
            )
    raise typer.Exit(1 if failed else 0)
