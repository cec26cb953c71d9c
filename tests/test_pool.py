"""LocalPool under faults, with real processes and real signals."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

import _tasks
from _tasks import task
from alphaloop.execution import BacktestTask, LocalPool, RetryPolicy, TaskQueue, TaskState

FAST = RetryPolicy(base=0.01, factor=2.0, cap=0.05, jitter=0.5)
SRC = Path(__file__).resolve().parents[1] / "src"
TESTS = Path(__file__).resolve().parent


def runs(d: Path, task_id: str) -> int:
    f = d / f"{task_id}.runs"
    return len(f.read_text().splitlines()) if f.exists() else 0


@pytest.fixture
def q(tmp_path: Path) -> TaskQueue:
    queue = TaskQueue(tmp_path / "queue.db", retry=FAST)
    yield queue
    queue.close()


def assert_at_strength(pool: LocalPool) -> None:
    pids = pool.worker_pids
    assert len(pids) == pool.max_workers
    assert all(psutil.pid_exists(p) for p in pids)


def test_results_are_recorded_before_on_result(q: TaskQueue) -> None:
    """Outcomes are committed in batches; a callback only ever sees a recorded result."""
    q.enqueue_batch([task(i) for i in range(200)])
    seen: list[str] = []

    def on_result(tid: str, result: dict[str, object]) -> None:
        assert q.state(tid) is TaskState.COMPLETED
        assert q.get_result(tid) == result
        seen.append(tid)

    with LocalPool(2, cpu_threshold=1.0, probe=None) as pool:
        summary = pool.run(q, _tasks.mixed, on_result=on_result)
    assert summary.completed == 200 and sorted(seen) == sorted(f"t{i}" for i in range(200))
    assert q.get_stats() == {"queued": 0, "in_progress": 0, "completed": 200, "failed": 0}


def test_mixed_batch_faults_and_successes(q: TaskQueue, tmp_path: Path) -> None:
    """Flaky, raising, hanging and memory-hungry tasks fail as attempts while the rest of
    the same batch completes."""
    q.enqueue_batch(
        [task(i, d=tmp_path) for i in range(30)]
        + [task("flaky", "flaky", tmp_path, k=2)]
        + [task("fail", "fail", tmp_path).model_copy(update={"max_retries": 2})]
        + [task("hang", "hang").model_copy(update={"max_retries": 1})]
        + [task("hog", "hog").model_copy(update={"max_retries": 1})]
    )
    seen: list[str] = []
    with LocalPool(2, task_timeout=1.0, memory_limit=1 << 30) as pool:
        summary = pool.run(q, _tasks.mixed, on_result=lambda tid, r: seen.append(tid))
        assert_at_strength(pool)
    assert summary.completed == 31 and sorted(seen) == sorted(set(seen)) and len(seen) == 31
    assert q.get_stats() == {"queued": 0, "in_progress": 0, "completed": 31, "failed": 3}
    for i in range(30):
        assert q.get_result(f"t{i}")["task_id"] == f"t{i}"
    # first k attempts raise, then it succeeds: exactly k failed attempts and one result
    flaky = q.attempts("tflaky")
    assert [a.outcome for a in flaky] == ["failed", "failed", "completed"]
    assert all(
        "RuntimeError: flaky failure" in a.error and "Traceback" in a.traceback for a in flaky[:2]
    )
    assert q.get_result("tflaky") == {"task_id": "tflaky", "runs": 3}
    assert runs(tmp_path, "tflaky") == 3
    # an exception on every attempt: FAILED after max_retries attempts, all errors kept
    fail = q.attempts("tfail")
    assert [a.error for a in fail] == ["ValueError: boom in tfail"] * 2
    assert q.state("tfail") is TaskState.FAILED
    # infinite loop -> timeout
    [hang] = q.attempts("thang")
    assert hang.error == "timed out after 1 s"
    # huge allocation -> memory limit
    [hog] = q.attempts("thog")
    assert hog.error.startswith("exceeded memory limit 1 GiB (MemoryError")
    assert summary.failed_attempts == 6 and summary.gave_up == 3


def test_worker_sigkilled_mid_task_is_retried_and_pool_recovers(
    q: TaskQueue, tmp_path: Path
) -> None:
    q.enqueue_batch(
        [task("victim", "sleep_once", tmp_path, seconds=30)]
        + [task(i, d=tmp_path) for i in range(20)]
    )
    pidfile = tmp_path / "tvictim.pid"
    killed: list[int] = []

    def killer() -> None:
        deadline = time.monotonic() + 20
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        pid = int(pidfile.read_text())
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    t = threading.Thread(target=killer)
    t.start()
    with LocalPool(2, task_timeout=60) as pool:
        summary = pool.run(q, _tasks.mixed)
        t.join()
        assert_at_strength(pool)
        assert killed[0] not in pool.worker_pids
    assert summary.completed == 21 and summary.failed_attempts == 1
    died, done = q.attempts("tvictim")
    assert died.outcome == "failed" and died.worker_pid == killed[0]
    assert died.error.startswith("worker process died (killed by SIGKILL")
    assert done.outcome == "completed"
    assert q.get_result("tvictim") == {"task_id": "tvictim", "runs": 2}


def test_worker_segfault_is_a_failed_attempt(q: TaskQueue, tmp_path: Path) -> None:
    q.enqueue(task("self", "kill_first", tmp_path))
    with LocalPool(1) as pool:
        pool.run(q, _tasks.mixed)
    first, second = q.attempts("tself")
    assert "worker process died" in first.error and second.outcome == "completed"


def test_workers_recycled_after_max_tasks(q: TaskQueue) -> None:
    q.enqueue_batch([task(i) for i in range(40)])
    with LocalPool(2, max_tasks_per_worker=5, max_batch=4) as pool:
        summary = pool.run(q, _tasks.mixed)
        assert_at_strength(pool)
    pids = {r["pid"] for _, r in q.results()}
    assert summary.completed == 40 and len(pids) >= 8


def test_workers_are_long_lived_across_runs(q: TaskQueue) -> None:
    with LocalPool(2) as pool:
        q.enqueue_batch([task(i) for i in range(10)])
        pool.run(q, _tasks.mixed)
        before = set(pool.worker_pids)
        q.enqueue_batch([task(i) for i in range(10, 20)])
        pool.run(q, _tasks.mixed)
        assert set(pool.worker_pids) == before
    assert {r["pid"] for _, r in q.results()} <= before


def test_task_duration_estimate_follows_the_current_run(q: TaskQueue) -> None:
    """Batch depth and result batching come from the measured task duration; a run of fast
    tasks after slow ones uses its own first measurement, not the slow run's average (which
    left workers idle with tiny batches at the start of the next run)."""
    with LocalPool(1, cpu_threshold=1.0) as pool:
        q.enqueue_batch([task(i, do="sleep", seconds=0.3) for i in range(2)])
        pool.run(q, _tasks.mixed)
        assert pool._task_seconds is not None and pool._task_seconds >= 0.25
        q.enqueue(task("fast"))
        pool.run(q, _tasks.mixed)
        assert pool._task_seconds < 0.1
        assert pool._depth() > 2


def test_lambda_task_function_is_rejected(q: TaskQueue) -> None:
    q.enqueue(task(1))
    with LocalPool(1) as pool, pytest.raises(TypeError, match="module-level function"):
        pool.run(q, lambda t: {})
    assert q.get_stats()["queued"] == 1


class FakeProbe:
    def __init__(self, cpu: float, mem: float = 0.1) -> None:
        self.cpu, self.mem, self.calls = cpu, mem, 0

    def sample(self, exclude_pids: object = ()) -> tuple[float, float]:
        self.calls += 1
        return self.cpu, self.mem


def _overlaps(results: list[dict]) -> bool:
    spans = sorted((r["start"], r["end"]) for r in results)
    return any(b[0] < a[1] - 0.01 for a, b in itertools.pairwise(spans))


@pytest.mark.parametrize("which", ["cpu", "memory"])
def test_resource_gate_holds_back_additional_tasks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, which: str
) -> None:
    probe = FakeProbe(0.95) if which == "cpu" else FakeProbe(0.1, mem=0.95)
    q = TaskQueue(tmp_path / "q.db")
    q.enqueue_batch([task(i, "sleep", seconds=0.15) for i in range(5)])
    caplog.set_level(logging.INFO, logger="alphaloop.execution._local")
    with LocalPool(2, probe=probe) as pool:
        pool.run(q, _tasks.mixed)
        results = [r for _, r in q.results()]
        assert len(results) == 5 and not _overlaps(results), "only one task at a time"
        assert probe.calls > 0
        holds = [r for r in caplog.records if "holding back" in r.getMessage()]
        assert len(holds) == 1 and which.upper()[:3] in holds[0].getMessage().upper()
        # below the threshold, dispatch resumes and tasks run side by side
        probe.cpu = probe.mem = 0.1
        q.enqueue_batch([task(i, "sleep", seconds=0.3) for i in range(5, 9)])
        pool.run(q, _tasks.mixed)
    later = [r for tid, r in q.results() if int(tid[1:]) >= 5]
    assert _overlaps(later)
    assert sum("resuming" in r.getMessage() for r in caplog.records) == 1


def _run_script(home: Path, body: str) -> subprocess.Popen[bytes]:
    script = textwrap.dedent("""
        import sys
        sys.path[:0] = [{src!r}, {tests!r}]
        from alphaloop.execution import LocalPool, TaskQueue, RetryPolicy
        import _tasks
        if __name__ == "__main__":
            q = TaskQueue({db!r}, retry=RetryPolicy(base=0.01))
    """).format(src=str(SRC), tests=str(TESTS), db=str(home / "queue.db"))
    script += textwrap.indent(textwrap.dedent(body), " " * 4)
    path = home / "driver.py"
    path.write_text(script)
    return subprocess.Popen(
        [sys.executable, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def test_orchestrator_sigkill_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    n = 200
    q = TaskQueue(tmp_path / "queue.db")
    q.enqueue_batch(
        [task(i, "ok", tmp_path) for i in range(n - 20)]
        + [task(i, "sleep", tmp_path, seconds=0.05) for i in range(n - 20, n)]
    )
    # slow the first tasks so the kill lands while work is in flight
    proc = _run_script(
        tmp_path,
        """
        with LocalPool(2) as pool:
            pool.run(q, _tasks.mixed)
    """,
    )
    deadline = time.monotonic() + 30
    while q.get_stats()["completed"] < 20 and time.monotonic() < deadline:
        time.sleep(0.005)
    stats = q.get_stats()
    assert 0 < stats["completed"] < n, stats
    proc.kill()
    proc.wait(10)
    worker_pids = {int(line) for f in tmp_path.glob("*.runs") for line in f.read_text().split()}
    time.sleep(0.3)
    assert not [
        p
        for p in worker_pids
        if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
    ], "orphaned workers"
    # reopen: in-flight tasks go back to the queue, completed results stay
    q2 = TaskQueue(tmp_path / "queue.db")
    mid = q2.get_stats()
    assert mid["in_progress"] == 0 and mid["completed"] >= stats["completed"]
    with LocalPool(2) as pool:
        pool.run(q2, _tasks.mixed)
    assert q2.get_stats() == {"queued": 0, "in_progress": 0, "completed": n, "failed": 0}
    results = dict(q2.results())
    assert sorted(results) == sorted(f"t{i}" for i in range(n))
    executions = [runs(tmp_path, f"t{i}") for i in range(n)]
    assert min(executions) >= 1 and max(executions) <= 2
    assert all(q2.get_task(f"t{i}").retry_count == 0 for i in range(n))


@pytest.mark.parametrize(
    ("sig", "grace", "code"), [(signal.SIGTERM, 10.0, 143), (signal.SIGINT, 0.0, 130)]
)
def test_signal_stops_cleanly(tmp_path: Path, sig: int, grace: float, code: int) -> None:
    q = TaskQueue(tmp_path / "queue.db")
    q.enqueue_batch([task(i, "sleep", seconds=0.4) for i in range(12)])
    proc = _run_script(
        tmp_path,
        f"""
        with LocalPool(2, grace={grace}) as pool:
            s = pool.run(q, _tasks.mixed)
        print(s.interrupted, s.signal, flush=True)
        sys.exit(s.exit_code)
    """,
    )
    deadline = time.monotonic() + 30
    while q.get_stats()["in_progress"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err.decode()
    assert out.split() == [b"True", str(int(sig)).encode()]
    stats = q.get_stats()
    assert stats["in_progress"] == 0 and stats["failed"] == 0
    assert stats["queued"] + stats["completed"] == 12 and stats["queued"] > 0
    assert all(q.get_task(f"t{i}").retry_count == 0 for i in range(12))
    outcomes = {a.outcome for i in range(12) for a in q.attempts(f"t{i}")}
    if grace == 0.0:
        assert "interrupted" in outcomes  # running tasks were killed, not failed
    else:
        assert "interrupted" not in outcomes  # running tasks finished within the grace


def test_integration_real_backtests_through_the_pool(q: TaskQueue) -> None:
    """The real task runner under the default limits (skipped until data/backtest exist)."""
    pytest.importorskip("alphaloop.backtest.runner")
    data = pytest.importorskip("alphaloop.data")
    from alphaloop.backtest.strategy import library_source
    from alphaloop.execution.task_runner import run_task

    src = library_source("sma_crossover")
    ticker = data.SAMPLE_TICKERS[0]
    q.enqueue_batch(
        [
            BacktestTask(
                task_id=f"b{fast}",
                experiment_id="e",
                variant_id=f"v{fast}",
                strategy_code=src,
                strategy_name="sma_crossover",
                ticker=ticker,
                strategy_parameters={"fast": fast, "slow": 50},
                start="2010-01-01",
            )
            for fast in (5, 10, 20)
        ]
        + [
            BacktestTask(
                task_id="bad",
                experiment_id="e",
                variant_id="bad",
                strategy_code=src,
                strategy_name="sma_crossover",
                ticker=ticker,
                max_retries=1,
                strategy_parameters={"fats": 5},
            )
        ]
    )
    with LocalPool(2) as pool:  # default 2 GiB address-space limit must fit a real backtest
        summary = pool.run(q, run_task)
    assert summary.completed == 3
    r = q.get_result("b10")
    assert set(r) >= {"metrics", "bars", "data_fingerprint", "code_hash"}
    assert r["bars"] > 100 and "sharpe_ratio" in r["metrics"]
    assert "did you mean" in q.attempts("bad")[0].error


def test_workers_recycled_when_rss_exceeds_limit(q: TaskQueue) -> None:
    q.enqueue_batch([task(i) for i in range(8)])
    # every worker is "too big" after its first task; max_batch=2 bounds its backlog
    with LocalPool(2, max_worker_rss=1, max_batch=2) as pool:
        summary = pool.run(q, _tasks.mixed)
        assert_at_strength(pool)
    assert summary.completed == 8
    assert len({r["pid"] for _, r in q.results()}) >= 4


def test_rss_reading_tracks_growth_and_the_current_process() -> None:
    """The worker's RSS reading (an open /proc/self/statm) matches psutil, follows a
    large allocation and, after a fork, reports the child, not the parent."""
    import numpy as np

    from alphaloop.execution._worker import rss_bytes

    me = psutil.Process()
    assert abs(rss_bytes() - me.memory_info().rss) < 8 << 20
    big = np.ones(40_000_000)  # 320 MB, touched
    assert abs(rss_bytes() - me.memory_info().rss) < 8 << 20
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop the array, report its own RSS
        del big
        os.write(w, str(rss_bytes()).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = int(os.read(r, 64))
    assert child < rss_bytes() - (200 << 20)
    del big


def test_psutil_probe_never_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The design's sketch blocked a second per dispatch in cpu_percent(interval=1); the probe
    must read counters only: any sleep or blocking cpu_percent call fails this test."""
    from alphaloop.execution import PsutilProbe

    def forbidden(*_a: object, **_k: object) -> None:
        raise AssertionError("the resource probe must not sleep or block")

    monkeypatch.setattr(time, "sleep", forbidden)
    monkeypatch.setattr(psutil, "cpu_percent", forbidden)
    monkeypatch.setattr(psutil.Process, "cpu_percent", forbidden)
    probe = PsutilProbe(min_interval=0.0)
    for _ in range(20):
        cpu, mem = probe.sample([os.getpid()])
        assert 0.0 <= cpu <= 1.0 and 0.0 < mem <= 1.0


def test_importing_configures_no_logging() -> None:
    code = (
        "import logging, alphaloop.execution, alphaloop.execution.dask_backend;"
        "assert not logging.getLogger().handlers;"
        "assert not logging.getLogger('alphaloop.execution._local').handlers"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(SRC)}
    )
