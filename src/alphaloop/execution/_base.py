"""The executor contract shared by the local process pool and the Dask backend."""

from __future__ import annotations

import signal
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

from alphaloop.execution._queue import TaskQueue
from alphaloop.execution._task import BacktestTask, RunSummary

TaskFn = Callable[[BacktestTask], Mapping[str, Any]]
"""A module-level function ``fn(task) -> dict`` (pickled by reference, so it must be
importable by name in the worker process). Its dict must be JSON-serialisable."""

OnResult = Callable[[str, dict[str, Any]], None]
"""Called in the orchestrating process as ``on_result(task_id, result)`` after a result has
been recorded, i.e. committed to the queue (once per task)."""

StopWhen = Callable[[], bool]
"""Polled between events; when it returns True the executor stops dispatching, lets running
tasks finish (per-task timeouts still apply), hands unstarted claims back and returns."""


class Executor(ABC):
    """Drains a :class:`TaskQueue` by running ``fn`` on its tasks somewhere else.

    Contract (tested for every backend by ``tests/test_executor_contract.py``):

    * The queue is the only source of truth. The executor claims tasks with
      ``dequeue``/``dequeue_many`` and reports each attempt's outcome with ``mark_completed``
      / ``mark_completed_many`` (JSON dict or its JSON text) or ``mark_failed`` (error
      message and traceback text), passing the claim's attempt number; it never keeps task
      state of its own across runs.
    * An exception raised by ``fn``, the loss of the process running it, exceeding the
      per-task wall timeout or memory limit are failed attempts (the queue decides retry or
      give-up). Messages: ``"<Type>: <message>"``, ``"worker process died (...)"``,
      ``"timed out after N s"``, ``"exceeded memory limit N GiB (...)"``.
    * ``run`` returns when no task is QUEUED (including ones waiting out a retry backoff) and
      nothing it claimed is outstanding, or when ``stop_when()`` is true, or on SIGINT/SIGTERM
      (local pool). On every exit path, including an exception, every claim is resolved:
      recorded, or handed back with ``release`` so nothing is left IN_PROGRESS.
    * ``on_result(task_id, result)`` is called in the calling thread, once per recorded result.
    """

    @abstractmethod
    def run(
        self,
        queue: TaskQueue,
        fn: TaskFn,
        *,
        on_result: OnResult | None = None,
        stop_when: StopWhen | None = None,
    ) -> RunSummary:
        """Drain ``queue`` with ``fn``; see the class docstring."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends need it
        """Release workers/connections. Idempotent."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def format_bytes(n: int) -> str:
    """``2147483648 -> '2 GiB'``, ``536870912 -> '512 MiB'``."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            v = n / size
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.1f} {unit}"
    return f"{n} B"


def format_seconds(s: float) -> str:
    """``300.0 -> '300'``, ``1.5 -> '1.5'``."""
    return f"{s:.0f}" if s == int(s) else f"{s:g}"


def describe_exit(exitcode: int | None) -> str:
    """Human description of a dead worker's exit code."""
    if exitcode is None:
        return "exit status unknown"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = ": out of memory or killed externally" if -exitcode == 9 else ""
        if -exitcode in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT):
            hint = ": crashed"
        return f"killed by {name}{hint}"
    return f"exit code {exitcode}"
