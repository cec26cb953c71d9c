"""Benchmark: how soon the first backtest of `alphaloop run` starts, measured from launch.

Runs the real command, ``alphaloop run --ticker GOOG`` in one home (a first run fills the
tool-check cache; the measured ones are second runs, as the start-up target reads), each time
as a user launches it, two ways, alternating:

- ``early``: as shipped: the command starts the worker template (`execution._template`)
  before its own imports, so the template's imports and warm-up overlap them;
- ``by pool``: ``ALPHALOOP_EARLY_TEMPLATE=0``: the pool starts the template when it is made,
  after the command's imports (how it was before).

The clock starts just before the process is launched; the first backtest's start is read
from the run's ``queue.db`` (the worker's clock at the start of the first attempt: the same
machine clock). Reported: each run, the medians, their ratio and ``/proc/loadavg``.

Run by hand:

    python benchmarks/bench_launch.py [--repeat 4] [--ticker GOOG]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import loadavg


def command() -> list[str]:
    exe = shutil.which("alphaloop", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "alphaloop.cli"]


def first_backtest(home: Path, ticker: str, early: bool) -> float:
    before = set((home / "workflows").glob("*"))
    env = {**os.environ, "ALPHALOOP_EARLY_TEMPLATE": "1" if early else "0"}
    launched = time.time()
    done = subprocess.run([*command(), "run", "--ticker", ticker, "--home", str(home)],
                          capture_output=True, env=env)
    if done.returncode not in (0, 1):  # 1: the search ended without a passing strategy
        raise SystemExit(f"alphaloop run failed ({done.returncode}): {done.stderr.decode()}")
    (workflow,) = set((home / "workflows").glob("*")) - before
    with sqlite3.connect(f"{(workflow / 'queue.db').as_uri()}?mode=ro", uri=True) as conn:
        first = conn.execute("SELECT MIN(started_at) FROM attempts").fetchone()[0]
    return first - launched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--ticker", default="GOOG")
    args = parser.parse_args()
    got: dict[str, list[float]] = {"early": [], "by pool": []}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        first_backtest(home, args.ticker, True)  # fills the tool-check cache
        for r in range(args.repeat):
            order = [("early", True), ("by pool", False)]
            for name, early in order if r % 2 == 0 else order[::-1]:
                got[name].append(first_backtest(home, args.ticker, early))
                print(f"repeat {r}: {name:8s} first backtest {got[name][-1]:.3f} s after launch"
                      f"  (load {loadavg()})", flush=True)
    e, p = statistics.median(got["early"]), statistics.median(got["by pool"])
    print(f"median: early {e:.3f} s, by pool {p:.3f} s, early / by pool {e / p:.2f} "
          f"(load {loadavg()})")


if __name__ == "__main__":
    main()
