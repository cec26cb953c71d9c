"""Benchmark: how often `alphaloop run` declares SUCCESS on series whose truth is known.

Generates seeded synthetic series (`alphaloop.data.synthetic`) into a temporary folder and runs
each one through the real command line, a fresh process per series:

    python -m alphaloop.cli run --ticker NAME --data FILE --home TMP --json --seed 1 \
        --gate "sharpe_ratio>=0.5" --gate "num_trades>=10" [--alpha A]

and reports the false discovery rate on the no-edge families (random walks at three
volatilities, a GARCH walk: any SUCCESS is a false discovery), the power on the edge families
(regime trend, mean reversion, weekday effect), each with a 95% binomial interval, the median
wall time per run and the machine's load. Run by hand (about 20 s per run on 2 cores):

    python benchmarks/bench_calibration.py [--noise 100] [--edge 20] [--jobs 1] [--alpha A]
        [--only TRD,TRL] [--out runs.json]
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
from _common import loadavg

from alphaloop.data import synthetic

GATES = ("sharpe_ratio>=0.5", "num_trades>=10")


@dataclass(frozen=True)
class Family:
    code: str  # ticker prefix: three capital letters, then the seed's three digits
    label: str
    edge: bool
    make: Callable[..., pd.DataFrame]
    seed_base: int  # series i of the family has seed seed_base + i: no two series share one


FAMILIES = (
    Family(
        "RWL", "random walk, vol 0.8%", False, partial(synthetic.random_walk, daily_vol=0.008), 1000
    ),
    Family(
        "RWM", "random walk, vol 1.5%", False, partial(synthetic.random_walk, daily_vol=0.015), 2000
    ),
    Family(
        "RWH", "random walk, vol 2.5%", False, partial(synthetic.random_walk, daily_vol=0.025), 3000
    ),
    Family("GAR", "GARCH(1,1) walk, vol 1.5%", False, synthetic.garch_walk, 4000),
    Family("TRD", "regime trend ±0.15%/day, flip 1/120", True, synthetic.regime_trend, 5000),
    Family("MRV", "mean reversion (OU, half-life 7 d)", True, synthetic.mean_reversion, 6000),
    Family("WKD", "weekday effect (Mon +0.25%, Fri -0.25%)", True, synthetic.weekday_effect, 7000),
    # the same trend process with 10,000 bars: a 12-year holdout holds enough evidence for a
    # single look to find it (bench_trend_ceiling.py: the ceiling at 3,000 bars is ~40%)
    Family(
        "TRL",
        "regime trend, 10,000 bars (long history)",
        True,
        partial(synthetic.regime_trend, 10_000),
        8000,
    ),
)


def plan(noise: int, edge: int, only: set[str] | None = None) -> list[tuple[Family, int]]:
    """(family, seed) per run: `noise` series dealt round-robin over the no-edge families,
    `edge` series per edge family; only the families whose codes are in ``only``, if given."""
    quiet = [f for f in FAMILIES if not f.edge and (only is None or f.code in only)]
    runs = [
        (quiet[i % len(quiet)], quiet[i % len(quiet)].seed_base + i // len(quiet))
        for i in range(noise)
    ]
    runs += [
        (f, f.seed_base + i)
        for f in FAMILIES
        if f.edge and (only is None or f.code in only)
        for i in range(edge)
    ]
    return runs


def interval(k: int, n: int) -> tuple[float, float]:
    """95% two-sided binomial interval for k successes in n: Clopper–Pearson (scipy), or the
    Wilson score interval when scipy is missing."""
    if n == 0:
        return math.nan, math.nan
    try:
        from scipy.stats import beta
    except ImportError:
        z = 1.959963984540054
        p = k / n
        mid = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return max(0.0, mid - half), min(1.0, mid + half)
    lo = 0.0 if k == 0 else float(beta.ppf(0.025, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(0.975, k + 1, n - k))
    return lo, hi


def interval_name() -> str:
    try:
        import scipy.stats  # noqa: F401
    except ImportError:
        return "Wilson score (scipy not installed)"
    return "Clopper–Pearson (exact)"


def run_one(family: Family, seed: int, root: Path, alpha: float | None) -> dict[str, Any]:
    ticker = f"{family.code}{seed % 1000:03d}"
    data = synthetic.write_csv(family.make(seed=seed), root / "data" / f"{ticker}.csv")
    cmd = [
        sys.executable,
        "-m",
        "alphaloop.cli",
        "run",
        "--ticker",
        ticker,
        "--data",
        str(data),
        "--home",
        str(root / "homes" / ticker),
        "--json",
        "--seed",
        "1",
    ]
    for gate in GATES:
        cmd += ["--gate", gate]
    if alpha is not None:
        cmd += ["--alpha", repr(alpha)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    row: dict[str, Any] = {
        "ticker": ticker,
        "family": family.code,
        "edge": family.edge,
        "seed": seed,
        "returncode": proc.returncode,
        "wall_s": round(wall, 2),
    }
    try:
        result = json.loads(proc.stdout)
    except json.JSONDecodeError:
        row.update(status="ERROR", error=(proc.stderr.strip() or proc.stdout.strip())[-400:])
        return row
    holdout = result.get("holdout_metrics") or {}
    row.update(
        status=result.get("status"),
        strategy=result.get("best_strategy_name"),
        holdout_sharpe=holdout.get("sharpe_ratio"),
        holdout_looks=result.get("holdout_looks"),
        holdout_significance=result.get("holdout_significance"),
        # looks whose variant passed the gate on the holdout but not the significance test
        looks_not_significant=sum(
            bool(d.get("gate_passed")) and not d.get("significant")
            for d in result.get("holdout_looks_detail") or []
        ),
        reason=result.get("reason"),
    )
    return row


def _pct(x: float) -> str:
    return "—" if math.isnan(x) else f"{100 * x:.1f}%"


def table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| family | truth | series | SUCCESS | rate | 95% interval | stopped by the test "
        "| median holdout Sharpe | median holdout looks |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|",
    ]

    def line(label: str, truth: str, runs: list[dict[str, Any]]) -> str:
        n = len(runs)
        k = sum(r["status"] == "SUCCESS" for r in runs)
        lo, hi = interval(k, n)
        sharpes = [r["holdout_sharpe"] for r in runs if r.get("holdout_sharpe") is not None]
        looks = [r["holdout_looks"] for r in runs if r.get("holdout_looks") is not None]
        med_s = f"{statistics.median(sharpes):.2f}" if sharpes else "—"
        med_l = f"{statistics.median(looks):g}" if looks else "—"
        rate = _pct(k / n) if n else "—"
        # FAILED runs in which a variant passed the gate on the holdout but not the test
        stopped = sum(
            r["status"] != "SUCCESS" and r.get("looks_not_significant", 0) > 0 for r in runs
        )
        return (
            f"| {label} | {truth} | {n} | {k} | {rate} | {_pct(lo)} – {_pct(hi)} | {stopped} "
            f"| {med_s} | {med_l} |"
        )

    for edge in (False, True):
        for fam in FAMILIES:
            runs = [r for r in rows if r["family"] == fam.code]
            if fam.edge == edge and runs:
                out.append(line(fam.label, "edge (power)" if edge else "no edge (FDR)", runs))
        if not edge:
            noise = [r for r in rows if not r["edge"]]
            if noise:
                out.append(line("**all no-edge**", "**false discovery rate**", noise))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--noise",
        type=int,
        default=100,
        help="no-edge series, split across the no-edge families (100)",
    )
    parser.add_argument("--edge", type=int, default=20, help="series per edge family (20)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs at once (1; each run already uses 2 worker processes)",
    )
    parser.add_argument(
        "--alpha",
        type=float,
        default=None,
        help="passed to alphaloop run --alpha (default: the CLI's own)",
    )
    parser.add_argument("--out", type=Path, default=None, help="write every run as JSON here")
    parser.add_argument(
        "--only",
        default=None,
        help="comma-separated family codes to run (" + ",".join(f.code for f in FAMILIES) + ")",
    )
    args = parser.parse_args()
    only = None
    if args.only:
        only = {code.strip().upper() for code in args.only.split(",")}
        unknown = only - {f.code for f in FAMILIES}
        if unknown:
            parser.error(f"unknown family code(s) {', '.join(sorted(unknown))}")

    runs = plan(args.noise, args.edge, only)
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    head = (
        subprocess.run(
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
        ).stdout.strip()
        or "n/a"
    )
    load_start = loadavg()
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="alphaloop-calib-") as tmp:
        work = partial(run_one, root=Path(tmp), alpha=args.alpha)
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = [pool.submit(work, fam, seed) for fam, seed in runs]
            for i, future in enumerate(futures, 1):
                row = future.result()
                rows.append(row)
                sharpe = row.get("holdout_sharpe")
                shown = "—" if sharpe is None else f"{sharpe:.2f}"
                print(
                    f"[{i}/{len(runs)}] {row['ticker']} {row['status']} holdout Sharpe "
                    f"{shown} looks {row.get('holdout_looks')} {row['wall_s']:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
    total = time.perf_counter() - t0
    load_end = loadavg()

    errors = [r for r in rows if r["status"] == "ERROR"]
    done = [r for r in rows if r["status"] != "ERROR"]
    alpha = "CLI default" if args.alpha is None else f"{args.alpha:g}"
    print(f"command: {command}")
    print(
        f"alphaloop {head}; gate {', '.join(GATES)}; --seed 1; --alpha {alpha}; "
        f"{synthetic.N_BARS} daily bars per series (70% in-sample)"
    )
    print(f"load average (1/5/15 min): start {load_start}, end {load_end}")
    print(
        f"{len(rows)} runs in {total / 60:.1f} min with --jobs {args.jobs}; median wall time "
        f"per run {statistics.median(r['wall_s'] for r in rows):.1f} s"
        + (f"; {len(errors)} runs failed to report and are left out" if errors else "")
    )
    print(
        f'95% intervals: {interval_name()}. "stopped by the test": FAILED runs in which '
        "a variant passed the gate on the holdout but not the significance test (without "
        "the test, the first such look would have ended the run as a SUCCESS). Holdout "
        "Sharpe: the workflow's best variant's.\n"
    )
    print("\n".join(table(done)))
    for r in errors:
        print(f"\nERROR {r['ticker']} (exit {r['returncode']}): {r['error']}")
    if args.out:
        meta = {
            "command": command,
            "alphaloop": head,
            "alpha": args.alpha,
            "gates": GATES,
            "load_start": load_start,
            "load_end": load_end,
            "total_s": round(total, 1),
        }
        args.out.write_text(json.dumps({"meta": meta, "runs": rows}, indent=1, default=str))
        print(f"\nruns written to {args.out}")


if __name__ == "__main__":
    main()
