"""Benchmark: TUNE_PARAMETERS batches through the grid path, against each variant alone.

A tuning batch is several parameter sets of one strategy on the same bars. The orchestrator
queues a batch's variants of one strategy side by side, and a worker holding several of them
computes them as one grid call (`alphaloop.execution._together`): one vectorised positions
call, one call per cut length of the look-ahead check, each set measured by the single
task's engine call. This runs the same tasks through one `LocalPool` two ways, alternating,
in this process:

- ``grouped``: `task_runner.run_task`, what `alphaloop run` uses;
- ``singly``: `task_runner.run_task_singly`, every task on its own (the reference).

The tasks are ``--batches`` tuning batches of ``--per-batch`` variants each, half
sma_crossover and half donchian_breakout (random parameters within their constraints), on the
in-sample 70% of the embedded GOOG bars, with the look-ahead check, as a workflow's are. Every
result of the grouped run is checked equal to the single one's. Reported: median wall time per
task of each, the ratio, and ``/proc/loadavg``.

Run by hand:

    python benchmarks/bench_together.py [--workers 2] [--batches 32] [--per-batch 8]
        [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import loadavg


def tasks(batches: int, per_batch: int, seed: int, tag: str) -> list[Any]:
    from alphaloop import data as market
    from alphaloop.backtest.strategy import library_source
    from alphaloop.execution import BacktestTask

    bars = market.load("GOOG")
    end = bars.index[int(len(bars) * 0.7) - 1].date().isoformat()
    rng = np.random.default_rng(seed)
    out = []
    for b in range(batches):
        for v in range(per_batch):
            if v < per_batch // 2:
                name = "sma_crossover"
                fast = int(rng.integers(2, 60))
                params: dict[str, Any] = {"fast": fast, "slow": int(rng.integers(fast + 1, 250))}
            else:
                name = "donchian_breakout"
                params = {"period": int(rng.integers(5, 120)),
                          "exit_period": int(rng.integers(2, 60))}
            tid = f"{tag}_b{b:03d}_v{v:02d}"
            out.append(BacktestTask(
                task_id=tid, experiment_id=f"b{b}", variant_id=f"v{v}",
                strategy_code=library_source(name), strategy_name=name,
                strategy_parameters=params, ticker="GOOG", end=end, check_lookahead=True))
    return out


def run(pool: Any, fn: Any, todo: list[Any], folder: Path, tag: str) -> tuple[float, dict]:
    from alphaloop.execution import TaskQueue

    q = TaskQueue(folder / f"{tag}.db")
    try:
        q.enqueue_batch(todo)
        t0 = time.perf_counter()
        summary = pool.run(q, fn)
        wall = time.perf_counter() - t0
        assert summary.completed == len(todo), summary
        return wall, {t.task_id.split("_", 1)[1]: q.get_result(t.task_id) for t in todo}
    finally:
        q.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=32)
    parser.add_argument("--per-batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from alphaloop.execution import LocalPool
    from alphaloop.execution.task_runner import run_task, run_task_singly

    n = args.batches * args.per_batch
    print(f"# {n} tasks ({args.batches} batches x {args.per_batch}), LocalPool({args.workers}),"
          f" load {loadavg()}")
    walls: dict[str, list[float]] = {"grouped": [], "singly": []}
    with tempfile.TemporaryDirectory() as tmp, LocalPool(args.workers) as pool:
        folder = Path(tmp)
        run(pool, run_task, tasks(2, args.per_batch, 99, "warm"), folder, "warm")  # warm up
        for r in range(args.repeat):
            todo = tasks(args.batches, args.per_batch, r, f"r{r}")
            order = [("grouped", run_task), ("singly", run_task_singly)]
            results = {}
            for name, fn in order if r % 2 == 0 else order[::-1]:
                todo_named = [t.model_copy(update={"task_id": f"{name}_{t.task_id}"})
                              for t in todo]
                wall, results[name] = run(pool, fn, todo_named, folder, f"{name}{r}")
                walls[name].append(wall)
            assert results["grouped"] == results["singly"], "grouped results differ"
            print(f"repeat {r}: grouped {walls['grouped'][-1] / n * 1e3:.2f} ms/task, "
                  f"singly {walls['singly'][-1] / n * 1e3:.2f} ms/task, "
                  f"ratio {walls['grouped'][-1] / walls['singly'][-1]:.2f}, load {loadavg()}")
    g, s = statistics.median(walls["grouped"]), statistics.median(walls["singly"])
    print(f"median: grouped {g / n * 1e3:.2f} ms/task, singly {s / n * 1e3:.2f} ms/task, "
          f"grouped / singly {g / s:.2f} (results equal), load {loadavg()}")


if __name__ == "__main__":
    main()
