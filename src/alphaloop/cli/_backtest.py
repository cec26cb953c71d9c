"""``alphaloop backtest``: one strategy, one market, one set of parameters.

The strategy runs in a kernel-confined process forked from a clean worker, with a wall
timeout and a memory limit; the engine measures its positions on prices it never held. The
look-ahead check runs by default: a strategy whose positions change when later bars are
removed is refused (exit 2) instead of reporting returns it could never have made.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alphaloop.cli import app
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


def _parse_overrides(items: list[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"parameter '{item}' is not name=value; write e.g. -p fast=20")
        overrides[name.strip()] = value.strip()
    return overrides


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4f}"


def limit_hint(detail: str, name: str) -> str:
    """The failure of a confined run, with the option that governs it when it hit a limit."""
    if detail.startswith("timed out after"):
        return f"strategy {name!r} {detail}; raise --timeout if it needs longer"
    if "memory limit" in detail or "out of memory" in detail:
        return f"{detail}; raise --memory if it needs more"
    return detail


def _when(iso: str) -> str:
    """A bar's ISO time, the date alone for a daily bar (midnight)."""
    text = clean_message(iso, 40)
    return text[:10] if text.endswith("T00:00:00") else text


def lookahead_problem(dates: list[str]) -> str:
    """What the look-ahead check found, from the cut dates where the positions differed."""
    more = f"first of {len(dates)} cuts that differ" if len(dates) > 1 else "one cut differs"
    return (
        "look-ahead bias: its positions change when the bars after "
        f"{_when(dates[0])} are removed ({more})"
    )


def _check_warmup(warmup_from: str | None, start: str | None) -> object:
    """The first measured date for --warmup-from (None without it); `ConfigError` in one
    line unless it comes with a later --start."""
    if warmup_from is None:
        return None
    import pandas as pd

    if start is None:
        raise ConfigError("--warmup-from needs --start: the date trading and measuring begin")
    stamps = []
    for flag, text in (("--warmup-from", warmup_from), ("--start", start)):
        try:
            stamp = pd.Timestamp(text)
        except (TypeError, ValueError):
            stamp = pd.NaT
        if pd.isna(stamp):
            raise ConfigError(f"bad {flag} date {text!r}; use YYYY-MM-DD")
        if stamp.tzinfo is not None:  # the data's dates are UTC, without a zone
            stamp = stamp.tz_convert("UTC").tz_localize(None)
        stamps.append(stamp)
    lo, hi = stamps
    if not lo < hi:
        raise ConfigError(f"--warmup-from {warmup_from} must be before --start {start}")
    return hi


@app.command()
def backtest(
    strategy: Annotated[str, typer.Argument(help="Library strategy name or path to a .py file.")],
    ticker: Annotated[str, typer.Option("--ticker", "-t", help="Ticker to test on.")],
    timeframe: Annotated[str, typer.Option(help="Bar size: 1h, 4h, 1d, 1w, 1mo.")] = "1d",
    start: Annotated[str | None, typer.Option(help="First date (inclusive).")] = None,
    end: Annotated[str | None, typer.Option(help="Last date (inclusive).")] = None,
    warmup_from: Annotated[
        str | None,
        typer.Option(
            "--warmup-from",
            help="Compute indicators from this date, before --start, but trade and measure "
            "from --start on (as a workflow's holdout runs do).",
        ),
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Parameter override name=value.")
    ] = None,
    commission: Annotated[
        float, typer.Option(help="Commission, fraction of traded notional per side.")
    ] = 0.001,
    slippage_bps: Annotated[float, typer.Option(help="Slippage per side, basis points.")] = 0.0,
    borrow_bps: BorrowOpt = 0.0,
    rebalance: RebalanceOpt = "change",
    data: Annotated[
        str | None, typer.Option("--data", help="CSV/Parquet file or folder of them.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="With --json: add the trades and the equity curve (dates and values).",
        ),
    ] = False,
    lookahead_check: Annotated[
        bool,
        typer.Option(
            "--lookahead-check/--no-lookahead-check",
            help="Re-run the strategy on the data cut at about 20 dates and refuse it (exit 2) "
            "if its positions change when later bars are removed.",
        ),
    ] = True,
    no_adjust: NoAdjustOpt = False,
    timeout: TimeoutOpt = 60.0,
    memory: MemoryOpt = "2GiB",
    unconfined: UnconfinedOpt = False,
) -> None:
    """Backtest STRATEGY on TICKER and print its metrics."""
    from alphaloop.backtest.engine import check_costs
    from alphaloop.backtest.strategy import load_strategy
    from alphaloop.data import load, slice_dates
    from alphaloop.execution import TaskFailed, run_once
    from alphaloop.execution._host import Host
    from alphaloop.execution.task_runner import run_task, run_task_full

    positive_seconds(timeout, "--timeout")
    memory_limit = parse_bytes(memory)
    if full and not as_json:
        raise ConfigError("--full adds the trades and the equity curve to --json; pass --json")
    # the clean worker imports while this process checks the input (both take a second)
    host = Host(memory_limit=memory_limit).start()
    try:
        # the engine's own check: one line naming the cost
        check_costs(commission, slippage_bps, borrow_bps, rebalance)
        strat = load_strategy(strategy)  # read, not run: it runs only in the confined process
        params = strat.resolve_params(_parse_overrides(param or []))
        strat.check_constraints(params)  # CONSTRAINTS, e.g. fast < slow: exit 2
        eval_start = _check_warmup(warmup_from, start)
        bars = slice_dates(load(ticker, timeframe, data, adjust=not no_adjust),
                           warmup_from or start, end)
        if eval_start is not None:
            k = int(bars.index.searchsorted(eval_start))
            if k >= len(bars):
                raise ConfigError(f"no bars between --start {start} and --end {end or 'the end'}")
            eval_start = bars.index[k].isoformat()
        check_confinement(unconfined, [] if strat.is_library else [strat.name])
    except BaseException:
        host.close()
        raise
    first, last = bars.index[0].isoformat(), bars.index[-1].isoformat()
    shown_first = eval_start or first
    task = strategy_task(
        strat,
        "backtest",
        unconfined=unconfined,
        strategy_parameters=params,
        ticker=ticker,
        timeframe=timeframe,
        data_path=data,
        adjust=not no_adjust,
        start=first,
        end=last,
        commission=commission,
        slippage_bps=slippage_bps,
        borrow_bps=borrow_bps,
        rebalance=rebalance,
        check_lookahead=lookahead_check,
        eval_start=eval_start,
    )
    fn = run_task_full if full else run_task
    try:
        result = run_once(fn, task, timeout=timeout, memory_limit=memory_limit, host=host)
    except TaskFailed as exc:
        raise StrategyError(limit_hint(exc.detail, strat.name)) from None
    if result["lookahead"]:
        raise StrategyError(
            f"strategy {strat.name!r} has {lookahead_problem(result['lookahead'])}; fix it, or "
            "pass --no-lookahead-check to measure it anyway"
        )
    metrics = result["metrics"]
    if as_json:
        payload = dict(metrics)
        payload.update(
            strategy=strat.name,
            parameters=params,
            ticker=ticker.upper(),
            timeframe=timeframe,
            start=shown_first,
            end=last,
            bars=len(bars),
            commission=commission,
            slippage_bps=slippage_bps,
            borrow_bps=borrow_bps,
            rebalance=rebalance,
        )
        if eval_start is not None:
            payload.update(warmup_from=first)
        if full:
            payload.update(trades=result["trades"], equity=result["equity"])
        typer.echo(json.dumps(payload, default=str))
        return
    name = escape(clean_message(strat.name, 80))
    table = Table(title=f"{name} on {ticker.upper()} {timeframe}  {shown_first[:10]} .. {last[:10]}"
                  + (f"  (warm-up from {first[:10]})" if eval_start else ""))
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, _fmt(value))
    console = Console()
    console.print(table)
    shown = ", ".join(f"{k}={v}" for k, v in params.items())
    costs = f"commission: {commission}   slippage_bps: {slippage_bps}"
    if borrow_bps:
        costs += f"   borrow_bps: {borrow_bps}"
    console.print(f"parameters: {shown}   bars: {len(bars)}   {costs}   rebalance: {rebalance}")
