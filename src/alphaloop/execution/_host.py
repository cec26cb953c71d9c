"""A clean worker serving a process that is not one: the CLI, a Dask worker.

Strategy processes must be forked from a clean template (`_launch`, `_jail`), which the CLI
and a Dask worker are not: they hold the user's environment, threads and whatever else they
loaded. `Host` starts one clean worker (the program the local pool runs) and runs task
functions there, one at a time, with an optional wall timeout; `shared()` keeps one per thread
for the life of the process.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import select
import threading
import time
from typing import Any

from alphaloop.errors import AlphaloopError
from alphaloop.execution._base import TaskFn, describe_exit, format_seconds
from alphaloop.execution._task import BacktestTask, FailureKind

__all__ = ["Host", "TaskFailed", "shared"]

GiB = 1 << 30
STARTUP_SECONDS = 120.0
_PREFIXES = (
    "StrategyProcessError: ",
    "StrategyError: ",
    "ConfigError: ",
    "DataError: ",
    "ConfinementError: ",
    "TaskFailed: ",
)


class TaskFailed(AlphaloopError):
    """A task failed in the clean worker. ``str()`` is the worker's report; ``detail`` the
    message without its exception type; ``failure_kind`` a `FailureKind` value."""

    verbatim = True  # reported as is, not prefixed with this class's name again

    def __init__(self, report: str, failure_kind: str) -> None:
        super().__init__(report)
        self.failure_kind = failure_kind
        detail = report
        for p in _PREFIXES:
            if detail.startswith(p):
                detail = detail[len(p) :]
                break
        self.detail = detail


class Host:
    """One clean worker process; `run` sends it a task and waits for the result.

    Args:
        memory_limit: Address-space limit of the worker and of the strategy processes it forks.
    """

    def __init__(self, memory_limit: int | None = 2 * GiB) -> None:
        self.memory_limit = memory_limit
        self._proc: Any = None
        self._inbox: Any = None
        self._outbox: Any = None
        self._reader: Any = None
        self._fn: bytes | None = None
        self._n = 0
        self._ready = False

    def _ensure(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        self.close()
        from alphaloop.execution._launch import start_worker
        from alphaloop.execution._pipes import FrameReader

        self._proc, self._inbox, self._outbox = start_worker(self.memory_limit)
        self._reader = FrameReader(self._outbox)
        self._fn = None
        self._ready = False

    def start(self) -> Host:
        """Start the worker now (it imports for a second or so; start it before other work
        so that overlaps). Returns self."""
        self._ensure()
        return self

    def run(self, fn: TaskFn, task: BacktestTask, timeout: float | None = None) -> dict[str, Any]:
        """``fn(task)`` in the worker; raises `TaskFailed` (with the worker's message) when it
        fails, times out (the worker is killed) or the worker dies."""
        self._ensure()
        blob = pickle.dumps(fn)
        if blob != self._fn:
            self._inbox.send(("fn", blob))
            self._fn = blob
        self._n += 1
        self._inbox.send(("tasks", [(task.task_id, self._n, task.model_dump_json())]))
        proc = self._proc
        fds = [self._reader.fd, proc.sentinel]
        started = time.monotonic()
        deadline = None
        while True:
            if deadline is None and timeout is not None and self._ready:
                deadline = time.monotonic() + timeout  # the clock starts once it serves
            for msg in self._reader.read():
                if len(msg) == 1:  # ("ready",)
                    self._ready = True
                    if timeout is not None:
                        deadline = time.monotonic() + timeout
                    continue
                _tid, attempt, ok, body, _tb, *_rest = msg
                kind = msg[9] if len(msg) > 9 else FailureKind.TRANSIENT.value
                if attempt != self._n:
                    continue
                if msg[8]:  # fatal: the worker exits after this message
                    self.close()
                if ok:
                    return dict(json.loads(body))
                raise TaskFailed(body, kind or FailureKind.TRANSIENT.value)
            if not proc.is_alive() and self._reader.eof:
                code = proc.exitcode
                self.close()
                raise TaskFailed(
                    f"worker process died ({describe_exit(code)})", FailureKind.TRANSIENT.value
                )
            if not self._ready and time.monotonic() - started > STARTUP_SECONDS:
                self.close()
                raise TaskFailed("worker process did not start", FailureKind.TRANSIENT.value)
            wait = None if deadline is None else deadline - time.monotonic()
            if not self._ready:
                wait = 1.0
            if wait is not None and wait <= 0:
                self.close()
                raise TaskFailed(
                    f"timed out after {format_seconds(timeout or 0)} s", FailureKind.LIMIT.value
                )
            select.select(fds, [], [], wait)

    def close(self) -> None:
        """Stop the worker (killing it) and close the pipes. Idempotent."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(5.0)
            self._proc.close()
        for c in (self._inbox, self._outbox):
            if c is not None:
                with contextlib.suppress(OSError):
                    c.close()
        self._proc = self._inbox = self._outbox = self._reader = None

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        with contextlib.suppress(Exception):
            self.close()


_local = threading.local()


def shared() -> Host:
    """This thread's `Host` (started on first use, kept for the life of the process)."""
    host = getattr(_local, "host", None)
    if host is None:
        host = _local.host = Host()
    return host


def run_once(
    fn: TaskFn,
    task: BacktestTask,
    *,
    timeout: float | None,
    memory_limit: int | None,
    host: Host | None = None,
) -> dict[str, Any]:
    """``fn(task)`` in a clean worker (``host``, or one started for it), which is stopped
    afterwards (`TaskFailed` on failure)."""
    with host or Host(memory_limit=memory_limit) as h:
        return h.run(fn, task, timeout=timeout)
