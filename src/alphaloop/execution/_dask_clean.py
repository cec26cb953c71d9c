"""Clean workers on a Dask worker: batches of tasks in, results out as they come.

A Dask worker is not a clean template (it holds its own environment, threads and whatever the
cluster loaded), so tasks whose function is marked ``needs_clean_worker`` (the backtests) run
in a clean worker this Dask worker process started (`_launch.start_worker`: the program a
local pool worker runs, which forks the kernel-confined strategy processes;
`docs/sandbox.md`).

Each clean worker is driven by its own *pump* thread, which alone touches its process and
pipes. A batch (`run`, in a Dask worker thread) hands its items to a clean worker as a `Job`
and waits. The pump feeds the jobs' items in order, in chunks of `_FEED` claims topped up when
`_LOW` are left, so the worker's prefetch keeps its strategy process busy, and passes each
result to its batch's stream as soon as it is read.

**Batches overlap.** Once all of a batch's items are in its clean worker's pipe, the batch
*secedes* from the Dask worker's thread pool (``distributed.secede``): Dask then starts the
next batch at once, and its items are fed right behind the last ones of the batch before, to
the same clean worker. Without this, each batch boundary left the clean worker idle for the
whole round trip (the batch returns, the scheduler hears it and sends the next one, which
reports its start and feeds its first chunk): ~25 ms on a quiet 2-core machine, more under
load, against ~0.15 s of work per batch.

As in the local pool: a task's timeout clock starts when the worker is ready and the task is
at the head of its backlog; on a timeout the worker is killed (its strategy process with it)
and the task fails (``timed out after N s``, limit); if the worker dies the task it was
running fails (``worker process died (...)``, transient); the tasks fed after it go to a new
worker. Clean workers are kept for the life of the Dask worker process (and die with it: each
one exits when its parent does), so a second run finds them started, with the bars they
loaded; one is started per Dask thread that needs one at the same time.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import pickle
import select
import threading
import time
from collections import deque
from typing import Any

from alphaloop.execution._base import describe_exit, format_seconds
from alphaloop.execution._dask_batches import Stream, cut_at, failed
from alphaloop.execution._task import FailureKind

__all__ = ["CleanWorker", "Job", "run"]

logger = logging.getLogger(__name__)

GiB = 1 << 30
STARTUP_SECONDS = 120.0
_FEED, _LOW = 24, 12
_ALIVE_SECONDS = 1.0

Item = tuple[str, int, str]


class Job:
    """One batch's items on a clean worker. ``fed_all`` is set once every item is in the
    worker's pipe (or dropped by a cut), ``done`` once every item has its result (or was
    dropped)."""

    def __init__(
        self, blob: bytes, items: list[Item | None], key: str, stream: Stream, timeout: float
    ) -> None:
        self.blob, self.key, self.stream, self.timeout = blob, key, stream, timeout
        self.todo: deque[tuple[int, Item]] = deque(
            (i, item) for i, item in enumerate(items) if item is not None
        )
        self.left = len(self.todo)
        self.fed_all = threading.Event()
        self.done = threading.Event()
        if not self.todo:
            self.fed_all.set()
            self.done.set()

    def resolve(self) -> None:
        self.left -= 1
        if self.left <= 0:
            self.done.set()


class CleanWorker:
    """One clean worker process (started on first use, replaced if it dies) and the pump
    thread that feeds it the jobs' items (see the module docstring)."""

    def __init__(self, memory_limit: int | None = 2 * GiB) -> None:
        self.memory_limit = memory_limit
        self.lock = threading.RLock()
        self.jobs: deque[Job] = deque()  # jobs with items not fed yet, in order (lock)
        self.feeding = 0  # jobs submitted and not fed_all (lock)
        self.retired = False
        self.fed: deque[tuple[Job, int, Item]] = deque()  # in the worker's pipe (pump only)
        self.proc: Any = None
        self.inbox: Any = None
        self.reader: Any = None
        self._outbox: Any = None
        self._fn: bytes | None = None
        self.ready = False
        self._spawned = 0.0
        self.head_since = self.last_alive = 0.0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ batch threads
    def submit(self, job: Job) -> None:
        """Queue ``job`` behind the jobs already here (any thread)."""
        with self.lock:
            self.jobs.append(job)
            self.feeding += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._pump, name="alphaloop-clean-worker", daemon=True
                )
                self._thread.start()
        self._wake()

    def retire(self) -> None:
        """Close the worker once it has no job left (its pump thread then ends)."""
        self.retired = True
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"w")

    # ------------------------------------------------------------------ the pump
    def _pump(self) -> None:
        try:
            while True:
                with self.lock:
                    if self.retired and not self.jobs and not self.fed:
                        self._thread = None
                        break
                self._top_up()
                self._wait()
                if self.fed:
                    self._read()
                    self._check()
                for job in self._jobs():
                    job.stream.flush_due()
        except BaseException as exc:  # a bug here must not leave batches waiting forever
            logger.exception("clean worker pump failed")
            error = f"clean worker pump failed: {type(exc).__name__}: {exc}"
            with self.lock:
                self._thread = None
                jobs = self._jobs()
                self.jobs.clear()
            self.fed.clear()
            for job in jobs:
                for _i, (task_id, attempt, _p) in job.todo:
                    job.stream.add(failed(task_id, attempt, error, FailureKind.TRANSIENT, 0.0))
                job.todo.clear()
                job.fed_all.set()
                job.done.set()
        finally:
            if self._thread is None:
                self.close()

    def _jobs(self) -> list[Job]:
        """The jobs with items here (fed or not), in order."""
        out: list[Job] = []
        for job, _i, _item in self.fed:
            if not out or out[-1] is not job:
                out.append(job)
        with self.lock:
            for job in self.jobs:
                if not out or out[-1] is not job:
                    out.append(job)
        return out

    def _top_up(self) -> None:
        """Feed the next chunk if the worker's backlog is low (items cut away are dropped)."""
        if len(self.fed) > _LOW:
            return
        with self.lock:
            if not self.jobs:
                return
        self._ensure()
        chunks: list[tuple[Job, list[tuple[int, Item]]]] = []
        room = _FEED - len(self.fed)
        with self.lock:
            while self.jobs and room > 0:
                job = self.jobs[0]
                stop = cut_at(job.key)
                while stop is not None and job.todo and job.todo[-1][0] >= stop:
                    job.todo.pop()
                    job.resolve()
                chunk = [job.todo.popleft() for _ in range(min(len(job.todo), room))]
                room -= len(chunk)
                if chunk:
                    chunks.append((job, chunk))
                if not job.todo:
                    self.jobs.popleft()
                    if not job.fed_all.is_set():
                        self.feeding -= 1
                        job.fed_all.set()
        for job, chunk in chunks:
            with contextlib.suppress(OSError):  # a worker that died is seen by `_check`
                if self._fn != job.blob:
                    self.inbox.send(("fn", job.blob))
                    self._fn = job.blob
                self.inbox.send(("tasks", [item for _i, item in chunk]))
            if not self.fed:
                self.head_since = time.monotonic()
            self.fed.extend((job, i, item) for i, item in chunk)

    def _ensure(self) -> None:
        if self.proc is None or not self.proc.is_alive():
            self.close()
            from alphaloop.execution._launch import start_worker
            from alphaloop.execution._pipes import FrameReader

            self.proc, self.inbox, self._outbox = start_worker(self.memory_limit)
            self.reader = FrameReader(self._outbox)
            self._fn, self.ready = None, False
            self._spawned = self.last_alive = time.monotonic()

    def _wait(self) -> None:
        """Until the worker answers, a job arrives, a result must be flushed or a limit runs
        out."""
        fds = [self._wake_r]
        wait: float | None = None
        if self.fed:
            fds += [self.reader.fd, self.proc.sentinel]
            now = time.monotonic()
            if self.ready:
                wait = self.head_since + self.fed[0][0].timeout - now
            else:
                wait = _ALIVE_SECONDS - (now - self.last_alive)
        for job in self._jobs():
            due = job.stream.due_in()
            if due is not None:
                wait = due if wait is None else min(wait, due)
        ready, _w, _x = select.select(fds, [], [], None if wait is None else max(0.0, wait))
        if self._wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 4096)

    def _read(self) -> None:
        for msg in self.reader.read():
            if len(msg) == 1:  # ("ready",)
                self.ready, self.head_since = True, time.monotonic()
                for job in self._jobs():
                    job.stream.send("alive")
                continue
            self._result(msg)

    def _result(self, msg: Any) -> None:
        task_id, attempt, ok, body, tb, started, elapsed, _rss, _fatal, kind = msg
        for j, (owner, _i, (tid, att, _p)) in enumerate(self.fed):
            if tid == task_id and att == attempt:
                job = owner
                del self.fed[j]
                break
        else:
            return
        self.head_since = time.monotonic()
        job.stream.add((task_id, attempt, ok, body, tb, started, elapsed, self.proc.pid, kind))
        job.resolve()

    def _check(self) -> None:
        """The worker died, the head task overran, or the worker never started."""
        now = time.monotonic()
        if not self.ready and now - self.last_alive >= _ALIVE_SECONDS:
            for job in self._jobs():  # the orchestrator's clock does not count the start-up
                job.stream.send("alive")
            self.last_alive = now
        if not self.proc.is_alive() and self.reader.eof:
            error = f"worker process died ({describe_exit(self.proc.exitcode)})"
            self._lost(error, FailureKind.TRANSIENT, quiet=True)
        elif self.ready and self.fed and now - self.head_since > self.fed[0][0].timeout:
            head, timeout = self.fed[0][2][:2], self.fed[0][0].timeout
            self.proc.kill()
            self.proc.join(5.0)
            for msg in self.reader.read():  # it may have finished just before the kill
                if len(msg) > 1:
                    self._result(msg)
            if self.fed and self.fed[0][2][:2] == head:
                self._lost(f"timed out after {format_seconds(timeout)} s", FailureKind.LIMIT)
            else:  # it had finished: nothing to blame, the rest goes to the next worker
                self._lost("", FailureKind.LIMIT, blame=False)
        elif not self.ready and now - self._spawned > STARTUP_SECONDS:
            self._lost("worker process did not start", FailureKind.TRANSIENT)

    def _lost(self, error: str, kind: FailureKind, quiet: bool = False, blame: bool = True) -> None:
        """The worker is gone (or killed now): its running task fails with ``error``, unless
        it exited on purpose after reporting it (memory limit, ``quiet``); the tasks fed
        after it go back to their jobs, for the next worker."""
        pid = self.proc.pid if self.proc is not None else 0
        exited_cleanly = quiet and self.proc is not None and self.proc.exitcode == 0
        self.close()
        if self.fed and blame and not exited_cleanly:
            job, _i, (task_id, attempt, _p) = self.fed.popleft()
            result = failed(task_id, attempt, error, kind, time.time())
            job.stream.add((*result[:7], pid, result[8]))
            job.resolve()
        back: dict[Job, list[tuple[int, Item]]] = {}
        for job, i, item in self.fed:
            back.setdefault(job, []).append((i, item))
        self.fed.clear()
        with self.lock:
            for job in reversed(list(back)):
                job.todo.extendleft(reversed(back[job]))
                if not any(j is job for j in self.jobs):
                    self.jobs.appendleft(job)

    def close(self) -> None:
        """Kill the worker and close the pipes (pump thread only, or when none runs)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.join(5.0)
            self.proc.close()
        for c in (self.inbox, self._outbox):
            if c is not None:
                with contextlib.suppress(OSError):
                    c.close()
        self.proc = self.inbox = self._outbox = self.reader = None


_WORKERS: list[CleanWorker] = []
_WORKERS_LOCK = threading.Lock()


def pick(memory_limit: int | None) -> CleanWorker:
    """The clean worker for a new batch: one no other batch is still feeding (the one whose
    backlog is shortest: a batch that just seceded is finishing there), else a new one.
    Workers of another memory limit are retired."""
    with _WORKERS_LOCK:
        for w in [w for w in _WORKERS if w.memory_limit != memory_limit]:
            _WORKERS.remove(w)
            w.retire()
        free = [w for w in _WORKERS if w.feeding == 0]
        if free:
            return min(free, key=lambda w: len(w.fed) + sum(len(j.todo) for j in w.jobs))
        worker = CleanWorker(memory_limit)
        _WORKERS.append(worker)
        return worker


@atexit.register
def _close_all() -> None:
    with _WORKERS_LOCK:
        for w in _WORKERS:
            w.retire()
            with contextlib.suppress(Exception):
                if w.proc is not None:
                    w.proc.kill()


def run(
    fn: Any,
    items: list[Item | None],
    key: str,
    stream: Stream,
    timeout: float,
    memory_limit: int | None,
) -> None:
    """Run ``items`` (``(task_id, attempt, payload)``, None: skip) in order on a clean
    worker; every result goes to ``stream``. Items from batch ``key``'s cut index on are not
    started. Once all are fed, this thread leaves the Dask worker's pool (see the module
    docstring) and waits for the last results."""
    job = Job(pickle.dumps(fn), items, key, stream, timeout)
    if job.done.is_set():
        return
    pick(memory_limit).submit(job)
    job.fed_all.wait()
    if stream.worker is not None:
        with contextlib.suppress(Exception):
            from distributed import secede

            secede()
    job.done.wait()
