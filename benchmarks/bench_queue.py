"""Throughput of the execution layer (run by hand; not a test).

    PYTHONPATH=src python benchmarks/bench_queue.py [--tasks 10000] [--repeat 3] [--no-dask]

1. The durable queue alone: enqueue_batch; dequeue_many + mark_completed (one transaction per
   outcome); dequeue_many + mark_completed_many (one transaction per 64 outcomes, as the local
   pool records the results that arrive together).
2. LocalPool(2) draining N trivial tasks end to end (claim, pipe, run, record in SQLite),
   against a bare ``concurrent.futures.ProcessPoolExecutor.map`` of the same function in the
   same run (no durability, nothing recorded).
3. DaskBackend on a LocalCluster(2 workers x 1 thread, processes) vs a bare ``client.map``.
4. 500 real SMA-crossover backtests with 1 vs 2 workers, on GOOG (the issue's workload) or on
   the five embedded tickers (``--real-ticker all``), the strategy code in confined strategy
   processes (``run_task``); the reference is a bare ProcessPoolExecutor running the same
   backtests in its own processes (``run_task_in_process``, no boundary). Skipped if the
   backtest layer is not importable.
5. Real backtests (``--dask-real 500,5000``) on LocalPool(2) and on DaskBackend over a
   LocalCluster(2 workers x 1 thread), and a bare ``client.map(run_task)`` + gather of the same
   tasks, in the same run, repeat by repeat; each run takes the next parameter sets of a
   40 x 251 SMA grid, so the backends see the same mix. The data is a CSV copy of GOOG given
   as ``data_path``, so the Dask backend ships it (``--dask-real-data sample``: the embedded
   sample instead).
   Prints ms per backtest (medians), the Dask overhead per backtest as a fraction of the local
   pool's time per backtest (target <= 10%), and /proc/loadavg before and after.
   Same warm state on both sides before any clock starts: the LocalCluster is up, and one
   40-backtest run on each backend has started the local pool's workers and each Dask worker's
   clean worker (kept across runs, as the pool keeps its workers), with their strategy
   processes, and loaded (Dask: shipped) the bars; the bare client.map is warmed the same way.
   The local pool replaces a worker after ``max_tasks_per_worker`` tasks (10,000 by default;
   at the old 1,000 the 5,000 runs paid for replacements); Dask's clean workers are not
   recycled.

Medians over ``--repeat`` runs are printed.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from _common import loadavg as _loadavg

from alphaloop.execution import BacktestTask, LocalPool, TaskQueue

CPU_THRESHOLD = 1.0
"""The resource gate is off by default here (other jobs share the machine); --cpu-threshold."""


def trivial(task: BacktestTask) -> dict[str, Any]:
    """The cheapest possible task."""
    return {"ok": 1}


def make_tasks(n: int, prefix: str = "t", **kw: Any) -> list[BacktestTask]:
    return [
        BacktestTask(
            task_id=f"{prefix}{i}",
            experiment_id="bench",
            variant_id=f"v{i}",
            strategy_code="",
            ticker="SPY",
            **kw,
        )
        for i in range(n)
    ]


def median_time(fn: Callable[[], float], repeat: int) -> float:
    return statistics.median(fn() for _ in range(repeat))


def bench_queue(n: int, repeat: int, tmp: Path) -> None:
    tasks = make_tasks(n)

    def enqueue() -> float:
        q = TaskQueue(tmp / f"q{time.perf_counter_ns()}.db")
        t0 = time.perf_counter()
        q.enqueue_batch(tasks)
        dt = time.perf_counter() - t0
        q.close()
        return dt

    def drain(record: Callable[[TaskQueue, list[Any]], object]) -> float:
        q = TaskQueue(tmp / f"q{time.perf_counter_ns()}.db")
        q.enqueue_batch(tasks)
        t0 = time.perf_counter()
        while claims := q.dequeue_many(64):
            record(q, claims)
        dt = time.perf_counter() - t0
        q.close()
        return dt

    def one_by_one(q: TaskQueue, claims: list[Any]) -> None:
        for c in claims:
            q.mark_completed(c.task_id, '{"ok": 1}', c.attempt)

    def together(q: TaskQueue, claims: list[Any]) -> None:
        q.mark_completed_many([(c.task_id, '{"ok": 1}', c.attempt) for c in claims])

    def cycle() -> float:
        return drain(one_by_one)

    def cycle_many() -> float:
        return drain(together)

    e, c = median_time(enqueue, repeat), median_time(cycle, repeat)
    m = median_time(cycle_many, repeat)
    print(f"queue   enqueue_batch({n})            {e * 1e3:8.1f} ms   {n / e:10,.0f} tasks/s")
    print(f"queue   dequeue_many(64)+mark_completed {c * 1e3:8.1f} ms   {n / c:10,.0f} tasks/s")
    rate = f"{n / m:8,.0f}"
    print(f"queue   dequeue_many(64)+mark_completed_many {m * 1e3:8.1f} ms {rate} tasks/s")


def bench_local(n: int, repeat: int, tmp: Path, workers: int) -> float:
    tasks = make_tasks(n)
    with LocalPool(workers, cpu_threshold=CPU_THRESHOLD) as pool:
        warm = TaskQueue(tmp / "warm.db")
        warm.enqueue_batch(make_tasks(200, "w"))
        pool.run(warm, trivial)

        def once() -> float:
            q = TaskQueue(tmp / f"p{time.perf_counter_ns()}.db")
            q.enqueue_batch(tasks)
            t0 = time.perf_counter()
            s = pool.run(q, trivial)
            dt = time.perf_counter() - t0
            assert s.completed == n, s
            q.close()
            return dt

        dt = median_time(once, repeat)
    rate = n / dt
    print(
        f"local   LocalPool({workers}) drain {n} trivial   {dt * 1e3:8.1f} ms   "
        f"{rate:10,.0f} tasks/s"
    )
    return rate


def bench_ppe(n: int, repeat: int, workers: int) -> dict[int, float]:
    tasks = make_tasks(n)
    rates = {}
    with ProcessPoolExecutor(workers) as ex:
        list(ex.map(trivial, tasks[:200]))
        for chunk in (1, 64):

            def once(chunk: int = chunk) -> float:
                t0 = time.perf_counter()
                out = list(ex.map(trivial, tasks, chunksize=chunk))
                assert len(out) == n
                return time.perf_counter() - t0

            dt = median_time(once, repeat)
            rates[chunk] = n / dt
            print(
                f"ref     ProcessPoolExecutor({workers}).map chunksize={chunk:<3} "
                f"{dt * 1e3:8.1f} ms   {n / dt:10,.0f} tasks/s"
            )
    return rates


def bench_dask(n: int, repeat: int, tmp: Path) -> None:
    try:
        import dask
        import distributed
    except ImportError:
        print("dask    skipped (distributed not installed)")
        return
    from alphaloop.execution.dask_backend import DaskBackend

    with dask.config.set(
        {
            "distributed.scheduler.allowed-failures": 0,
            "distributed.scheduler.worker-saturation": 1.0,
        }
    ):
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
        client = distributed.Client(cluster)
        tasks = make_tasks(n)
        try:
            backend = DaskBackend(client=client)
            warm = TaskQueue(tmp / "dwarm.db")
            warm.enqueue_batch(make_tasks(50, "w"))
            backend.run(warm, trivial)

            def once() -> float:
                q = TaskQueue(tmp / f"d{time.perf_counter_ns()}.db")
                q.enqueue_batch(tasks)
                t0 = time.perf_counter()
                s = backend.run(q, trivial)
                assert s.completed == n, s
                q.close()
                return time.perf_counter() - t0

            def bare() -> float:
                t0 = time.perf_counter()
                futs = client.map(trivial, tasks, pure=False)
                client.gather(futs)
                del futs
                return time.perf_counter() - t0

            dt, bt = median_time(once, repeat), median_time(bare, repeat)
            print(
                f"dask    DaskBackend drain {n} trivial     {dt * 1e3:8.1f} ms   "
                f"{n / dt:10,.0f} tasks/s   {dt / n * 1e3:.2f} ms/task"
            )
            print(
                f"ref     client.map+gather {n} trivial     {bt * 1e3:8.1f} ms   "
                f"{n / bt:10,.0f} tasks/s   {bt / n * 1e3:.2f} ms/task"
            )
        finally:
            client.close()
            cluster.close()


def bench_real(tmp: Path, repeat: int, ticker: str = "GOOG", n: int = 500) -> None:
    try:
        from alphaloop.backtest.strategy import library_source
        from alphaloop.data import SAMPLE_TICKERS
        from alphaloop.execution.task_runner import run_task, run_task_in_process
    except ImportError as exc:
        print(f"real    skipped (backtest layer not importable: {exc})")
        return
    src = library_source("sma_crossover")
    tasks = [
        BacktestTask(
            task_id=f"r{i}",
            experiment_id="bench",
            variant_id=f"v{i}",
            strategy_code=src,
            strategy_name="sma_crossover",
            ticker=SAMPLE_TICKERS[i % len(SAMPLE_TICKERS)] if ticker == "all" else ticker,
            strategy_parameters={"fast": 2 + i % 40, "slow": 50 + i // 40},
        )
        for i in range(n)
    ]
    warmups = [
        t.model_copy(update={"task_id": f"w{t.task_id}", "strategy_parameters": {"slow": 250}})
        for t in tasks[:20]
    ]
    times: dict[int, list[float]] = {1: [], 2: []}
    ref: dict[int, list[float]] = {1: [], 2: []}
    fs = mp.get_context("forkserver")
    for rep in range(repeat):
        for workers in (1, 2):
            # reference: a bare ProcessPoolExecutor of the same backtests in-process (nothing
            # recorded, no strategy process: the whole task in the executor's process)
            with ProcessPoolExecutor(workers, mp_context=fs) as ex:
                list(ex.map(run_task_in_process, warmups))
                t0 = time.perf_counter()
                assert len(list(ex.map(run_task_in_process, tasks, chunksize=25))) == n
                ref[workers].append(time.perf_counter() - t0)
            # a fresh pool per timing: empty per-process indicator memo, so every backtest
            # is computed; the warm-up (other parameters) loads modules and data only
            with LocalPool(workers, cpu_threshold=CPU_THRESHOLD) as pool:
                warm = TaskQueue(tmp / f"rw{workers}-{rep}.db")
                warm.enqueue_batch(warmups)
                pool.run(warm, run_task)
                q = TaskQueue(tmp / f"r{workers}-{rep}.db")
                q.enqueue_batch(tasks)
                t0 = time.perf_counter()
                s = pool.run(q, run_task)
                times[workers].append(time.perf_counter() - t0)
            assert s.completed == n, (s, q.get_stats())
    rates = {}
    for workers, ts in times.items():
        dt = statistics.median(ts)
        rates[workers] = n / dt
        print(
            f"real    {n} backtests on {ticker}, {workers} worker(s)  {dt * 1e3:8.1f} ms   "
            f"{n / dt:10,.1f} tasks/s   {dt / n * 1e3:.2f} ms/task"
        )
    r1, r2 = statistics.median(ref[1]), statistics.median(ref[2])
    print(
        f"ref     ProcessPoolExecutor.map(run_task_in_process, chunksize=25) on {ticker}: 1 worker "
        f"{r1 * 1e3:.1f} ms, 2 workers {r2 * 1e3:.1f} ms, speed-up {r1 / r2:.2f}x"
        f" ({_spread(ref)})"
    )
    print(f"real    speed-up 2 vs 1 workers: {rates[2] / rates[1]:.2f}x ({_spread(times)})")


def bench_dask_real(tmp: Path, repeat: int, sizes: list[int], data: str) -> None:
    try:
        import dask
        import distributed

        from alphaloop import data as market
        from alphaloop.backtest.strategy import library_source
        from alphaloop.execution.dask_backend import DaskBackend
        from alphaloop.execution.task_runner import run_task
    except ImportError as exc:
        print(f"dask-real skipped ({exc})")
        return
    data_path = None
    if data != "sample":
        folder = tmp / "prices"
        folder.mkdir(exist_ok=True)
        market.load("GOOG").to_csv(folder / "GOOG.csv")
        data_path = str(folder)
    src = library_source("sma_crossover")
    serial = iter(range(10**9))

    def tasks(n: int) -> list[BacktestTask]:
        out = []
        for i in range(n):
            k = next(serial) % (40 * 251)  # every (fast, slow) pair in range, in turn
            out.append(
                BacktestTask(
                    task_id=f"r{i}",
                    experiment_id="bench",
                    variant_id=f"v{i}",
                    strategy_code=src,
                    strategy_name="sma_crossover",
                    ticker="GOOG",
                    data_path=data_path,
                    strategy_parameters={"fast": 2 + k % 40, "slow": 50 + k // 40},
                )
            )
        return out

    def drain(ex: Any, ts: list[BacktestTask]) -> float:
        q = TaskQueue(tmp / f"dr{time.perf_counter_ns()}.db")
        q.enqueue_batch(ts)
        t0 = time.perf_counter()
        s = ex.run(q, run_task)
        dt = time.perf_counter() - t0
        assert s.completed == len(ts), (s, q.get_stats())
        q.close()
        return dt

    print(f"# dask-real: data {data_path or 'embedded sample'}, loadavg before {_loadavg()}")
    with dask.config.set(
        {
            "distributed.scheduler.allowed-failures": 0,
            "distributed.scheduler.worker-saturation": 1.0,
        }
    ):
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
    client = distributed.Client(cluster)
    try:
        with LocalPool(2, cpu_threshold=CPU_THRESHOLD) as pool, DaskBackend(client=client) as dk:
            drain(pool, tasks(40))  # workers and strategy processes started, data loaded
            drain(dk, tasks(40))
            client.gather(client.map(run_task, tasks(40), pure=False))
            for n in sizes:
                got: dict[str, list[float]] = {"local": [], "dask": [], "map": []}
                for _ in range(repeat):
                    got["local"].append(drain(pool, tasks(n)) / n)
                    got["dask"].append(drain(dk, tasks(n)) / n)
                    ts = tasks(n)
                    t0 = time.perf_counter()
                    futs = client.map(run_task, ts, pure=False)
                    client.gather(futs)
                    got["map"].append((time.perf_counter() - t0) / n)
                    del futs
                med = {k: statistics.median(v) for k, v in got.items()}
                over = (med["dask"] - med["local"]) / med["local"]
                paired = sorted(
                    (d - loc) / loc for d, loc in zip(got["dask"], got["local"], strict=True)
                )
                print(
                    f"dask-real {n:>5} backtests  LocalPool(2) {med['local'] * 1e3:6.2f} ms/task"
                    f"   DaskBackend {med['dask'] * 1e3:6.2f} ms/task"
                    f"   bare client.map {med['map'] * 1e3:6.2f} ms/task"
                )
                print(
                    f"dask-real {n:>5} backtests  Dask overhead per backtest {over:+.1%} of the "
                    f"local pool's (per repeat {', '.join(f'{x:+.1%}' for x in paired)}); "
                    f"DaskBackend / client.map {med['dask'] / med['map']:.2f}"
                )
    finally:
        client.close()
        cluster.close()
    print(f"# dask-real: loadavg after {_loadavg()}")


def _spread(times: dict[int, list[float]]) -> str:
    """Median and range of the speed-ups of the repeats taken one by one (1 and 2 workers
    run back to back in each repeat, so a noisy moment on a shared machine hits both)."""
    paired = sorted(a / b for a, b in zip(times[1], times[2], strict=True))
    return (
        f"per repeat: median {statistics.median(paired):.2f}x, "
        f"range {paired[0]:.2f}-{paired[-1]:.2f}x over {len(paired)}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--dask-tasks", type=int, default=2_000)
    ap.add_argument("--cpu-threshold", type=float, default=1.0)
    ap.add_argument(
        "--real-ticker", default="GOOG", help="ticker of the real backtests, or 'all' (5 tickers)"
    )
    ap.add_argument(
        "--dask-real",
        default="500,5000",
        help="sizes of the real-backtest Dask comparison (part 5), comma-separated; '' skips",
    )
    ap.add_argument("--dask-real-data", choices=("csv", "sample"), default="csv")
    ap.add_argument(
        "--only",
        choices=("queue", "local", "dask", "real", "dask-real"),
        help="run one part only (the parts are numbered in the module docstring)",
    )
    args = ap.parse_args()
    global CPU_THRESHOLD
    CPU_THRESHOLD = args.cpu_threshold
    print(
        f"# python {sys.version.split()[0]}, {os.cpu_count()} CPUs, tasks={args.tasks}, "
        f"repeat={args.repeat} (medians), cpu_threshold={CPU_THRESHOLD}, "
        f"/proc/loadavg {_loadavg()}"
    )
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.only in (None, "queue"):
            bench_queue(args.tasks, args.repeat, tmp)
        if args.only in (None, "local"):
            local = bench_local(args.tasks, args.repeat, tmp, args.workers)
            ref = bench_ppe(args.tasks, args.repeat, args.workers)
            print(
                f"ratio   LocalPool / PPE.map(chunksize=1)  {local / ref[1]:.2f}   "
                f"LocalPool / PPE.map(chunksize=64) {local / ref[64]:.2f}"
            )
        if args.only == "dask" or (args.only is None and not args.no_dask):
            bench_dask(args.dask_tasks, args.repeat, tmp)
        if args.only in (None, "real"):
            bench_real(tmp, args.repeat, args.real_ticker)
        sizes = [int(x) for x in args.dask_real.split(",") if x.strip()]
        if sizes and (args.only == "dask-real" or (args.only is None and not args.no_dask)):
            bench_dask_real(tmp, args.repeat, sizes, args.dask_real_data)


if __name__ == "__main__":
    main()
