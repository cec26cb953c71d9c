"""A campaign over the five embedded tickers against one ticker's run, in the same process.

    python benchmarks/bench_campaign.py [--repeat 1] [--workers 2] [--tickers AAPL,MSFT,IBM,GOOG,FB]

Default settings (8 variants, seed 0, the default gate), a local pool of ``--workers``
processes. It runs each ticker alone (a pool of its own each, started inside the timing, as a user's
run is), then the campaign, and reports the campaign's wall time over one ticker's (the mean
of the single runs; the target: at most 2.5) and over all the single runs together, with
/proc/loadavg beside each measurement: on a shared machine read the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from alphaloop.execution import LocalPool
from alphaloop.workflow.api import run_workflow
from alphaloop.workflow.campaign import run_campaign


def _load() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tickers", default="AAPL,MSFT,IBM,GOOG,FB")
    args = ap.parse_args()
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
                    r = run_workflow(t, home=Path(tmp) / "one", executor=pool)
                singles.append(time.perf_counter() - t0)
                print(f"    alone: {t:6} {r['status']:8} {r['variants_tried']:3} variants "
                      f"{singles[-1]:6.1f} s  load {_load()}")
            one.append(statistics.mean(singles))
            total.append(sum(singles))
            c0, t0 = time.process_time(), time.perf_counter()
            out = run_campaign(tickers, home=Path(tmp) / "many", workers=args.workers)
            many.append(time.perf_counter() - t0)
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

if __name__ == "__main__":
    main()
