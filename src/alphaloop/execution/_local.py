"""LocalPool: long-lived worker processes on this machine, driven by one event loop.

Design
------
* **Processes, forkserver.** Backtests are CPU-bound, so workers are processes. They are
  started from a forkserver (a clean, single-threaded server process forked early), not
  forked from the orchestrator: the orchestrator holds SQLite connections and may run
  threads (logging, a Dask client), and ``fork`` would copy those mid-flight. Forkserver
  children start in ~10 ms, far cheaper than ``spawn``.
* **One single-threaded loop in the parent** waits on every worker's result pipe and process
  sentinel (one persistent ``select.poll``) plus a self-pipe for signals. All
  bookkeeping (outstanding claims, busy workers, counters) lives in that loop: nothing is
  shared between threads, so counters cannot race.
* **Tasks, not data, in small batches.** Each worker holds a short FIFO of claims; the depth
  adapts to the measured task duration (about ``batch_seconds`` of work, at least 2 so a
  worker never waits for a round trip, at most ``max_batch``); each run measures its own
  task duration. Near the end of the queue the remainder goes out in shrinking pieces
  (guided self-scheduling) so the workers finish together. Workers load market data
  themselves through the per-process cache of ``alphaloop.data.load`` and stay alive across
  tasks and runs, so the cache pays off.
* **Few transactions per task.** Results that arrive close together (within
  ``commit_interval``) are recorded in ONE transaction (:meth:`TaskQueue.mark_completed_many`,
  still guarded per task), and ``on_result`` is called only after that commit. Workers send the
  JSON text they produced; it is stored as-is. While every busy worker has queued claims behind
  its running task the loop sleeps on process sentinels and the signal pipe only, then reads
  all the results at once (one ``read`` per worker, :class:`~._pipes.FrameReader`). Top-ups
  claim for all workers in one transaction. A result received
  but not yet committed when the orchestrator is SIGKILLed is lost and its task re-runs after
  recovery (at-least-once execution, exactly-once recording); nothing acknowledged through
  ``on_result`` is ever lost.
* **Recycling.** A worker is retired (after its backlog) when it has run
  ``max_tasks_per_worker`` tasks or its RSS exceeds ``max_worker_rss``, and replaced at once.
* **Limits.** Wall timeout per task (the parent SIGKILLs the worker) and an address-space
  limit per worker (``RLIMIT_AS``; a ``MemoryError`` is reported as exceeding it). Either is a
  failed attempt; the worker is replaced, so the pool stays at strength.
* **Resource-aware dispatch without sleeping.** Before giving work to an idle worker while
  another is busy (i.e. before starting an ADDITIONAL concurrent task), the pool samples the
  :class:`ResourceProbe` (cached, never blocking). Over a threshold, it holds back (and lets
  concurrency drain to one busy worker); it always keeps one task running so it cannot starve
  itself. It logs once when it starts holding back and once when it resumes.
* **Shutdown.** On SIGINT/SIGTERM (handlers installed only while ``run`` executes in the main
  thread) the pool stops dispatching, lets running tasks finish for ``grace`` seconds, then
  kills what is left; unfinished claims go back to QUEUED without using a retry. ``run``
  returns a summary with ``interrupted=True`` (``exit_code`` 130/143). A second signal kills
  at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import pickle
import select
import signal
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from alphaloop.execution._base import (
    Executor,
    OnResult,
    StopWhen,
    TaskFn,
    describe_exit,
    format_bytes,
    format_seconds,
)
from alphaloop.execution._launch import start_worker
from alphaloop.execution._pipes import FrameReader
from alphaloop.execution._pool_probe import PoolProbe
from alphaloop.execution._probe import ResourceGate, ResourceProbe
from alphaloop.execution._queue import TaskQueue
from alphaloop.execution._schedule import batch_depth, guided_share
from alphaloop.execution._task import Claim, FailureKind, RunSummary, TaskState

logger = logging.getLogger(__name__)

GiB = 1 << 30
_DURATIONS = 1000
"""Task times kept for the derived timeout (the most recent ones)."""
STARTUP_SECONDS = 120.0
"""A worker that has not started serving after this long is killed and replaced."""
MIN_SAMPLES, FLOOR_SECONDS, P95_FACTOR = 5, 10.0, 50.0
"""The derived timeout: once ``MIN_SAMPLES`` task times are known, ``max(FLOOR_SECONDS,
P95_FACTOR x their 95th percentile)``."""
_FLUSH_MAX = 512
"""Most results recorded in one transaction."""


def derived_timeout(durations: Iterable[float], cap: float) -> float:
    """``min(cap, max(10 s, 50 x p95))`` of the measured task times, or ``cap`` with fewer
    than 5 of them."""
    xs = sorted(durations)
    if len(xs) < MIN_SAMPLES:
        return cap
    p95 = xs[min(len(xs) - 1, int(0.95 * (len(xs) - 1) + 0.5))]
    return min(cap, max(FLOOR_SECONDS, P95_FACTOR * p95))


def default_workers() -> int:
    """``min(5, usable CPUs)``."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        n = os.cpu_count() or 1
    return max(1, min(5, n))


@dataclass(eq=False)
class _Worker:
    proc: Any
    inbox: Connection
    outbox: Connection
    outstanding: deque[Claim] = field(default_factory=deque)
    reader: Any = None  # FrameReader of the result pipe
    head_since: float = 0.0
    ready: bool = False  # imported and serving; a task's clock starts no earlier
    spawned_at: float = 0.0
    tasks_done: int = 0
    rss: int = 0
    retiring: bool = False
    fatal: bool = False
    stopping: bool = False
    dead: bool = False

    @property
    def pid(self) -> int:  # read when needed: a worker forked from a template gets it later
        return int(self.proc.pid)


@dataclass
class _Counts:
    completed: int = 0
    failed_attempts: int = 0
    gave_up: int = 0


class LocalPool(Executor):
    """A pool of worker processes on this machine (see the module docstring).

    Args:
        max_workers: Worker processes; default ``min(5, usable CPUs)``.
        task_timeout: Wall seconds one task may run before its worker is killed. None (the
            default): derived from the task times measured so far, ``max(10 s, 50 x p95)``
            once 5 tasks have finished, and at most ``max_task_timeout``.
        max_task_timeout: The longest a task may ever run (the timeout until it is derived).
        memory_limit: Address-space limit per worker in bytes (``RLIMIT_AS``); None: none.
        max_tasks_per_worker: Replace a worker after this many tasks (a worker runs only
            alphaloop's code, strategy code runs in its strategy processes, and growth is
            caught by ``max_worker_rss``: the count is a backstop, and each replacement
            costs a new worker's start).
        max_worker_rss: Replace a worker whose resident memory exceeds this many bytes.
        cpu_threshold: Hold back additional tasks while CPU use *outside this pool* is above
            this fraction.
        memory_threshold: Hold back additional tasks while system memory use is above this
            fraction.
        probe: Source of CPU/memory readings (default :class:`~._pool_probe.PoolProbe`: the
            CPU of this process and of all its descendants is the pool's own).
        grace: Seconds running tasks get to finish after SIGINT/SIGTERM.
        max_batch: Most claims queued at one worker.
        batch_seconds: Target seconds of work queued at one worker.
        commit_interval: Results that arrive within this many seconds of each other are
            recorded in one transaction (0: one transaction per wake-up of the loop).
    """

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        task_timeout: float | None = None,
        max_task_timeout: float = 300.0,
        memory_limit: int | None = 2 * GiB,
        max_tasks_per_worker: int = 10_000,
        max_worker_rss: int = 1 * GiB,
        cpu_threshold: float = 0.8,
        memory_threshold: float = 0.8,
        probe: ResourceProbe | None = None,
        grace: float = 10.0,
        max_batch: int = 64,
        batch_seconds: float = 0.05,
        commit_interval: float = 0.02,
    ) -> None:
        self.max_workers = max_workers or default_workers()
        if self.max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        if task_timeout is not None and task_timeout <= 0:
            raise ValueError(f"task_timeout must be > 0 seconds, got {task_timeout}")
        if max_task_timeout <= 0:
            raise ValueError(f"max_task_timeout must be > 0 seconds, got {max_task_timeout}")
        if max_tasks_per_worker < 1 or max_batch < 1:
            raise ValueError("max_tasks_per_worker and max_batch must be >= 1")
        self.fixed_timeout = None if task_timeout is None else float(task_timeout)
        self.max_task_timeout = float(max_task_timeout)
        self._durations: deque[float] = deque(maxlen=_DURATIONS)
        self._timeout: float | None = None
        self._new_durations = 0
        self.memory_limit = memory_limit
        self.max_tasks_per_worker = max_tasks_per_worker
        self.max_worker_rss = max_worker_rss
        self.grace = grace
        self.max_batch = max_batch
        self.batch_seconds = batch_seconds
        if commit_interval < 0:
            raise ValueError(f"commit_interval must be >= 0 seconds, got {commit_interval}")
        self.commit_interval = float(commit_interval)
        self._gate = ResourceGate(probe or PoolProbe(), cpu_threshold, memory_threshold, logger)
        self._workers: list[_Worker] = []
        self._exiting: list[_Worker] = []
        self._fn_msg: tuple[str, bytes] | None = None
        self._task_seconds: float | None = None
        self._fresh_estimate = False  # has this run measured a task yet?
        self._signal: int | None = None
        self._force = False
        self._running = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        self._closed = False
        # completions read but not yet recorded: (worker, task_id, attempt, body, started)
        self._done: list[tuple[_Worker, str, int, str, float]] = []
        self._done_since = 0.0
        self._ready_hint: int | None = None  # ready tasks left, counted near the end only
        self._on_result: OnResult | None = None
        self._poll: Any = None
        self._quiet_poll: Any = None
        self._poll_key: tuple[int, ...] = ()
        self._poll_map: dict[int, tuple[_Worker | None, bool]] = {}

    # ------------------------------------------------------------------ workers
    @property
    def worker_pids(self) -> list[int]:
        """PIDs of the live workers (for tests and monitoring)."""
        return [w.pid for w in self._workers]

    @property
    def task_timeout(self) -> float:
        """The wall timeout a task gets now (fixed, or derived from measured task times)."""
        if self.fixed_timeout is not None:
            return self.fixed_timeout
        if self._timeout is None or self._new_durations >= 25:  # a sort per 25 results
            self._timeout = derived_timeout(self._durations, self.max_task_timeout)
            self._new_durations = 0
        return self._timeout

    @staticmethod
    def _clock(w: _Worker) -> float:
        """When ``w``'s running task started, as far as timeouts go: never before the worker
        was ready (a new interpreter imports for a while before it serves)."""
        return w.head_since if w.ready else math.inf

    def _spawn(self) -> _Worker:
        proc, inbox_w, outbox_r = start_worker(self.memory_limit)
        w = _Worker(
            proc=proc, inbox=inbox_w, outbox=outbox_r, spawned_at=time.monotonic()
        )
        w.reader = FrameReader(outbox_r)
        if self._fn_msg is not None:
            self._send(w, self._fn_msg)
        self._workers.append(w)
        return w

    def _send(self, w: _Worker, msg: tuple[Any, ...]) -> bool:
        try:
            w.inbox.send(msg)
            return True
        except (OSError, ValueError):
            return False

    def _ensure_strength(self) -> None:
        while len(self._workers) < self.max_workers:
            self._spawn()

    def close(self) -> None:
        """Stop all workers (kills after 5 s). Idempotent."""
        if self._closed:
            return
        self._closed = True
        for w in self._workers:
            if w.ready or w.outstanding:
                self._send(w, ("stop",))
            else:  # still importing, no task: no strategy process, nothing to wait for
                w.proc.kill()
        deadline = time.monotonic() + 5.0
        for w in [*self._workers, *self._exiting]:
            w.proc.join(max(0.0, deadline - time.monotonic()))
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(1.0)
            for c in (w.inbox, w.outbox):
                c.close()
            w.proc.close()
        self._workers.clear()
        self._exiting.clear()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __del__(self) -> None:  # pragma: no cover - best effort
        with contextlib.suppress(Exception):
            if not self._closed:
                self.close()

    # ------------------------------------------------------------------ signals
    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self._signal is not None:
            self._force = True
        self._signal = signum
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\0")

    # ------------------------------------------------------------------ run
    def run(
        self,
        queue: TaskQueue,
        fn: TaskFn,
        *,
        on_result: OnResult | None = None,
        stop_when: StopWhen | None = None,
    ) -> RunSummary:
        """Drain ``queue`` with ``fn`` in the worker processes (see :class:`Executor`)."""
        if self._closed:
            raise RuntimeError("this LocalPool is closed; create a new one")
        if self._running:
            raise RuntimeError("LocalPool.run is not re-entrant")
        blob = self._pickle(fn)
        self._running = True
        self._signal, self._force = None, False
        self._on_result = on_result
        self._done.clear()
        self._ready_hint = None
        # the previous run's tasks may have been much slower or faster: keep its estimate for
        # the first batch size only, and replace it with this run's first measurement
        self._fresh_estimate = False
        t0 = time.monotonic()
        counts = _Counts()
        stopped = False
        old_handlers: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                old_handlers[sig] = signal.signal(sig, self._on_signal)
        try:
            self._set_fn(blob)
            self._ensure_strength()
            stopped = self._loop(queue, counts, on_result, stop_when)
            if stopped or self._signal is not None:
                self._drain(queue, counts, on_result)
            self._flush(queue, counts, on_result)
        except BaseException:
            self._abort(queue)
            raise
        finally:
            for sig, h in old_handlers.items():
                signal.signal(sig, h)
            self._running = False
            self._on_result = None
        summary = RunSummary(
            completed=counts.completed,
            failed_attempts=counts.failed_attempts,
            gave_up=counts.gave_up,
            elapsed=time.monotonic() - t0,
            stopped=stopped and self._signal is None,
            interrupted=self._signal is not None,
            signal=self._signal,
        )
        if summary.interrupted:
            logger.warning(
                "run interrupted by %s; unfinished tasks are back in the queue",
                signal.Signals(self._signal).name,
            )  # type: ignore[arg-type]
        return summary

    def start(self, fn: TaskFn | None = None) -> None:
        """Start the workers now and return at once, without waiting for them.

        A worker is a new interpreter that imports numpy, pandas and TA-Lib and warms up
        ``fn`` (its kernels) before it serves: about a second of start-up, which otherwise
        delays the first task of the first `run`. Started here, it overlaps whatever the
        caller does next (`make_executor` starts it at once; the orchestrator starts a pool
        not yet started as research begins). `run` uses
        the workers started here; calling `start` again, or `run` with another ``fn``, is
        fine. Results do not depend on when workers start."""
        if self._closed:
            raise RuntimeError("this LocalPool is closed; create a new one")
        if fn is not None:
            self._set_fn(self._pickle(fn))
        self._ensure_strength()

    @staticmethod
    def _pickle(fn: TaskFn) -> bytes:
        try:
            return pickle.dumps(fn)
        except Exception as exc:
            raise TypeError(
                f"task function {fn!r} cannot be sent to worker processes ({exc}); use a "
                "module-level function"
            ) from exc

    def _set_fn(self, blob: bytes) -> None:
        """Make ``blob`` the task function of every worker (sent only when it changes)."""
        if self._fn_msg is None or self._fn_msg[1] != blob:
            self._fn_msg = ("fn", blob)
            for w in self._workers:
                self._send(w, self._fn_msg)

    def _depth(self) -> int:
        return batch_depth(self._task_seconds, self.batch_seconds, self.max_batch)

    def _loop(
        self,
        queue: TaskQueue,
        counts: _Counts,
        on_result: OnResult | None,
        stop_when: StopWhen | None,
    ) -> bool:
        """Dispatch until drained. Returns True if ``stop_when`` fired."""
        dry_until = 0.0
        while True:
            if self._signal is not None:
                return False
            if stop_when is not None and stop_when():
                return True
            now = time.monotonic()
            if now >= dry_until:
                got_all = self._dispatch(queue)
                if not got_all:
                    dry_until = now + 0.05
            busy = [w for w in self._workers if w.outstanding]
            if not busy:
                nxt = queue.next_ready_in()
                if nxt is None:
                    return False
                dry_until = 0.0
                timeout = min(max(nxt, 0.001), 0.5)
            else:
                deadline = min(self._clock(w) for w in busy) + self.task_timeout
                timeout = max(0.0, min(deadline - now, 0.25))
            if self._handle_events(queue, counts, on_result, timeout):
                dry_until = 0.0
            self._check_timeouts(queue, counts)
            self._replace_lost()

    def _dispatch(self, queue: TaskQueue) -> bool:
        """Top up workers' backlogs. Returns False if the queue ran short.

        Nothing happens until some worker is down to half its target depth; then every
        worker below the target is topped up, with ONE claim transaction for all of them."""
        depth = self._depth()
        half = depth // 2
        eligible = sorted(
            (w for w in self._workers if not (w.retiring or w.stopping)),
            key=lambda w: len(w.outstanding),
        )
        if not eligible or len(eligible[0].outstanding) > half:
            return True
        n_busy = sum(1 for w in self._workers if w.outstanding)
        fair: int | None = None  # per-worker share of the remaining work (near the end)
        plan: list[tuple[_Worker, int]] = []
        for w in eligible:
            have = len(w.outstanding)
            if have >= depth:
                continue
            # an additional concurrent task (or keeping >1 busy) must pass the resource gate;
            # the first busy worker never waits, so the pool cannot starve itself
            adds_load = (have == 0 and n_busy >= 1) or (have > 0 and n_busy > 1)
            if adds_load and not self._gate.open([x.pid for x in self._workers]):
                continue
            want = min(depth - have, self.max_tasks_per_worker - w.tasks_done - have)
            if want <= 0:
                w.retiring = True
                continue
            if want > 1 and len(eligible) > 1:
                # near the end of the queue, what is left goes out in shrinking pieces
                if fair is None:
                    cap = depth * len(eligible)
                    if self._ready_hint is None or self._ready_hint < 2 * cap:
                        self._ready_hint = queue.count_ready(limit=4 * cap)
                    backlog = sum(len(x.outstanding) for x in eligible)
                    fair = guided_share(self._ready_hint, backlog, len(eligible), depth)
                want = min(want, max(1 if have == 0 else 0, fair - have))
                if want <= 0:
                    continue
            plan.append((w, want))
            if have == 0:
                n_busy += 1
        if not plan:
            return True
        parts = queue.dequeue_split([(want, w.pid) for w, want in plan])
        if self._ready_hint is not None:
            self._ready_hint -= sum(len(p) for p in parts)
        got_all = True
        for (w, want), claims in zip(plan, parts, strict=True):
            if len(claims) < want:
                got_all = False
            if not claims:
                continue
            if not self._send(w, ("tasks", [(c.task_id, c.attempt, c.payload) for c in claims])):
                queue.release_many([(c.task_id, c.attempt) for c in claims])
                continue
            if not w.outstanding:
                w.head_since = time.monotonic()
            w.outstanding.extend(claims)
        return got_all

    def _poller(self) -> Any:
        """A ``select.poll`` over every worker's result pipe and process sentinel plus the
        signal self-pipe (and one over sentinels and self-pipe only, ``self._quiet_poll``);
        rebuilt only when the set of workers changes."""
        ws = [*self._workers, *self._exiting]
        key = tuple(id(w) for w in ws)
        if self._poll is None or key != self._poll_key:
            p, quiet = select.poll(), select.poll()
            fds: dict[int, tuple[_Worker | None, bool]] = {self._wake_r: (None, False)}
            quiet.register(self._wake_r, select.POLLIN)
            for w in ws:
                fds[w.outbox.fileno()] = (w, False)
                fds[w.proc.sentinel] = (w, True)
                quiet.register(w.proc.sentinel, select.POLLIN)
            for fd in fds:
                p.register(fd, select.POLLIN)
            self._poll, self._poll_key, self._poll_map = p, key, fds
            self._quiet_poll = quiet
        return self._poll

    def _slack(self) -> float:
        """Seconds the loop may leave results unread: while every busy worker still has
        queued claims behind its running task, reading a result earlier changes nothing
        (the claim backlog, not the parent, keeps the worker busy). Half the estimated
        queued work of the least-stocked busy worker, at most ``commit_interval / 2``;
        0 when any busy worker is on its last claim or is stopping."""
        ts = self._task_seconds
        if (
            ts is None
            or not self._fresh_estimate
            or self._signal is not None
            or self.commit_interval <= 0
        ):
            return 0.0
        least = None
        for w in self._workers:
            n = len(w.outstanding)
            if n:
                if w.stopping or w.retiring:
                    return 0.0
                least = n if least is None else min(least, n)
        if least is None or self._exiting:
            return 0.0
        return min(self.commit_interval / 2, (least - 1) * ts / 2)

    def _handle_events(
        self, queue: TaskQueue, counts: _Counts, on_result: OnResult | None, timeout: float
    ) -> bool:
        """Wait for results/deaths up to ``timeout``; returns True if anything happened.

        Every result that arrived is recorded in one transaction before it returns."""
        poller = self._poller()
        quiet = self._slack() if timeout > 0 else 0.0
        if quiet >= 0.001:
            # results can wait a little: sleep on deaths and signals only, then take every
            # result that arrived in the meantime in one go (fewer wake-ups, fewer commits)
            self._quiet_poll.poll(int(min(timeout, quiet) * 1000))
            timeout = 0.0
        if self._done:
            # don't sleep past the moment the pending results are due to be committed
            due = self._done_since + self.commit_interval - time.monotonic()
            timeout = max(0.0, min(timeout, due))
        ready = poller.poll(max(0, int(timeout * 1000 + 0.999)))
        if not ready:
            self._flush_due(queue, counts, on_result)
            return False
        fds = self._poll_map
        dead: list[_Worker] = []
        for fd, _ev in ready:
            w, is_sentinel = fds.get(fd, (None, False))
            if w is None:
                if fd == self._wake_r:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 512)
                continue
            if w.dead:
                continue
            self._read_results(w, queue, counts)
            if is_sentinel:
                dead.append(w)
        self._flush_due(queue, counts, on_result)
        for w in dead:
            self._reap(w, queue, counts)
        return True

    def _flush_due(self, queue: TaskQueue, counts: _Counts, on_result: OnResult | None) -> None:
        """:meth:`_flush` if the oldest pending result has waited ``commit_interval``, if
        many are pending, or if no worker has work left (nothing more is coming soon)."""
        if not self._done:
            return
        if (
            len(self._done) >= _FLUSH_MAX
            or time.monotonic() - self._done_since >= self.commit_interval
            or not any(w.outstanding for w in self._workers)
        ):
            self._flush(queue, counts, on_result)

    def _flush(self, queue: TaskQueue, counts: _Counts, on_result: OnResult | None) -> None:
        """Record the completions read so far in ONE transaction, then call ``on_result``
        for each one that was recorded (never before its result is committed)."""
        if not self._done:
            return
        items, self._done = self._done, []
        try:
            # the worker produced each body with json.dumps(dict(result)): a JSON object by
            # construction, stored as-is (parsed here only when a callback needs the dict)
            parsed = [json.loads(it[3]) for it in items] if on_result is not None else None
            oks = queue._mark_completed_texts(
                [(tid, body, attempt, w.pid, started) for w, tid, attempt, body, started in items]
            )
        except BaseException:
            self._done = items + self._done  # unrecorded: _abort hands them back
            raise
        counts.completed += sum(oks)
        if on_result is not None and parsed is not None:
            for it, ok, result in zip(items, oks, parsed, strict=True):
                if ok:
                    on_result(it[1], result)

    def _read_results(self, w: _Worker, queue: TaskQueue, counts: _Counts) -> None:
        """Take every message waiting in ``w``'s result pipe. Failures are recorded at once;
        completions are queued in ``self._done`` for :meth:`_flush` (one transaction)."""
        for msg in w.reader.read():
            if len(msg) == 1:  # ("ready",): the worker starts serving now
                w.ready = True
                w.head_since = time.monotonic()
                continue
            task_id, attempt, ok, body, tb, started, elapsed, rss, fatal, kind = msg
            claim = None
            for i, c in enumerate(w.outstanding):
                if c.task_id == task_id and c.attempt == attempt:
                    claim = c
                    del w.outstanding[i]
                    break
            w.head_since = time.monotonic()
            w.tasks_done += 1
            w.rss = rss
            self._durations.append(elapsed)
            self._new_durations += 1
            ts = self._task_seconds
            if ts is None or not self._fresh_estimate:
                self._task_seconds, self._fresh_estimate = elapsed, True
            else:
                self._task_seconds = 0.8 * ts + 0.2 * elapsed
            if claim is None:
                continue
            if ok:
                if not self._done:
                    self._done_since = time.monotonic()
                self._done.append((w, task_id, attempt, body, started))
            else:
                self._fail(queue, counts, task_id, attempt, body, tb, w.pid, started, kind)
            if fatal:
                w.retiring = w.fatal = True
            elif w.tasks_done >= self.max_tasks_per_worker or (
                self.max_worker_rss and rss > self.max_worker_rss
            ):
                if not w.retiring:
                    logger.debug(
                        "recycling worker %d after %d tasks (RSS %s)",
                        w.pid,
                        w.tasks_done,
                        format_bytes(rss),
                    )
                w.retiring = True

    def _fail(
        self,
        queue: TaskQueue,
        counts: _Counts,
        task_id: str,
        attempt: int,
        error: str,
        tb: str | None,
        pid: int | None,
        started: float | None = None,
        kind: str | FailureKind = FailureKind.TRANSIENT,
    ) -> None:
        if queue.mark_failed(
            task_id,
            error,
            tb,
            attempt=attempt,
            worker_pid=pid,
            started_at=started,
            kind=kind or FailureKind.TRANSIENT,
        ):
            counts.failed_attempts += 1
            logger.info("task %s attempt %d failed: %s", task_id, attempt, error)
            if queue.state(task_id) is TaskState.FAILED:
                counts.gave_up += 1

    def _reap(
        self,
        w: _Worker,
        queue: TaskQueue,
        counts: _Counts,
        head_error: str | None = None,
        interrupted: str | None = None,
        head_kind: FailureKind = FailureKind.TRANSIENT,
    ) -> None:
        """Resolve a dead (or killed) worker's claims and forget it."""
        if w.dead:
            return
        w.dead = True
        w.proc.join(1.0)
        self._read_results(w, queue, counts)
        pending = list(w.outstanding)
        w.outstanding.clear()
        if pending:
            head, rest = pending[0], pending[1:]
            if interrupted is not None:
                queue.release(head.task_id, head.attempt, started=True, reason=interrupted)
            elif (w.fatal and w.proc.exitcode == 0) or (w.stopping and w.proc.exitcode == 0):
                rest = pending
            else:
                err = head_error or f"worker process died ({describe_exit(w.proc.exitcode)})"
                self._fail(
                    queue, counts, head.task_id, head.attempt, err, None, w.pid, None, head_kind
                )
            if rest:
                queue.release_many([(c.task_id, c.attempt) for c in rest])
        for lst in (self._workers, self._exiting):
            if w in lst:
                lst.remove(w)
        for c in (w.inbox, w.outbox):
            c.close()
        w.proc.close()
        self._flush(queue, counts, self._on_result)

    def _check_timeouts(self, queue: TaskQueue, counts: _Counts) -> None:
        now = time.monotonic()
        limit = self.task_timeout
        for w in list(self._workers):
            if not w.ready and now - w.spawned_at > STARTUP_SECONDS:
                w.proc.kill()
                w.proc.join(2.0)
                self._reap(w, queue, counts, interrupted="worker process did not start")
                continue
            if w.outstanding and now - self._clock(w) > limit:
                head = w.outstanding[0]
                w.proc.kill()
                w.proc.join(2.0)
                self._read_results(w, queue, counts)
                if w.outstanding and w.outstanding[0] is head:
                    err = f"timed out after {format_seconds(limit)} s"
                    self._reap(w, queue, counts, head_error=err, head_kind=FailureKind.LIMIT)
                else:
                    self._reap(w, queue, counts, interrupted="worker replaced after a timeout")

    def _replace_lost(self) -> None:
        """Retire idle workers marked for recycling and keep the pool at strength."""
        for w in list(self._workers):
            if w.retiring and not w.outstanding and not w.stopping:
                self._send(w, ("stop",))
                w.stopping = True
                self._workers.remove(w)
                self._exiting.append(w)
        if self._signal is None and not self._closed:
            self._ensure_strength()

    def _drain(self, queue: TaskQueue, counts: _Counts, on_result: OnResult | None) -> None:
        """Stop dispatching; let running tasks finish (within ``grace`` after a signal)."""
        for w in self._workers:
            self._send(w, ("stop",))
            w.stopping = True
        self._exiting.extend(self._workers)
        self._workers.clear()
        deadline = time.monotonic() + self.grace if self._signal is not None else None
        while self._exiting:
            if self._force or (deadline is None and self._signal is not None):
                deadline = time.monotonic() if self._force else time.monotonic() + self.grace
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                why = (
                    "interrupted by "
                    f"{signal.Signals(self._signal).name if self._signal else 'shutdown'}"
                )
                for w in list(self._exiting):
                    w.proc.kill()
                    self._reap(w, queue, counts, interrupted=why)
                break
            timeout = 0.25 if deadline is None else max(0.0, min(deadline - now, 0.25))
            self._handle_events(queue, counts, on_result, timeout)
            now = time.monotonic()
            limit = self.task_timeout
            for w in list(self._exiting):
                if w.outstanding and now - self._clock(w) > limit:
                    w.proc.kill()
                    w.proc.join(2.0)
                    err = f"timed out after {format_seconds(limit)} s"
                    self._reap(w, queue, counts, head_error=err, head_kind=FailureKind.LIMIT)

    def _abort(self, queue: TaskQueue) -> None:
        """Emergency exit (exception in the loop): kill workers, hand every claim back."""
        for w in [*self._workers, *self._exiting]:
            with contextlib.suppress(Exception):
                w.proc.kill()
                w.proc.join(2.0)
            pending = list(w.outstanding)
            w.outstanding.clear()
            with contextlib.suppress(Exception):
                if pending:
                    queue.release(
                        pending[0].task_id,
                        pending[0].attempt,
                        started=True,
                        reason="orchestrator error",
                    )
                    queue.release_many([(c.task_id, c.attempt) for c in pending[1:]])
            for c in (w.inbox, w.outbox):
                c.close()
            with contextlib.suppress(Exception):
                w.proc.close()
        self._workers.clear()
        self._exiting.clear()
        # completions read but not recorded (the error hit before their transaction)
        done, self._done = self._done, []
        with contextlib.suppress(Exception):
            if done:
                queue.release_many(
                    [(tid, attempt) for _w, tid, attempt, _b, _s in done],
                    started=True,
                    reason="orchestrator error before the result was recorded",
                )
