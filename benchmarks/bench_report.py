"""Benchmark: `alphaloop report` on the default GOOG run — its size, and the time to build it.

Issue 10 asks for a page of at most 2 MB built in at most 2 s. The build runs the best
candidate again in a confined strategy process, so most of it is starting a clean worker;
for a ratio that survives a loaded machine the same process times, as the reference, a bare
confined backtest of the same candidate (a fresh clean worker and one task: the floor of any
replay). Printed: medians (and the spread) of

- ``render_report``  in this process, a fresh worker each time (what the dashboard calls);
- ``reference``      a fresh clean worker running the candidate once (no report);
- ``page only``      the HTML from the gathered content (charts, table, no replay);
- ``alphaloop report``  the command as a fresh process (interpreter start and imports too);

with ``/proc/loadavg`` before and after, and the CPU seconds a report costs (here and in
the worker), which a loaded machine stretches far less than wall time. Run by hand (the
default run takes a few minutes unless ``--home``/``--workflow`` name one):

    python benchmarks/bench_report.py [--repeat 5] [--home H --workflow ID]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import loadavg


def timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds (user + system) of this process and of its reaped children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def default_run(home: Path) -> str:
    """`alphaloop run --ticker GOOG` with every default; its workflow id."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "alphaloop.cli", "run", "--ticker", "GOOG",
                           "--json", "--home", str(home)], capture_output=True, text=True,
                          check=False)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"alphaloop run failed ({proc.returncode}): {proc.stderr[-400:]}")
    result = json.loads(proc.stdout)
    print(f"default GOOG run: {result['status']} {result['workflow_id']}, "
          f"{result['variants_tried']} variants ({time.perf_counter() - t0:.0f} s, not timed)")
    return str(result["workflow_id"])


def reference(wid: str, home: str) -> Callable[[], Any]:
    """A fresh clean worker running the best candidate's in-sample record once."""
    from alphaloop.report._replay import _run_fn, _task, start_host
    from alphaloop.workflow.document import read_workflow, winner

    win = winner(read_workflow(wid, home))
    if win is None or win["in_sample"] is None:
        raise SystemExit(f"workflow {wid} has no best candidate to run")
    task = _task(win["in_sample"], True, "bench")

    def once() -> Any:
        host = start_host()
        try:
            return host.run(_run_fn(), task, timeout=300)
        finally:
            host.close()

    return once


def row(name: str, times: list[float], ref: float | None = None) -> str:
    med = statistics.median(times)
    ratio = "" if ref is None else f"{med / ref:7.2f}x"
    return (f"{name:<22} {med:8.3f} s  (min {min(times):.3f}, max {max(times):.3f}, "
            f"n={len(times)}) {ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--home", help="Home folder holding --workflow (default: a new run).")
    parser.add_argument("--workflow", help="Workflow id in --home.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or str(Path(tmp) / "home")
        wid = args.workflow or default_run(Path(home))
        print(f"loadavg before: {loadavg()}")
        from alphaloop.report import render_report
        from alphaloop.report._gather import gather
        from alphaloop.report._page import render
        from alphaloop.report._replay import start_host

        render_report(wid, home)  # warm: imports, numba caches, the data file
        cpu0 = cpu_seconds()
        t_report, html = timed(lambda: render_report(wid, home), args.repeat)
        cpu1 = cpu_seconds()
        t_ref, _ = timed(reference(wid, home), args.repeat)
        host = start_host()
        try:
            content = gather(wid, home, host)
        finally:
            host.close()
        t_page, _ = timed(lambda: render(content), args.repeat)
        out = Path(tmp) / "report.html"
        t_cli, _ = timed(lambda: subprocess.run(
            [sys.executable, "-m", "alphaloop.cli", "report", wid, "--home", home, "-o",
             str(out)], capture_output=True, check=True), args.repeat)
        print(f"loadavg after:  {loadavg()}")
        ref = statistics.median(t_ref)
        size = len(html.encode("utf-8"))
        print(f"report of {wid}: {size:,} bytes ({size / 2e6:.0%} of the 2 MB budget), "
              f"{len(content.rows)} variants, {html.count('<svg')} charts")
        print(f"{'':<22} {'median':>10}{'':>33} vs reference")
        print(row("render_report", t_report, ref))
        print(row("reference", t_ref, ref))
        print(row("page only", t_page, ref))
        print(row("alphaloop report", t_cli, ref))
        me, kids = ((b - a) / args.repeat for a, b in zip(cpu0, cpu1, strict=True))
        print(f"render_report CPU per report: {me:.2f} s here, {kids:.2f} s in the clean worker "
              "and its strategy process (wall time on a quiet machine is about the larger)")


if __name__ == "__main__":
    main()
