"""The durable SQLite task queue: claiming, guarded outcomes, retries, crash recovery."""

from __future__ import annotations

import multiprocessing as mp
import shutil
import sqlite3
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import _tasks
from alphaloop.errors import ConfigError
from alphaloop.execution import (
    BacktestTask,
    RetryPolicy,
    TaskQueue,
    TaskState,
    _schema,
    resolve_home,
)

FAST = RetryPolicy(base=0.01, factor=2.0, cap=0.05, jitter=0.5)


def task(i: int | str, **kw: object) -> BacktestTask:
    return BacktestTask(
        task_id=f"t{i}",
        experiment_id="e1",
        variant_id=f"v{i}",
        strategy_code="PARAMETERS = {}",
        ticker="SPY",
        **kw,
    )


@pytest.fixture
def q(tmp_path: Path) -> TaskQueue:
    queue = TaskQueue(tmp_path / "queue.db", retry=FAST, seed=0)
    yield queue
    queue.close()


# ---------------------------------------------------------------- home and setup
def test_resolve_home_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ALPHALOOP_HOME", raising=False)
    assert resolve_home(None) == tmp_path / ".alphaloop"
    monkeypatch.setenv("ALPHALOOP_HOME", str(tmp_path / "env"))
    assert resolve_home(None) == tmp_path / "env"
    assert resolve_home(str(tmp_path / "flag")) == tmp_path / "flag"
    assert (tmp_path / "flag").is_dir()


def test_home_that_is_a_file_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"it is a file.*--home"):
        resolve_home(tmp_path / "file")
    with pytest.raises(ConfigError, match="cannot be used"):
        resolve_home(tmp_path / "file" / "sub")


def test_queue_in_home_folder_uses_wal(tmp_path: Path) -> None:
    q = TaskQueue(resolve_home(str(tmp_path / "home")))
    assert q.path == tmp_path / "home" / "queue.db"
    con = sqlite3.connect(q.path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    q.close()


def test_task_validation() -> None:
    with pytest.raises(ValueError):
        task(1, max_retries=0)
    with pytest.raises(ValueError):
        BacktestTask(task_id=" ", experiment_id="e", variant_id="v", strategy_code="", ticker="X")
    t = task(1)
    assert (t.max_retries, t.commission, t.slippage_bps, t.priority) == (3, 0.001, 0.0, 0)


# ---------------------------------------------------------------- enqueue / claim
def test_priority_then_fifo(q: TaskQueue) -> None:
    q.enqueue_batch([task(1), task(2, priority=5), task(3), task(4, priority=5)])
    q.enqueue(task(5, priority=9))
    order = [c.task_id for c in q.dequeue_many(10)]
    assert order == ["t5", "t2", "t4", "t1", "t3"]
    assert q.dequeue() is None
    assert q.get_stats() == {"queued": 0, "in_progress": 5, "completed": 0, "failed": 0}


def test_enqueue_batch_10000_is_one_transaction(q: TaskQueue) -> None:
    tasks = [task(i) for i in range(10_000)]
    statements: list[str] = []
    q._conn.set_trace_callback(statements.append)
    assert q.enqueue_batch(tasks) == 10_000
    q._conn.set_trace_callback(None)
    assert sum(s.startswith("BEGIN") for s in statements) == 1
    assert sum(s == "COMMIT" for s in statements) == 1
    assert q.get_stats()["queued"] == 10_000


def test_claims_read_the_ready_index_without_sorting(q: TaskQueue) -> None:
    """A claim walks the partial index in claim order; it never sorts the whole queue (the
    planner did that when the state was a bound parameter: O(queue length) per claim)."""
    q.enqueue_batch([task(i, priority=i % 3) for i in range(200)])

    def plan(sql: str, *params: object) -> str:
        return " | ".join(r[-1] for r in q._conn.execute("EXPLAIN QUERY PLAN " + sql, params))

    claim = plan(_schema.READY_SEQS, 0.0, 10)
    assert "ix_tasks_ready" in claim and "TEMP B-TREE" not in claim, claim
    assert "ix_tasks_running" in plan(f"SELECT task_id {_schema.RUNNING}")
    assert q.count_ready() == 200
    assert [c.task_id for c in q.dequeue_many(3)] == ["t2", "t5", "t8"]
    assert not q.is_empty()


def test_enqueue_batch_is_all_or_nothing(q: TaskQueue) -> None:
    q.enqueue(task(3))
    with pytest.raises(ValueError, match="'t3' is already in queue"):
        q.enqueue_batch([task(1), task(2), task(3)])
    with pytest.raises(ValueError, match="appears twice"):
        q.enqueue_batch([task(7), task(7)])
    assert q.get_stats()["queued"] == 1
    assert q.enqueue_batch([task(1), task(3)], exist_ok=True) == 1


def test_claim_carries_task_and_attempt(q: TaskQueue) -> None:
    q.enqueue(task(1, strategy_parameters={"fast": 3}))
    c = q.dequeue(worker_pid=123)
    assert c is not None and c.attempt == 1
    assert c.task.strategy_parameters == {"fast": 3}
    assert q.state("t1") is TaskState.IN_PROGRESS
    [a] = q.attempts("t1")
    assert (a.number, a.outcome, a.worker_pid) == (1, "running", 123)


def test_concurrent_claims_from_processes_are_disjoint(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    q = TaskQueue(path)
    q.enqueue_batch([task(i) for i in range(600)])
    with ProcessPoolExecutor(3, mp_context=mp.get_context("spawn")) as ex:
        parts = list(ex.map(_tasks.claim_all, [str(path)] * 3, [7, 11, 13]))
    ids = [i for part in parts for i in part]
    assert len(ids) == 600 and len(set(ids)) == 600
    q.close()


# ---------------------------------------------------------------- outcomes
def test_completed_result_recorded_once(q: TaskQueue) -> None:
    q.enqueue(task(1))
    c = q.dequeue()
    assert q.mark_completed("t1", {"sharpe": 1.5}, c.attempt)
    assert not q.mark_completed("t1", {"sharpe": 9.9}, c.attempt)
    assert q.get_result("t1") == {"sharpe": 1.5}
    assert q.state("t1") is TaskState.COMPLETED
    assert q.attempts("t1")[0].outcome == "completed"


def test_stale_attempt_completion_is_ignored(q: TaskQueue) -> None:
    q.enqueue(task(1))
    first = q.dequeue()
    # the orchestrator presumed the attempt dead and put the task back
    assert q.release("t1", first.attempt, started=True, reason="presumed dead")
    # stale completion while re-queued: ignored
    assert not q.mark_completed("t1", {"from": "stale"}, first.attempt)
    second = q.dequeue()
    assert second.attempt > first.attempt
    # stale completion while the new attempt runs: ignored
    assert not q.mark_completed("t1", {"from": "stale"}, first.attempt)
    assert not q.mark_failed("t1", "late error", attempt=first.attempt)
    assert q.mark_completed("t1", {"from": "second"}, second.attempt)
    assert not q.mark_completed("t1", {"from": "stale"}, first.attempt)
    assert q.get_result("t1") == {"from": "second"}
    assert [a.outcome for a in q.attempts("t1")] == ["interrupted", "completed"]


def test_results_must_be_json_dicts(q: TaskQueue) -> None:
    q.enqueue(task(1))
    c = q.dequeue()
    with pytest.raises(TypeError, match="must be a dict"):
        q.mark_completed("t1", [1, 2], c.attempt)  # type: ignore[arg-type]
    assert q.state("t1") is TaskState.IN_PROGRESS


def test_result_text_must_be_a_json_object(q: TaskQueue) -> None:
    q.enqueue(task(1))
    c = q.dequeue()
    for bad in ("[1, 2]", "not json", "3"):
        with pytest.raises(TypeError, match="must be a dict"):
            q.mark_completed("t1", bad, c.attempt)
    assert q.state("t1") is TaskState.IN_PROGRESS
    assert q.mark_completed("t1", '{"sharpe": 1.5}', c.attempt)
    assert q.get_result("t1") == {"sharpe": 1.5}


def test_mark_completed_many_is_one_transaction_guarded_per_task(q: TaskQueue) -> None:
    q.enqueue_batch([task(i) for i in range(4)])
    claims = {c.task_id: c for c in q.dequeue_many(4)}
    stale = claims["t3"].attempt
    assert q.release("t3", stale)
    before = q._conn.total_changes
    got = q.mark_completed_many(
        [
            ("t0", {"v": 0}, claims["t0"].attempt),
            ("t1", '{"v": 1}', claims["t1"].attempt, 4242, 123.0),
            ("t0", {"v": "again"}, claims["t0"].attempt),  # repeat in the batch: ignored
            ("t2", {"v": 2}, claims["t2"].attempt + 1),  # wrong attempt: ignored
            ("t3", {"v": 3}, stale),  # released since: ignored
        ]
    )
    assert got == [True, True, False, False, False]
    assert q.get_result("t0") == {"v": 0} and q.get_result("t1") == {"v": 1}
    assert q.state("t2") is TaskState.IN_PROGRESS and q.state("t3") is TaskState.QUEUED
    a1 = q.attempts("t1")[0]
    assert (a1.outcome, a1.worker_pid, a1.started_at) == ("completed", 4242, 123.0)
    assert q._conn.total_changes > before
    # one invalid result: nothing in the batch is recorded
    with pytest.raises(TypeError, match="must be a dict"):
        q.mark_completed_many([("t2", {"v": 2}, claims["t2"].attempt), ("t2", "[]", 1)])
    assert q.state("t2") is TaskState.IN_PROGRESS
    assert q.mark_completed_many([]) == []


def test_dequeue_split_hands_out_claims_in_order(q: TaskQueue) -> None:
    q.enqueue_batch([task(i) for i in range(5)])
    assert q.count_ready() == 5 and q.count_ready(limit=2) == 2
    a, b, c = q.dequeue_split([(2, 11), (2, 22), (3, 33)])
    assert [x.task_id for x in a] == ["t0", "t1"]
    assert [x.task_id for x in b] == ["t2", "t3"]
    assert [x.task_id for x in c] == ["t4"]
    assert q.attempts("t2")[0].worker_pid == 22 and q.attempts("t4")[0].worker_pid == 33
    assert q.count_ready() == 0 and q.dequeue_split([(3, None)]) == [[]]


def test_failures_retry_with_backoff_then_fail(tmp_path: Path) -> None:
    q = TaskQueue(tmp_path / "q.db", retry=RetryPolicy(base=0.2, jitter=0.0))
    q.enqueue(task(1))  # max_retries=3 -> at most 3 attempts
    for n in (1, 2, 3):
        c = q.dequeue()
        assert c is not None and c.task.retry_count == n - 1
        try:
            raise ValueError(f"bad {n}")
        except ValueError:
            import traceback

            assert q.mark_failed(
                "t1", f"ValueError: bad {n}", traceback.format_exc(), attempt=c.attempt
            )
        if n < 3:
            assert q.state("t1") is TaskState.QUEUED
            assert q.dequeue() is None, "backoff must hold the task back"
            wait = q.next_ready_in()
            assert 0.0 < wait <= 0.2 * 2 ** (n - 1) + 0.01
            time.sleep(wait + 0.01)
    assert q.state("t1") is TaskState.FAILED
    assert q.dequeue() is None
    attempts = q.attempts("t1")
    assert [a.error for a in attempts] == [
        "ValueError: bad 1",
        "ValueError: bad 2",
        "ValueError: bad 3",
    ]
    assert all("raise ValueError" in a.traceback for a in attempts)
    assert all(a.finished_at >= a.started_at for a in attempts)
    assert q.get_error("t1") == "ValueError: bad 3"
    assert q.get_task("t1").retry_count == 3


def test_max_retries_one_means_one_attempt(q: TaskQueue) -> None:
    q.enqueue(task(1, max_retries=1))
    c = q.dequeue()
    assert q.mark_failed("t1", "boom", attempt=c.attempt)
    assert q.state("t1") is TaskState.FAILED


def test_mark_failed_requires_in_progress(q: TaskQueue) -> None:
    q.enqueue(task(1))
    assert not q.mark_failed("t1", "never claimed")
    c = q.dequeue()
    assert q.mark_completed("t1", {}, c.attempt)
    assert not q.mark_failed("t1", "too late", attempt=c.attempt)
    assert q.state("t1") is TaskState.COMPLETED


def test_release_unstarted_leaves_no_attempt_and_no_retry(q: TaskQueue) -> None:
    q.enqueue(task(1))
    c = q.dequeue()
    assert q.release("t1", c.attempt)
    assert q.attempts("t1") == []
    assert q.get_task("t1").retry_count == 0
    assert not q.release("t1", c.attempt)


def test_requeue_failed_gives_fresh_attempts(q: TaskQueue) -> None:
    q.enqueue_batch([task(1, max_retries=1), task(2)])
    for c in q.dequeue_many(2):
        if c.task_id == "t1":
            q.mark_failed("t1", "boom", attempt=c.attempt)
        else:
            q.mark_completed("t2", {"ok": 1}, c.attempt)
    assert q.requeue_failed() == 1
    assert q.state("t1") is TaskState.QUEUED and q.get_task("t1").retry_count == 0
    assert q.state("t2") is TaskState.COMPLETED
    c = q.dequeue()
    assert c.task_id == "t1" and q.mark_completed("t1", {"ok": 2}, c.attempt)


def test_stats_empty_and_lookups(q: TaskQueue) -> None:
    assert q.is_empty() and q.next_ready_in() is None
    q.enqueue(task(1))
    assert not q.is_empty()
    c = q.dequeue()
    assert not q.is_empty()
    assert q.get_result("t1") is None
    q.mark_completed("t1", {"x": 1}, c.attempt)
    assert q.is_empty()
    assert list(q.results()) == [("t1", {"x": 1})]
    with pytest.raises(KeyError, match="no task 'nope'"):
        q.get_result("nope")


# ---------------------------------------------------------------- crash recovery
def test_reopen_after_orchestrator_death_requeues_without_using_retries(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    q = TaskQueue(path)
    q.enqueue_batch([task(i) for i in range(5)])
    c = q.dequeue()
    q.mark_completed(c.task_id, {"done": True}, c.attempt)
    q.close()
    p = mp.get_context("spawn").Process(target=_tasks.claim_and_exit, args=(str(path), 3))
    p.start()
    p.join(30)
    assert p.exitcode == 0
    q = TaskQueue(path)  # recovers
    assert q.get_stats() == {"queued": 4, "in_progress": 0, "completed": 1, "failed": 0}
    assert q.get_result("t0") == {"done": True}
    interrupted = [a for i in range(1, 5) for a in q.attempts(f"t{i}")]
    assert len(interrupted) == 3
    assert all(a.outcome == "interrupted" and "stopped" in a.error for a in interrupted)
    assert all(q.get_task(f"t{i}").retry_count == 0 for i in range(5))


_V1_SCHEMA = """
CREATE TABLE tasks (
    seq INTEGER PRIMARY KEY, task_id TEXT NOT NULL UNIQUE, priority INTEGER NOT NULL,
    state TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 0,
    retry_count INTEGER NOT NULL DEFAULT 0, max_retries INTEGER NOT NULL,
    not_before REAL NOT NULL DEFAULT 0, owner TEXT, payload TEXT NOT NULL, result TEXT,
    error TEXT, enqueued_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE INDEX ix_tasks_ready ON tasks(priority DESC, seq) WHERE state = 'queued';
CREATE INDEX ix_tasks_state ON tasks(state);
CREATE TABLE attempts (
    task_id TEXT NOT NULL, number INTEGER NOT NULL, outcome TEXT NOT NULL,
    started_at REAL NOT NULL, finished_at REAL, worker_pid INTEGER, error TEXT,
    traceback TEXT, PRIMARY KEY (task_id, number)) WITHOUT ROWID;
"""


def test_queue_files_of_the_first_layout_are_upgraded_in_place(tmp_path: Path) -> None:
    """Version 1 kept payloads and results inline; opening such a file moves them to their
    own tables without losing a task, a result, an error or an attempt."""
    path = tmp_path / "queue.db"
    conn = sqlite3.connect(path)
    conn.executescript(_V1_SCHEMA)
    rows = [
        (1, "t1", 0, "completed", 1, 0, '{"sharpe": 1.5}', None),
        (2, "t2", 5, "queued", 0, 0, None, None),
        (3, "t3", 0, "failed", 3, 3, None, "ValueError: boom"),
        (4, "t4", 0, "in_progress", 1, 0, None, None),  # its orchestrator is long gone
    ]
    for seq, tid, prio, state, attempt, retries, result, error in rows:
        conn.execute(
            "INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?, 3, 0, ?, ?, ?, ?, 1.0, 1.0)",
            (seq, tid, prio, state, attempt, retries, "1@1.00" if state == "in_progress" else None,
             task(tid[1:], priority=prio).model_dump_json(), result, error),
        )
    conn.execute("INSERT INTO attempts VALUES ('t1', 1, 'completed', 1.0, 2.0, 7, NULL, NULL)")
    conn.execute("INSERT INTO attempts VALUES ('t4', 1, 'running', 1.0, NULL, 8, NULL, NULL)")
    conn.commit()
    conn.close()

    q = TaskQueue(path)
    assert q._conn.execute("PRAGMA user_version").fetchone()[0] == _schema.VERSION
    assert q.get_stats() == {"queued": 2, "in_progress": 0, "completed": 1, "failed": 1}
    assert q.get_result("t1") == {"sharpe": 1.5} and list(q.results()) == [("t1", {"sharpe": 1.5})]
    assert q.get_error("t3") == "ValueError: boom" and q.get_task("t3").task_id == "t3"
    assert [a.outcome for a in q.attempts("t4")] == ["interrupted"]  # recovered on open
    assert [c.task_id for c in q.dequeue_many(5)] == ["t2", "t4"]
    q.enqueue(task(5))
    assert q.dequeue().task.task_id == "t5"
    q.close()
    assert TaskQueue(path).get_stats()["completed"] == 1  # reopening is a no-op


def test_queue_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {_schema.VERSION + 1}")
    conn.close()
    with pytest.raises(ConfigError, match="newer than this alphaloop"):
        TaskQueue(path)


def test_a_file_that_is_not_a_queue_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    path.write_bytes(b"these bytes are not SQLite")
    with pytest.raises(ConfigError, match=r"queue .*queue\.db cannot be opened .*another --home"):
        TaskQueue(path)


def test_open_does_not_steal_claims_of_a_live_owner(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    q1 = TaskQueue(path)
    q1.enqueue(task(1))
    c = q1.dequeue()
    q2 = TaskQueue(path)  # same (live) process owns the claim
    assert q2.get_stats()["in_progress"] == 1
    assert q2.recover(force=True) == 1
    assert not q1.mark_completed("t1", {}, c.attempt)


# ---------------------------------------------------------------- retry policy
def test_retry_policy_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="factor"):
        RetryPolicy(factor=0.5)
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=2.0)


@given(st.integers(1, 50), st.floats(0.0, 1.0))
def test_retry_delay_bounds(failures: int, jitter: float) -> None:
    p = RetryPolicy(base=0.05, factor=2.0, cap=1.0, jitter=jitter)
    d = p.delay(failures)
    base = min(1.0, 0.05 * 2 ** (failures - 1))
    assert base <= d <= base * (1 + jitter) + 1e-12


# ---------------------------------------------------------------- model-based
class QueueModel(RuleBasedStateMachine):
    """Random sequences of claims, stale and current outcomes, releases and requeues against a
    plain-Python model: results are recorded once, stale reports change nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp()
        self.q = TaskQueue(Path(self.dir) / "q.db", retry=RetryPolicy(base=0.0, jitter=0.0))
        self.n = 0
        self.state: dict[str, str] = {}
        self.current: dict[str, int] = {}  # task -> attempt holding it (if in progress)
        self.retries: dict[str, int] = {}
        self.max_retries: dict[str, int] = {}
        self.result: dict[str, int] = {}
        self.claims: list[tuple[str, int]] = []

    @rule(max_retries=st.integers(1, 3), priority=st.integers(0, 2))
    def enqueue(self, max_retries: int, priority: int) -> None:
        tid = f"m{self.n}"
        self.n += 1
        self.q.enqueue(task(tid, max_retries=max_retries, priority=priority))
        self.state[f"t{tid}"], self.retries[f"t{tid}"] = "queued", 0
        self.max_retries[f"t{tid}"] = max_retries

    @rule(k=st.integers(1, 4))
    def claim(self, k: int) -> None:
        got = self.q.dequeue_many(k)
        ready = [t for t, s in self.state.items() if s == "queued"]
        assert len(got) == min(k, len(ready))
        for c in got:
            assert self.state[c.task_id] == "queued"
            self.state[c.task_id] = "in_progress"
            self.current[c.task_id] = c.attempt
            self.claims.append((c.task_id, c.attempt))

    def _live(self, tid: str, attempt: int) -> bool:
        return self.state[tid] == "in_progress" and self.current[tid] == attempt

    @precondition(lambda self: self.claims)
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        tid, attempt = data.draw(st.sampled_from(self.claims))
        value = data.draw(st.integers(0, 10**6))
        expect = self._live(tid, attempt)
        assert self.q.mark_completed(tid, {"v": value}, attempt) == expect
        if expect:
            self.state[tid], self.result[tid] = "completed", value

    @precondition(lambda self: self.claims)
    @rule(data=st.data())
    def fail(self, data: st.DataObject) -> None:
        tid, attempt = data.draw(st.sampled_from(self.claims))
        expect = self._live(tid, attempt)
        assert self.q.mark_failed(tid, "err", "tb", attempt=attempt) == expect
        if expect:
            self.retries[tid] += 1
            done = self.retries[tid] >= self.max_retries[tid]
            self.state[tid] = "failed" if done else "queued"

    @precondition(lambda self: self.claims)
    @rule(data=st.data(), started=st.booleans())
    def release(self, data: st.DataObject, started: bool) -> None:
        tid, attempt = data.draw(st.sampled_from(self.claims))
        expect = self._live(tid, attempt)
        assert self.q.release(tid, attempt, started=started) == expect
        if expect:
            self.state[tid] = "queued"

    @rule()
    def requeue_failed(self) -> None:
        failed = [t for t, s in self.state.items() if s == "failed"]
        assert self.q.requeue_failed() == len(failed)
        for t in failed:
            self.state[t], self.retries[t] = "queued", 0

    @invariant()
    def matches_model(self) -> None:
        stats = {s.value: 0 for s in TaskState}
        for s in self.state.values():
            stats[s] += 1
        assert self.q.get_stats() == stats
        for tid, value in self.result.items():
            assert self.q.get_result(tid) == {"v": value}

    def teardown(self) -> None:
        self.q.close()
        shutil.rmtree(self.dir, ignore_errors=True)


TestQueueModel = QueueModel.TestCase
TestQueueModel.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
