"""One `DaskBackend.run`: claims travel in batches, results stream back, the queue decides.

The orchestrator's side of `_dask_batches` (see `dask_backend` for the design). All
bookkeeping lives in this object and is touched only by the thread that called ``run``; Dask's
threads only put messages in `inbox` (a batch's events, a finished future).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import pickle
import queue as queue_mod
import time
from dataclasses import dataclass, field
from typing import Any

from alphaloop.execution._base import OnResult, StopWhen, TaskFn, format_seconds
from alphaloop.execution._dask_batches import cut, run_batch
from alphaloop.execution._dask_ship import Shipper
from alphaloop.execution._queue import TaskQueue
from alphaloop.execution._schedule import batch_depth, guided_share
from alphaloop.execution._task import Claim, FailureKind, RunSummary, TaskState

logger = logging.getLogger(__name__)

_FLUSH_MAX = 512
_RESCUE_SECONDS = 1.0


@dataclass(eq=False)
class Batch:
    key: str
    claims: list[Claim]
    future: Any = None
    started: bool = False
    head_since: float = math.inf  # when its running item started (orchestrator's clock)
    abandoned: bool = False  # its thread is stuck on a timed-out item; nothing left to it
    worker: str | None = None  # where it runs (from its start event)
    submitted: float = field(default_factory=time.monotonic)
    index: dict[str, int] = field(default_factory=dict)


class Run:
    """The state of one run (see the module docstring)."""

    def __init__(
        self, backend: Any, queue: TaskQueue, fn: TaskFn, on_result: OnResult | None
    ) -> None:
        self.b, self.client, self.queue, self.fn = backend, backend.client, queue, fn
        self.on_result = on_result
        self.inbox: queue_mod.SimpleQueue[Any] = backend._inbox
        self.ship = Shipper(self.client, backend._scattered)
        self.batches: dict[str, Batch] = {}
        self.pending: dict[str, tuple[Claim, Batch]] = {}  # task_id -> (claim, owning batch)
        self.done: list[tuple[str, str, int, int | None, float | None]] = []
        self.completed = self.failed = self.gave_up = 0
        self.workers: dict[str, int] = backend._workers()  # address -> threads
        self.threads = max(1, sum(self.workers.values()))
        self.clean = bool(getattr(fn, "needs_clean_worker", False))
        # a clean worker enforces the timeout itself; ours is the backstop
        t = backend.task_timeout
        self.limit = t + max(5.0, 0.25 * t) if self.clean else t
        # the last run's measured task time (of the same function), replaced by this run's
        # first measurement: batches start at their full size instead of 2 tasks each
        self.fn_name = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', fn)}"
        self.task_seconds: float | None = backend._task_seconds.get(self.fn_name)
        self.fresh = False
        self.ready_hint: int | None = None
        self.dry_until = 0.0

    # ------------------------------------------------------------------ the loop
    def loop(self, stop_when: StopWhen | None) -> bool:
        """Drain the queue; True if ``stop_when`` fired."""
        stopped = False
        next_threads = time.monotonic() + 2.0
        while True:
            if not stopped and stop_when is not None and stop_when():
                stopped = True
                self.stop_dispatch()
            now = time.monotonic()
            if now > next_threads:
                self.workers, next_threads = self.b._workers(), now + 2.0
                self.threads = max(1, sum(self.workers.values()))
            if not stopped and now >= self.dry_until:
                self.dispatch()
            if not self.pending:
                self.forget_idle()
                if stopped:
                    return True
                nxt = self.queue.next_ready_in()
                if nxt is None:
                    return False
                self.dry_until = 0.0
                self.wait(min(max(nxt, 0.001), 0.5))
                continue
            self.wait(self.next_deadline())
            self.check_timeouts()
            if not stopped:
                self.rescue_unstarted()
                if now >= self.dry_until:
                    self.split_stragglers()

    def capacity(self) -> int:
        return self.b.max_in_flight or 2 * self.threads

    def batch_size(self) -> int:
        if self.b.batch_size:
            return int(self.b.batch_size)
        depth = batch_depth(self.task_seconds, self.b.batch_seconds, self.b.max_batch)
        cap = depth * self.capacity()
        if self.ready_hint is None or self.ready_hint < 2 * cap:
            self.ready_hint = self.queue.count_ready(limit=4 * cap)
        return guided_share(self.ready_hint, len(self.pending), self.threads, depth)

    def dispatch(self) -> None:
        """Keep `capacity` batches in flight (a claim transaction per batch)."""
        while sum(1 for b in self.batches.values() if not b.abandoned) < self.capacity():
            claims = self.queue.dequeue_many(self.batch_size())
            if self.ready_hint is not None:
                self.ready_hint -= len(claims)
            if not claims:
                self.dry_until = time.monotonic() + 0.05
                return
            self.submit(claims)

    def submit(self, claims: list[Claim], workers: list[str] | None = None) -> None:
        items, bars, bad = self.ship.prepare(claims)
        for c, error in bad:
            self.fail(c, error, None, kind=FailureKind.PERMANENT.value)
        if not items:
            return
        by_id = {c.task_id: c for c in claims}
        b = self.b._new_batch([by_id[i[0]] for i in items])
        for i, c in enumerate(b.claims):
            self.pending[c.task_id] = (c, b)
            b.index[c.task_id] = i
        b.future = self.client.submit(
            run_batch,
            self.fn,
            items,
            bars,
            self.b.topic,
            b.key,
            self.b.flush_seconds,
            self.b.task_timeout,
            self.b.memory_limit,
            key=b.key,
            pure=False,
            retries=0,
            workers=workers,
            allow_other_workers=workers is not None,
        )
        self.batches[b.key] = b
        b.future.add_done_callback(lambda _f, k=b.key: self.inbox.put((k, "done", None, None)))

    def wait(self, timeout: float) -> None:
        """Handle every message that arrives within ``timeout``, then commit."""
        try:
            msgs = [self.inbox.get(timeout=max(0.0, timeout))]
        except queue_mod.Empty:
            return
        while True:
            try:
                msgs.append(self.inbox.get_nowait())
            except queue_mod.Empty:
                break
        self.dry_until = 0.0
        now = time.monotonic()
        for key, kind, sent_at, data in msgs:
            if kind == "results":
                data = pickle.loads(data)  # from our Dask worker code (`Stream.flush_due`)
            b = self.batches.get(key)
            if b is None:
                if kind == "results":  # of a batch given up on: its claims may still wait
                    self.results(data)
                continue
            if kind == "done":
                self.finish(b)
                continue
            b.started = True
            if kind == "start":
                b.worker = data
            if kind == "results":
                ends = [r[5] + r[6] for r in data]
                # when its next item began: how long ago, on the worker's clock, the last of
                # these ended (the results may have waited up to flush_seconds to be sent)
                b.head_since = now - max(0.0, sent_at - max(ends))
                self.results(data)
            else:  # start, alive: the running item's clock starts (again) now
                b.head_since = now
            if len(self.done) >= _FLUSH_MAX:
                self.commit()
        self.commit()

    def results(self, data: list[Any]) -> None:
        for task_id, attempt, ok, body, tb, started, elapsed, pid, kind in data:
            ts = self.task_seconds
            if ts is None or not self.fresh:
                self.task_seconds, self.fresh = elapsed, True
            else:
                self.task_seconds = 0.8 * ts + 0.2 * elapsed
            self.b._task_seconds[self.fn_name] = self.task_seconds
            got = self.pending.get(task_id)
            if got is None or got[0].attempt != attempt:
                continue  # a duplicate (split, stopped) or a stale attempt
            del self.pending[task_id]
            if ok:
                self.done.append((task_id, body, attempt, pid, started))
            else:
                self.fail(got[0], body, tb, pid, started, kind)

    def commit(self) -> None:
        """Record the completions received so far in ONE transaction, then ``on_result``."""
        if not self.done:
            return
        rows, self.done = self.done, []
        try:
            parsed = [json.loads(r[1]) for r in rows] if self.on_result is not None else None
            oks = self.queue._mark_completed_texts(rows)
        except BaseException:
            self.done = rows + self.done  # unrecorded: abort hands them back
            raise
        self.completed += sum(oks)
        if parsed is not None:
            for row, ok, result in zip(rows, oks, parsed, strict=True):
                if ok:
                    self.on_result(row[0], result)  # type: ignore[misc]

    def fail(
        self,
        claim: Claim,
        error: str,
        tb: str | None,
        pid: int | None = None,
        started: float | None = None,
        kind: str = FailureKind.TRANSIENT.value,
    ) -> None:
        if self.queue.mark_failed(
            claim.task_id,
            error,
            tb,
            attempt=claim.attempt,
            worker_pid=pid,
            started_at=started,
            kind=kind or FailureKind.TRANSIENT,
        ):
            self.failed += 1
            logger.info("task %s attempt %d failed: %s", claim.task_id, claim.attempt, error)
            if self.queue.state(claim.task_id) is TaskState.FAILED:
                self.gave_up += 1

    def owned(self, b: Batch) -> list[Claim]:
        """``b``'s claims still unresolved and still its own, in the order it runs them."""
        return [c for c in b.claims if (got := self.pending.get(c.task_id)) and got[1] is b]

    def finish(self, b: Batch) -> None:
        """``b``'s future is done: its last results, or its loss."""
        fut = b.future
        del self.batches[b.key]
        if fut.status == "finished":
            self.results(fut.result())
            left = self.owned(b)
            reason = "its batch ended before it ran"
        elif fut.status == "error":
            exc = fut.exception()
            killed = isinstance(exc, self.b._distributed.KilledWorker)
            if killed and not b.started:  # queued on the worker that died; never ran
                left, reason = self.owned(b), ""
            else:
                if killed:
                    error = f"worker process died (dask KilledWorker: {exc})"
                else:
                    error = f"{type(exc).__name__}: {exc}"
                for c in self.owned(b):  # each unfinished task of a lost batch: one attempt
                    del self.pending[c.task_id]
                    self.fail(c, error, None)
                left = []
        else:  # cancelled or lost: not the tasks' fault
            left, reason = self.owned(b), f"dask future {fut.status}"
        for c in left:
            del self.pending[c.task_id]
        if left:
            pairs = [(c.task_id, c.attempt) for c in left]
            self.queue.release_many(pairs, started=bool(reason), reason=reason)
        b.future = None

    # ------------------------------------------------------------------ time and splits
    def next_deadline(self) -> float:
        now = time.monotonic()
        heads = [b.head_since for b in self.batches.values() if b.started and not b.abandoned]
        first = min(heads, default=math.inf) + self.limit
        return max(0.005, min(first - now, 0.25))

    def check_timeouts(self) -> None:
        now = time.monotonic()
        for b in list(self.batches.values()):
            if b.abandoned or not b.started or now - b.head_since <= self.limit:
                continue
            mine = self.owned(b)
            if not mine:
                continue
            head, rest = mine[0], mine[1:]
            del self.pending[head.task_id]
            err = f"timed out after {format_seconds(self.b.task_timeout)} s"
            self.fail(head, err, None, kind=FailureKind.LIMIT.value)
            b.abandoned = True
            self.take_back(b, b.index[head.task_id] + 1, rest, split=True)

    def take_back(self, b: Batch, index: int, claims: list[Claim], split: bool) -> None:
        """Batch ``b`` starts nothing from ``index`` on; ``claims`` (its unstarted ones)
        go to new batches (``split``) or back to the queue."""
        self.cut(b.key, index)
        if not claims:
            return
        if not split:
            for c in claims:
                del self.pending[c.task_id]
            self.queue.release_many([(c.task_id, c.attempt) for c in claims])
            return
        idle = max(1, self.capacity() - sum(1 for x in self.batches.values() if not x.abandoned))
        n = min(idle, len(claims))
        size = -(-len(claims) // n)
        # to the threads that idle: left to itself Dask may queue the tail on the very worker
        # whose thread is stuck on the straggler's running item
        free = self.idle_workers() or None
        for i in range(0, len(claims), size):
            part = claims[i : i + size]
            for c in part:
                del self.pending[c.task_id]
            self.submit(part, workers=free)

    def cut(self, key: str, index: int) -> None:
        """Tell every worker: batch ``key`` starts no item from ``index`` on (best effort: a
        worker that died with it needs no telling)."""
        with contextlib.suppress(Exception):
            self.client.run(cut, key, index, wait=False, on_error="ignore")

    def idle_workers(self) -> list[str]:
        """Workers with a thread that runs none of our batches (as far as we heard)."""
        busy: dict[str, int] = {}
        for b in self.batches.values():
            if b.started and b.worker is not None:
                busy[b.worker] = busy.get(b.worker, 0) + 1
        return [w for w, n in self.workers.items() if busy.get(w, 0) < n]

    def rescue_unstarted(self) -> None:
        """A batch that has not started a second after it was submitted while a worker
        idles waits behind a busy thread (Dask assigned it to a worker whose thread is stuck
        on a timed-out item, or a slow one): it is cancelled and submitted again, preferring
        the idle workers."""
        now = time.monotonic()
        late = [
            b
            for b in self.batches.values()
            if not b.started and now - b.submitted > _RESCUE_SECONDS and self.owned(b)
        ]
        if not late:
            return
        idle = self.idle_workers()
        if not idle:
            return
        for b in late[: len(idle)]:
            mine = self.owned(b)
            self.cut(b.key, 0)
            b.future.cancel()
            del self.batches[b.key]
            for c in mine:
                del self.pending[c.task_id]
            self.submit(mine, workers=idle)

    def split_stragglers(self) -> None:
        """Once the queue is dry and a thread idles, the batch with the most unstarted work
        gives its tail to new batches (it finishes only the item it runs)."""
        running = [b for b in self.batches.values() if not b.abandoned]
        if len(running) >= self.threads:
            return
        best, tail = None, []
        for b in running:
            if not b.started:
                continue
            mine = self.owned(b)
            if len(mine) > max(1, len(tail) + 1):
                best, tail = b, mine[1:]
        if best is None:
            return
        ts = self.task_seconds
        if ts is not None and len(tail) * ts < 2 * self.b.flush_seconds:
            return
        self.take_back(best, best.index[tail[0].task_id], tail, split=True)

    def stop_dispatch(self) -> None:
        """``stop_when`` fired: running items finish, everything unstarted goes back."""
        for b in list(self.batches.values()):
            mine = self.owned(b)
            if not b.started:
                self.cut(b.key, 0)
                b.future.cancel()
                for c in mine:
                    del self.pending[c.task_id]
                if mine:
                    self.queue.release_many([(c.task_id, c.attempt) for c in mine])
            elif len(mine) > 1:
                self.take_back(b, b.index[mine[1].task_id], mine[1:], split=False)

    def forget_idle(self) -> None:
        """Nothing is outstanding: batches still running only repeat resolved work."""
        for b in list(self.batches.values()):
            if not self.owned(b):
                self.cut(b.key, 0)
                with contextlib.suppress(Exception):
                    b.future.cancel()
                del self.batches[b.key]

    def abort(self) -> None:
        """An error (or Ctrl-C) in the loop: hand every claim back."""
        for b in list(self.batches.values()):
            with contextlib.suppress(Exception):
                self.cut(b.key, 0)
                b.future.cancel()
        self.batches.clear()
        claims = [c for c, _b in self.pending.values()]
        self.pending.clear()
        with contextlib.suppress(Exception):
            self.queue.release_many(
                [(c.task_id, c.attempt) for c in claims], started=True, reason="interrupted"
            )
        done, self.done = self.done, []
        with contextlib.suppress(Exception):
            self.queue.release_many(
                [(r[0], r[2]) for r in done],
                started=True,
                reason="orchestrator error before the result was recorded",
            )

    def summary(self, t0: float, stopped: bool) -> RunSummary:
        return RunSummary(
            completed=self.completed,
            failed_attempts=self.failed,
            gave_up=self.gave_up,
            elapsed=time.monotonic() - t0,
            stopped=stopped,
        )
