"""Variants of one library strategy queued together in a worker run as one grid call.

A TUNE_PARAMETERS batch is several parameter sets of one strategy over the same bars with the
same costs. When a worker holds several such tasks (``run_task.prefetch`` shows it the running
task and the ones queued behind it; the orchestrator queues a batch's variants of one strategy
next to each other) and the strategy is the library's own, unchanged code with a vectorised
``generate_positions_batch`` (`alphaloop.backtest.grid`), the worker computes them together:

- **positions:** one call of the batch function for all the sets, each column validated as a
  single task's positions are;
- **the look-ahead check:** each set keeps its own cuts (`lookahead.cut_points` of its own
  positions); every distinct cut length is one batch call for the sets that cut there, each
  answer compared as `lookahead.lookahead_check` compares it (a cut where the call fails is
  asked again one set at a time, so a failure counts against the set that fails);
- **measurement:** one set at a time, through the very engine call a single task makes
  (`task_runner._evaluate`), so a variant's numbers never depend on how it was scheduled.

The strategy calls are most of a library task's time (the look-ahead check's ~20 cuts alone
are ~10 ms of a ~15 ms task), and a batch call costs about what one set's call does.
Each result is kept for its own task, which returns it when it runs; its attempt, timeout and
record stay its own. Whatever a group cannot do alike (a set whose positions fail validation,
a failing batch call on the full bars) is left to the single path: those tasks run alone and
fail or succeed alone. Library code is trusted like the engine and runs in the worker, as the
library's look-ahead cut runs and `grid_runner` already do; any other code never comes here.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from typing import Any

from alphaloop.execution._task import BacktestTask

__all__ = ["MAX_GROUP", "done", "pending", "run_groups"]

MAX_GROUP = 16
"""Most tasks computed in one group (bounds the time the first of them waits)."""
_DONE: dict[str, dict[str, Any]] = {}  # task id -> its result, computed with its group
_KEEP = 64  # results kept at most (tasks grouped here and then not run: a shutdown)


def done(task_id: str) -> dict[str, Any] | None:
    """The result of ``task_id`` if its group computed it (taken: a re-run computes anew)."""
    return _DONE.pop(task_id, None)


def pending(task_id: str) -> bool:
    """Whether ``task_id``'s result waits here (its job need not go to a strategy process)."""
    return task_id in _DONE


def _key(task: BacktestTask) -> tuple[Any, ...]:
    """Tasks with equal keys differ only in their parameters."""
    return (task.strategy_code, task.strategy_name, task.ticker, task.timeframe, task.data_path,
            task.adjust, task.data_fingerprint, task.start, task.end, task.eval_start,
            task.commission, task.slippage_bps, task.borrow_bps, task.rebalance,
            task.check_lookahead)


def run_groups(tasks: Sequence[BacktestTask], skip: Container[str] = frozenset()) -> None:
    """Compute every group of two or more of ``tasks`` (not in ``skip``: tasks already handed
    to a strategy process) that can run together; keep each result for its task."""
    groups: dict[tuple[Any, ...], list[BacktestTask]] = {}
    for task in tasks:
        if task.task_id not in skip and task.task_id not in _DONE:
            groups.setdefault(_key(task), []).append(task)
    for group in groups.values():
        if len(group) >= 2 and _library_batch(group[0]):
            try:
                results = _run_group(group[:MAX_GROUP])
            except Exception:  # the single path reports it, task by task
                continue
            _DONE.update(results)
    while len(_DONE) > _KEEP:
        _DONE.pop(next(iter(_DONE)))


def _library_batch(task: BacktestTask) -> bool:
    from alphaloop.backtest import grid
    from alphaloop.backtest import strategy as strategies

    try:
        strategy = strategies.from_source(task.strategy_code, task.strategy_name)
        return strategy.is_library and grid.batch_function(strategy)[1] is not None
    except Exception:
        return False


def _run_group(group: list[BacktestTask]) -> dict[str, dict[str, Any]]:
    from alphaloop.backtest import _positions, grid
    from alphaloop.backtest import strategy as strategies
    from alphaloop.execution.task_runner import _bars, _evaluate, _result

    first = group[0]
    bars = _bars(first)
    strategy = strategies.from_source(first.strategy_code, first.strategy_name)
    columns = grid.param_columns(strategy, [t.strategy_parameters for t in group])
    _fn, batch = grid.batch_function(strategy)
    assert batch is not None
    out = grid.batch_positions(batch, bars, columns, strategy.name, strategy.source)
    positions = [_positions.validate_positions(row.copy(), bars, strategy.name) for row in out]
    lookahead: list[list[str]] = [[] for _ in positions]
    if first.check_lookahead:
        lookahead = _lookahead(strategy, batch, bars, columns, positions)
    return {
        task.task_id: _result(task, bars, strategy.code_hash, _evaluate(task, bars, pos), found)
        for task, pos, found in zip(group, positions, lookahead, strict=True)
    }


def _lookahead(strategy: Any, batch: Any, bars: Any, columns: dict[str, Any],
               positions: list[Any]) -> list[list[str]]:
    """Each set's look-ahead dates, as `lookahead.lookahead_check` finds them for it alone."""
    import numpy as np

    from alphaloop.backtest import _positions, grid, lookahead
    from alphaloop.errors import StrategyError

    n = len(bars.index)
    cuts = [lookahead.cut_points(pos, n) for pos in positions]
    wanted: dict[int, list[int]] = {}
    for j, lengths in enumerate(cuts):
        for length in lengths:
            wanted.setdefault(length, []).append(j)
    differ: list[set[int]] = [set() for _ in positions]
    for length in sorted(wanted):
        sets = wanted[length]
        part = bars.iloc[:length]
        try:
            sub = {name: col[sets] for name, col in columns.items()}
            out = grid.batch_positions(batch, part, sub, strategy.name, strategy.source)
            answers: list[Any] = [row.copy() for row in out]
        except StrategyError:  # whose? each set alone, as the single check asks
            answers = [None] * len(sets)
        for i, j in enumerate(sets):
            try:
                got = answers[i]
                if got is None:
                    got = strategy.positions(part, grid.set_at(columns, j))
                else:
                    got = _positions.validate_positions(got, part, strategy.name)
            except StrategyError:
                differ[j].add(length)
                continue
            if lookahead.differs(np.asarray(got), positions[j][:length]):
                differ[j].add(length)
    index = bars.index
    return [[index[length - 1].isoformat() for length in sorted(found)] for found in differ]
