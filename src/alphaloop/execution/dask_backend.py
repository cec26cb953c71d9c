"""DaskBackend: the :class:`Executor` contract on a Dask ``distributed`` cluster.

The SQLite :class:`TaskQueue` stays the source of truth; Dask only executes. ``distributed`` is
imported lazily (install the ``dask`` extra). Design (`docs/execution.md`, "DaskBackend"):

* **Batches.** Claims travel in batches, one Dask task each (`_dask_batches.run_batch`), sized
  to about ``batch_seconds`` (0.15 s) of work at the measured task time (as the local pool
  sizes its backlogs, `_schedule.batch_depth`; a run starts from the last run's measurement of
  the same task function, so only the first run ramps up from 2 per batch). A batch on a
  clean worker secedes once all its items are fed, so the next one follows them with no pause
  (`_dask_clean`). Near the end of the queue what is
  left goes out in shrinking pieces (`_schedule.guided_share`). ``max_in_flight`` batches
  (default 2 per worker thread) are outstanding, so a thread that finishes one finds the next.
* **Results stream back.** A batch sends its results as Dask events at most every
  ``flush_seconds`` (0.05 s) while it runs (`_dask_batches.Stream`); the orchestrator records
  every result received in ONE transaction per wake-up (``mark_completed_many``, guarded per
  task) and calls ``on_result`` after the commit.
* **Losses.** A batch whose worker dies (``KilledWorker``) charges each of its tasks that had
  no result yet one failed attempt (``worker process died (dask KilledWorker: ...)``); the
  results it had sent are kept. Set ``distributed.scheduler.allowed-failures: 0`` on clusters
  you start, so Dask does not re-run a lost batch behind the queue's back.
* **Timeouts.** A batch reports when it starts, and each result says when it ended, so the
  orchestrator knows when the running item began. An item that runs longer than
  ``task_timeout`` fails (``timed out after N s``, limit); the rest of its batch goes to new
  batches. A task function marked ``needs_clean_worker`` (the backtests) runs in a clean
  worker the Dask worker started (`_dask_clean`), which kills it on the timeout; a trusted
  function running in the Dask worker's thread cannot be interrupted, and its thread stays
  busy until it returns.
* **Stragglers.** Once the queue is dry and a worker thread idles, the batch with the most
  unstarted work is cut after the item it runs (`_dask_batches.cut`, through ``Client.run``)
  and its tail goes to new batches; an item that ran on both sides is recorded once (the
  queue's attempt guard).
* **Data ships once per worker.** The bars of tasks on a user's data (``data_path``) are
  loaded here, fingerprinted (`alphaloop.data.fingerprint`) and scattered to every worker
  once per fingerprint (``Client.scatter(broadcast=True)``, key ``alphaloop-bars-<fp>``;
  a worker that joins later fetches them from a peer); each Dask worker writes them once to
  its own disk and its tasks run on that copy (``BacktestTask.data_fingerprint``, checked by
  `task_runner`). Workers never need the user's path. The embedded sample is not shipped:
  it is part of the package the workers have installed.
* ``stop_when``: items running finish, unstarted ones go back to the queue. An exception
  (Ctrl-C included) cuts every batch, cancels its future and hands every claim back
  (``interrupted``) before re-raising.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue as queue_mod
import time
import uuid
from typing import Any

from alphaloop.execution._base import Executor, OnResult, StopWhen, TaskFn
from alphaloop.execution._dask_run import Batch, Run
from alphaloop.execution._queue import TaskQueue
from alphaloop.execution._task import Claim, RunSummary

logger = logging.getLogger(__name__)

GiB = 1 << 30


def _truncate(topic: str, dask_scheduler: Any = None) -> None:
    """On the scheduler: forget a topic's past events (it keeps the last 1,000 of each)."""
    dask_scheduler._broker.truncate(topic)


class DaskBackend(Executor):
    """Run queue tasks on a Dask cluster (see the module docstring).

    Args:
        address: Scheduler address (``"tcp://127.0.0.1:8786"``); a new ``Client`` is opened
            and closed by :meth:`close`.
        client: An existing ``distributed.Client`` to use instead (not closed by us).
        task_timeout: Wall seconds one task may run.
        max_in_flight: Batches outstanding at once (default: 2 per worker thread).
        batch_seconds: Work per batch at the measured task time.
        max_batch: Most tasks in one batch.
        batch_size: A fixed number of tasks per batch (tests, tuning); None: learned.
        flush_seconds: Longest a result waits on the worker before it is sent.
        memory_limit: Address-space budget of each clean worker a Dask worker starts for
            backtests (and of its strategy processes); None: none.
        ship_data: Ship user data to the workers (False: workers load ``data_path``
            themselves, which must then exist on every worker at the same path).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        client: Any = None,
        task_timeout: float = 300.0,
        max_in_flight: int | None = None,
        batch_seconds: float = 0.15,
        max_batch: int = 1000,
        batch_size: int | None = None,
        flush_seconds: float = 0.05,
        memory_limit: int | None = 2 * GiB,
        ship_data: bool = True,
    ) -> None:
        try:
            import distributed
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "DaskBackend needs the 'distributed' package: pip install 'alphaloop[dask]'"
            ) from exc
        if (address is None) == (client is None):
            raise ValueError("give DaskBackend either a scheduler address or a client")
        if task_timeout <= 0 or batch_seconds <= 0 or flush_seconds <= 0:
            raise ValueError("task_timeout, batch_seconds and flush_seconds must be > 0")
        if max_batch < 1 or (batch_size is not None and batch_size < 1):
            raise ValueError("max_batch and batch_size must be >= 1")
        self._distributed = distributed
        self._own = client is None
        self.client = client if client is not None else distributed.Client(address)
        self.task_timeout = float(task_timeout)
        self.max_in_flight = max_in_flight
        self.batch_seconds = float(batch_seconds)
        self.max_batch = int(max_batch)
        self.batch_size = batch_size
        self.flush_seconds = float(flush_seconds)
        self.memory_limit = memory_limit
        self.ship_data = ship_data
        self._token = uuid.uuid4().hex[:8]
        self._serial = itertools.count()
        self.topic = f"alphaloop-{self._token}"
        self._inbox: queue_mod.SimpleQueue[Any] = queue_mod.SimpleQueue()
        self._scattered: dict[str, Any] = {}  # fingerprint -> future of the bars on workers
        self._task_seconds: dict[str, float] = {}  # task function -> last measured task time
        inbox = self._inbox
        self.client.subscribe_topic(self.topic, lambda event: inbox.put(tuple(event[1])))

    def close(self) -> None:
        """Stop listening, let the shipped data go, close the client if we opened it."""
        if self.client is None:
            return
        with contextlib.suppress(Exception):
            self.client.unsubscribe_topic(self.topic)
        with contextlib.suppress(Exception):
            self.client.run_on_scheduler(_truncate, self.topic)
        self._scattered.clear()
        if self._own:
            self.client.close()
        self.client = None

    def _workers(self) -> dict[str, int]:
        """Worker address -> threads."""
        return dict(self.client.nthreads())

    def _new_batch(self, claims: list[Claim]) -> Batch:
        return Batch(key=f"alphaloop-batch-{self._token}-{next(self._serial)}", claims=claims)

    def run(
        self,
        queue: TaskQueue,
        fn: TaskFn,
        *,
        on_result: OnResult | None = None,
        stop_when: StopWhen | None = None,
    ) -> RunSummary:
        """Drain ``queue`` with ``fn`` on the cluster (see :class:`Executor`)."""
        if self.client is None:
            raise RuntimeError("this DaskBackend is closed; create a new one")
        t0 = time.monotonic()
        run = Run(self, queue, fn, on_result)
        if not self.ship_data:
            run.ship.prepare = _unshipped  # type: ignore[method-assign]
        try:
            stopped = run.loop(stop_when)
            run.commit()
        except BaseException:
            run.abort()
            raise
        finally:
            with contextlib.suppress(Exception):
                self.client.run_on_scheduler(_truncate, self.topic)
        return run.summary(t0, stopped)


def _unshipped(
    claims: list[Claim],
) -> tuple[list[tuple[str, int, str, str | None]], dict[str, Any], list[Any]]:
    return [(c.task_id, c.attempt, c.payload, None) for c in claims], {}, []
