"""Benchmark: how quickly `alphaloop run` gets going, in a fresh home and again in the same home.

Each run is a fresh process (imports, worker start-up, the loop), as a user starts it, driving
the same parts as `alphaloop run --ticker GOOG --seed 1` (`make_executor` + `run_workflow`)
with a phase timer. For each of ``--repeat`` rounds it makes a new home, runs once (fresh
home) and again in that home (second run), and reports, as medians over the rounds:

- the wall time from launch (the parent's clock just before it starts the process) to exit;
- the time spent in each phase and its share of the wall time (``setup``: from launch to the
  first phase: the command line's and the library's imports, reading the data and
  strategies, creating the workflow);
- when the first backtest started, from the queue's attempt records (the worker's clock at the
  start of the task; the same machine clock as the launch): any task (a tool check counts) and
  the first strategy variant, from launch and from the call of ``run_workflow``;
- the ``fsync``/``fdatasync`` calls of the run when ``strace`` is on the PATH (``--strace``);
- the second run's timeline from launch (medians): imports done, executor made, each phase
  begun, each worker started and ready (serving: imported, kernels loaded), first task;
- the floors in the same run (``--floor N`` processes each): a bare interpreter, ``import
  numpy, pandas``, and one clean worker from its start to "ready" (imports, numba's CPU
  target, the kernels from numba's cache, the warm-up), alone on the machine and two at once.

Run by hand (the machine's load average is printed beside the numbers):

    python benchmarks/bench_startup.py [--repeat 3] [--ticker GOOG] [--seed 1] [--strace]
                                       [--floor 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from _common import loadavg

ORDER = ("setup", "INITIALIZATION", "TOOL_DEVELOPMENT", "RESEARCH_SWARM",
         "STRATEGY_DEVELOPMENT", "BACKTESTING", "QUALITY_GATE", "COMPLETED", "FAILED")


def child(home: str, ticker: str, seed: int, launched: float, out: str) -> None:
    """One run in this (fresh) process; writes its timings to ``out`` as JSON."""
    import alphaloop.cli as cli

    cli._register()  # what `alphaloop run` imports before its command runs (typer, rich, ...)
    from alphaloop.workflow.api import make_executor, run_workflow

    imported = time.time()
    spent: dict[str, float] = defaultdict(float)
    current: list[Any] = ["setup", launched]
    events: list[tuple[str, float]] = [("imports done", imported)]

    def on_event(kind: str, info: dict[str, Any]) -> None:
        if kind == "phase":
            now = time.time()
            spent[current[0]] += now - current[1]
            current[:] = [info["phase"], now]
            if not any(e[0] == f"phase {info['phase']}" for e in events):
                events.append((f"phase {info['phase']}", now))

    _watch_workers(events)
    executor = make_executor("local")
    called = time.time()
    events.append(("executor made", called))
    try:
        result = run_workflow(ticker, home=home, seed=seed, executor=executor, on_event=on_event)
    finally:
        end = time.time()
        executor.close()
    spent[current[0]] += end - current[1]
    db = Path(home) / "workflows" / result["workflow_id"] / "queue.db"
    with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as conn:
        first_any = conn.execute("SELECT MIN(started_at) FROM attempts").fetchone()[0]
        first_variant = conn.execute(
            "SELECT MIN(started_at) FROM attempts WHERE task_id NOT LIKE 'tools%'"
        ).fetchone()[0]
    Path(out).write_text(json.dumps({
        "wall": end - launched,
        "imports": imported - launched,
        "phases": dict(spent),
        "first_any": first_any - launched,
        "first_variant": first_variant - launched,
        "first_variant_from_call": first_variant - called,
        "events": [(label, at - launched) for label, at in events]
        + [("first task started", first_any - launched),
           ("first variant started", first_variant - launched)],
        "status": result["status"],
        "variants": result["variants_tried"],
        "iterations": result["total_iterations"],
    }))


def _watch_workers(events: list[tuple[str, float]]) -> None:
    """Note when each pool worker is started and when it says it is ready (wraps two
    LocalPool methods in this benchmark process only)."""
    from alphaloop.execution._local import LocalPool

    spawn, read = LocalPool._spawn, LocalPool._read_results
    numbers: dict[int, int] = {}

    def _spawn(self: Any) -> Any:
        t = time.time()
        w = spawn(self)
        numbers[id(w)] = len(numbers) + 1  # (not w.pid: a forked worker's waits for the fork)
        events.append((f"worker {numbers[id(w)]} started", t))
        return w

    def _read_results(self: Any, w: Any, *args: Any) -> Any:
        was = w.ready
        out = read(self, w, *args)
        if w.ready and not was:
            events.append((f"worker {numbers.get(id(w), '?')} ready", time.time()))
        return out

    LocalPool._spawn = _spawn  # type: ignore[method-assign]
    LocalPool._read_results = _read_results  # type: ignore[method-assign]


def worker_ready_seconds(n: int) -> list[float]:
    """Start ``n`` clean workers at once (the task function `run_task`, so each warms up as a
    pool's does) and return the seconds from each start to its "ready"."""
    import pickle
    import select

    from alphaloop.execution._launch import start_worker
    from alphaloop.execution._pipes import FrameReader
    from alphaloop.execution.task_runner import run_task

    blob = pickle.dumps(run_task)
    started = []
    for _ in range(n):
        t = time.perf_counter()
        proc, inbox, outbox = start_worker(None)
        inbox.send(("fn", blob))
        started.append((t, proc, inbox, outbox, FrameReader(outbox)))
    out = []
    for t, _proc, _inbox, outbox, reader in started:
        ready = None
        while ready is None:
            select.select([outbox.fileno()], [], [], 60.0)
            for msg in reader.read():
                if len(msg) == 1:
                    ready = time.perf_counter() - t
            if reader.eof:
                raise SystemExit("a worker died before it was ready")
        out.append(ready)
    for _t, proc, inbox, outbox, _reader in started:
        inbox.send(("stop",))
        proc.join(10.0)
        if proc.is_alive():
            proc.kill()
            proc.join(5.0)
        inbox.close()
        outbox.close()
        proc.close()
    return out


def floors(n: int) -> None:
    """The floors under "first backtest within 1 s of launch", measured here and now."""
    def timed(code: str) -> float:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-P", "-c", code], check=True)
        return time.perf_counter() - t

    rows = {"python -c pass": [], "python -c 'import numpy, pandas'": [],
            "one clean worker, start -> ready": [], "two at once, start -> both ready": []}
    for _ in range(n):  # interleaved, so that load changes hit every row alike
        rows["python -c pass"].append(timed("pass"))
        rows["python -c 'import numpy, pandas'"].append(timed("import numpy, pandas"))
        rows["one clean worker, start -> ready"].append(worker_ready_seconds(1)[0])
        rows["two at once, start -> both ready"].append(max(worker_ready_seconds(2)))
    print(f"\nfloors, medians of {n} (load average now: {loadavg()}):")
    base = med(rows["python -c 'import numpy, pandas'"])
    for label, xs in rows.items():
        print(f"  {label:<36}{med(xs):>8.3f} s   {med(xs) / base:>5.2f}x numpy+pandas")


def run_child(home: str, ticker: str, seed: int, trace: bool) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = fh.name
    strace_out = out + ".strace"
    cmd = [sys.executable, __file__, "--child", home, ticker, str(seed)]
    if trace:
        cmd = ["strace", "-f", "-c", "-e", "trace=fsync,fdatasync", "-o", strace_out, *cmd]
    launched = time.time()
    proc = subprocess.run([*cmd, repr(launched), out], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(Path(out).read_text())
    os.unlink(out)
    if trace:
        calls = 0
        for line in Path(strace_out).read_text().splitlines():
            parts = line.split()
            if parts and parts[-1] in ("fsync", "fdatasync"):
                calls += int(parts[3])  # % time, seconds, usecs/call, calls[, errors], name
        data["syncs"] = calls
        os.unlink(strace_out)
    return data


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ticker", default="GOOG")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--strace", action="store_true", help="count fsync/fdatasync calls")
    parser.add_argument("--floor", type=int, default=5,
                        help="processes per floor measurement (0: skip)")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        home, ticker, seed, launched, out = args.child
        child(home, ticker, int(seed), float(launched), out)
        return
    trace = args.strace and shutil.which("strace") is not None
    runs: dict[str, list[dict[str, Any]]] = {"fresh home": [], "second run": []}
    print(f"load average before: {loadavg()}")
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as home:
            runs["fresh home"].append(run_child(home, args.ticker, args.seed, trace))
            runs["second run"].append(run_child(home, args.ticker, args.seed, trace))
    print(f"load average after:  {loadavg()}")
    print(f"\nalphaloop run --ticker {args.ticker} --seed {args.seed}, a fresh process each; "
          f"medians of {args.repeat} rounds")
    first = runs["fresh home"][0]
    print(f"({first['status']}, {first['iterations']} iterations, {first['variants']} "
          "variants per run)")
    head = f"{'':<28}" + "".join(f"{k:>24}" for k in runs)
    print(head)

    def row(label: str, values: dict[str, float], wall: dict[str, float] | None = None) -> None:
        cells = []
        for k in runs:
            v = values[k]
            share = f" {v / wall[k]:>6.1%}" if wall else ""
            cells.append(f"{v:>16.3f} s{share}" if wall else f"{v:>22.3f} s")
        print(f"{label:<28}" + "".join(f"{c:>24}" for c in cells))

    walls = {k: med([r["wall"] for r in v]) for k, v in runs.items()}
    row("wall time", walls)
    for phase in ORDER:
        if any(phase in r["phases"] for v in runs.values() for r in v):
            row(f"  {phase}", {k: med([r["phases"].get(phase, 0.0) for r in v])
                               for k, v in runs.items()}, walls)
    row("  (imports, in setup)", {k: med([r["imports"] for r in v]) for k, v in runs.items()})
    row("first backtest (any task)", {k: med([r["first_any"] for r in v])
                                      for k, v in runs.items()})
    row("first strategy variant", {k: med([r["first_variant"] for r in v])
                                   for k, v in runs.items()})
    row("  from run_workflow()", {k: med([r["first_variant_from_call"] for r in v])
                                  for k, v in runs.items()})
    if trace:
        print(f"{'fsync + fdatasync calls':<28}" + "".join(
            f"{med([r['syncs'] for r in v]):>24.0f}" for v in runs.values()))
    print("(times from launch: the parent's clock just before it starts the process)")
    print("\nsecond run's timeline from launch (medians):")
    timeline: dict[str, list[float]] = defaultdict(list)
    for r in runs["second run"]:
        for label, at in r["events"]:
            timeline[label].append(at)
    for label, ats in sorted(timeline.items(), key=lambda kv: med(kv[1])):
        print(f"  {med(ats):>7.3f} s  {label}")
    if args.floor > 0:
        floors(args.floor)


if __name__ == "__main__":
    main()
