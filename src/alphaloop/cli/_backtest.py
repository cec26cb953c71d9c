"""``alphaloop backtest``: one strategy, one market, one set of parameters."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from alphaloop.cli import app
from alphaloop.errors import ConfigError


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


@app.command()
def backtest(
    strategy: Annotated[str, typer.Argument(help="Library strategy name or path to a .py file.")],
    ticker: Annotated[str, typer.Option("--ticker", "-t", help="Ticker to test on.")],
    timeframe: Annotated[str, typer.Option(help="Bar size: 1h, 4h, 1d, 1w, 1mo.")] = "1d",
    start: Annotated[str | None, typer.Option(help="First date (inclusive).")] = None,
    end: Annotated[str | None, typer.Option(help="Last date (inclusive).")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Parameter override name=value.")
    ] = None,
    commission: Annotated[
        float, typer.Option(help="Commission, fraction of traded notional per side.")
    ] = 0.001,
    slippage_bps: Annotated[float, typer.Option(help="Slippage per side, basis points.")] = 0.0,
    data: Annotated[
        str | None, typer.Option("--data", help="CSV/Parquet file or folder of them.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Backtest STRATEGY on TICKER and print its metrics."""
    from alphaloop.backtest.runner import backtest as run_backtest
    from alphaloop.backtest.strategy import load_strategy
    from alphaloop.data import load, slice_dates

    strat = load_strategy(strategy)
    params = strat.resolve_params(_parse_overrides(param or []))
    bars = slice_dates(load(ticker, timeframe, data), start, end)
    result = run_backtest(
        strat, bars, params, commission=commission, slippage_bps=slippage_bps, timeframe=timeframe
    )
    first, last = bars.index[0].isoformat(), bars.index[-1].isoformat()
    if as_json:
        payload = dict(result.metrics)
        payload.update(
            strategy=strat.name,
            parameters=params,
            ticker=ticker.upper(),
            timeframe=timeframe,
            start=first,
            end=last,
            bars=len(bars),
        )
        typer.echo(json.dumps(payload, default=str))
        return
    table = Table(
        title=f"{strat.name} on {ticker.upper()} {timeframe}  {first[:10]} .. {last[:10]}"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.metrics.items():
        table.add_row(key, _fmt(value))
    console = Console()
    console.print(table)
    shown = ", ".join(f"{k}={v}" for k, v in params.items())
    console.print(f"parameters: {shown}   bars: {len(bars)}   commission: {commission}")
