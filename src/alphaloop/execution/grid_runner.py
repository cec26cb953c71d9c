"""A parameter grid of one strategy as one task: many parameter sets, one call, code confined.

`run_grid_task(task)` is `task_runner.run_task` for many parameter sets at once. The task is
an ordinary `BacktestTask` whose ``strategy_parameters`` map each parameter to a *list* of
values, one per set (all of one length; a parameter left out takes its default). It runs in a
clean worker (handed to one, `_host.shared`, when called anywhere else), which loads the bars
once and then:

- **the library's own, unchanged files** run in the worker through
  `alphaloop.backtest.grid.run_batch` — alphaloop's code, trusted like the engine, as the
  library's look-ahead cut runs are (`task_runner._library_lookahead`); a vectorised one
  (``generate_positions_batch``) is called once per chunk of sets;
- **any other code** runs only in the task's confined strategy process (`_jail`): one process
  for the strategy, whatever the number of sets, each set one request on its pipe (sent
  ahead, so the process computes the next set while the worker reads this one), the replies
  validated by the worker as for one backtest;

and measures every set's positions with `grid.evaluate_batch` on its own bars: one compiled
engine call for all the columns of a chunk, no pandas object per set.

Returns ``{"params": {name: [values]}, "metrics": {key: [values, None where undefined]},
"bars": int, "data_fingerprint": str, "code_hash": str}`` — each set's metrics are the ones
`run_task` gives for that set alone (the same numbers, to the last bit).

`grid_task` builds such a task from a command's `BacktestTask` fields; the TUNE_PARAMETERS
phase can hand a batch of variants of one strategy to `run_grid_task` the same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from alphaloop.execution._task import BacktestTask

__all__ = ["grid_task", "run_grid_task"]

_AHEAD, _LOW = 16, 4  # sets sent ahead to the strategy process at most; refill below this


def grid_task(task: BacktestTask, columns: Mapping[str, Sequence[Any]]) -> BacktestTask:
    """``task`` carrying the parameter sets ``columns`` (name -> one value per set)."""
    plain = {name: [v.item() if hasattr(v, "item") else v for v in values]
             for name, values in columns.items()}
    return task.model_copy(update={"strategy_parameters": plain})


def run_grid_task(task: BacktestTask) -> dict[str, Any]:
    """Metrics of every parameter set of the grid ``task`` (see the module docstring).

    Raises as `run_task` does: `ConfigError` for a bad value, `StrategyError` naming the set
    whose positions are bad, `_jail.StrategyProcessError` when the strategy process fails.
    """
    from alphaloop.execution import _jail

    if not _jail.is_clean_host():
        from alphaloop.execution import _host

        return _host.shared().run(run_grid_task, task)
    from alphaloop import data as market
    from alphaloop.backtest import grid
    from alphaloop.backtest import strategy as strategies

    path = None if task.data_path is None else os.path.abspath(task.data_path)
    bars = market.load(task.ticker, task.timeframe, path, adjust=task.adjust)
    if task.start is not None or task.end is not None:
        bars = market.slice_dates(bars, task.start, task.end)
    strategy = strategies.from_source(task.strategy_code, task.strategy_name)
    columns = grid.param_columns(strategy, task.strategy_parameters)
    costs = {
        "commission": task.commission,
        "slippage_bps": task.slippage_bps,
        "borrow_bps": task.borrow_bps,
        "rebalance": task.rebalance,
        "timeframe": task.timeframe,
        "eval_start": task.eval_start,
    }
    if strategy.is_library:
        result = grid.run_batch(strategy, bars, columns, **costs)
    else:
        targets = _confined_positions(task, strategy, columns, len(bars), path)
        result = grid.evaluate_batch(bars, targets, columns, name=strategy.name, **costs)
    return {
        "params": {name: col.tolist() for name, col in result.params.items()},
        "metrics": {key: [None if v != v else v for v in col.tolist()]
                    for key, col in result.metrics.items()},
        "bars": len(bars),
        "data_fingerprint": market.fingerprint(bars),
        "code_hash": strategy.code_hash,
    }


def _confined_positions(
    task: BacktestTask, strategy: Any, columns: Mapping[str, Any], n: int, path: str | None
) -> Any:
    """(sets x bars) positions from the task's confined strategy process, one set per
    request, pipelined."""
    import numpy as np

    from alphaloop.execution import _jail
    from alphaloop.execution.task_runner import positions_job

    names = list(columns)
    lists = [columns[name].tolist() for name in names]
    k = len(lists[0]) if lists else 0

    def job(j: int) -> tuple[str, _jail.PositionsJob]:
        params = {name: values[j] for name, values in zip(names, lists, strict=True)}
        return f"{task.task_id}/{j}", positions_job(task, params, path, strategy.code_hash)

    host = _jail.current()
    targets = np.empty((k, n))
    for j in range(k):
        tag, this = job(j)
        targets[j] = host.positions(this, n, tag=tag).positions
        if host.waiting() <= _LOW and j + 1 < k:
            host.submit([job(i) for i in range(j + 1, min(k, j + 1 + _AHEAD))],
                        ahead=_AHEAD, low=_LOW)
    return targets
