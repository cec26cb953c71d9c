"""What kernel confinement of strategy code costs (run by hand; not a test).

    python benchmarks/bench_confinement.py [--repeat 7] [--tasks 500] [--forks 40]
        [--only task|fork|lookahead]

1. Per task: 500 real ``sma_crossover`` backtests on GOOG through ``LocalPool(2)``, the
   strategy code in a kernel-confined process (``task_runner.run_task``: positions in the
   strategy process, the engine in the worker) against the same pool running everything in
   the worker with no boundary (``run_task_in_process``, what every task did before). Fresh
   pools for each timing, the two alternating within each repeat so a noisy moment on a
   shared machine hits both; medians, the ratio, and the per-task difference.
2. Per fork: a worker-like process asks for positions of ``--forks`` strategies that differ
   only by a comment, so each needs a new strategy process (fork + confinement + first job),
   against the same job sent to a strategy process that is already running.
3. The same fork measured without the kernel layers (``ALPHALOOP_TEST_NO_KERNEL_CONFINEMENT``,
   which leaves the fork, the rlimits and the private folder): what seccomp, Landlock and the
   privilege drop themselves add per fork.
4. Per task with the look-ahead check (``--lookahead-tasks``, default 100): for the library's
   own code the check's ~20 truncated reruns run in the worker (trusted code); for any other
   code (here a user's copy of the same file) in a blind strategy process forked per task
   (it never holds the full bars); each against the same reruns in the worker, no boundary.

The load average is printed beside the figures: on a shared machine the absolute numbers move
with it, the ratios much less.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import loadavg

from alphaloop.backtest.strategy import library_source
from alphaloop.execution import BacktestTask, LocalPool, TaskQueue
from alphaloop.execution.task_runner import run_task, run_task_in_process


def tasks(n: int, prefix: str, lookahead: bool = False, user: bool = False) -> list[BacktestTask]:
    src = library_source("sma_crossover") + ("# a user's copy\n" if user else "")
    return [
        BacktestTask(
            task_id=f"{prefix}{i}",
            experiment_id="bench",
            variant_id=f"v{i}",
            strategy_code=src,
            strategy_name="sma_crossover",
            ticker="GOOG",
            strategy_parameters={"fast": 2 + i % 40, "slow": 50 + i // 40},
            check_lookahead=lookahead,
        )
        for i in range(n)
    ]


def per_task(n: int, repeat: int, tmp: Path, lookahead: bool = False, user: bool = False) -> None:
    work = tasks(n, "r", lookahead, user)
    warm = [
        t.model_copy(update={"task_id": f"w{t.task_id}", "strategy_parameters": {"slow": 250}})
        for t in work[:20]
    ]
    times: dict[str, list[float]] = {"confined": [], "in-process": []}
    fns = {"confined": run_task, "in-process": run_task_in_process}
    for rep in range(repeat):
        order = list(fns) if rep % 2 == 0 else list(reversed(fns))
        for name in order:
            with LocalPool(2, cpu_threshold=1.0) as pool:
                wq = TaskQueue(tmp / f"w-{name}-{rep}.db")
                wq.enqueue_batch(warm)
                pool.run(wq, fns[name])
                q = TaskQueue(tmp / f"q-{name}-{rep}.db")
                q.enqueue_batch(work)
                t0 = time.perf_counter()
                s = pool.run(q, fns[name])
                times[name].append(time.perf_counter() - t0)
                assert s.completed == n, (name, s, q.get_stats())
                q.close()
                wq.close()
    c, u = statistics.median(times["confined"]), statistics.median(times["in-process"])
    paired = sorted(a / b for a, b in zip(times["confined"], times["in-process"], strict=True))
    what = "backtests + look-ahead checks" if lookahead else "backtests"
    what += " of a user's copy of sma_crossover" if user else ""
    print(f"per task  {n} {what} on GOOG, LocalPool(2), {repeat} repeats, load {loadavg()}")
    print(f"  in-process (no boundary)  median {u * 1e3:7.1f} ms  {u / n * 1e3:.3f} ms/task")
    print(f"  confined                  median {c * 1e3:7.1f} ms  {c / n * 1e3:.3f} ms/task")
    print(
        f"  ratio confined / in-process {c / u:.3f} (per repeat: median "
        f"{statistics.median(paired):.3f}, range {paired[0]:.3f}-{paired[-1]:.3f}); "
        f"difference {(c - u) / n * 1e6:+.0f} us/task"
    )


FLAT = "'flat'\nimport numpy as np\nPARAMETERS = {}\n" + (
    "def generate_positions(data):\n    return np.zeros(len(data))\n"
)


def fork_child(n: int) -> None:
    """In a fresh process (a worker's stand-in): fork ``n`` strategy processes, one per code
    hash, timing each first job and the same job again; prints one JSON line."""
    from alphaloop.execution import _jail
    from alphaloop.execution._worker import _warm_up

    _warm_up()
    _jail.become_host()

    def job(i: int) -> _jail.PositionsJob:
        return _jail.PositionsJob(
            source=FLAT + f"# {i}\n",
            name="flat",
            params={},
            ticker="GOOG",
            timeframe="1d",
            data_path=None,
            start=None,
            end=None,
            unconfined_ok=True,
        )

    host = _jail.current()
    host.positions(job(-1), 2148)
    first, again = [], []
    for i in range(n):
        t0 = time.perf_counter()
        host.positions(job(i), 2148)
        first.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        host.positions(job(i), 2148)
        again.append(time.perf_counter() - t0)
    p90 = sorted(first)[int(0.9 * (n - 1))]
    stats = {"first": statistics.median(first), "again": statistics.median(again), "p90": p90}
    print(json.dumps(stats))


def per_fork(n: int, confined: bool) -> dict[str, float]:
    env = dict(os.environ)
    env.pop("ALPHALOOP_TEST_NO_KERNEL_CONFINEMENT", None)
    if not confined:
        env["ALPHALOOP_TEST_NO_KERNEL_CONFINEMENT"] = "1"
    out = subprocess.run(
        [sys.executable, __file__, "--fork-child", str(n)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--tasks", type=int, default=500)
    ap.add_argument("--forks", type=int, default=40)
    ap.add_argument("--only", choices=("task", "fork", "lookahead"))
    ap.add_argument("--lookahead-tasks", type=int, default=100)
    ap.add_argument("--fork-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.fork_child:
        fork_child(args.fork_child)
        return
    print(f"# python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {loadavg()}")
    if args.only in (None, "task"):
        with tempfile.TemporaryDirectory() as d:
            per_task(args.tasks, args.repeat, Path(d))
    if args.only in (None, "lookahead"):
        with tempfile.TemporaryDirectory() as d:
            for user in (False, True):  # the library's code in the worker; a copy: blind
                sub = Path(d) / ("user" if user else "library")
                sub.mkdir()
                per_task(args.lookahead_tasks, max(3, args.repeat // 2), sub, True, user)
    if args.only in (None, "fork"):
        c = per_fork(args.forks, True)
        u = per_fork(args.forks, False)
        print(f"per fork  {args.forks} new strategy processes each, load {loadavg()}")
        print(
            f"  confined:   first job {c['first'] * 1e3:6.2f} ms (p90 {c['p90'] * 1e3:.2f}), "
            f"same job again {c['again'] * 1e3:.2f} ms -> fork + confine "
            f"{(c['first'] - c['again']) * 1e3:.2f} ms"
        )
        print(
            f"  no kernel layers: first job {u['first'] * 1e3:6.2f} ms (p90 {u['p90'] * 1e3:.2f}),"
            f" again {u['again'] * 1e3:.2f} ms -> fork {(u['first'] - u['again']) * 1e3:.2f} ms"
        )
        print(
            f"  seccomp + Landlock + privilege drop add "
            f"{(c['first'] - u['first']) * 1e3:+.2f} ms per fork"
        )


if __name__ == "__main__":
    main()
