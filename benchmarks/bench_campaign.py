"""A campaign over the five embedded tickers against one ticker's run, in the same process.

    python benchmarks/bench_campaign.py [--repeat 1] [--workers 2] [--tickers AAPL,MSFT,IBM,GOOG,FB]
        [--timeline]

Default settings (8 variants, seed 0, the default gate), a local pool of ``--workers``
processes. It runs each ticker alone (a pool of its own each, started inside the timing, as a user's
run is), then the campaign, and reports the campaign's wall time over one ticker's (the mean
of the single runs; the target: at most 2.5) and over all the single runs together, with
/proc/loadavg beside each measurement: on a shared machine read the ratios, not the seconds.

With ``--cli``, each single run and the campaign are the real commands instead, each a fresh
process as a user types it (``alphaloop run --ticker T`` five times, then ``alphaloop run
--tickers ...``; new homes each repeat, so each pays its own tool checks as in-process): every
one then pays the command's start (imports, the worker template's warm-up) once. In process,
the worker template is warmed by the first run and shared by all the later ones, which makes
a single run's share of start-up (and so the ratio) different from what a user sees.

With ``--timeline``, where the campaign's workers idled, from each workflow's ``queue.db``
(attempts: worker pid, start; a task ends at its commit or at the worker's next start,
whichever is first): per worker, the share of the campaign busy; idle time split into the
start (before the worker's first task), gaps while some workflow had tasks queued (dispatch),
gaps while none had (every orchestrator researching, proposing or judging), and the tail
(after the last task of the second-to-last workflow: one workflow left).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from alphaloop.execution import LocalPool
from alphaloop.execution.task_runner import run_task
from alphaloop.workflow.api import run_workflow
from alphaloop.workflow.campaign import run_campaign


def _load() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def timeline(home: Path, t0: float, t1: float) -> None:
    """Print where the campaign in ``home`` (wall clock ``t0`` .. ``t1``) left workers idle."""
    runs, waits, last_by_wf = [], [], {}
    for d in sorted((home / "workflows").iterdir()):
        if not (d / "queue.db").exists():
            continue
        con = sqlite3.connect(d / "queue.db")
        ticker = json.loads((d / "state.json").read_text()).get("ticker")
        att = con.execute("SELECT task_id, started_at, finished_at, worker_pid FROM attempts"
                          " ORDER BY started_at").fetchall()
        first = {}
        for tid, s, f, pid in att:
            first.setdefault(tid, s)
            runs.append((pid, s, f or t1))
            last_by_wf[ticker] = max(last_by_wf.get(ticker, t0), f or t1)
        waits += [(e, first.get(tid, t1)) for tid, e in con.execute(
            "SELECT task_id, enqueued_at FROM tasks")]
        con.close()
    ends = sorted(last_by_wf.values())
    tail_from = ends[-2] if len(ends) > 1 else t1
    span = t1 - t0
    pids = sorted({r[0] for r in runs if r[0] is not None})
    for pid in pids:
        mine = sorted((s, f) for p, s, f in runs if p == pid)
        busy = start = queued = empty = tail = 0.0
        start = mine[0][0] - t0
        for i, (s, f) in enumerate(mine):
            nxt = mine[i + 1][0] if i + 1 < len(mine) else t1
            end = min(f, nxt)
            busy += end - s
            if nxt > end:  # idle from end to nxt
                if end >= tail_from:
                    tail += nxt - end
                elif any(a <= (end + nxt) / 2 < b for a, b in waits):
                    queued += nxt - end
                else:
                    empty += nxt - end
        print(f"    worker {pid}: {len(mine)} tasks, busy {busy / span:4.0%}; idle: start "
              f"{start:.1f} s, tasks queued {queued:.1f} s, none queued {empty:.1f} s, "
              f"tail {tail:.1f} s")
    print(f"    tail (one workflow left): {t1 - tail_from:.1f} s of {span:.1f} s; workflows end "
          + ", ".join(f"{t} +{e - t0:.1f}" for t, e in sorted(last_by_wf.items(),
                                                            key=lambda kv: kv[1])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tickers", default="AAPL,MSFT,IBM,GOOG,FB")
    ap.add_argument("--timeline", action="store_true", help="where the campaign's workers idled")
    ap.add_argument("--cli", action="store_true", help="the real commands, fresh processes")
    args = ap.parse_args()
    if args.cli:
        return cli(args)
    tickers = [t.strip().upper() for t in args.tickers.split(",") if t.strip()]
    one, many, total = [], [], []
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, Python "
          f"{sys.version.split()[0]}, {args.workers} workers, tickers {','.join(tickers)}")
    for k in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            singles = []
            for t in tickers:  # each with a pool of its own, started inside the timing
                t0 = time.perf_counter()
                with LocalPool(max_workers=args.workers) as pool:
                    pool.start(run_task)  # as `alphaloop run` starts it (make_executor)
                    r = run_workflow(t, home=Path(tmp) / "one", executor=pool)
                singles.append(time.perf_counter() - t0)
                print(f"    alone: {t:6} {r['status']:8} {r['variants_tried']:3} variants "
                      f"{singles[-1]:6.1f} s  load {_load()}")
            one.append(statistics.mean(singles))
            total.append(sum(singles))
            c0, t0, w0 = time.process_time(), time.perf_counter(), time.time()
            out = run_campaign(tickers, home=Path(tmp) / "many", workers=args.workers)
            many.append(time.perf_counter() - t0)
            if args.timeline:
                timeline(Path(tmp) / "many", w0, time.time())
            cpu = time.process_time() - c0
            for row in out["rows"]:
                print(f"    campaign: {row['ticker']:6} {row['status']:8} "
                      f"{row.get('variants_tried'):3} variants, campaign DSR "
                      f"{row.get('campaign_deflated_sharpe')}")
            print(f"run {k + 1}: one ticker (mean of {len(tickers)}) {one[-1]:.1f} s, all "
                  f"separately {total[-1]:.1f} s; campaign {many[-1]:.1f} s ({out['passed']} "
                  f"passed, {out['campaign_trials']} trials, orchestrator CPU {cpu:.1f} s), "
                  f"load {_load()}; campaign / one ticker {many[-1] / one[-1]:.2f}, "
                  f"campaign / separately {many[-1] / total[-1]:.2f}")
    ratio = statistics.median(m / o for m, o in zip(many, one, strict=True))
    print(f"median: campaign / one ticker {ratio:.2f} (target <= 2.5), campaign / separate "
          f"runs {statistics.median(m / o for m, o in zip(many, total, strict=True)):.2f}")

def cli(args: argparse.Namespace) -> None:
    """``--cli``: the commands as a user runs them (see the module docstring)."""
    import shutil
    import subprocess

    exe = shutil.which("alphaloop", path=str(Path(sys.executable).parent))
    command = [exe] if exe else [sys.executable, "-m", "alphaloop.cli"]
    tickers = [t.strip().upper() for t in args.tickers.split(",") if t.strip()]
    workers = ["--workers", str(args.workers)]

    def run(home: Path, *what: str) -> float:
        t0 = time.perf_counter()
        done = subprocess.run([*command, "run", *what, *workers, "--home", str(home)],
                              capture_output=True)
        if done.returncode not in (0, 1):  # 1: no strategy passed
            raise SystemExit(f"alphaloop run {' '.join(what)} failed: {done.stderr.decode()}")
        return time.perf_counter() - t0

    one, many = [], []
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, the commands, "
          f"{args.workers} workers, tickers {','.join(tickers)}")
    for k in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            singles = [run(Path(tmp) / "one", "--ticker", t) for t in tickers]
            one.append(statistics.mean(singles))
            many.append(run(Path(tmp) / "many", "--tickers", ",".join(tickers)))
        print(f"run {k + 1}: one ticker (mean of {len(tickers)}) {one[-1]:.2f} s "
              f"({', '.join(f'{s:.1f}' for s in singles)}), all separately {sum(singles):.1f} s;"
              f" campaign {many[-1]:.2f} s; campaign / one ticker {many[-1] / one[-1]:.2f}, "
              f"load {_load()}", flush=True)
    ratio = statistics.median(m / o for m, o in zip(many, one, strict=True))
    print(f"median: campaign / one ticker {ratio:.2f} (target <= 2.5)")


if __name__ == "__main__":
    main()
