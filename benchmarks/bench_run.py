"""Benchmark: `alphaloop run --ticker GOOG` with defaults, and where the time goes.

Runs the whole command as a user does (a fresh process: imports, worker start-up, the loop) a
few times and reports the median wall time, then runs the workflow in-process with a phase
timer to split the time by phase. Run by hand:

    python benchmarks/bench_run.py [--repeat 3] [--ticker GOOG]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from typing import Any


def cli_once(ticker: str, home: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "alphaloop.cli", "run", "--ticker", ticker, "--home", home,
         "--json"], capture_output=True, text=True, check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"alphaloop run failed ({proc.returncode}): {proc.stderr[-400:]}")
    return elapsed


def phases_once(ticker: str, home: str) -> tuple[dict[str, float], dict[str, Any]]:
    from alphaloop.execution import LocalPool
    from alphaloop.workflow.api import run_workflow

    spent: dict[str, float] = defaultdict(float)
    current = ["setup", time.perf_counter()]

    def on_event(kind: str, info: dict[str, Any]) -> None:
        if kind == "phase":
            now = time.perf_counter()
            spent[current[0]] += now - current[1]
            current[:] = [info["phase"], now]

    t0 = time.perf_counter()
    with LocalPool() as pool:
        result = run_workflow(ticker, home=home, executor=pool, on_event=on_event)
    end = time.perf_counter()
    spent[current[0]] += end - current[1]
    spent["total"] = end - t0
    return dict(spent), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ticker", default="GOOG")
    args = parser.parse_args()

    walls = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as home:
            walls.append(cli_once(args.ticker, home))
    print(f"alphaloop run --ticker {args.ticker} (defaults), fresh process, {args.repeat} runs:")
    print(f"  median {statistics.median(walls):.2f} s   min {min(walls):.2f} s   "
          f"max {max(walls):.2f} s   (target < 60 s)")

    with tempfile.TemporaryDirectory() as home:
        spent, result = phases_once(args.ticker, home)
    print(f"\nin-process run: {result['status']}, {result['total_iterations']} iterations, "
          f"{result['variants_tried']} variants, {result['holdout_looks']} holdout looks")
    total = spent.pop("total")
    print("(TOOL_DEVELOPMENT includes starting the worker processes: their first tasks import\n"
          " numpy, pandas, TA-Lib and load the numba kernels)")
    print(f"{'phase':<22}{'seconds':>10}{'share':>9}")
    for phase, sec in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"{phase:<22}{sec:>10.3f}{sec / total:>9.1%}")
    print(f"{'total':<22}{total:>10.3f}")


if __name__ == "__main__":
    main()
