"""Benchmark: workers forked from the warmed worker template against fresh interpreters.

In one process, alternating the two ways (``ALPHALOOP_WORKER_TEMPLATE=0`` switches the template
off for the next `start_worker`), medians over ``--repeat`` rounds:

- two workers started at once, from `start_worker` to both "ready" (the task function
  `run_task`, so each warms up as a pool's does); the template's own start is paid in a
  round of its own before the clock (it is once per process);
- a LocalPool(2) running ``--tasks`` real SMA backtests with ``max_tasks_per_worker``
  ``--recycle`` (a replacement after every that many tasks): time per task.

Run by hand (the machine's load average is printed beside the numbers):

    python benchmarks/bench_template.py [--repeat 5] [--tasks 400] [--recycle 50]
"""

from __future__ import annotations

import argparse
import os
import pickle
import select
import statistics
import tempfile
import time
from pathlib import Path

from _common import loadavg


def two_ready(template: bool) -> float:
    from alphaloop.execution._launch import start_worker
    from alphaloop.execution._pipes import FrameReader
    from alphaloop.execution.task_runner import run_task

    os.environ["ALPHALOOP_WORKER_TEMPLATE"] = "1" if template else "0"
    blob = pickle.dumps(run_task)
    t0 = time.perf_counter()
    started = []
    for _ in range(2):
        proc, inbox, outbox = start_worker(None)
        inbox.send(("fn", blob))
        started.append((proc, inbox, outbox, FrameReader(outbox)))
    for _proc, _inbox, outbox, reader in started:
        ready = False
        while not ready:
            select.select([outbox.fileno()], [], [], 60.0)
            ready = any(len(m) == 1 for m in reader.read())
            if reader.eof and not ready:
                raise SystemExit("a worker died before it was ready")
    took = time.perf_counter() - t0
    for proc, inbox, outbox, _reader in started:
        inbox.send(("stop",))
        proc.join(10.0)
        proc.kill()
        proc.join(5.0)
        inbox.close()
        outbox.close()
        proc.close()
    return took


def recycled_per_task(template: bool, n: int, recycle: int) -> float:
    from alphaloop.backtest.strategy import load_strategy
    from alphaloop.execution import BacktestTask, LocalPool, TaskQueue
    from alphaloop.execution.task_runner import run_task

    os.environ["ALPHALOOP_WORKER_TEMPLATE"] = "1" if template else "0"
    source = load_strategy("sma_crossover").source
    tasks = [
        BacktestTask(task_id=f"t{i}", experiment_id="e", variant_id=f"v{i}",
                     strategy_name="sma_crossover", strategy_code=source,
                     strategy_parameters={"fast": 5 + i % 20, "slow": 40}, ticker="GOOG")
        for i in range(n)
    ]
    with tempfile.TemporaryDirectory() as d:
        q = TaskQueue(Path(d) / "q.db")
        with LocalPool(2, max_tasks_per_worker=recycle, probe=None) as pool:
            pool.start(run_task)
            q.enqueue_batch(tasks[:4])
            pool.run(q, run_task)  # warm: both workers ready, bars loaded
            q.enqueue_batch(tasks[4:])
            t0 = time.perf_counter()
            summary = pool.run(q, run_task)
            took = time.perf_counter() - t0
        q.close()
    assert summary.completed == n - 4, summary
    return took / (n - 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--tasks", type=int, default=400)
    ap.add_argument("--recycle", type=int, default=50)
    args = ap.parse_args()
    print(f"# loadavg before {loadavg()}")
    two_ready(True)  # the template's own start, once per process
    ready: dict[bool, list[float]] = {True: [], False: []}
    per: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.repeat):
        for way in (False, True):
            ready[way].append(two_ready(way))
            per[way].append(recycled_per_task(way, args.tasks, args.recycle))
    for way, name in ((False, "fresh interpreters"), (True, "forked from template")):
        print(f"two workers to ready, {name:21s} median {statistics.median(ready[way]):6.3f} s"
              f"  (runs {', '.join(f'{x:.2f}' for x in ready[way])})")
    for way, name in ((False, "fresh interpreters"), (True, "forked from template")):
        print(f"LocalPool(2), {args.tasks} backtests, recycled every {args.recycle}, {name:21s}"
              f" median {statistics.median(per[way]) * 1e3:6.2f} ms/task")
    r = statistics.median(ready[True]) / statistics.median(ready[False])
    p = statistics.median(per[True]) / statistics.median(per[False])
    print(f"ratio template/fresh: to ready {r:.3f}x, per task with recycling {p:.3f}x")
    print(f"# loadavg after {loadavg()}")


if __name__ == "__main__":
    main()
