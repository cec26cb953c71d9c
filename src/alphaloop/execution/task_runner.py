"""The task function every executor runs: one :class:`BacktestTask` -> one metrics dict.

``run_task`` is module-level so it pickles by reference. A task flows down:

    clean worker: bars (cached) -> parameters resolved from the source, read not run
        -> confined strategy process (`_jail`): the strategy's positions, look-ahead cuts
    clean worker: positions validated -> engine on the worker's own bars -> metrics

In a local pool's worker that is direct. Anywhere else (a Dask worker, the CLI) the process is
not a clean template, so the task is handed to one (`_host.shared`), which does the above.
`run_task_in_process` is the old path, everything in the calling process with no boundary:
for tests and trusted code only.
"""

from __future__ import annotations

from typing import Any

from alphaloop.execution._task import BacktestTask

__all__ = ["run_task", "run_task_in_process"]


def run_task(task: BacktestTask) -> dict[str, Any]:
    """Backtest ``task``'s strategy variant on its data, the strategy code confined.

    Returns ``{"metrics": {...}, "bars": int, "data_fingerprint": str, "code_hash": str,
    "moments": [sharpe, T, skewness, kurtosis] | None, "lookahead": [dates]}`` — the per-bar
    return moments feed the deflated Sharpe ratio; ``lookahead`` lists the cut dates where the
    positions changed when later bars were removed (only with ``check_lookahead``).
    Raises the data/strategy layers' ``DataError``/``StrategyError``/``ConfigError`` for bad
    input, and `_jail.StrategyProcessError` when the strategy's process fails; the executor
    records them as failed attempts.
    """
    from alphaloop.execution import _jail

    if not _jail.is_clean_host():
        from alphaloop.execution import _host

        return _host.shared().run(run_task, task)
    from alphaloop import data as market
    from alphaloop.backtest import strategy as strategies

    bars = market.load(task.ticker, task.timeframe, task.data_path)
    if task.start is not None or task.end is not None:
        bars = market.slice_dates(bars, task.start, task.end)
    strategy = strategies.from_source(task.strategy_code, task.strategy_name)
    params = strategy.resolve_params(task.strategy_parameters)
    job = _jail.PositionsJob(
        source=task.strategy_code,
        name=task.strategy_name,
        params=params,
        ticker=task.ticker,
        timeframe=task.timeframe,
        data_path=task.data_path,
        start=task.start,
        end=task.end,
        lookahead=task.check_lookahead,
        unconfined_ok=task.unconfined_ok,
    )
    reply = _jail.current().positions(job, len(bars))
    return _result(task, bars, strategy.code_hash, reply.positions, reply.lookahead)


def _result(
    task: BacktestTask, bars: Any, code_hash: str, positions: Any, lookahead: list[str]
) -> dict[str, Any]:
    from alphaloop import data as market
    from alphaloop.backtest import metrics, runner

    result = runner.evaluate(
        bars,
        positions,
        commission=task.commission,
        slippage_bps=task.slippage_bps,
        timeframe=task.timeframe,
        eval_start=task.eval_start,
    )
    moments = metrics.return_moments(result.returns.to_numpy())
    return {
        "metrics": dict(result.metrics),
        "bars": len(bars),
        "data_fingerprint": market.fingerprint(bars),
        "code_hash": code_hash,
        "moments": None if moments is None else list(moments),
        "lookahead": lookahead,
    }


def run_task_in_process(task: BacktestTask) -> dict[str, Any]:
    """`run_task` in the calling process, with no process or kernel boundary around the
    strategy code: for tests and trusted (library) code only."""
    from alphaloop import data as market
    from alphaloop.backtest import strategy as strategies

    bars = market.load(task.ticker, task.timeframe, task.data_path)
    if task.start is not None or task.end is not None:
        bars = market.slice_dates(bars, task.start, task.end)
    strategy = strategies.from_source(task.strategy_code, task.strategy_name)
    params = strategy.resolve_params(task.strategy_parameters)
    with strategies.executing_in_process():
        positions = strategy.positions(bars.copy(), params)
        lookahead = []
        if task.check_lookahead:
            found = strategies.lookahead_check(strategy, bars.copy(), params, full=positions)
            lookahead = [d.isoformat() for d in found]
    return _result(task, bars, strategy.code_hash, positions, lookahead)
