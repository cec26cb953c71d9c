"""Benchmark: how quickly `alphaloop run` gets going, in a fresh home and again in the same home.

Each run is a fresh process (imports, worker start-up, the loop), as a user starts it, driving
the same parts as `alphaloop run --ticker GOOG --seed 1` (`make_executor` + `run_workflow`)
with a phase timer. For each of ``--repeat`` rounds it makes a new home, runs once (fresh
home) and again in that home (second run), and reports, as medians over the rounds:

- the wall time from launch (the parent's clock just before it starts the process) to exit;
- the time spent in each phase and its share of the wall time (``setup``: from launch to the
  first phase: imports, reading the data and strategies, creating the workflow);
- when the first backtest started, from the queue's attempt records (the worker's clock at the
  start of the task; the same machine clock as the launch): any task (a tool check counts) and
  the first strategy variant, from launch and from the call of ``run_workflow``;
- the ``fsync``/``fdatasync`` calls of the run when ``strace`` is on the PATH (``--strace``).

Run by hand (the machine's load average is printed beside the numbers):

    python benchmarks/bench_startup.py [--repeat 3] [--ticker GOOG] [--seed 1] [--strace]
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

ORDER = ("setup", "INITIALIZATION", "TOOL_DEVELOPMENT", "RESEARCH_SWARM",
         "STRATEGY_DEVELOPMENT", "BACKTESTING", "QUALITY_GATE", "COMPLETED", "FAILED")


def child(home: str, ticker: str, seed: int, launched: float, out: str) -> None:
    """One run in this (fresh) process; writes its timings to ``out`` as JSON."""
    from alphaloop.workflow.api import make_executor, run_workflow

    imported = time.time()
    spent: dict[str, float] = defaultdict(float)
    current: list[Any] = ["setup", launched]

    def on_event(kind: str, info: dict[str, Any]) -> None:
        if kind == "phase":
            now = time.time()
            spent[current[0]] += now - current[1]
            current[:] = [info["phase"], now]

    executor = make_executor("local")
    called = time.time()
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
        "status": result["status"],
        "variants": result["variants_tried"],
        "iterations": result["total_iterations"],
    }))


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


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ticker", default="GOOG")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--strace", action="store_true", help="count fsync/fdatasync calls")
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


if __name__ == "__main__":
    main()
