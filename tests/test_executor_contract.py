"""One contract suite run against every executor backend (local pool, Dask)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import _tasks
from _tasks import task
from alphaloop.execution import (
    Executor,
    LocalPool,
    RetryPolicy,
    TaskQueue,
    TaskState,
)

FAST = RetryPolicy(base=0.01, factor=2.0, cap=0.05, jitter=0.5)


@pytest.fixture(scope="module")
def dask_client() -> Iterator[object]:
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
