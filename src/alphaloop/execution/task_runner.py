"""The task function every executor runs: one :class:`BacktestTask` -> one metrics dict.

``run_task`` is module-level so it pickles by reference; it imports the data and backtest
layers lazily (inside the worker). Market data is cached per process by
``alphaloop.data.load`` and strategies by ``backtest.strategy.from_source``, so a long-lived
worker loads each dataset and compiles each strategy once.
"""

from __future__ import annotations

from typing import Any

from alphaloop.execution._task import BacktestTask


def run_task(task: BacktestTask) -> dict[str, Any]:
    """Backtest ``task``'s strategy variant on its data.

    Returns ``{"metrics": {...}, "bars": int, "data_fingerprint": str, "code_hash": str,
    "moments": [sharpe, T, skewness, kurtosis] | None, "lookahead": [dates]}`` — the per-bar
    return moments feed the deflated Sharpe ratio; ``lookahead`` lists the cut dates where the
    positions changed when later bars were removed (only with ``check_lookahead``).
    Raises the data/strategy layers' ``DataError``/``StrategyError``/``ConfigError`` for bad
    input; the executor records them as failed attempts.
    """
    from alphaloop import data as market
    from alphaloop.backtest import metrics, runner
    from alphaloop.backtest import strategy as strategies

    bars = market.load(task.ticker, task.timeframe, task.data_path)
    if task.start is not None or task.end is not None:
        bars = market.slice_dates(bars, task.start, task.end)
    strategy = strategies.from_source(task.strategy_code, task.strategy_name)
    params = strategy.resolve_params(task.strategy_parameters)
    result = runner.backtest(
        strategy,
        bars,
        params,
        commission=task.commission,
        slippage_bps=task.slippage_bps,
        timeframe=task.timeframe,
        eval_start=task.eval_start,
    )
    lookahead = []
    if task.check_lookahead:
        lookahead = [d.isoformat() for d in strategies.lookahead_check(strategy, bars, params)]
    moments = metrics.return_moments(result.returns.to_numpy())
    return {
        "metrics": dict(result.metrics),
        "bars": len(bars),
        "data_fingerprint": market.fingerprint(bars),
        "code_hash": strategy.code_hash,
        "moments": None if moments is None else list(moments),
        "lookahead": lookahead,
    }


run_task_in_process = run_task
"""`run_task` in the calling process, with no process or kernel boundary around the strategy
code: for tests and trusted (library) code only."""
