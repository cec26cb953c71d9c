"""One pool for many workflows: a campaign's workflows drain their own queues through one
executor, fairly.

Each workflow runs its orchestrator in a thread of its own and keeps its own durable
``queue.db`` (the source of truth, exactly as for a single run). What it is handed as an
executor is a :class:`SharedExecutor`: its ``run(queue, fn, on_result=...)`` joins the queue
to a :class:`QueueMux` and waits. The real executor (a `LocalPool` or a `DaskBackend`) runs
once, in the main thread, over the mux: to it the mux looks like one queue whose claims come
round-robin from every joined queue, and whose outcomes are routed back to the queue a task
came from (through a connection of the mux's own: SQLite connections stay in their thread).

A result reaches its workflow's ``on_result`` in that workflow's thread (the contract), after
it is committed. A member's ``run`` returns when its queue holds nothing QUEUED and nothing
the mux claimed from it is outstanding. When the real run ends early (a signal, a campaign
limit), every member's ``run`` returns ``interrupted``: its orchestrator stops where it is and
``alphaloop resume`` carries on, as after Ctrl-C in a single run.
"""

from __future__ import annotations

import queue as _queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from alphaloop.execution._base import Executor, OnResult, StopWhen, TaskFn
from alphaloop.execution._queue import TaskQueue
from alphaloop.execution._task import Claim, RunSummary, TaskState

POLL_SECONDS = 0.05
"""How soon the real executor looks again while members are busy elsewhere (researching,
proposing) and nothing is ready."""

_DONE = object()


@dataclass
class _Member:
    """A queue joined to the mux by one workflow's ``run`` call."""

    name: str
    serial: int  # claims are handed on as "<serial>|<task id>": ids repeat across workflows
    path: Any
    retry: Any
    inbox: _queue.SimpleQueue[Any] = field(default_factory=_queue.SimpleQueue)
    conn: TaskQueue | None = None  # the mux's own connection, opened in the mux's thread
    outstanding: int = 0
    completed: int = 0
    failed_attempts: int = 0
    gave_up: int = 0
    closing: bool = False  # stop_when fired: claim nothing more, let the outstanding finish
    finished: bool = False


class QueueMux:
    """The queue the real executor drains: every joined member's, fairly (see module doc).

    All methods but `join`, `leave`, `halt` and `active` are called from the executor's
    thread only."""

    def __init__(self, members_expected: int) -> None:
        self._lock = threading.Lock()
        self._members: list[_Member] = []
        self._by_task: dict[str, _Member] = {}  # claimed, outcome not yet recorded
        self._to_route: dict[str, _Member] = {}  # completed, result not yet handed on
        self._turn = 0
        self._serial = 0
        self._alive = members_expected  # workflow threads not yet finished
        self.halted: int | None = None  # the signal (or 0) the real run ended with early

    # -- membership (workflow threads) -------------------------------------------------------
    def join(self, name: str, queue: TaskQueue) -> _Member:
        with self._lock:
            self._serial += 1
            member = _Member(name=name, serial=self._serial, path=queue.path,
                             retry=queue.retry)
            self._members.append(member)
        return member

    def leave(self, member: _Member) -> None:
        with self._lock:
            if member in self._members:
                self._members.remove(member)

    def thread_done(self) -> None:
        """A workflow thread ended: once all have, the real run may end."""
        with self._lock:
            self._alive -= 1

    def halt(self, signum: int | None) -> None:
        """The real run ended early: every member's ``run`` returns interrupted, now and
        whenever a workflow asks again."""
        self.halted = 0 if signum is None else signum
        with self._lock:
            members = list(self._members)
        for m in members:
            m.inbox.put(_DONE)

    # -- helpers ------------------------------------------------------------------------------
    def _snapshot(self) -> list[_Member]:
        with self._lock:
            members = [m for m in self._members if not m.finished]
        for m in members:
            if m.conn is None:
                m.conn = TaskQueue(m.path, retry=m.retry, recover=False)
        return members

    def _settle(self, m: _Member) -> None:
        """Tell ``m``'s thread it is done when nothing of it is left to run."""
        if m.finished or m.outstanding:
            return
        assert m.conn is not None
        if m.closing or m.conn.next_ready_in() is None:
            m.finished = True
            m.conn.close()
            m.conn = None
            m.inbox.put(_DONE)

    def settle_all(self) -> bool:
        """Settle every member (members that joined with nothing to do finish here); the
        real executor's ``stop_when``: it never stops the run itself (see `next_ready_in`)."""
        for m in self._snapshot():
            self._settle(m)
        return False

    def _owner(self, wrapped: str) -> tuple[_Member, str]:
        """The member a handed-on claim id belongs to, and the id in its queue."""
        return self._by_task[wrapped], wrapped.split("|", 1)[1]

    def _resolved(self, task_id: str) -> _Member:
        m = self._by_task.pop(task_id)
        m.outstanding -= 1
        return m

    # -- the TaskQueue surface the executors use ---------------------------------------------
    def dequeue_split(self, wants: Sequence[tuple[int, int | None]]) -> list[list[Claim]]:
        total = sum(max(0, n) for n, _ in wants)
        members = [m for m in self._snapshot() if not m.closing]
        claims: list[Claim] = []
        if members and total > 0:
            start = self._turn % len(members)
            order = members[start:] + members[:start]
            self._turn += 1
            # an even share each, then what the short ones left to the others
            share = -(-total // len(order))
            for m in order + order:
                if len(claims) >= total:
                    break
                assert m.conn is not None
                got = [Claim(task_id=f"{m.serial}|{c.task_id}", attempt=c.attempt,
                             payload=c.payload, retry_count=c.retry_count)
                       for c in m.conn.dequeue_many(min(share, total - len(claims)))]
                for c in got:
                    self._by_task[c.task_id] = m
                m.outstanding += len(got)
                claims.extend(got)
        out: list[list[Claim]] = []
        i = 0
        for n, _pid in wants:
            out.append(claims[i : i + max(0, n)])
            i += max(0, n)
        return out

    def dequeue_many(self, n: int, *, worker_pid: int | None = None) -> list[Claim]:
        return self.dequeue_split([(n, worker_pid)])[0]

    def dequeue(self, *, worker_pid: int | None = None) -> Claim | None:
        got = self.dequeue_many(1, worker_pid=worker_pid)
        return got[0] if got else None

    def _completed(self, rows: Sequence[tuple[Any, ...]], texts: bool) -> list[bool]:
        groups: dict[int, tuple[_Member, list[int]]] = {}
        for i, r in enumerate(rows):
            m, _inner = self._owner(r[0])
            groups.setdefault(id(m), (m, []))[1].append(i)
        done = [False] * len(rows)
        for m, idx in groups.values():
            assert m.conn is not None
            part = [(rows[i][0].split("|", 1)[1], *rows[i][1:]) for i in idx]
            ok = (m.conn._mark_completed_texts(part) if texts
                  else m.conn.mark_completed_many(part))
            for i, flag in zip(idx, ok, strict=True):
                done[i] = flag
                if flag:
                    self._resolved(rows[i][0]).completed += 1
                    self._to_route[rows[i][0]] = m
        return done

    def _mark_completed_texts(
        self, rows: Sequence[tuple[str, str, int, int | None, float | None]]
    ) -> list[bool]:
        return self._completed(rows, texts=True)

    def mark_completed_many(self, outcomes: Sequence[tuple[Any, ...]]) -> list[bool]:
        return self._completed(outcomes, texts=False)

    def mark_completed(self, task_id: str, result: Any, attempt: int, *,
                       worker_pid: int | None = None, started_at: float | None = None) -> bool:
        return self.mark_completed_many([(task_id, result, attempt, worker_pid, started_at)])[0]

    def mark_failed(self, task_id: str, error: str, traceback: str | None = None,
                    **kw: Any) -> bool:
        m, inner = self._owner(task_id)
        assert m.conn is not None
        ok = m.conn.mark_failed(inner, error, traceback, **kw)
        if ok:
            self._resolved(task_id)
            m.failed_attempts += 1
            if m.conn.state(inner) is TaskState.FAILED:
                m.gave_up += 1
        return ok

    def release_many(self, items: Sequence[tuple[str, int]], **kw: Any) -> int:
        n = 0
        for task_id, attempt in items:
            m, inner = self._owner(task_id)
            assert m.conn is not None
            got = m.conn.release_many([(inner, attempt)], **kw)
            if got:
                self._resolved(task_id)
            n += got
        return n

    def release(self, task_id: str, attempt: int, **kw: Any) -> bool:
        return self.release_many([(task_id, attempt)], **kw) == 1

    def state(self, task_id: str) -> TaskState:
        serial, _, inner = task_id.partition("|")
        for m in self._snapshot():
            if str(m.serial) == serial:
                return m.conn.state(inner)  # type: ignore[union-attr]
        raise KeyError(task_id)

    def count_ready(self, limit: int | None = None) -> int:
        n = 0
        for m in self._snapshot():
            if not m.closing:
                n += m.conn.count_ready(limit)  # type: ignore[union-attr]
        return n

    def next_ready_in(self) -> float | None:
        """Seconds until a task may be claimed; None only when every workflow thread has
        ended (the real run then ends), else at most `POLL_SECONDS` (more may come)."""
        self.settle_all()
        waits = [w for m in self._snapshot() if not m.closing
                 if (w := m.conn.next_ready_in()) is not None]  # type: ignore[union-attr]
        with self._lock:
            alive = self._alive > 0
        if waits:
            return min(min(waits), POLL_SECONDS)
        return POLL_SECONDS if alive else None

    def get_stats(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in self._snapshot():
            for k, v in m.conn.get_stats().items():  # type: ignore[union-attr]
                out[k] = out.get(k, 0) + v
        return out

    def is_empty(self) -> bool:
        return all(m.conn.is_empty() for m in self._snapshot())  # type: ignore[union-attr]

    def route(self, task_id: str, result: dict[str, Any]) -> None:
        """The real executor's ``on_result``: to the owner's thread."""
        m = self._to_route.pop(task_id, None)
        if m is not None:
            m.inbox.put((task_id.split("|", 1)[1], result))

    def close_all(self) -> None:
        for m in self._snapshot():
            if m.conn is not None:
                m.conn.close()
                m.conn = None


class SharedExecutor(Executor):
    """What one workflow of a campaign is handed as its executor (see module doc)."""

    def __init__(self, mux: QueueMux, name: str, max_workers: int = 1) -> None:
        self.mux, self.name, self.max_workers = mux, name, max_workers

    def run(self, queue: TaskQueue, fn: TaskFn, *, on_result: OnResult | None = None,
            stop_when: StopWhen | None = None) -> RunSummary:
        t0 = time.monotonic()
        if self.mux.halted is not None:
            return self._interrupted(t0)
        member = self.mux.join(self.name, queue)
        try:
            while True:
                if stop_when is not None and stop_when():
                    member.closing = True
                try:
                    item = member.inbox.get(timeout=0.25)
                except _queue.Empty:
                    continue
                if item is _DONE:
                    # results put before the sentinel were delivered above; any routed later
                    # belong to a claim that was already resolved (none)
                    break
                if on_result is not None:
                    on_result(*item)
        finally:
            self.mux.leave(member)
        if self.mux.halted is not None and not member.finished:
            return self._interrupted(t0)
        return RunSummary(completed=member.completed, failed_attempts=member.failed_attempts,
                          gave_up=member.gave_up, elapsed=time.monotonic() - t0,
                          stopped=member.closing)

    def _interrupted(self, t0: float) -> RunSummary:
        sig = self.mux.halted or None
        return RunSummary(elapsed=time.monotonic() - t0, interrupted=True, signal=sig)


def drive(executor: Executor, mux: QueueMux, fn: TaskFn,
          stop_when: Callable[[], bool] | None = None) -> RunSummary:
    """Run the real executor over ``mux`` until every workflow thread has ended, or a signal
    or ``stop_when`` (a campaign limit) ends it early (then `QueueMux.halt`)."""

    def stop() -> bool:
        mux.settle_all()
        return bool(stop_when is not None and stop_when())

    summary = executor.run(mux, fn, on_result=mux.route, stop_when=stop)  # type: ignore[arg-type]
    if summary.interrupted or summary.stopped:
        mux.halt(summary.signal)
    return summary


__all__ = ["POLL_SECONDS", "QueueMux", "SharedExecutor", "drive"]
