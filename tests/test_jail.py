"""Strategy processes: confined children of clean workers, as the pool, Dask and the CLI use
them. Real processes, real faults (crash, runaway memory, endless loop), real kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from alphaloop.backtest.strategy import library_source
from alphaloop.execution import (
    BacktestTask,
    LocalPool,
    RetryPolicy,
    TaskQueue,
    TaskState,
    confinement,
)
from alphaloop.execution._local import derived_timeout
from alphaloop.execution.task_runner import run_task, run_task_in_process

FAST = RetryPolicy(base=0.01, factor=2.0, cap=0.05, jitter=0.5)
needs_kernel = pytest.mark.skipif(
    not confinement().ok, reason=f"needs kernel confinement: {confinement().describe()}"
)

HEADER = '"""Test strategy."""\nimport numpy as np\nimport pandas as pd\n\nPARAMETERS = {}\n\n'


def user(body: str) -> str:
    return HEADER + textwrap.dedent(body)


RAISES = user(
    """
    def generate_positions(data):
        return 1 / 0
    """
)
CRASHES = user(
    """
    def generate_positions(data):
        far = np.lib.stride_tricks.as_strided(np.zeros(1), shape=(1 << 20,), strides=(1 << 40,))
        return pd.Series(float(far.sum()), index=data.index)
    """
)
HOGS = user(
    """
    def generate_positions(data):
        big = np.ones(int(50e9 / 8))
        return pd.Series(big[: len(data)] * 0.0, index=data.index)
    """
)
LOOPS = user(
    """
    def generate_positions(data):
        x = 0
        while True:
            x += 1
    """
)
LONG = user(
    """
    def generate_positions(data):
        c = data["close"]
        return (c > c.rolling(30).mean()).astype(float)
    """
)


def task(tid: str, source: str, name: str, **kw: object) -> BacktestTask:
    return BacktestTask(
        task_id=tid,
        experiment_id="e",
        variant_id=tid,
        strategy_code=source,
        strategy_name=name,
        ticker=str(kw.pop("ticker", "GOOG")),
        **kw,  # type: ignore[arg-type]
    )


def library_tasks() -> list[BacktestTask]:
    out = []
    for i, (name, params) in enumerate(
        [
            ("sma_crossover", {"fast": 5, "slow": 40}),
            ("sma_crossover", {"fast": 12, "slow": 90}),
            ("macd", {}),
            ("rsi_reversion", {}),
            ("bollinger_reversion", {}),
            ("donchian_breakout", {"allow_short": True}),
            ("momentum", {}),
            ("ema_crossover", {}),
        ]
    ):
        out.append(
            task(
                f"lib{i}",
                library_source(name),
                name,
                strategy_parameters=params,
                check_lookahead=i % 2 == 0,
                start="2005-01-03",
                end="2012-12-31",
                eval_start="2010-01-04" if i % 3 == 0 else None,
                ticker=["GOOG", "AAPL", "MSFT"][i % 3],
            )
        )
    out.append(task("user", LONG, "long_above_mean", check_lookahead=True))
    return out


@pytest.fixture
def q(tmp_path: Path) -> Iterator[TaskQueue]:
    queue = TaskQueue(tmp_path / "queue.db", retry=FAST)
    yield queue
    queue.close()


@needs_kernel
def test_confined_results_equal_the_unconfined_ones(tmp_path: Path) -> None:
    """The boundary changes where the code runs, not a single number."""
    tasks = library_tasks()
    results = {}
    for name, fn in (("confined", run_task), ("in-process", run_task_in_process)):
        q = TaskQueue(tmp_path / f"{name}.db")
        q.enqueue_batch(tasks)
        with LocalPool(2) as pool:
            summary = pool.run(q, fn)
        assert summary.completed == len(tasks), q.get_stats()
        results[name] = {t.task_id: q.get_result(t.task_id) for t in tasks}
        q.close()
    assert results["confined"] == results["in-process"]


@needs_kernel
def test_failures_are_classified_and_retried_only_when_it_can_help(q: TaskQueue) -> None:
    q.enqueue_batch(
        [
            task("raises", RAISES, "raises"),
            task("crashes", CRASHES, "crashes"),
            task("hogs", HOGS, "hogs"),
            task("loops", LOOPS, "loops"),
            task("ok", library_source("buy_and_hold"), "buy_and_hold"),
        ]
    )
    with LocalPool(2, task_timeout=5.0, memory_limit=1 << 30) as pool:
        summary = pool.run(q, run_task)
    assert summary.completed == 1 and q.state("ok") is TaskState.COMPLETED
    expected = {
        # deterministic: one attempt, the strategy's own line named
        "raises": (1, "line 9: ZeroDivisionError"),
        # a crash in strategy code is the strategy's: one attempt, the worker survives it
        "crashes": (1, "crashed its process (killed by SIGSEGV"),
        # limits: a second attempt, never a third
        "hogs": (2, "exceeded the memory limit 1 GiB"),
        "loops": (2, "timed out after 5 s"),
    }
    for tid, (attempts, text) in expected.items():
        assert q.state(tid) is TaskState.FAILED, tid
        tries = [a for a in q.attempts(tid) if a.outcome == "failed"]
        assert len(tries) == attempts, (tid, [a.error for a in tries])
        assert text in (q.get_error(tid) or ""), (tid, q.get_error(tid))


COUNTS = user(
    """
    CALLS = [0]

    def generate_positions(data):
        CALLS[0] += 1  # what this process has served: 0.1 long per call
        return pd.Series(0.1 * CALLS[0], index=data.index)
    """
)


@needs_kernel
def test_a_worker_keeps_its_last_strategies_processes_and_no_more(q: TaskQueue) -> None:
    """A run alternates between a few strategies: each keeps its own process (state kept
    within one strategy shows it), and the least recently used one is ended beyond four."""
    order = ["a1", "b", "a2", "c", "d", "e", "f", "a3"]
    q.enqueue_batch(
        [
            task(tid, COUNTS, "counts") if tid[0] == "a" else task(tid, LONG + f"# {tid}\n", tid)
            for tid in order
        ]
    )
    with LocalPool(1) as pool:
        summary = pool.run(q, run_task)
    assert summary.completed == len(order), q.get_stats()
    ret = {t: q.get_result(t)["metrics"]["total_return"] for t in ("a1", "a2", "a3")}
    assert ret["a2"] > ret["a1"] > 0  # the same process served a1 and a2: 0.1 long, then 0.2
    # b, c, d, e, f came after a2: a's process was the least recently used and was ended, so
    # a3 ran in a fresh one, exactly as a1 did
    assert ret["a3"] == ret["a1"]


def test_derived_timeout() -> None:
    assert derived_timeout([0.1] * 4, 300.0) == 300.0  # too few measurements: the cap
    assert derived_timeout([0.01] * 5, 300.0) == 10.0  # the floor
    assert derived_timeout([1.0] * 99 + [3.0], 300.0) == 50.0  # 50 x p95, one outlier ignored
    assert derived_timeout([10.0] * 100, 300.0) == 300.0  # capped


def test_kernel_off_refuses_code_from_outside_the_library(
    q: TaskQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALPHALOOP_TEST_NO_KERNEL_CONFINEMENT", "1")  # inherited by workers
    q.enqueue_batch(
        [
            task("user", LONG, "long_above_mean"),
            task("user_ok", LONG, "long_above_mean", unconfined_ok=True),
            task("library", library_source("buy_and_hold"), "buy_and_hold"),
        ]
    )
    with LocalPool(1) as pool:
        pool.run(q, run_task)
    assert q.state("user") is TaskState.FAILED
    assert len(q.attempts("user")) == 1
    error = q.get_error("user") or ""
    assert "kernel confinement unavailable" in error and "--unconfined" in error
    assert q.state("user_ok") is TaskState.COMPLETED
    assert q.state("library") is TaskState.COMPLETED


# -- the command line ---------------------------------------------------------------------
def alphaloop(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alphaloop.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@needs_kernel
@pytest.mark.parametrize(
    ("source", "args", "expected"),
    [
        (LOOPS, ["--timeout", "3"], "timed out after 3 s; raise --timeout"),
        (HOGS, ["--memory", "256MiB"], "exceeded the memory limit 256 MiB"),
        (CRASHES, [], "crashed its process (killed by SIGSEGV"),
    ],
)
def test_backtest_limits_are_one_line_exit_2(
    tmp_path: Path, source: str, args: list[str], expected: str
) -> None:
    path = tmp_path / "bad.py"
    path.write_text(source)
    proc = alphaloop("backtest", str(path), "--ticker", "GOOG", *args)
    assert proc.returncode == 2, proc.stderr
    assert expected in one_line(proc)


def test_backtest_without_kernel_confinement(tmp_path: Path) -> None:
    path = tmp_path / "mine.py"
    path.write_text(LONG)
    off = {"ALPHALOOP_TEST_NO_KERNEL_CONFINEMENT": "1"}
    proc = alphaloop("backtest", str(path), "--ticker", "GOOG", "--json", env=off)
    assert proc.returncode == 2
    line = one_line(proc)
    assert "kernel confinement unavailable" in line and "--unconfined" in line
    # library code runs anyway (in its own process), a user's file with --unconfined, warned
    lib = alphaloop("backtest", "sma_crossover", "--ticker", "GOOG", "--json", env=off)
    assert lib.returncode == 0 and json.loads(lib.stdout)["num_trades"] > 0
    proc = alphaloop("backtest", str(path), "--ticker", "GOOG", "--json", "--unconfined", env=off)
    assert proc.returncode == 0, proc.stderr
    assert "WITHOUT kernel confinement" in one_line(proc)
    assert json.loads(proc.stdout)["num_trades"] > 0


@needs_kernel
def test_strategies_check_one_line_per_file(tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text(LONG)
    (tmp_path / "raises.py").write_text(RAISES)
    (tmp_path / "peeks.py").write_text(
        user(
            """
            def generate_positions(data):
                c = data["close"]
                return (c.shift(-1) > c).astype(float)
            """
        )
    )
    (tmp_path / "imports.py").write_text("import os\n" + RAISES)
    (tmp_path / "sma_crossover.py").write_text(library_source("sma_crossover"))
    proc = alphaloop("strategies", "check", str(tmp_path), "--timeout", "30")
    assert proc.returncode == 1, proc.stderr
    lines = dict((line.split()[1].rstrip(":"), line) for line in proc.stdout.strip().splitlines())
    assert sorted(lines) == ["good", "imports", "peeks", "raises", "sma_crossover"]
    assert lines["good"].startswith("ok") and lines["sma_crossover"].startswith("ok")
    assert lines["raises"].startswith("FAIL") and "ZeroDivisionError" in lines["raises"]
    assert lines["peeks"].startswith("FAIL") and "look-ahead" in lines["peeks"]
    assert lines["imports"].startswith("FAIL") and "forbidden import" in lines["imports"]
    ok = alphaloop("strategies", "check", str(tmp_path / "good.py"))
    assert ok.returncode == 0, ok.stdout + ok.stderr


# -- Dask ----------------------------------------------------------------------------------
@needs_kernel
def test_dask_runs_strategy_code_confined_outside_its_workers(q: TaskQueue) -> None:
    """A Dask worker is not a clean template: run_task hands the task to a clean worker it
    starts there. The same numbers as the local pool, and a crash in strategy code is the
    strategy's failure, not a lost Dask worker."""
    distributed = pytest.importorskip("distributed")
    import dask

    from alphaloop.execution.dask_backend import DaskBackend

    tasks = [*library_tasks()[:4], task("crashes", CRASHES, "crashes")]
    q.enqueue_batch(tasks)
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        distributed.LocalCluster(
            n_workers=1,
            processes=True,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        DaskBackend(client=client, task_timeout=120).run(q, run_task)
    assert q.state("crashes") is TaskState.FAILED
    assert "crashed its process" in (q.get_error("crashes") or "")
    assert len(q.attempts("crashes")) == 1
    for t in tasks[:4]:
        assert q.get_result(t.task_id) == run_task_in_process(t), t.task_id


def test_run_refuses_user_strategies_without_kernel_confinement(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "long_above_mean.py").write_text(LONG)
    off = {"ALPHALOOP_TEST_NO_KERNEL_CONFINEMENT": "1"}
    home = tmp_path / "home"
    args = ["run", "--ticker", "GOOG", "--strategies", str(folder), "--home", str(home)]
    proc = alphaloop(*args, env=off)
    assert proc.returncode == 2
    line = one_line(proc)
    assert "long_above_mean" in line and "--unconfined" in line
    made = home / "workflows"
    assert not made.exists() or not any(made.iterdir())  # refused before anything is created
    bad = alphaloop(*args, "--task-timeout", "0")
    assert bad.returncode == 2 and "--task-timeout" in one_line(bad)
