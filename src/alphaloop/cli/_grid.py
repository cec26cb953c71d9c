"""``alphaloop grid``: every combination of parameter ranges of one strategy on one market.

The grid runs as `backtest` runs one set: in a clean worker started for the command, the
strategy's code confined (`alphaloop.execution.grid_runner`: one strategy process for the
whole grid; the library's own files run in the worker), the metrics measured on prices the
strategy never held. The best row is then re-run as `alphaloop backtest` would run it, with
the look-ahead check.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alphaloop.cli import app, err_console
from alphaloop.cli._backtest import limit_hint, lookahead_problem
from alphaloop.cli._limits import (
    BorrowOpt,
    MemoryOpt,
    NoAdjustOpt,
    RebalanceOpt,
    TimeoutOpt,
    UnconfinedOpt,
    check_confinement,
    parse_bytes,
    positive_seconds,
    strategy_task,
)
from alphaloop.errors import ConfigError, StrategyError, clean_message

CHUNK = 512
"""Parameter sets per task sent to the worker (the progress bar moves once per chunk)."""
LOWER_IS_BETTER = frozenset({"max_drawdown", "max_drawdown_duration", "annual_volatility"})


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool | int | str):
        return str(value)
    return f"{value:.4f}"


def _check_output(path: str) -> Path:
    p = Path(path).expanduser()
    if p.is_dir() or not p.parent.is_dir():
        raise ConfigError(f"--csv {path}: not a file in an existing folder; "
                          "write e.g. --csv grid.csv")
    return p


def _metric(metric: str) -> str:
    from alphaloop.backtest.metrics import METRIC_KEYS

    if metric not in METRIC_KEYS:
        import difflib

        close = difflib.get_close_matches(metric, METRIC_KEYS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"unknown --metric {metric!r}; {hint}metrics: {', '.join(METRIC_KEYS)}")
    return metric


@app.command()
def grid(
    strategy: Annotated[str, typer.Argument(help="Library strategy name or path to a .py file.")],
    ticker: Annotated[str, typer.Option("--ticker", "-t", help="Ticker to test on.")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Values of a parameter: name=low:high (integers, "
                     "both ends), name=low:high:step, name=a,b,c or name=value. Parameters "
                     "not given keep their default."),
    ] = None,
    where: Annotated[
        str | None,
        typer.Option("--where", help="Keep only sets satisfying e.g. 'fast < slow' or "
                     "'2*fast <= slow, slow < 200' (names, numbers, + - * /, comparisons). "
                     "A strategy's own CONSTRAINTS always apply."),
    ] = None,
    metric: Annotated[str, typer.Option(help="Metric that ranks the sets.")] = "sharpe_ratio",
    top: Annotated[int, typer.Option(help="Rows to print (0: all).")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the top rows as one JSON "
                                          "object.")] = False,
    csv_path: Annotated[
        str | None, typer.Option("--csv", help="Write every row, best first, to this file.")
    ] = None,
    timeframe: Annotated[str, typer.Option(help="Bar size: 1h, 4h, 1d, 1w, 1mo.")] = "1d",
    start: Annotated[str | None, typer.Option(help="First date (inclusive).")] = None,
    end: Annotated[str | None, typer.Option(help="Last date (inclusive).")] = None,
    commission: Annotated[
        float, typer.Option(help="Commission, fraction of traded notional per side.")
    ] = 0.001,
    slippage_bps: Annotated[float, typer.Option(help="Slippage per side, basis points.")] = 0.0,
    borrow_bps: BorrowOpt = 0.0,
    rebalance: RebalanceOpt = "change",
    data: Annotated[
        str | None, typer.Option("--data", help="CSV/Parquet file or folder of them.")
    ] = None,
    no_adjust: NoAdjustOpt = False,
    lookahead_check: Annotated[
        bool,
        typer.Option("--lookahead-check/--no-lookahead-check",
                     help="Re-run the best set with the look-ahead check (as backtest does) "
                     "and refuse the grid (exit 2) if its positions change when later bars "
                     "are removed."),
    ] = True,
    timeout: TimeoutOpt = 60.0,
    memory: MemoryOpt = "2GiB",
    unconfined: UnconfinedOpt = False,
) -> None:
    """Backtest STRATEGY on TICKER for every combination of the -p ranges; print the best."""
    from alphaloop.backtest._grid_space import combinations, parse_axes
    from alphaloop.backtest.engine import check_costs
    from alphaloop.backtest.strategy import load_strategy
    from alphaloop.data import load, slice_dates
    from alphaloop.execution import TaskFailed
    from alphaloop.execution._host import Host

    positive_seconds(timeout, "--timeout")
    memory_limit = parse_bytes(memory)
    if top < 0:
        raise ConfigError(f"--top must be 0 (all) or more, got {top}")
    _metric(metric)
    out = _check_output(csv_path) if csv_path else None
    check_costs(commission, slippage_bps, borrow_bps, rebalance)
    strat = load_strategy(strategy)  # read, not run: it runs only in the worker's processes
    if not strat.parameters:
        raise ConfigError(f"strategy {strat.name!r} has no parameters to vary; "
                          "use alphaloop backtest")
    columns = combinations(strat, parse_axes(strat, param or []), where)
    total = len(next(iter(columns.values())))
    if total == 0:
        raise ConfigError("no parameter set is left: --where or the strategy's CONSTRAINTS "
                          "exclude every combination")
    host = Host(memory_limit=memory_limit).start()  # imports while the bars load
    try:
        bars = slice_dates(load(ticker, timeframe, data, adjust=not no_adjust), start, end)
        check_confinement(unconfined, [] if strat.is_library else [strat.name])
        base = strategy_task(
            strat, "grid", unconfined=unconfined, ticker=ticker, timeframe=timeframe,
            data_path=data, adjust=not no_adjust, start=bars.index[0].isoformat(),
            end=bars.index[-1].isoformat(), commission=commission, slippage_bps=slippage_bps,
            borrow_bps=borrow_bps, rebalance=rebalance,
        )
        try:
            result = _run(host, base, columns, total, timeout)
            order = result.ranking(metric, descending=metric not in LOWER_IS_BETTER)
            rows = result.rows(order)
            if lookahead_check:
                _check_best(host, base, rows[0], list(columns), strat.name, timeout)
        except TaskFailed as exc:
            raise StrategyError(limit_hint(exc.detail, strat.name)) from None
    finally:
        host.close()
    if out is not None:
        _write_csv(out, rows)
    shown = rows if top == 0 else rows[:top]
    if as_json:
        typer.echo(json.dumps({
            "strategy": strat.name, "ticker": ticker.upper(), "timeframe": timeframe,
            "start": bars.index[0].isoformat(), "end": bars.index[-1].isoformat(),
            "bars": len(bars), "metric": metric, "combinations": total,
            "commission": commission, "slippage_bps": slippage_bps, "borrow_bps": borrow_bps,
            "rebalance": rebalance, "rows": shown,
        }, default=str))
        return
    _print(shown, list(columns), strat.name, ticker, timeframe, bars, metric, total, out)


def _run(host: Any, base: Any, columns: dict[str, Any], total: int, timeout: float) -> Any:
    """Every set through the worker, `CHUNK` at a time, with a progress bar on a terminal."""
    import numpy as np

    from alphaloop.backtest.grid import GridResult
    from alphaloop.execution.grid_runner import grid_task, run_grid_task

    chunks = range(0, total, CHUNK)
    parts: list[dict[str, Any]] = []
    bar = None
    if err_console.is_terminal and len(chunks) > 1:
        from rich.progress import Progress

        bar = Progress(console=err_console, transient=True)
        bar.start()
        job = bar.add_task(f"{total:,} parameter sets", total=total)
    try:
        for lo in chunks:
            chunk = {name: col[lo : lo + CHUNK] for name, col in columns.items()}
            task = grid_task(base.model_copy(update={"task_id": f"grid-{lo}"}), chunk)
            parts.append(host.run(run_grid_task, task, timeout=timeout))
            if bar is not None:
                bar.update(job, completed=min(total, lo + CHUNK))
    finally:
        if bar is not None:
            bar.stop()
    metrics = {key: np.array([math.nan if v is None else v for p in parts
                              for v in p["metrics"][key]], dtype=np.float64)
               for key in parts[0]["metrics"]}
    return GridResult(dict(columns), metrics)


def _check_best(host: Any, base: Any, best: dict[str, Any], names: list[str], name: str,
                timeout: float) -> None:
    from alphaloop.execution.task_runner import run_task

    task = base.model_copy(update={
        "task_id": "grid-best", "check_lookahead": True,
        "strategy_parameters": {n: best[n] for n in names},
    })
    result = host.run(run_task, task, timeout=timeout)
    if result["lookahead"]:
        raise StrategyError(
            f"strategy {name!r} has {lookahead_problem(result['lookahead'])} (its best set, "
            f"{', '.join(f'{n}={best[n]}' for n in names)}); fix it, or pass "
            "--no-lookahead-check to measure it anyway")


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    try:
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    except OSError as exc:
        raise ConfigError(f"cannot write {path} ({(exc.strerror or str(exc)).lower()})"
                          ) from None
    typer.echo(f"wrote {len(rows):,} rows to {path}", err=True)


def _print(rows: list[dict[str, Any]], names: list[str], strategy: str, ticker: str,
           timeframe: str, bars: Any, metric: str, total: int, out: Path | None) -> None:
    first, last = bars.index[0].isoformat()[:10], bars.index[-1].isoformat()[:10]
    better = "lowest" if metric in LOWER_IS_BETTER else "highest"
    table = Table(title=f"{escape(clean_message(strategy, 80))} on {ticker.upper()} {timeframe}"
                  f"  {first} .. {last}  {total:,} sets, {better} {metric} first")
    shown = [*names, metric] + [k for k in ("total_return", "sharpe_ratio", "max_drawdown",
                                             "num_trades") if k != metric]
    for key in shown:
        table.add_column(key, justify="right")
    for row in rows:
        table.add_row(*(escape(_fmt(row[key])) for key in shown))
    Console().print(table)


__all__ = ["grid"]
