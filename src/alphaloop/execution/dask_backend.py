"""DaskBackend: the :class:`Executor` contract on a Dask ``distributed`` cluster.

The SQLite :class:`TaskQueue` stays the source of truth; Dask only executes. The backend
claims tasks, submits each claim as one future (``retries=0``, key unique per attempt), and
records every outcome through the queue with the claim's attempt number, exactly like the
local pool. ``distributed`` is imported lazily (install the ``dask`` extra).

Failure mapping
---------------
* An exception in the task function is caught on the worker and returned with its traceback
  text: a failed attempt ``"<Type>: <message>"``.
* A lost worker (SIGKILL, segfault, nanny's memory limit) reaches us as ``KilledWorker`` once
  the scheduler gives up on the task: a failed attempt ``"worker process died (...)"``. How
  soon it gives up is the scheduler's ``distributed.scheduler.allowed-failures`` (default 3:
  Dask silently re-runs the task on other workers up to 3 times before raising). Set it to 0
  on clusters you start (``dask.config.set({"distributed.scheduler.allowed-failures": 0})``
  before creating the scheduler) so retry policy and attempt history live in our queue. With
  ``worker-saturation`` above 1.0 the scheduler may have queued a second task on the dying
  worker; it is failed too (one attempt). Use ``worker-saturation: 1.0`` to avoid that.
* Timeouts: the backend keeps up to ``max_in_flight`` futures submitted (default
  ``max(16, 8 x worker threads)``, which hides Dask's round trip). A future's clock starts
  when it becomes one of the oldest ``threads`` outstanding futures, i.e. about when a worker
  thread can start it (with ``worker-saturation: 1.0`` the scheduler starts tasks in
  submission order as threads free up). Dask cannot interrupt a running task: the attempt is
  failed and its future cancelled; if it finishes later its result is stale and ignored by the
  queue's attempt guard.
* There is no per-task memory limit on Dask beyond the workers' own ``memory_limit``;
  ``MemoryError`` is reported as ``"ran out of memory (...)"``.
* KeyboardInterrupt or any error in ``run`` cancels outstanding futures and hands their claims
  back (``interrupted``, no retry used) before re-raising.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from typing import Any

from alphaloop.execution._base import (
    Executor,
    OnResult,
    StopWhen,
    TaskFn,
    format_seconds,
)
from alphaloop.execution._queue import TaskQueue
from alphaloop.execution._task import Claim, FailureKind, RunSummary, TaskState

logger = logging.getLogger(__name__)


def _dask_call(fn: TaskFn, payload: str) -> tuple[bool, str, str | None, float, int, str]:
    """Runs on a Dask worker: ``(ok, body, traceback, started_wall, pid, failure_kind)``;
    never raises. (``run_task`` hands the task to a clean worker process it starts on that
    machine, which forks the confined strategy process: a Dask worker is not a clean
    template.)"""
    from alphaloop.execution._worker import run_one

    started = time.time()
    ok, body, tb, _fatal, kind = run_one(fn, payload, None)
    return ok, body, tb, started, os.getpid(), kind


class DaskBackend(Executor):
    """Run queue tasks on a Dask cluster.

    Args:
        address: Scheduler address (``"tcp://127.0.0.1:8786"``); a new ``Client`` is opened
            and closed by :meth:`close`.
        client: An existing ``distributed.Client`` to use instead (not closed by us).
        task_timeout: Wall seconds an attempt may run (clock as described above).
        max_in_flight: Futures outstanding at once (default: ``max(16, 8 x threads)``).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        client: Any = None,
        task_timeout: float = 300.0,
        max_in_flight: int | None = None,
    ) -> None:
        try:
            import distributed
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "DaskBackend needs the 'distributed' package: pip install 'alphaloop[dask]'"
            ) from exc
        if (address is None) == (client is None):
            raise ValueError("give DaskBackend either a scheduler address or a client")
        self._distributed = distributed
        self._own = client is None
        self.client = client if client is not None else distributed.Client(address)
        self.task_timeout = float(task_timeout)
        self.max_in_flight = max_in_flight
        self._run_token = uuid.uuid4().hex[:8]

    def close(self) -> None:
        """Close the client if this backend opened it."""
        if self._own and self.client is not None:
            self.client.close()
            self.client = None

    def _threads(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def _capacity(self, threads: int) -> int:
        return self.max_in_flight or max(16, 8 * threads)

    def run(
        self,
        queue: TaskQueue,
        fn: TaskFn,
        *,
        on_result: OnResult | None = None,
        stop_when: StopWhen | None = None,
    ) -> RunSummary:
        """Drain ``queue`` with ``fn`` on the cluster (see :class:`Executor`)."""
        dist = self._distributed
        t0 = time.monotonic()
        completed = failed = gave_up = 0
        stopped = False
        in_flight: dict[Any, list[Any]] = {}  # future -> [claim, clock start or None]
        threads = self._threads()
        next_threads_check = time.monotonic() + 2.0

        def fail(
            claim: Claim,
            error: str,
            tb: str | None,
            pid: int | None = None,
            started: float | None = None,
            kind: str = FailureKind.TRANSIENT.value,
        ) -> None:
            nonlocal failed, gave_up
            if queue.mark_failed(
                claim.task_id,
                error,
                tb,
                attempt=claim.attempt,
                worker_pid=pid,
                started_at=started,
                kind=kind or FailureKind.TRANSIENT,
            ):
                failed += 1
                logger.info("task %s attempt %d failed: %s", claim.task_id, claim.attempt, error)
                if queue.state(claim.task_id) is TaskState.FAILED:
                    gave_up += 1

        try:
            while True:
                if not stopped and stop_when is not None and stop_when():
                    stopped = True
                if time.monotonic() > next_threads_check:
                    threads, next_threads_check = self._threads(), time.monotonic() + 2.0
                if not stopped:
                    room = self._capacity(threads) - len(in_flight)
                    if room > 0:
                        for c in queue.dequeue_many(room):
                            fut = self.client.submit(
                                _dask_call,
                                fn,
                                c.payload,
                                pure=False,
                                retries=0,
                                key=f"alphaloop-{c.task_id}-{c.attempt}-{self._run_token}",
                            )
                            in_flight[fut] = [c, None]
                if not in_flight:
                    if stopped:
                        break
                    nxt = queue.next_ready_in()
                    if nxt is None:
                        break
                    time.sleep(min(max(nxt, 0.001), 0.5))
                    continue
                now = time.monotonic()
                for entry in list(in_flight.values())[:threads]:
                    if entry[1] is None:
                        entry[1] = now
                deadline = (
                    min(s for _, s in in_flight.values() if s is not None) + self.task_timeout
                )
                try:
                    done, _ = dist.wait(
                        list(in_flight),
                        timeout=max(0.01, min(deadline - now, 0.5)),
                        return_when="FIRST_COMPLETED",
                    )
                except TimeoutError:
                    done = set()
                for fut in done:
                    claim, _s = in_flight.pop(fut)
                    if fut.status == "finished":
                        ok, body, tb, started, pid, kind = fut.result()
                        if ok:
                            if queue.mark_completed(
                                claim.task_id,
                                body,
                                claim.attempt,
                                worker_pid=pid,
                                started_at=started,
                            ):
                                completed += 1
                                if on_result is not None:
                                    on_result(claim.task_id, json.loads(body))
                        else:
                            fail(claim, body, tb, pid, started, kind)
                    elif fut.status == "error":
                        exc = fut.exception()
                        if isinstance(exc, dist.KilledWorker):
                            fail(claim, f"worker process died (dask KilledWorker: {exc})", None)
                        else:
                            fail(claim, f"{type(exc).__name__}: {exc}", None)
                    else:  # cancelled or lost: not the task's fault
                        queue.release(
                            claim.task_id,
                            claim.attempt,
                            started=True,
                            reason=f"dask future {fut.status}",
                        )
                now = time.monotonic()
                for fut, (claim, started) in list(in_flight.items()):
                    if started is not None and now - started > self.task_timeout:
                        in_flight.pop(fut)
                        fut.cancel()
                        err = f"timed out after {format_seconds(self.task_timeout)} s"
                        fail(claim, err, None, kind=FailureKind.LIMIT.value)
        except BaseException:
            for fut, (claim, _s) in in_flight.items():
                with contextlib.suppress(Exception):
                    fut.cancel()
                with contextlib.suppress(Exception):
                    queue.release(claim.task_id, claim.attempt, started=True, reason="interrupted")
            raise
        return RunSummary(
            completed=completed,
            failed_attempts=failed,
            gave_up=gave_up,
            elapsed=time.monotonic() - t0,
            stopped=stopped,
        )
