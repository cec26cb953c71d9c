"""The task function every executor runs: one :class:`BacktestTask` -> one metrics dict.

``run_task`` is module-level so it pickles by reference. A task flows down:

    clean worker: bars (cached) -> parameters resolved from the source, read not run
        -> confined strategy process (`_jail`): the strategy's positions on all the bars
    clean worker: positions validated -> engine on the worker's own bars -> metrics
    with ``check_lookahead``: cut lengths from those positions -> one window at a time, shortest
        first, to a blind strategy process (`_blind`) that never held later bars -> compared

In a local pool's worker that is direct. Anywhere else (the CLI) the process is not a clean
template, so the task is handed to one (`_host.shared`), which does the above; a Dask worker
sends whole batches to a clean worker of its own (``needs_clean_worker``, `_dask_batches`).
A task run on bars a Dask worker received (``data_fingerprint`` set) fails unless the bars it
loads have that fingerprint.
`run_task_in_process` is the old path, everything in the calling process with no boundary:
for tests and trusted code only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from alphaloop.execution._task import BacktestTask

__all__ = ["run_task", "run_task_full", "run_task_in_process", "run_task_singly"]


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
    from alphaloop.execution import _together

    grouped = _together.done(task.task_id)
    if grouped is not None:  # computed with the variants queued beside it (`_together`)
        return grouped
    bars, job, positions, lookahead = _confined(task)
    return _result(task, bars, job.code_hash, _evaluate(task, bars, positions), lookahead)


def run_task_full(task: BacktestTask) -> dict[str, Any]:
    """`run_task`'s result plus the equity curve (``{"dates", "values"}``) and the trades
    (records with ISO dates): ``alphaloop backtest --json --full``."""
    from alphaloop.execution import _jail

    if not _jail.is_clean_host():
        from alphaloop.execution import _host

        return _host.shared().run(run_task_full, task)
    bars, job, positions, lookahead = _confined(task)
    run = _evaluate(task, bars, positions)
    result = _result(task, bars, job.code_hash, run, lookahead)
    trades = run.trades
    for col in ("entry_date", "exit_date"):
        trades[col] = [t.isoformat() for t in trades[col]]
    result["equity"] = {
        "dates": [t.isoformat() for t in run.equity.index],
        "values": run.equity.to_numpy().tolist(),
    }
    result["trades"] = trades.to_dict(orient="records")
    return result


def _confined(task: BacktestTask) -> tuple[Any, Any, Any, list[str]]:
    """(bars, job, positions, look-ahead dates): the positions from the task's confined
    strategy process, the look-ahead check's cut runs from a blind one (library code: here)."""
    from alphaloop.execution import _blind, _jail

    prepared = _PREPARED.pop(task.task_id, None)
    bars, job = prepared if prepared is not None else _job(task)
    library = _is_library(job.code_hash)
    if task.check_lookahead and not library:
        _blind.prepare()  # the blind worker starts while the strategy process computes
    positions = _jail.current().positions(job, len(bars), tag=task.task_id).positions
    lookahead: list[str] = []
    if task.check_lookahead:
        lookahead = (
            _library_lookahead(job, bars, positions)
            if library
            else _blind.lookahead(job, bars, positions)
        )
    return bars, job, positions, lookahead


def _is_library(code_hash: str) -> bool:
    from alphaloop.backtest._source import library_hashes

    return code_hash in library_hashes()


def _library_lookahead(job: Any, bars: Any, full: Any) -> list[str]:
    """The look-ahead check of the library's own, unchanged code, in the worker: it is
    alphaloop's code, trusted like the engine, so its cut runs need no blind process (whose
    fork per task costs ~25 ms, five times the check itself). Any other code, the library's
    edited by a refinement included, goes to `_blind`."""
    from alphaloop.backtest import strategy as strategies

    strategy = strategies.from_source(job.source, job.name)
    found = strategies.lookahead_check(strategy, bars.copy(), job.params, full=full)
    return [d.isoformat() for d in found]


_PREPARED: dict[str, tuple[Any, Any]] = {}  # task id -> (bars, job) built by the prefetch


def _job(task: BacktestTask) -> tuple[Any, Any]:
    """The task's bars (loaded here, in the worker) and the job for its strategy process."""
    from alphaloop.backtest import strategy as strategies

    bars = _bars(task)
    strategy = strategies.from_source(task.strategy_code, task.strategy_name)
    job = positions_job(task, strategy.resolve_params(task.strategy_parameters),
                        _path(task), strategy.code_hash)
    return bars, job


def _path(task: BacktestTask) -> str | None:
    # absolute: the strategy process works in its own folder
    return None if task.data_path is None else os.path.abspath(task.data_path)


def _bars(task: BacktestTask) -> Any:
    """The task's bars, loaded here in the worker (cached), checked against a shipped
    fingerprint, cut to the task's window."""
    from alphaloop import data as market

    path = _path(task)
    full = market.load(task.ticker, task.timeframe, path, adjust=task.adjust)
    if task.data_fingerprint is not None:
        _check_shipped(task, full, path)
    return _window(full, task.start, task.end)


def positions_job(task: BacktestTask, params: Mapping[str, Any], path: str | None,
                  code_hash: str) -> Any:
    """The request to the task's confined strategy process for positions at ``params`` on
    the task's bars (``path``: its data file, absolute)."""
    from alphaloop.execution import _jail

    return _jail.PositionsJob(
        source=task.strategy_code,
        name=task.strategy_name,
        params=dict(params),
        ticker=task.ticker,
        timeframe=task.timeframe,
        data_path=path,
        adjust=task.adjust,
        start=task.start,
        end=task.end,
        unconfined_ok=task.unconfined_ok,
        code_hash=code_hash,
    )


def _check_shipped(task: BacktestTask, full: Any, path: str | None) -> None:
    """The bars of a task run on shipped data (``data_fingerprint`` set) are the ones the
    orchestrator shipped, or the task fails: a copy damaged or replaced on the worker's disk
    never becomes a result. The fingerprint is computed once per loaded frame (`_window`)."""
    found = _fingerprint(_window(full, None, None))
    if found != task.data_fingerprint:
        from alphaloop.errors import DataError

        raise DataError(
            f"the bars of {task.ticker} at {path} have fingerprint {found}, not "
            f"{task.data_fingerprint} as shipped; the worker's copy changed: run it again"
        )


_WINDOWS: dict[tuple[Any, ...], tuple[Any, Any, str]] = {}


def _window(full: Any, start: str | None, end: str | None) -> Any:
    """``full`` cut to [start, end], with its fingerprint, cached by the memory the loaded
    bars live in (pinned by the entry, so the address cannot be reused while it is cached):
    every task of a run asks for the same window."""
    from alphaloop import data as market

    base = full["close"].to_numpy()
    key = (base.__array_interface__["data"][0], len(base), start, end)
    hit = _WINDOWS.get(key)
    if hit is None:
        bars = full if start is None and end is None else market.slice_dates(full, start, end)
        if len(_WINDOWS) >= 32:
            _WINDOWS.pop(next(iter(_WINDOWS)))
        hit = _WINDOWS[key] = (base, bars, market.fingerprint(bars))
    return hit[1]


def _fingerprint(bars: Any) -> str:
    for _base, cached, fp in _WINDOWS.values():
        if cached is bars:
            return fp
    from alphaloop import data as market

    return market.fingerprint(bars)


def _prefetch(tasks: list[BacktestTask]) -> None:
    """Send the next tasks' jobs to the running strategy process ahead of time (the worker
    calls this before each task with the ones queued behind it), so it computes while the
    worker measures. Jobs are built (bars, parameters) only when a batch is due."""
    from alphaloop.execution import _together

    # variants of one library strategy side by side: one grid call for all (not those
    # already sent to the strategy process)
    _together.run_groups(tasks, skip=_PREPARED.keys())
    _send_ahead(tasks)


def _send_ahead(tasks: list[BacktestTask]) -> None:
    from alphaloop.execution import _jail, _together

    host = _jail.current()
    if host.waiting() > _LOW:
        return
    jobs = []
    for task in tasks:
        if _together.pending(task.task_id):
            continue
        prepared = _PREPARED.get(task.task_id)
        if prepared is None:
            try:
                prepared = _PREPARED[task.task_id] = _job(task)
            except Exception:  # its own run reports the problem
                break
        jobs.append((task.task_id, prepared[1]))
    host.submit(jobs, ahead=_AHEAD, low=_LOW)
    while len(_PREPARED) > 64:  # tasks sent ahead and then not run here (a shutdown)
        _PREPARED.pop(next(iter(_PREPARED)))


_AHEAD, _LOW = 8, 2  # jobs sent ahead at most; a new batch once no more than _LOW wait


def _warm_up() -> None:
    """Before a worker says it is ready: import and compile what strategy processes use. (The
    look-ahead check's blind worker is woken by the first task that needs it: most workers
    never do, e.g. in a benchmark or a `backtest`.)"""
    from alphaloop.execution import _jail

    _jail.current().warm_up_now()


def run_task_singly(task: BacktestTask) -> dict[str, Any]:
    """`run_task` with every task computed on its own, never grouped with the variants
    queued beside it (`_together`): the reference the grouping is measured against
    (`benchmarks/bench_together.py`)."""
    return run_task(task)


run_task.prefetch = _prefetch  # type: ignore[attr-defined]
run_task_singly.prefetch = _send_ahead  # type: ignore[attr-defined]
run_task_singly.warm_up = _warm_up  # type: ignore[attr-defined]
run_task_singly.needs_clean_worker = True  # type: ignore[attr-defined]
run_task.warm_up = _warm_up  # type: ignore[attr-defined]
run_task_full.warm_up = _warm_up  # type: ignore[attr-defined]
# run only in a clean worker: an executor whose own processes are not clean templates (a Dask
# worker) sends a whole batch of these tasks to a clean worker it starts, instead of one
# `_host` round trip per task (`_dask_batches`)
run_task.needs_clean_worker = True  # type: ignore[attr-defined]
run_task_full.needs_clean_worker = True  # type: ignore[attr-defined]


def _evaluate(task: BacktestTask, bars: Any, positions: Any) -> Any:
    """The engine's measurement of ``positions`` on ``bars`` with the task's costs."""
    from alphaloop.backtest import runner

    return runner.evaluate(
        bars,
        positions,
        commission=task.commission,
        slippage_bps=task.slippage_bps,
        borrow_bps=task.borrow_bps,
        rebalance=task.rebalance,
        timeframe=task.timeframe,
        eval_start=task.eval_start,
    )


def _result(
    task: BacktestTask, bars: Any, code_hash: str, result: Any, lookahead: list[str]
) -> dict[str, Any]:
    """The task's result from the engine's measurement ``result`` (`_evaluate`)."""
    from alphaloop.backtest import metrics

    moments = metrics.return_moments(result.returns.to_numpy())
    return {
        "metrics": dict(result.metrics),
        "bars": len(bars),
        "data_fingerprint": _fingerprint(bars),
        "code_hash": code_hash,
        "moments": None if moments is None else list(moments),
        "lookahead": lookahead,
    }


def run_task_in_process(task: BacktestTask) -> dict[str, Any]:
    """`run_task` in the calling process, with no process or kernel boundary around the
    strategy code: for tests and trusted (library) code only."""
    from alphaloop import data as market
    from alphaloop.backtest import strategy as strategies

    full = market.load(task.ticker, task.timeframe, task.data_path, adjust=task.adjust)
    if task.data_fingerprint is not None:
        _check_shipped(task, full, task.data_path)
    bars = _window(full, task.start, task.end)
    strategy = strategies.from_source(task.strategy_code, task.strategy_name)
    params = strategy.resolve_params(task.strategy_parameters)
    with strategies.executing_in_process():
        positions = strategy.positions(bars.copy(), params)
        lookahead = []
        if task.check_lookahead:
            found = strategies.lookahead_check(strategy, bars.copy(), params, full=positions)
            lookahead = [d.isoformat() for d in found]
    return _result(task, bars, strategy.code_hash, _evaluate(task, bars, positions), lookahead)
