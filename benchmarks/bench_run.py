"""Benchmark: `alphaloop run --ticker GOOG`, where the time goes, and how it grows with variants.

1. The whole command as a user runs it with defaults (a fresh process: imports, worker
   start-up, the loop), ``--repeat`` times: the median wall time.
2. The workflow in this process with 8, 64 and 256 variants per iteration (``--variants``), on
   one local pool: the wall time, the time per variant tried, the split by phase (from the
   orchestrator's ``phase`` events), and the time in the developer's ``propose`` (timed around
   `OptunaDeveloper.propose`, with its ``study.ask`` calls), whose share the target bounds
   (<= 10% with 64 variants; the wall time should grow at most linearly with the variants).
   ``/proc/loadavg`` is printed beside each run: on a shared machine read the ratios.
3. ``--previous REV``: the same runs with the developer of git revision REV (its
   ``agents/development.py`` via ``git show``) in place of today's, in this process.

Run by hand:

    python benchmarks/bench_run.py [--repeat 3] [--ticker GOOG] [--seed 2]
        [--variants 8 64 256] [--previous REV] [--skip-cli]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from _common import loadavg

sys.path.insert(0, str(Path(__file__).resolve().parent))


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


class ProposeTimer:
    """Times every `OptunaDeveloper.propose` call and counts `Study.ask` calls inside them
    (patched on the classes: the orchestrator's developer is built inside `run_workflow`)."""

    def __init__(self) -> None:
        import optuna

        self.seconds = 0.0
        self.calls = 0
        self.asks = 0
        ask = optuna.study.Study.ask
        timer = self

        def counted(study: Any, *a: Any, **kw: Any) -> Any:
            timer.asks += 1
            return ask(study, *a, **kw)

        optuna.study.Study.ask = counted  # type: ignore[method-assign]

    def use(self, developer_class: Any) -> None:
        """Time ``developer_class.propose`` (once per class)."""
        if getattr(developer_class, "_bench_timed", False):
            return
        propose = developer_class.propose
        timer = self

        def timed(dev: Any, inp: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return propose(dev, inp)
            finally:
                timer.seconds += time.perf_counter() - t0
                timer.calls += 1

        developer_class.propose = timed
        developer_class._bench_timed = True

    def reset(self) -> None:
        self.seconds, self.calls, self.asks = 0.0, 0, 0


def phases_once(ticker: str, home: str, variants: int, seed: int,
                timer: ProposeTimer) -> tuple[dict[str, float], dict[str, Any]]:
    from alphaloop.execution import LocalPool
    from alphaloop.workflow.api import run_workflow

    spent: dict[str, float] = defaultdict(float)
    current: list[Any] = ["setup", time.perf_counter()]
    backtesting: list[float] = []  # each BACKTESTING phase, in order

    def on_event(kind: str, info: dict[str, Any]) -> None:
        if kind == "phase":
            now = time.perf_counter()
            spent[current[0]] += now - current[1]
            if current[0] == "BACKTESTING":
                backtesting.append(now - current[1])
            current[:] = [info["phase"], now]

    timer.reset()
    t0 = time.perf_counter()
    with LocalPool() as pool:
        result = run_workflow(ticker, home=home, executor=pool, on_event=on_event,
                              n_variants=variants, seed=seed)
    end = time.perf_counter()
    spent[current[0]] += end - current[1]
    spent["total"] = end - t0
    return dict(spent), {**dict(result), "backtesting": backtesting}


def scaling(args: argparse.Namespace) -> None:
    import alphaloop.workflow.api as api
    from alphaloop.agents import development

    timer = ProposeTimer()
    developers: dict[str, Any] = {"today": development.OptunaDeveloper}
    if args.previous:
        from bench_propose import load_previous

        developers = {f"previous {args.previous}": load_previous(args.previous).OptunaDeveloper,
                      **developers}
    for cls in developers.values():
        timer.use(cls)
    print(f"\nin-process runs: --ticker {args.ticker} --seed {args.seed}, one local pool; "
          "propose = time in OptunaDeveloper.propose")
    rows = []
    for label, cls in developers.items():
        api.OptunaDeveloper = cls  # the developer run_workflow builds
        try:
            for variants in args.variants:
                before = loadavg()
                with tempfile.TemporaryDirectory() as home:
                    spent, result = phases_once(args.ticker, home, variants, args.seed, timer)
                total = spent.pop("total")
                tried = result["variants_tried"]
                rows.append((label, variants, total, tried))
                print(f"\n[{label}] --variants {variants}: {result['status']}, "
                      f"{result['total_iterations']} iterations, {tried} variants tried, "
                      f"wall {total:.2f} s = {1e3 * total / max(tried, 1):.1f} ms a variant "
                      f"(loadavg {before} -> {loadavg()})")
                print(f"  propose: {timer.seconds:.3f} s = {timer.seconds / total:.1%} of wall, "
                      f"{timer.calls} calls, {timer.asks} study.ask for {tried} variants")
                each = result["backtesting"]
                if len(each) >= 3:  # does a batch of backtests get slower as history grows?
                    print(f"  BACKTESTING phases: first {each[0]:.2f} s, median "
                          f"{statistics.median(each):.2f} s, last full {each[-2]:.2f} s "
                          f"({len(each)} phases)")
                print(f"  {'phase':<22}{'seconds':>10}{'share':>9}")
                for phase, sec in sorted(spent.items(), key=lambda kv: -kv[1]):
                    print(f"  {phase:<22}{sec:>10.3f}{sec / total:>9.1%}")
        finally:
            api.OptunaDeveloper = development.OptunaDeveloper
    print(f"\n{'developer':<22}{'V/iter':>7}{'variants':>10}{'wall s':>9}{'ms/variant':>12}")
    for label, variants, total, tried in rows:
        print(f"{label:<22}{variants:>7}{tried:>10}{total:>9.2f}"
              f"{1e3 * total / max(tried, 1):>12.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ticker", default="GOOG")
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--variants", type=int, nargs="+", default=[8, 64, 256])
    parser.add_argument("--previous", help="git revision whose developer to compare with")
    parser.add_argument("--skip-cli", action="store_true", help="only the in-process runs")
    args = parser.parse_args()

    if not args.skip_cli:
        walls = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as home:
                walls.append(cli_once(args.ticker, home))
        print(f"alphaloop run --ticker {args.ticker} (defaults), fresh process, "
              f"{args.repeat} runs (loadavg {loadavg()}):")
        print(f"  median {statistics.median(walls):.2f} s   min {min(walls):.2f} s   "
              f"max {max(walls):.2f} s   (target < 60 s)")
        print("(TOOL_DEVELOPMENT includes starting the worker processes: their first tasks\n"
              " import numpy, pandas, TA-Lib and load the numba kernels)")
    scaling(args)


if __name__ == "__main__":
    main()
