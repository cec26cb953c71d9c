"""A quicker first backtest: the pool starts when it is made, a pool closed before its workers
served ends them at once, and numba's CPU target loads without scipy's linear algebra (half a
second of every worker's start-up) while every kernel still runs, ``np.dot`` included."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from alphaloop.backtest.strategy import load_strategy
from alphaloop.data import load
from alphaloop.execution import QUEUE_FILENAME, BacktestTask, LocalPool, TaskQueue
from alphaloop.execution.task_runner import run_task
from alphaloop.workflow.api import make_executor


def test_make_executor_starts_the_workers_and_close_ends_unready_ones() -> None:
    pool = make_executor("local", workers=2)
    assert isinstance(pool, LocalPool)
    procs = [w.proc for w in pool._workers]
    # started at once, before any run: their imports overlap the caller's set-up
    assert len(procs) == 2 and all(p.is_alive() for p in procs)
    pool.close()
    # never served (no run read their "ready"): killed, not waited for through a warm-up
    assert [p.exitcode for p in procs] == [-signal.SIGKILL, -signal.SIGKILL]


def test_a_pool_made_early_runs_real_backtests(tmp_path: Path) -> None:
    q = TaskQueue(tmp_path / QUEUE_FILENAME)
    source = load_strategy("sma_crossover").source
    tasks = [
        BacktestTask(task_id=f"t{f}", experiment_id="e", variant_id=f"v{f}",
                     strategy_name="sma_crossover", strategy_code=source,
                     strategy_parameters={"fast": f, "slow": 40}, ticker="GOOG")
        for f in (5, 10)
    ]
    q.enqueue_batch(tasks)
    pool = make_executor("local", workers=1)
    try:
        summary = pool.run(q, run_task)
    finally:
        pool.close()
    assert summary.completed == 2
    bars = len(load("GOOG"))
    assert all(q.get_result(t.task_id)["bars"] == bars for t in tasks)


def test_numba_target_loads_without_scipy_linalg_and_kernels_still_run() -> None:
    script = textwrap.dedent(
        """
        import json, sys
        import numpy as np
        from numba import njit
        from alphaloop.backtest import engine, indicators
        from alphaloop.data import load

        bars = load("GOOG").iloc[:300]
        fast = indicators.sma(bars["close"], 5)
        slow = indicators.sma(bars["close"], 20)
        pos = indicators.latch(indicators.crossover_side(fast, slow) > 0,
                               indicators.crossover_side(fast, slow) < 0)
        run = engine.run(bars, pos)
        before = "scipy.linalg" in sys.modules

        @njit
        def dot(a, b):
            return np.dot(a, b)

        x = np.arange(4.0)
        print(json.dumps({"scipy_linalg_before_dot": before, "dot": dot(x, x),
                          "trades": run.metrics["num_trades"]}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["scipy_linalg_before_dot"] is False
    assert out["dot"] == pytest.approx(14.0)  # a BLAS kernel still compiles (scipy on demand)
    assert out["trades"] > 0
