"""One contract suite run against every executor backend (local pool, Dask)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import _tasks
from _tasks import task
from alphaloop.execution import (
    BacktestTask,
    Executor,
    LocalPool,
    RetryPolicy,
    TaskQueue,
    TaskState,
)

FAST = RetryPolicy(base=0.01, factor=2.0, cap=0.05, jitter=0.5)


@pytest.fixture(scope="module")
def dask_client() -> Iterator[object]:
    with _dask_cluster() as client:
        yield client


@contextlib.contextmanager
def _dask_cluster() -> Iterator[object]:
    distributed = pytest.importorskip("distributed")
    import dask

    with dask.config.set(
        {
            "distributed.scheduler.allowed-failures": 0,
            "distributed.scheduler.worker-saturation": 1.0,
        }
    ):
        cluster = distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
            memory_limit="2GiB",
        )
        client = distributed.Client(cluster)
        # the workers work elsewhere: a data path relative to the test's folder means
        # nothing to them (the bars must be shipped)
        elsewhere = tempfile.mkdtemp(prefix="alphaloop-dask-cwd-")
        client.run(os.chdir, elsewhere)
        try:
            yield client
        finally:
            client.close()
            cluster.close()


@pytest.fixture(params=["local", "dask"])
def make_executor(request: pytest.FixtureRequest) -> Iterator[Callable[..., Executor]]:
    made: list[Executor] = []

    def make(task_timeout: float = 20.0) -> Executor:
        if request.param == "local":
            ex: Executor = LocalPool(2, task_timeout=task_timeout)
        else:
            from alphaloop.execution.dask_backend import DaskBackend

            ex = DaskBackend(
                client=request.getfixturevalue("dask_client"), task_timeout=task_timeout
            )
        made.append(ex)
        return ex

    yield make
    for ex in made:
        ex.close()


@pytest.fixture
def executor(make_executor: Callable[..., Executor]) -> Executor:
    return make_executor()


@pytest.fixture
def q(tmp_path: Path) -> Iterator[TaskQueue]:
    queue = TaskQueue(tmp_path / "queue.db", retry=FAST)
    yield queue
    queue.close()


def test_drains_queue_and_reports_each_result_once(executor: Executor, q: TaskQueue) -> None:
    q.enqueue_batch([task(i) for i in range(30)])
    seen: list[str] = []
    summary = executor.run(q, _tasks.mixed, on_result=lambda tid, r: seen.append(tid))
    assert summary.completed == 30 and summary.failed_attempts == 0
    assert sorted(seen) == sorted(f"t{i}" for i in range(30))
    assert q.get_stats() == {"queued": 0, "in_progress": 0, "completed": 30, "failed": 0}
    assert q.get_result("t7")["task_id"] == "t7"


def test_empty_queue_returns_at_once(executor: Executor, q: TaskQueue) -> None:
    summary = executor.run(q, _tasks.mixed)
    assert summary.completed == 0 and summary.elapsed < 5


def test_exception_uses_all_attempts_and_keeps_tracebacks(executor: Executor, q: TaskQueue) -> None:
    q.enqueue_batch([task("bad", "fail", max_retries=2), task(1)])
    summary = executor.run(q, _tasks.mixed)
    assert q.state("tbad") is TaskState.FAILED and q.state("t1") is TaskState.COMPLETED
    attempts = q.attempts("tbad")
    assert [a.error for a in attempts] == ["ValueError: boom in tbad"] * 2
    assert all("ValueError" in a.traceback for a in attempts)
    assert summary.failed_attempts == 2 and summary.gave_up == 1


def test_flaky_task_completes_after_k_failures(
    executor: Executor, q: TaskQueue, tmp_path: Path
) -> None:
    q.enqueue(task("f", "flaky", tmp_path, k=1))
    executor.run(q, _tasks.mixed)
    assert [a.outcome for a in q.attempts("tf")] == ["failed", "completed"]
    assert q.get_result("tf") == {"task_id": "tf", "runs": 2}


def test_lost_worker_is_a_failed_attempt_then_retried(
    executor: Executor, q: TaskQueue, tmp_path: Path
) -> None:
    q.enqueue_batch([task("k", "kill_first", tmp_path)] + [task(i) for i in range(6)])
    executor.run(q, _tasks.mixed)
    first, *rest = q.attempts("tk")
    assert first.outcome == "failed" and "worker process died" in first.error
    assert rest[-1].outcome == "completed"
    assert q.get_result("tk") == {"task_id": "tk", "runs": 2}
    assert q.get_stats()["completed"] == 7


def test_non_json_result_is_a_failed_attempt(executor: Executor, q: TaskQueue) -> None:
    q.enqueue(task("nj", "not_json", max_retries=1))
    executor.run(q, _tasks.mixed)
    [a] = q.attempts("tnj")
    assert a.error.startswith("TypeError") and "JSON" in a.error


def test_overrunning_task_times_out_and_others_complete(
    make_executor: Callable[..., Executor], q: TaskQueue, tmp_path: Path
) -> None:
    """The overrunning task blocks until the test releases it: the run must return while it
    is still blocked (no wall-clock assertion; the 3 s timeout leaves the other tasks room on
    a loaded machine)."""
    executor = make_executor(task_timeout=3.0)
    q.enqueue_batch(
        [task("slow", "block", tmp_path, seconds=300, max_retries=1)] + [task(i) for i in range(10)]
    )
    try:
        summary = executor.run(q, _tasks.mixed)
        assert not (tmp_path / "tslow.done").exists()  # returned without waiting for it
    finally:
        (tmp_path / "tslow.release").touch()  # a Dask thread cannot be interrupted: free it
    [a] = q.attempts("tslow")
    assert a.error == "timed out after 3 s" and q.state("tslow") is TaskState.FAILED
    assert summary.completed == 10 and summary.gave_up == 1


def test_stop_when_leaves_queue_consistent(executor: Executor, q: TaskQueue) -> None:
    q.enqueue_batch([task(i, "sleep", seconds=0.05) for i in range(40)])
    done: list[str] = []
    summary = executor.run(
        q, _tasks.mixed, on_result=lambda tid, r: done.append(tid), stop_when=lambda: len(done) >= 3
    )
    stats = q.get_stats()
    assert summary.stopped and stats["in_progress"] == 0
    assert stats["completed"] == summary.completed >= 3
    assert stats["queued"] + stats["completed"] == 40
    executor.run(q, _tasks.mixed)
    assert q.get_stats()["completed"] == 40


def test_dask_worker_killed_mid_task_reports_killed_worker(
    dask_client: object, q: TaskQueue, tmp_path: Path
) -> None:
    from alphaloop.execution.dask_backend import DaskBackend

    q.enqueue(task("k", "kill_first", tmp_path))
    with DaskBackend(client=dask_client) as ex:
        summary = ex.run(q, _tasks.mixed)
    first, second = q.attempts("tk")
    assert "KilledWorker" in first.error and second.outcome == "completed"
    assert summary.completed == 1 and summary.failed_attempts == 1
    assert second.worker_pid != first.worker_pid


def test_dask_backend_by_scheduler_address(dask_client: object, q: TaskQueue) -> None:
    from alphaloop.execution.dask_backend import DaskBackend

    q.enqueue_batch([task(i) for i in range(5)])
    with DaskBackend(dask_client.scheduler.address) as ex:  # type: ignore[attr-defined]
        assert ex.run(q, _tasks.mixed).completed == 5
    with pytest.raises(ValueError, match="either a scheduler address or a client"):
        DaskBackend()


def _backtests(data_path: str, n: int = 6) -> list[BacktestTask]:
    from alphaloop.backtest.strategy import library_source

    src = library_source("sma_crossover")
    return [
        BacktestTask(
            task_id=f"b{i}",
            experiment_id="e",
            variant_id=f"v{i}",
            strategy_code=src,
            strategy_name="sma_crossover",
            ticker="GOOG",
            data_path=data_path,
            strategy_parameters={"fast": 5 + i, "slow": 60 + 10 * i},
        )
        for i in range(n)
    ]


def test_backtests_on_data_only_the_orchestrator_can_read(
    make_executor: Callable[..., Executor],
    q: TaskQueue,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--data prices`` relative to the orchestrator's folder: the local pool's workers
    share that folder, the Dask workers work elsewhere and get the bars shipped."""
    from alphaloop import data as market
    from alphaloop.execution.task_runner import run_task, run_task_in_process

    (tmp_path / "prices").mkdir()
    market.load("GOOG").to_csv(tmp_path / "prices" / "GOOG.csv")
    monkeypatch.chdir(tmp_path)
    tasks = _backtests("prices")
    q.enqueue_batch(tasks)
    summary = make_executor(task_timeout=120.0).run(q, run_task)
    assert summary.completed == len(tasks), [q.get_error(t.task_id) for t in tasks]
    for t in tasks:
        assert q.get_result(t.task_id) == run_task_in_process(t), t.task_id


def test_dask_without_shipping_workers_cannot_find_the_data(
    dask_client: object, q: TaskQueue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The variant above is a real test of shipping: without it the Dask workers fail."""
    from alphaloop import data as market
    from alphaloop.execution.dask_backend import DaskBackend
    from alphaloop.execution.task_runner import run_task

    (tmp_path / "prices").mkdir()
    market.load("GOOG").to_csv(tmp_path / "prices" / "GOOG.csv")
    monkeypatch.chdir(tmp_path)
    q.enqueue_batch(_backtests("prices", 2))
    with DaskBackend(client=dask_client, task_timeout=120, ship_data=False) as ex:
        summary = ex.run(q, run_task)
    assert summary.completed == 0 and summary.gave_up == 2
    assert "does not exist" in (q.get_error("b0") or "")


def test_dask_worker_killed_mid_batch_loses_nothing_and_counts_nothing_twice(
    dask_client: object, q: TaskQueue, tmp_path: Path
) -> None:
    """A batch of six: two finish and are recorded, the third kills its Dask worker. The two
    stay recorded (run once); the killed one and the three behind it are charged one failed
    attempt each and complete later; every result is recorded and reported once."""
    from alphaloop.execution.dask_backend import DaskBackend

    go = tmp_path / "go"
    first = [task(0, d=tmp_path), task(1, d=tmp_path)]
    killer = task("k", "kill_first", tmp_path, wait_for=str(go))
    rest = [task(i, d=tmp_path) for i in range(2, 12)]
    q.enqueue_batch([*first, killer, *rest])
    seen: list[str] = []

    def on_result(task_id: str, result: dict[str, object]) -> None:
        seen.append(task_id)
        if {"t0", "t1"} <= set(seen):
            go.touch()  # both recorded: now the worker dies

    with DaskBackend(client=dask_client, batch_size=6) as ex:
        summary = ex.run(q, _tasks.mixed, on_result=on_result)
    ids = [f"t{i}" for i in range(12)] + ["tk"]
    assert sorted(seen) == sorted(ids) and summary.completed == 13
    assert q.get_stats()["completed"] == 13
    for tid in ("t0", "t1"):
        [a] = q.attempts(tid)
        assert a.outcome == "completed" and q.get_result(tid)["runs"] == 1
    for tid in ("tk", "t2", "t3", "t4"):  # the killed task and the three behind it
        lost, *_more, last = q.attempts(tid)
        assert lost.outcome == "failed" and "KilledWorker" in lost.error, tid
        assert last.outcome == "completed"
    assert summary.failed_attempts == 4


@pytest.fixture
def two_dask_workers() -> Iterator[object]:
    """A cluster of its own: the module's may be waiting for a nanny to restart a worker a
    test before killed (under a loaded CI machine one never came back within 120 s), and a
    split needs both workers."""
    with _dask_cluster() as client:
        client.wait_for_workers(2, timeout=120)  # type: ignore[attr-defined]
        yield client


def test_dask_straggler_batch_is_split_when_the_others_are_done(
    two_dask_workers: object, q: TaskQueue, tmp_path: Path
) -> None:
    """The first batch's head blocks until the four tasks behind it are recorded: only a
    split lets them run elsewhere (without one, the head would wait 60 s and they after it)."""
    from alphaloop.execution.dask_backend import DaskBackend

    dask_client = two_dask_workers
    head = task("slow", "block", tmp_path, seconds=60)
    tail = [task(i, "sleep", seconds=0.05) for i in range(4)]
    other = [task(i, "sleep", seconds=0.05) for i in range(4, 9)]
    q.enqueue_batch([head, *tail, *other])
    seen: set[str] = set()

    def on_result(task_id: str, result: dict[str, object]) -> None:
        seen.add(task_id)
        if {"t0", "t1", "t2", "t3"} <= seen:
            (tmp_path / "tslow.release").touch()

    with DaskBackend(client=dask_client, batch_size=5) as ex:
        summary = ex.run(q, _tasks.mixed, on_result=on_result)
    assert summary.completed == 10 and summary.failed_attempts == 0
    blocked = q.get_result("tslow")
    assert blocked is not None and q.attempts("tslow")[0].worker_pid not in {
        q.attempts(f"t{i}")[-1].worker_pid for i in range(4)
    }
    assert all(len(q.attempts(f"t{i}")) == 1 for i in range(9))
