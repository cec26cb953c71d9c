"""A clean worker driven by a Dask worker thread: a batch of tasks in, results as they come.

A Dask worker is not a clean template (it holds its own environment, threads and whatever the
cluster loaded), so tasks whose function is marked ``needs_clean_worker`` (the backtests) run
in a clean worker this thread starts (`_launch.start_worker`: the program a local pool worker
runs, which forks the kernel-confined strategy processes; `docs/sandbox.md`). Unlike `_host`
(one task per round trip, for the CLI), the batch goes over in chunks of `_FEED` claims,
topped up when `_LOW` are left, so the worker's prefetch keeps its strategy process busy, and
each result is passed on as soon as it is read.

As in the local pool: a task's timeout clock starts when the worker is ready and the task is
at the head of its backlog; on a timeout the worker is killed (its strategy process with it)
and the task fails (``timed out after N s``, limit); if the worker dies the task it was
running fails (``worker process died (...)``, transient); the rest of the batch goes to a new
worker. One clean worker per Dask worker thread, kept for the life of the process.
"""

from __future__ import annotations

import contextlib
import pickle
import select
import threading
import time
from collections import deque
from typing import Any

from alphaloop.execution._base import describe_exit, format_seconds
from alphaloop.execution._dask_batches import Stream, cut_at, failed
from alphaloop.execution._task import FailureKind

__all__ = ["CleanWorker", "shared"]

GiB = 1 << 30
STARTUP_SECONDS = 120.0
_FEED, _LOW = 24, 12
_ALIVE_SECONDS = 1.0


class CleanWorker:
    """One clean worker process and the pipes to it (started on first use)."""

    def __init__(self, memory_limit: int | None = 2 * GiB) -> None:
        self.memory_limit = memory_limit
        self.proc: Any = None
        self.inbox: Any = None
        self.reader: Any = None
        self._outbox: Any = None
        self._fn: bytes | None = None
        self.ready = False
        self._spawned = 0.0

    def _ensure(self, blob: bytes) -> None:
        if self.proc is None or not self.proc.is_alive():
            self.close()
            from alphaloop.execution._launch import start_worker
            from alphaloop.execution._pipes import FrameReader

            self.proc, self.inbox, self._outbox = start_worker(self.memory_limit)
            self.reader = FrameReader(self._outbox)
            self._fn, self.ready, self._spawned = None, False, time.monotonic()
        if self._fn != blob:
            self.inbox.send(("fn", blob))
            self._fn = blob

    def close(self) -> None:
        """Kill the worker and close the pipes. Idempotent."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.join(5.0)
            self.proc.close()
        for c in (self.inbox, self._outbox):
            if c is not None:
                with contextlib.suppress(OSError):
                    c.close()
        self.proc = self.inbox = self._outbox = self.reader = None

    def run(
        self,
        fn: Any,
        items: list[tuple[str, int, str] | None],
        key: str,
        stream: Stream,
        timeout: float,
    ) -> None:
        """Run ``items`` (``(task_id, attempt, payload)``, None: skip) in order; every result
        goes to ``stream``. Items from batch ``key``'s cut index on are not started."""
        blob = pickle.dumps(fn)
        todo: deque[tuple[int, tuple[str, int, str]]] = deque(
            (i, item) for i, item in enumerate(items) if item is not None
        )
        fed: deque[tuple[int, tuple[str, int, str]]] = deque()
        head_since = last_alive = time.monotonic()
        while todo or fed:
            self._ensure(blob)
            stop = cut_at(key)
            while stop is not None and todo and todo[-1][0] >= stop:
                todo.pop()
            if todo and len(fed) <= _LOW:
                chunk = [todo.popleft() for _ in range(min(len(todo), _FEED - len(fed)))]
                self.inbox.send(("tasks", [item for _i, item in chunk]))
                if not fed:
                    head_since = time.monotonic()
                fed.extend(chunk)
            if not fed:
                continue
            now = time.monotonic()
            wait = head_since + timeout - now if self.ready else _ALIVE_SECONDS
            due = stream.due_in()
            if due is not None:
                wait = min(wait, due)
            select.select([self.reader.fd, self.proc.sentinel], [], [], max(0.0, wait))
            for msg in self.reader.read():
                if len(msg) == 1:  # ("ready",)
                    self.ready, head_since = True, time.monotonic()
                    stream.send("alive")
                    continue
                task_id, attempt, ok, body, tb, started, elapsed, _rss, _fatal, kind = msg
                for j, (_i, (tid, att, _p)) in enumerate(fed):
                    if tid == task_id and att == attempt:
                        del fed[j]
                        break
                head_since = time.monotonic()
                result = (task_id, attempt, ok, body, tb, started, elapsed, self.proc.pid, kind)
                stream.add(result)  # type: ignore[arg-type]
            stream.flush_due()
            now = time.monotonic()
            if not self.ready and now - last_alive >= _ALIVE_SECONDS:
                stream.send("alive")  # the orchestrator's clock does not count the start-up
                last_alive = now
            if not self.proc.is_alive() and self.reader.eof:
                error = f"worker process died ({describe_exit(self.proc.exitcode)})"
                self._lost(fed, todo, stream, error, FailureKind.TRANSIENT, quiet=True)
            elif self.ready and fed and now - head_since > timeout:
                self.proc.kill()
                self.proc.join(5.0)
                for msg in self.reader.read():  # it may have finished just before the kill
                    if len(msg) > 1 and fed and (msg[0], msg[1]) == fed[0][1][:2]:
                        fed.popleft()
                        stream.add((*msg[:7], self.proc.pid, msg[9]))  # type: ignore[arg-type]
                error = f"timed out after {format_seconds(timeout)} s"
                self._lost(fed, todo, stream, error, FailureKind.LIMIT)
            elif not self.ready and now - self._spawned > STARTUP_SECONDS:
                self._lost(fed, todo, stream, "worker process did not start", FailureKind.TRANSIENT)

    def _lost(
        self,
        fed: deque[tuple[int, tuple[str, int, str]]],
        todo: deque[tuple[int, tuple[str, int, str]]],
        stream: Stream,
        error: str,
        kind: FailureKind,
        quiet: bool = False,
    ) -> None:
        """The worker is gone (or killed now): its running task fails with ``error``, unless
        it exited on purpose after reporting it (memory limit, ``quiet``); the tasks sent
        after it go to the next worker."""
        pid = self.proc.pid if self.proc is not None else 0
        exited_cleanly = quiet and self.proc is not None and self.proc.exitcode == 0
        self.close()
        if fed and not exited_cleanly:
            _i, (task_id, attempt, _p) = fed.popleft()
            result = failed(task_id, attempt, error, kind, time.time())
            stream.add((*result[:7], pid, result[8]))
        todo.extendleft(reversed(fed))
        fed.clear()


_local = threading.local()


def shared(memory_limit: int | None) -> CleanWorker:
    """This thread's clean worker (started on first use, kept for the life of the process)."""
    worker = getattr(_local, "worker", None)
    if worker is None or worker.memory_limit != memory_limit:
        if worker is not None:
            worker.close()
        worker = _local.worker = CleanWorker(memory_limit)
    return worker
