"""alphaloop.execution: run backtest tasks durably and in parallel.

* :class:`TaskQueue` — the durable SQLite queue, source of truth for every task's state
  (semantics in its module docstring and ``docs/execution.md``).
* :class:`Executor` — the contract of an execution backend: drain a queue with a task function.
* :class:`LocalPool` — long-lived worker processes on this machine.
* :class:`DaskBackend` (``alphaloop.execution.dask_backend``, needs ``distributed``) — the same
  contract on a Dask cluster.
* ``alphaloop.execution.task_runner.run_task`` — the task function that runs one backtest.
"""

from alphaloop.execution._base import Executor, OnResult, StopWhen, TaskFn
from alphaloop.execution._home import resolve_home
from alphaloop.execution._local import LocalPool
from alphaloop.execution._probe import PsutilProbe, ResourceProbe
from alphaloop.execution._queue import QUEUE_FILENAME, TaskQueue
from alphaloop.execution._task import (
    Attempt,
    BacktestTask,
    Claim,
    RetryPolicy,
    RunSummary,
    TaskState,
)

__all__ = [
    "QUEUE_FILENAME",
    "Attempt",
    "BacktestTask",
    "Claim",
    "Executor",
    "LocalPool",
    "OnResult",
    "PsutilProbe",
    "ResourceProbe",
    "RetryPolicy",
    "RunSummary",
    "StopWhen",
    "TaskFn",
    "TaskQueue",
    "TaskState",
    "resolve_home",
]


def __getattr__(name: str) -> object:
    if name == "DaskBackend":
        from alphaloop.execution.dask_backend import DaskBackend

        return DaskBackend
    raise AttributeError(f"module 'alphaloop.execution' has no attribute {name!r}")
