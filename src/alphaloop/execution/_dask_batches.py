"""The Dask worker's side of `DaskBackend`: one Dask task runs a batch of claims.

`run_batch` is what the backend submits. It runs the batch's items in order and streams each
result back to the orchestrator as it comes, so a batch lost with its worker loses only what
had not been sent yet:

* ``("start", worker address)`` before the batch runs anything, and only once the scheduler
  has it (the orchestrator's clock for timeouts starts then, and only a started batch's
  tasks are charged a failed attempt when its worker dies: Dask may have queued a second
  batch on that worker, which never ran),
* ``("alive", None)`` while a clean worker starts (it imports for a second or more),
* ``("results", pickle of [result, ...])`` at most every ``flush_seconds`` while results
  come.

Each is sent as ``[batch key, kind, sent_at (this machine's wall clock), data]``. The messages
are Dask events (``Worker.log_event`` on the backend's topic; the scheduler
forwards them to the client that subscribed). Results travel as one opaque blob per flush,
pickled once here and unpickled once by the orchestrator: as a list of tuples Dask checked,
msgpacked and unpacked them again in the worker, the scheduler and the client. The Dask task
returns the results not yet sent.
A result is ``(task_id, attempt, ok, body, traceback, started_wall, elapsed, pid, kind)``.

Where strategy code runs is unchanged: a task function marked ``needs_clean_worker``
(`task_runner.run_task`) never runs in the Dask worker, which is not a clean template. The
batch goes to a clean worker this Dask worker process started and keeps (`_dask_clean`), in
chunks, the way a local pool worker gets its claims; it forks the confined strategy processes
(`docs/sandbox.md`). Once all its items are fed, the batch leaves the Dask thread pool so the
next batch's items follow them without a pause. Other task functions (tests, trusted code)
run here.

Bars shipped by the orchestrator arrive as Dask data (scattered once per worker, keyed by
fingerprint). The first task that needs them writes them once to this worker's disk
(`<local directory>/alphaloop-bars/<fingerprint>/<TICKER>.parquet`); each task on them is sent
with ``data_path`` naming that copy and ``data_fingerprint`` set, and `task_runner` checks the
fingerprint of what it loads.

`cut` (called through ``Client.run``) tells a running batch to start no item from an index
on: the orchestrator has given those items to other batches (a straggler split, a timeout,
a stop).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import tempfile
import threading
import time
from typing import Any

from alphaloop.execution._task import FailureKind

Result = tuple[str, int, bool, str, str | None, float, float, int, str]
Item = tuple[str, int, str, str | None]
"""``(task_id, attempt, payload, fingerprint of the shipped bars or None)``."""

_CUTS: dict[str, int] = {}
_FILES: dict[tuple[str, str], str] = {}
_FILES_LOCK = threading.Lock()
_BARS_DIR: list[str] = []


async def cut(key: str, index: int) -> None:
    """Batch ``key`` starts no item from ``index`` on (runs in the worker's event loop:
    ``Client.run(cut, key, index, wait=False)``, which wants a coroutine function)."""
    _CUTS[key] = min(index, _CUTS.get(key, index))
    while len(_CUTS) > 4096:
        _CUTS.pop(next(iter(_CUTS)))


def cut_at(key: str) -> int | None:
    """The index batch ``key`` stops before, if it was cut."""
    return _CUTS.get(key)


class Stream:
    """The results of one batch on their way to the orchestrator (see the module docstring).
    Outside a Dask worker nothing is sent: everything is returned at the end. Thread-safe:
    while a trusted task function runs in this thread, `watch` sends what is due."""

    def __init__(self, topic: str, key: str, flush_seconds: float) -> None:
        try:
            from distributed import get_worker

            self.worker: Any = get_worker()
        except (ImportError, ValueError):
            self.worker = None
        self.topic, self.key, self.flush_seconds = topic, key, flush_seconds
        self.pending: list[Result] = []
        self.since = 0.0
        self._lock = threading.Lock()

    def send(self, kind: str, data: Any = None) -> bool:
        """One event ``[key, kind, sent_at, data]``; False if it could not be sent."""
        if self.worker is None:
            return False
        try:
            self.worker.log_event(self.topic, [self.key, kind, time.time(), data])
        except Exception:  # not serialisable, or the worker is closing: the return carries it
            return False
        return True

    def send_sure(self, kind: str, data: Any = None) -> None:
        """`send`, returning only once the scheduler has the event (one round trip): a
        worker that dies right after cannot take it along. The orchestrator charges a lost
        batch's tasks a failed attempt only if it heard that the batch started."""
        if self.worker is None:
            return
        try:
            from distributed.utils import sync

            msg = [self.key, kind, time.time(), data]
            sync(self.worker.loop, self.worker.scheduler.log_event, topic=self.topic, msg=msg)
        except Exception:
            self.send(kind, data)

    def add(self, result: Result) -> None:
        with self._lock:
            if not self.pending:
                self.since = time.monotonic()
            self.pending.append(result)
        self.flush_due()

    def due_in(self) -> float | None:
        """Seconds until the pending results must be sent (None: nothing pending)."""
        if not self.pending or self.worker is None:
            return None
        return max(0.0, self.since + self.flush_seconds - time.monotonic())

    def flush_due(self) -> None:
        with self._lock:
            due = self.pending and time.monotonic() - self.since >= self.flush_seconds
            if due and self.send("results", pickle.dumps(self.pending, pickle.HIGHEST_PROTOCOL)):
                self.pending = []

    def take(self) -> list[Result]:
        """What was not sent (the batch's return value); nothing is sent after this."""
        with self._lock:
            out, self.pending, self.worker = self.pending, [], None
        return out


_WATCHED: set[Stream] = set()
_WATCH_LOCK = threading.Lock()


def watch(stream: Stream) -> None:
    """Send ``stream``'s due results from a helper thread until `unwatch`: a trusted task
    function blocks this thread for as long as it runs, and the results before it must not
    wait for it (the orchestrator's timeout clock runs from the last result it heard of)."""
    if stream.worker is None:
        return
    with _WATCH_LOCK:
        _WATCHED.add(stream)
        if len(_WATCHED) == 1:
            threading.Thread(target=_flusher, name="alphaloop-flush", daemon=True).start()


def unwatch(stream: Stream) -> None:
    with _WATCH_LOCK:
        _WATCHED.discard(stream)


def _flusher() -> None:
    while True:
        with _WATCH_LOCK:
            streams = list(_WATCHED)
        if not streams:
            return
        for s in streams:
            s.flush_due()
        time.sleep(min(s.flush_seconds for s in streams) / 4)


def failed(task_id: str, attempt: int, error: str, kind: FailureKind, started: float) -> Result:
    return (task_id, attempt, False, error, None, started, 0.0, os.getpid(), kind.value)


def run_batch(
    fn: Any,
    items: list[Item],
    bars: dict[str, Any],
    topic: str,
    key: str,
    flush_seconds: float,
    task_timeout: float,
    memory_limit: int | None,
) -> list[Result]:
    """Run ``items`` in order with ``fn``, streaming results; returns those not yet sent."""
    stream = Stream(topic, key, flush_seconds)
    stream.send_sure("start", None if stream.worker is None else stream.worker.address)
    try:
        todo = _on_shipped(items, bars, stream)
        if getattr(fn, "needs_clean_worker", False):
            from alphaloop.execution import _dask_clean

            _dask_clean.run(fn, todo, key, stream, task_timeout, memory_limit)
        else:
            watch(stream)
            _in_process(fn, todo, key, stream)
    finally:
        unwatch(stream)
        _CUTS.pop(key, None)
    return stream.take()


def _in_process(fn: Any, todo: list[Any], key: str, stream: Stream) -> None:
    """Trusted task functions (not ``needs_clean_worker``) run in this Dask worker thread."""
    from alphaloop.execution._worker import run_one

    pid = os.getpid()
    for i, item in enumerate(todo):
        stop = _CUTS.get(key)
        if stop is not None and i >= stop:
            return
        if item is None:
            continue
        task_id, attempt, payload = item
        started, t0 = time.time(), time.perf_counter()
        ok, body, tb, _fatal, kind = run_one(fn, payload, None)
        elapsed = time.perf_counter() - t0
        stream.add((task_id, attempt, ok, body, tb, started, elapsed, pid, kind))


def _on_shipped(items: list[Item], bars: dict[str, Any], stream: Stream) -> list[Any]:
    """The items as ``(task_id, attempt, payload)`` (same positions: a cut index stays
    valid), each on shipped bars pointed at this worker's copy of them; an item whose copy
    cannot be written fails (transient) and becomes None."""
    out: list[tuple[str, int, str] | None] = []
    for task_id, attempt, payload, fp in items:
        if fp is None:
            out.append((task_id, attempt, payload))
            continue
        try:
            ticker = json.JSONDecoder().raw_decode(payload, _value_at(payload, "ticker"))[0]
            path = _materialize(fp, str(ticker), bars[fp])
            payload = _set(payload, "data_path", path)
            out.append((task_id, attempt, _set(payload, "data_fingerprint", fp)))
        except Exception as exc:
            error = f"cannot store the shipped bars on the Dask worker: {type(exc).__name__}: {exc}"
            stream.add(failed(task_id, attempt, error, FailureKind.TRANSIENT, time.time()))
            out.append(None)
    return out


def _value_at(payload: str, name: str) -> int:
    """Where the value of top-level field ``name`` starts in a task's JSON (fields from
    ``ticker`` on hold no nested object, so the last ``"name":`` is the task's own)."""
    i = payload.rfind(f'"{name}":')
    if i < 0:
        raise ValueError(f"no {name} in the task")
    return i + len(name) + 3


def _set(payload: str, name: str, value: str) -> str:
    """The task's JSON with top-level string-or-null field ``name`` set to ``value`` (a
    splice, not a parse: ~1 us instead of ~25 us for a task with its strategy's source)."""
    start = _value_at(payload, name)
    _old, end = json.JSONDecoder().raw_decode(payload, start)
    return f"{payload[:start]}{json.dumps(value)}{payload[end:]}"


def _materialize(fp: str, ticker: str, frame: Any) -> str:
    """This worker's file of the shipped bars ``fp`` under ``ticker`` (written once)."""
    name = ticker.strip().upper()
    with _FILES_LOCK:
        path = _FILES.get((fp, name))
        if path is not None and os.path.exists(path):
            return path
        folder = os.path.join(_bars_dir(), fp)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{name}.parquet")
        tmp = f"{path}.{os.getpid()}.tmp"
        frame.to_parquet(tmp)
        os.replace(tmp, path)
        _FILES[(fp, name)] = path
        return path


def _bars_dir() -> str:
    if not _BARS_DIR:
        base = None
        with contextlib.suppress(ImportError, ValueError):
            from distributed import get_worker

            base = get_worker().local_directory
        if base is None:
            base = tempfile.mkdtemp(prefix="alphaloop-")
        folder = os.path.join(base, "alphaloop-bars")
        os.makedirs(folder, mode=0o700, exist_ok=True)
        _BARS_DIR.append(folder)
    return _BARS_DIR[0]
