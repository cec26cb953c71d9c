"""alphaloop.execution: run backtest tasks durably and in parallel.

* :class:`TaskQueue` — the durable SQLite queue, source of truth for every task's state
  (semantics in its module docstring and ``docs/execution.md``).
* :class:`Executor` — the contract of an execution backend: drain a queue with a task function.
* :class:`LocalPool` — long-lived worker processes on this machine.
* :class:`DaskBackend` (``alphaloop.execution.dask_backend``, needs ``distributed``) — the same
  contract on a Dask cluster.
* ``alphaloop.execution.task_runner.run_task`` — the task function that runs one backtest,
  the strategy code in a kernel-confined process (`docs/sandbox.md`).
* :func:`run_once` — one task in a clean worker started for it (the CLI's ``backtest``);
  :class:`TaskFailed` when it fails; :func:`confinement` — whether the kernel can confine.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alphaloop.execution._base import Executor, OnResult, StopWhen, TaskFn
    from alphaloop.execution._confine import ConfinementError
    from alphaloop.execution._confine import availability as confinement
    from alphaloop.execution._home import resolve_home
    from alphaloop.execution._host import TaskFailed, run_once
    from alphaloop.execution._local import LocalPool
    from alphaloop.execution._probe import PsutilProbe, ResourceProbe
    from alphaloop.execution._queue import QUEUE_FILENAME, TaskQueue
    from alphaloop.execution._task import (
        Attempt,
        BacktestTask,
        Claim,
        FailureKind,
        RetryPolicy,
        RunSummary,
        TaskState,
    )
    from alphaloop.execution.dask_backend import DaskBackend  # noqa: F401

__all__ = [
    "QUEUE_FILENAME",
    "Attempt",
    "BacktestTask",
    "Claim",
    "ConfinementError",
    "Executor",
    "FailureKind",
    "LocalPool",
    "OnResult",
    "PsutilProbe",
    "ResourceProbe",
    "RetryPolicy",
    "RunSummary",
    "StopWhen",
    "TaskFailed",
    "TaskFn",
    "TaskQueue",
    "TaskState",
    "confinement",
    "resolve_home",
    "run_once",
]

# name -> (module, attribute): loaded on first use, so that importing one submodule (the
# worker template, which `alphaloop run` starts before its other imports) costs nothing more
_EXPORTS: dict[str, tuple[str, str]] = {
    "Executor": ("_base", "Executor"),
    "OnResult": ("_base", "OnResult"),
    "StopWhen": ("_base", "StopWhen"),
    "TaskFn": ("_base", "TaskFn"),
    "ConfinementError": ("_confine", "ConfinementError"),
    "confinement": ("_confine", "availability"),
    "resolve_home": ("_home", "resolve_home"),
    "TaskFailed": ("_host", "TaskFailed"),
    "run_once": ("_host", "run_once"),
    "LocalPool": ("_local", "LocalPool"),
    "PsutilProbe": ("_probe", "PsutilProbe"),
    "ResourceProbe": ("_probe", "ResourceProbe"),
    "QUEUE_FILENAME": ("_queue", "QUEUE_FILENAME"),
    "TaskQueue": ("_queue", "TaskQueue"),
    "Attempt": ("_task", "Attempt"),
    "BacktestTask": ("_task", "BacktestTask"),
    "Claim": ("_task", "Claim"),
    "FailureKind": ("_task", "FailureKind"),
    "RetryPolicy": ("_task", "RetryPolicy"),
    "RunSummary": ("_task", "RunSummary"),
    "TaskState": ("_task", "TaskState"),
    "DaskBackend": ("dask_backend", "DaskBackend"),
}


def __getattr__(name: str) -> object:
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'alphaloop.execution' has no attribute {name!r}") from None
    value = getattr(import_module(f"alphaloop.execution.{module}"), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
