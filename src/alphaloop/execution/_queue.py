"""A durable task queue in one SQLite file.

The queue is the source of truth for the state of every task; executors (the local process
pool, the Dask backend) only run what they claimed and report back through it.

Contract
--------
* **Atomic, guarded state changes.** Every state change is one SQLite transaction
  (``BEGIN IMMEDIATE``) whose ``UPDATE`` is guarded by the state (and attempt number) the caller
  expects; it returns ``True`` if it happened and ``False`` if the task had moved on (like
  Optuna's ``set_trial_state_values``). Callers treat ``False`` as "someone else already did it".
* **Claiming.** :meth:`TaskQueue.dequeue_many` claims up to *n* QUEUED tasks whose not-before
  time has passed, highest ``priority`` first and first-in-first-out within a priority, moves
  them to IN_PROGRESS and gives each a new *attempt number* (claim number, strictly increasing
  per task). The claim's attempt number must accompany its outcome.
* **Exactly-once results.** :meth:`TaskQueue.mark_completed` records a result only if the task
  is IN_PROGRESS *under the same attempt number*. A stale attempt (one that was presumed dead,
  timed out or interrupted, and whose task was re-queued, re-claimed or completed since) is
  ignored and the call returns ``False``. A task's result is therefore written exactly once even
  if the task ran twice around a crash. Execution itself is at-least-once.
  :meth:`TaskQueue.mark_completed_many` records many results in one transaction, each still
  guarded on its own, and says per result whether it was recorded.
* **Failures and retries.** An exception in the task, a worker that dies (SIGKILL, segfault,
  OOM killer), a task that overruns its wall timeout or its memory limit: each is a *failed
  attempt*, recorded with :meth:`TaskQueue.mark_failed`. It increments ``retry_count``; if
  ``retry_count < max_retries`` the task goes back to QUEUED with a not-before time of
  exponential backoff plus jitter (:class:`RetryPolicy`), otherwise it becomes FAILED.
  ``max_retries`` is therefore the **maximum number of attempts** (design semantics kept:
  ``max_retries=3`` means at most 3 attempts, i.e. 2 retries). Every attempt's error and
  traceback is kept (:meth:`TaskQueue.attempts`).
* **Interruptions do not use up retries.** A claim handed back before it started
  (:meth:`TaskQueue.release` with ``started=False``) leaves no attempt record. A running attempt
  stopped by a shutdown, or left IN_PROGRESS by an orchestrator that died, is recorded as
  ``interrupted`` and the task is QUEUED again with its ``retry_count`` unchanged.
* **Crash recovery.** Each claim records its owner (pid and process start time of the
  orchestrating process). Opening the queue (or calling :meth:`TaskQueue.recover`) puts back
  every IN_PROGRESS task whose owner process no longer exists; completed results stay.
  Claims of a live owner are left alone, so a second process opening the same file does not
  steal running work.
* **Fresh attempts.** :meth:`TaskQueue.requeue_failed` moves FAILED tasks back to QUEUED with
  ``retry_count`` reset to 0.
* Results are JSON objects (``dict``) stored in the database; records handed out are copies.

The file uses WAL journaling, ``synchronous=NORMAL`` (durable across process crashes; the last
transactions may be lost on power failure), 8 KiB pages (new files) and a busy timeout, so
several processes can read and claim concurrently. One orchestrator per queue is the intended use.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from alphaloop._sqlite import opening
from alphaloop.execution._schema import READY_SEQS, RUNNING, prepare
from alphaloop.execution._task import (
    LIMIT_ATTEMPTS,
    Attempt,
    BacktestTask,
    Claim,
    FailureKind,
    RetryPolicy,
    TaskState,
)

logger = logging.getLogger(__name__)

QUEUE_FILENAME = "queue.db"
"""File name of the queue inside a home folder."""

_Q, _P, _C, _F = (s.value for s in TaskState)

_INSERT_RESULT = (
    "INSERT OR IGNORE INTO results (seq, result) SELECT seq, ?1 FROM tasks"
    f" WHERE task_id = ?2 AND state = '{_P}' AND attempt = ?3"
)
"""Record a result if the task is IN_PROGRESS under that attempt (params: text, task_id,
attempt); inserts nothing for a stale attempt or a result already recorded."""


class _Mixed(Exception):
    """A batch of outcomes that is not all current and distinct (internal)."""


_OWNER_CACHE: dict[int, str] = {}


def _owner_token() -> str:
    """``pid@start_time`` of this process: survives pid reuse."""
    pid = os.getpid()
    tok = _OWNER_CACHE.get(pid)
    if tok is None:
        tok = f"{pid}@{psutil.Process(pid).create_time():.2f}"
        _OWNER_CACHE[pid] = tok
    return tok


def _owner_alive(token: str | None) -> bool:
    if not token:
        return False
    try:
        pid_s, ctime_s = token.split("@", 1)
        proc = psutil.Process(int(pid_s))
        return f"{proc.create_time():.2f}" == ctime_s and proc.status() != psutil.STATUS_ZOMBIE
    except (ValueError, psutil.Error):
        return False


def _dumps_result(result: Mapping[str, Any] | str) -> str:
    """The JSON text to store for ``result``: a dict is serialised; JSON text (what workers
    send) is stored as-is after checking that it parses to a JSON object."""
    if isinstance(result, str):
        try:
            ok = isinstance(json.loads(result), dict)
        except ValueError:
            ok = False
        if not ok:
            raise TypeError(f"a task result must be a dict (a JSON object), got {result[:80]!r}")
        return result
    if not isinstance(result, Mapping):
        raise TypeError(f"a task result must be a dict, got {type(result).__name__}")
    return json.dumps(result)


class TaskQueue:
    """Durable priority queue of :class:`BacktestTask` in a SQLite file.

    Args:
        path: The database file, or a folder (then ``<folder>/queue.db``); created if missing.
        retry: Backoff between failed attempts.
        recover: Put back IN_PROGRESS tasks of dead orchestrators on open (see
            :meth:`recover`).
        busy_timeout: Seconds a write waits for another process's lock.
        seed: Seed of the jitter's random generator (tests).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        retry: RetryPolicy | None = None,
        recover: bool = True,
        busy_timeout: float = 30.0,
        seed: int | None = None,
    ) -> None:
        p = Path(path)
        if p.is_dir():
            p = p / QUEUE_FILENAME
        p.parent.mkdir(parents=True, exist_ok=True)
        self.path = p
        self.retry = retry or RetryPolicy()
        self._rng = random.Random(seed)
        self._conn = sqlite3.connect(p, isolation_level=None, timeout=busy_timeout)
        with opening(self._conn, p, "queue"):
            self._open(p, busy_timeout)
        if recover:
            n = self.recover()
            if n:
                logger.info("queue %s: %d interrupted task(s) put back in the queue", p, n)

    def _open(self, p: Path, busy_timeout: float) -> None:
        self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        # new files only (a no-op once the file has tables): payloads of a few KB each fit
        # 8 KiB pages with fewer overflow pages than 4 KiB
        self._conn.execute("PRAGMA page_size = 8192")
        mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            logger.warning("queue %s: WAL journaling unavailable (mode %s)", p, mode)
        self._conn.execute("PRAGMA synchronous = NORMAL")
        with self._tx() as c:
            prepare(c, p)

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def __enter__(self) -> TaskQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TaskQueue({str(self.path)!r})"

    # ------------------------------------------------------------------ creating work
    def enqueue(self, task: BacktestTask, *, exist_ok: bool = False) -> bool:
        """Add one task. Returns False if ``exist_ok`` and the id is already present."""
        return self.enqueue_batch([task], exist_ok=exist_ok) == 1

    def enqueue_batch(self, tasks: Iterable[BacktestTask], *, exist_ok: bool = False) -> int:
        """Add many tasks in ONE transaction (all or none). Returns how many were added.

        Raises:
            ValueError: a task id is repeated or already in the queue (unless ``exist_ok``,
                which skips existing ids instead).
        """
        now = time.time()
        tasks = list(tasks)
        if not exist_ok:
            ids = [t.task_id for t in tasks]
            if len(set(ids)) != len(ids):
                seen: set[str] = set()
                dup = next(i for i in ids if i in seen or seen.add(i))
                raise ValueError(f"task id {dup!r} appears twice in the batch; ids must be unique")
        verb = "INSERT OR IGNORE" if exist_ok else "INSERT"
        try:
            with self._tx() as c:
                # explicit sequence numbers (FIFO order) tie each payload to its task row; a
                # task skipped by exist_ok leaves its number unused and gets no payload
                base = c.execute("SELECT coalesce(max(seq), 0) FROM tasks").fetchone()[0] + 1
                before = c.total_changes
                c.executemany(
                    f"{verb} INTO tasks (seq, task_id, priority, state, retry_count, max_retries,"
                    " enqueued_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?7, ?7)",
                    [
                        (base + i, t.task_id, t.priority, _Q, t.retry_count, t.max_retries, now)
                        for i, t in enumerate(tasks)
                    ],
                )
                added = c.total_changes - before
                c.executemany(
                    "INSERT INTO payloads (seq, payload) SELECT ?1, ?2"
                    " WHERE EXISTS (SELECT 1 FROM tasks WHERE seq = ?1)",
                    [(base + i, t.model_dump_json()) for i, t in enumerate(tasks)],
                )
                return added
        except sqlite3.IntegrityError:
            existing = self._first_existing([t.task_id for t in tasks])
            raise ValueError(
                f"task id {existing!r} is already in queue {self.path}; use new ids or "
                "exist_ok=True"
            ) from None

    def _first_existing(self, ids: Sequence[str]) -> str | None:
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            row = self._conn.execute(
                f"SELECT task_id FROM tasks WHERE task_id IN ({','.join('?' * len(chunk))})"
                " LIMIT 1",
                chunk,
            ).fetchone()
            if row:
                return row[0]
        return None

    # ------------------------------------------------------------------ claiming
    def dequeue(self, *, worker_pid: int | None = None) -> Claim | None:
        """Claim the next ready task (see :meth:`dequeue_many`), or None if none is ready."""
        claims = self.dequeue_many(1, worker_pid=worker_pid)
        return claims[0] if claims else None

    def dequeue_many(self, n: int, *, worker_pid: int | None = None) -> list[Claim]:
        """Atomically claim up to ``n`` ready tasks: QUEUED, not-before time passed, highest
        priority first, FIFO within a priority. Each gets a new attempt number."""
        return self.dequeue_split([(n, worker_pid)])[0]

    def dequeue_split(self, wants: Sequence[tuple[int, int | None]]) -> list[list[Claim]]:
        """:meth:`dequeue_many` for several workers in ONE transaction.

        ``wants``: ``(n, worker_pid)`` per worker. Up to ``sum(n)`` ready tasks are claimed
        and handed out in claim order: the first ``n`` to the first worker, and so on (when
        the queue runs short, later entries get fewer or none). Returns one list per entry.
        """
        out: list[list[Claim]] = [[] for _ in wants]
        total = sum(max(0, n) for n, _pid in wants)
        if total <= 0:
            return out
        now = time.time()
        owner = _owner_token()
        with self._tx() as c:
            rows = c.execute(
                "UPDATE tasks SET state = ?, attempt = attempt + 1, owner = ?, updated_at = ?"
                f" WHERE seq IN ({READY_SEQS})"
                " RETURNING priority, seq, task_id, attempt, retry_count",
                (_P, owner, now, now, total),
            ).fetchall()
            if not rows:
                return out
            rows.sort(key=lambda r: (-r[0], r[1]))
            payloads = self._payloads(c, [r[1] for r in rows])
            attempts = []
            i = 0
            for k, (n, pid) in enumerate(wants):
                part = rows[i : i + max(0, n)]
                i += len(part)
                out[k] = [
                    Claim(task_id=r[2], attempt=r[3], payload=payloads[r[1]], retry_count=r[4])
                    for r in part
                ]
                attempts.extend((r[2], r[3], now, pid) for r in part)
            c.executemany(
                "INSERT INTO attempts (task_id, number, outcome, started_at, worker_pid)"
                " VALUES (?, ?, 'running', ?, ?)",
                attempts,
            )
        return out

    @staticmethod
    def _payloads(c: sqlite3.Connection, seqs: Sequence[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        for i in range(0, len(seqs), 500):
            chunk = seqs[i : i + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT seq, payload FROM payloads WHERE seq IN ({marks})"
            out.update(c.execute(sql, chunk))
        return out

    # ------------------------------------------------------------------ outcomes
    def mark_completed(
        self,
        task_id: str,
        result: Mapping[str, Any] | str,
        attempt: int,
        *,
        worker_pid: int | None = None,
        started_at: float | None = None,
    ) -> bool:
        """Record the result of attempt ``attempt``; the task becomes COMPLETED.

        ``result`` is a JSON-serialisable dict (or the JSON text of an object). Returns False,
        changing nothing, if the task is not IN_PROGRESS under that attempt (a stale attempt).
        """
        return self.mark_completed_many([(task_id, result, attempt, worker_pid, started_at)])[0]

    def mark_completed_many(
        self,
        outcomes: Iterable[
            tuple[str, Mapping[str, Any] | str, int]
            | tuple[str, Mapping[str, Any] | str, int, int | None, float | None]
        ],
    ) -> list[bool]:
        """:meth:`mark_completed` for many results in ONE transaction.

        ``outcomes``: ``(task_id, result, attempt)`` or ``(task_id, result, attempt,
        worker_pid, started_at)`` tuples. Each one is guarded on its own (IN_PROGRESS under
        that attempt) and the returned list says, per outcome and in order, whether it was
        recorded; a stale one (or a repeat within the batch) is ``False`` and changes nothing.
        Every result is validated before anything is written (``TypeError``: nothing recorded).
        """
        rows = []
        for o in outcomes:
            task_id, result, attempt = o[0], o[1], o[2]
            pid, started = (o[3], o[4]) if len(o) > 3 else (None, None)  # type: ignore[misc]
            rows.append((task_id, _dumps_result(result), attempt, pid, started))
        return self._mark_completed_texts(rows)

    def _mark_completed_texts(
        self, rows: Sequence[tuple[str, str, int, int | None, float | None]]
    ) -> list[bool]:
        """:meth:`mark_completed_many` for ``(task_id, json_text, attempt, worker_pid,
        started_at)`` rows whose text is already known to be a JSON object (the local pool's
        workers serialise a dict with ``json.dumps``)."""
        if not rows:
            return []
        now = time.time()
        try:
            with self._tx() as c:
                # the common case, every outcome current and distinct: three statements for
                # the whole batch; anything else rolls back and is decided one by one
                before = c.total_changes
                c.executemany(_INSERT_RESULT, [(r[1], r[0], r[2]) for r in rows])
                if c.total_changes - before != len(rows):
                    raise _Mixed
                self._close_completed(c, rows, now)
                return [True] * len(rows)
        except _Mixed:
            pass
        done: list[bool] = []
        with self._tx() as c:
            for task_id, text, attempt, _pid, _started in rows:
                done.append(c.execute(_INSERT_RESULT, (text, task_id, attempt)).rowcount == 1)
            self._close_completed(c, [r for r, ok in zip(rows, done, strict=True) if ok], now)
        return done

    @staticmethod
    def _close_completed(
        c: sqlite3.Connection,
        rows: Sequence[tuple[str, str, int, int | None, float | None]],
        now: float,
    ) -> None:
        """Move tasks whose result was just inserted to COMPLETED and close their attempt."""
        c.executemany(
            "UPDATE tasks SET state = ?, error = NULL, owner = NULL, updated_at = ?"
            " WHERE task_id = ? AND attempt = ?",
            [(_C, now, r[0], r[2]) for r in rows],
        )
        c.executemany(
            "UPDATE attempts SET outcome = 'completed', finished_at = ?,"
            " worker_pid = coalesce(?, worker_pid), started_at = coalesce(?, started_at)"
            " WHERE task_id = ? AND number = ?",
            [(now, r[3], r[4], r[0], r[2]) for r in rows],
        )

    def mark_failed(
        self,
        task_id: str,
        error: str,
        traceback: str | None = None,
        *,
        attempt: int | None = None,
        worker_pid: int | None = None,
        started_at: float | None = None,
        kind: FailureKind | str = FailureKind.TRANSIENT,
    ) -> bool:
        """Record a failed attempt: re-queue with backoff while ``retry_count < max_retries``
        (after incrementing it), else the task becomes FAILED.

        ``kind`` (`FailureKind`) caps the attempts: a PERMANENT failure (the strategy's own
        error, refused or crashed code, bad input) is final at once; a LIMIT failure (timeout,
        memory) allows at most `LIMIT_ATTEMPTS` attempts in all; TRANSIENT ones use
        ``max_retries``.
        ``attempt`` guards against stale reports (None: whichever attempt holds the task).
        Returns False, changing nothing, if the task is not IN_PROGRESS (under that attempt).
        """
        kind = FailureKind(kind)
        now = time.time()
        with self._tx() as c:
            row = c.execute(
                "SELECT attempt, retry_count, max_retries FROM tasks"
                " WHERE task_id = ? AND state = ?",
                (task_id, _P),
            ).fetchone()
            if row is None or (attempt is not None and row[0] != attempt):
                return False
            number, retries, max_retries = row[0], row[1] + 1, row[2]
            if kind is FailureKind.PERMANENT:
                max_retries = retries
            elif kind is FailureKind.LIMIT:
                max_retries = min(max_retries, LIMIT_ATTEMPTS)
            if retries < max_retries:
                state, not_before = _Q, now + self.retry.delay(retries, self._rng)
            else:
                state, not_before = _F, 0.0
            c.execute(
                "UPDATE tasks SET state = ?, retry_count = ?, not_before = ?, error = ?,"
                " owner = NULL, updated_at = ? WHERE task_id = ? AND state = ? AND attempt = ?",
                (state, retries, not_before, error, now, task_id, _P, number),
            )
            c.execute(
                "UPDATE attempts SET outcome = 'failed', finished_at = ?, error = ?,"
                " traceback = ?, worker_pid = coalesce(?, worker_pid),"
                " started_at = coalesce(?, started_at) WHERE task_id = ? AND number = ?",
                (now, error, traceback, worker_pid, started_at, task_id, number),
            )
        if state == _F:
            logger.warning("task %s failed after %d attempt(s): %s", task_id, retries, error)
        return True

    def release(
        self, task_id: str, attempt: int, *, started: bool = False, reason: str = "interrupted"
    ) -> bool:
        """Hand a claim back without counting a failure (shutdown, lost worker's backlog).

        ``started=False``: the attempt never began and leaves no record. ``started=True``: it
        is recorded as ``interrupted`` with ``reason``. Returns False if stale.
        """
        return self.release_many([(task_id, attempt)], started=started, reason=reason) == 1

    def release_many(
        self,
        claims: Iterable[tuple[str, int]],
        *,
        started: bool = False,
        reason: str = "interrupted",
    ) -> int:
        """:meth:`release` for many ``(task_id, attempt)`` pairs in one transaction."""
        pairs = list(claims)
        if not pairs:
            return 0
        now = time.time()
        n = 0
        with self._tx() as c:
            for task_id, attempt in pairs:
                cur = c.execute(
                    "UPDATE tasks SET state = ?, owner = NULL, updated_at = ?"
                    " WHERE task_id = ? AND state = ? AND attempt = ?",
                    (_Q, now, task_id, _P, attempt),
                )
                if cur.rowcount != 1:
                    continue
                n += 1
                if started:
                    c.execute(
                        "UPDATE attempts SET outcome = 'interrupted', finished_at = ?, error = ?"
                        " WHERE task_id = ? AND number = ?",
                        (now, reason, task_id, attempt),
                    )
                else:
                    c.execute(
                        "DELETE FROM attempts WHERE task_id = ? AND number = ?", (task_id, attempt)
                    )
        return n

    def recover(self, *, force: bool = False) -> int:
        """Put IN_PROGRESS tasks whose owning process is gone back in the queue, without
        using up a retry (their attempt is recorded as ``interrupted``).

        ``force=True`` also takes back claims of live processes (only when you know the
        owner is not running them). Returns how many tasks were put back.
        """
        rows = self._conn.execute(f"SELECT task_id, attempt, owner {RUNNING}").fetchall()
        alive: dict[str | None, bool] = {}
        stale: dict[str | None, list[tuple[str, int]]] = {}
        for task_id, attempt, owner in rows:
            if owner not in alive:
                alive[owner] = _owner_alive(owner)
            if force or not alive[owner]:
                stale.setdefault(owner, []).append((task_id, attempt))
        n = 0
        for owner, pairs in stale.items():
            n += self.release_many(
                pairs, started=True, reason=f"orchestrator {owner or '?'} stopped while running"
            )
        return n

    def requeue_failed(self) -> int:
        """Give every FAILED task a fresh set of attempts. Returns how many."""
        with self._tx() as c:
            cur = c.execute(
                "UPDATE tasks SET state = ?, retry_count = 0, not_before = 0, updated_at = ?"
                " WHERE state = ?",
                (_Q, time.time(), _F),
            )
            return cur.rowcount

    # ------------------------------------------------------------------ reading
    def get_stats(self) -> dict[str, int]:
        """Number of tasks per state: ``queued, in_progress, completed, failed``."""
        stats = {s.value: 0 for s in TaskState}
        for state, n in self._conn.execute("SELECT state, count(*) FROM tasks GROUP BY state"):
            stats[state] = n
        return stats

    def is_empty(self) -> bool:
        """True when nothing is QUEUED or IN_PROGRESS."""
        row = self._conn.execute(
            f"SELECT EXISTS (SELECT 1 {RUNNING}) OR EXISTS (SELECT 1 FROM tasks"
            f" INDEXED BY ix_tasks_ready WHERE state = '{_Q}')"
        ).fetchone()
        return not row[0]

    def count_ready(self, limit: int | None = None) -> int:
        """How many QUEUED tasks could be claimed now (counting stops at ``limit``)."""
        row = self._conn.execute(
            f"SELECT count(*) FROM ({READY_SEQS})",
            (time.time(), -1 if limit is None else limit),
        ).fetchone()
        return int(row[0])

    def next_ready_in(self) -> float | None:
        """Seconds until the earliest QUEUED task may be claimed (0 if one is ready now),
        or None if nothing is QUEUED."""
        row = self._conn.execute(
            f"SELECT min(not_before) FROM tasks INDEXED BY ix_tasks_ready WHERE state = '{_Q}'"
        ).fetchone()
        if row[0] is None:
            return None
        return max(0.0, row[0] - time.time())

    def _row(self, task_id: str, cols: str, join: str = "") -> tuple[Any, ...]:
        """``cols`` of one task; ``join``: "payloads" or "results" for their column."""
        on = f" LEFT JOIN {join} USING (seq)" if join else ""
        row = self._conn.execute(
            f"SELECT {cols} FROM tasks{on} WHERE task_id = ?", (task_id,)
        ).fetchone()
        if row is None:
            raise KeyError(f"no task {task_id!r} in queue {self.path}")
        return row

    def state(self, task_id: str) -> TaskState:
        """Current state of a task (KeyError if unknown)."""
        return TaskState(self._row(task_id, "state")[0])

    def get_task(self, task_id: str) -> BacktestTask:
        """A copy of the task with its current ``retry_count`` (KeyError if unknown)."""
        payload, retries = self._row(task_id, "payload, retry_count", "payloads")
        return BacktestTask.model_validate_json(payload).model_copy(update={"retry_count": retries})

    def get_result(self, task_id: str) -> dict[str, Any] | None:
        """The recorded result of a COMPLETED task, None otherwise (KeyError if unknown)."""
        state, text = self._row(task_id, "state, result", "results")
        if state != _C or text is None:
            return None
        return json.loads(text)

    def get_error(self, task_id: str) -> str | None:
        """The last failed attempt's error message, if any (KeyError if unknown)."""
        return self._row(task_id, "error")[0]

    def results(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(task_id, result)`` of every COMPLETED task, in enqueue order."""
        rows = self._conn.execute(
            "SELECT task_id, result FROM tasks JOIN results USING (seq) WHERE state = ?"
            " ORDER BY seq",
            (_C,),
        ).fetchall()
        for task_id, text in rows:
            yield task_id, json.loads(text)

    def attempts(self, task_id: str) -> list[Attempt]:
        """Every recorded attempt at a task, oldest first (KeyError if unknown)."""
        self._row(task_id, "1")
        rows = self._conn.execute(
            "SELECT task_id, number, outcome, started_at, finished_at, worker_pid, error,"
            " traceback FROM attempts WHERE task_id = ? ORDER BY number",
            (task_id,),
        ).fetchall()
        return [Attempt(*r) for r in rows]
