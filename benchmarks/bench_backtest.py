"""Benchmark: the sma_crossover parameter grid in alphaloop vs vectorbt and backtesting.py.

Run: ``PYTHONPATH=src python benchmarks/bench_backtest.py [--quick] [--repeat N]``
(needs the ``bench`` extra for the references: ``pip install vectorbt backtesting``; a missing
library is reported as "not installed" and its rows are skipped).

Everything is measured in this one process, on the embedded GOOG sample (2,148 daily bars),
and every reference is compared with alphaloop measured in the same run:

1. alphaloop ``sma_crossover`` over every fast < slow in 2..100 (4,851 combinations) through
   the batch entry point ``grid.run_batch``, end to end (SMAs, signals, positions, engine,
   the full 14 metrics of every combination), and through ``runner.run_grid`` (the same, plus
   one metrics dict per combination). The indicator memo is cleared before each timed
   repeat, so each repeat computes its SMAs.
2. vectorbt: the same grid broadcast in one call (``MA.run_combs``, ``ma_crossed_above`` /
   ``ma_crossed_below``, ``Portfolio.from_signals(fees=0.001)``, then ``total_return`` and
   ``sharpe_ratio`` of every column).
3. backtesting.py: ``SmaCross`` (the library's example strategy) on a 50-combination subset
   with ``Backtest.optimize`` (a process pool, one worker per core), and one single run.
4. alphaloop single run: ``load_strategy`` + ``runner.backtest`` (positions, engine, metrics).
5. The alphaloop grid on 10x longer data (the GOOG price path chained ten times, 21,480 bars).
6. Peak memory of one grid run, each case in a fresh subprocess (``--memory-case``): the peak
   resident set above the warmed-up process (``VmHWM`` reset through ``/proc/self/clear_refs``
   just before the run) and tracemalloc's peak of the run (numpy allocations; not numba's).
   ``--vbt-10x`` adds vectorbt on the 10x data (minutes, gigabytes).

Threads are pinned to one (``NUMBA_NUM_THREADS`` etc., set before numpy/numba are imported), so
alphaloop and vectorbt each run on one core; ``Backtest.optimize`` forks one worker per core.
Every library is warmed up (numba compile or cache load) before timing, and the grid cases
are interleaved round by round (alphaloop, vectorbt, backtesting.py, alphaloop, ...), so a
change in machine load hits them alike. Reported: median wall time over the repeats, median
CPU time of this process (pool workers not included), time per combination, and ratios to
alphaloop, with ``/proc/loadavg`` before and after. The machine may be shared: compare
ratios, not absolutes. Targets (issue 12): the batch grid <= 0.25 s and <= 50 µs per
combination, >= 20x vectorbt, <= 300 MB peak.
"""

from __future__ import annotations

import os

for _var in (
    "NUMBA_NUM_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's optimize progress bar

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _common import loadavg  # noqa: E402

FAST_SLOW = range(2, 101)  # every fast < slow in 2..100: 99 * 98 / 2 = 4,851 pairs
BT_FAST = range(5, 55, 5)  # backtesting.py subset: 10 x 5 = 50 pairs, all inside the grid
BT_SLOW = range(60, 110, 10)
COMMISSION = 0.001
SINGLE = {"fast": 10, "slow": 50}

# -- backtesting.py strategy (module level, so the optimize pool can pickle it) ---------------
# Not in a memory subprocess (``--memory-case``): its peak is one grid's process, with only
# what that grid imports (backtesting.py brings bokeh: ~20 MB of the whole process's peak).
try:
    if "--memory-case" in sys.argv:
        raise ImportError("not loaded for a memory case")
    import backtesting as _backtesting
    from backtesting import Backtest
    from backtesting import Strategy as _BtStrategy
    from backtesting.lib import crossover as _bt_crossover
except ImportError:
    _backtesting = None

if _backtesting is not None:

    def _bt_sma(values: Any, n: int) -> pd.Series:
        return pd.Series(values).rolling(n).mean()

    class SmaCross(_BtStrategy):
        """backtesting.py's example: long after the fast SMA crosses above, short after below."""

        n1 = 10
        n2 = 50

        def init(self) -> None:
            self.sma1 = self.I(_bt_sma, self.data.Close, self.n1)
            self.sma2 = self.I(_bt_sma, self.data.Close, self.n2)

        def next(self) -> None:
            if _bt_crossover(self.sma1, self.sma2):
                self.position.close()
                self.buy()
            elif _bt_crossover(self.sma2, self.sma1):
                self.position.close()
                self.sell()


# -- timing ----------------------------------------------------------------------------------------
@dataclass
class Timing:
    """Median wall and CPU seconds of the timed repeats, and the first (warm-up) call."""

    wall: float
    cpu: float
    walls: list[float] = field(default_factory=list)
    value: Any = None


def timed_import(name: str) -> tuple[Any, float]:
    """Import ``name``; (module or None, seconds)."""
    t0 = time.perf_counter()
    try:
        module = importlib.import_module(name)
    except Exception:  # not installed, or broken against this numpy/pandas
        return None, 0.0
    return module, time.perf_counter() - t0


# -- data ------------------------------------------------------------------------------------------
def chain(df: pd.DataFrame, times: int) -> pd.DataFrame:
    """``df``'s price path repeated ``times`` times, each copy scaled to start where the last ended.

    Copy k is multiplied by ``g**k`` with ``g = close[-1] / close[0]``, so the close path is
    continuous (the seam bar has a zero close-to-close return); a new business-day index.
    """
    prices = ["open", "high", "low", "close"]
    g = df["close"].iat[-1] / df["close"].iat[0]
    parts = []
    for k in range(times):
        part = df.copy()
        part[prices] = part[prices] * g**k
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out.index = pd.bdate_range("1930-01-01", periods=len(out), name="date")
    return out


def grid_params(allow_short: bool) -> list[dict[str, Any]]:
    return [
        {"fast": f, "slow": s, "allow_short": allow_short}
        for f in FAST_SLOW
        for s in FAST_SLOW
        if f < s
    ]


def grid_columns(allow_short: bool) -> dict[str, list[Any]]:
    """The same grid as one list of values per parameter (what ``alphaloop grid`` sends)."""
    sets = grid_params(allow_short)
    return {name: [p[name] for p in sets] for name in sets[0]}


# -- the cases -------------------------------------------------------------------------------------
def quiet(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` with warnings silenced (backtesting.py warns about open trades and the like)."""

    def wrapped() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()

    return wrapped


Cases = dict[str, tuple[Callable[[], Any], Callable[[], None] | None]]


def alphaloop_cases(df: pd.DataFrame, big: pd.DataFrame) -> tuple[float, Cases, Cases]:
    """(warm-up seconds, grid cases, single-run cases) of alphaloop."""
    from alphaloop.backtest import _positions, _source, grid, indicators, runner
    from alphaloop.backtest import strategy as strategy_mod

    t0 = time.perf_counter()
    strat = strategy_mod.load_strategy("sma_crossover")
    runner.run_grid(strat, df, grid_params(True)[:50])  # numba caches: load or compile
    runner.run_grid(strat, big, grid_params(True)[:5])
    warm = time.perf_counter() - t0

    def batch(data: pd.DataFrame, allow_short: bool) -> Callable[[], Any]:
        columns = grid_columns(allow_short)
        return lambda: grid.run_batch(strat, data, columns, commission=COMMISSION)

    def dicts(data: pd.DataFrame, allow_short: bool) -> Callable[[], Any]:
        params = grid_params(allow_short)
        return lambda: runner.run_grid(strat, data, params, commission=COMMISSION)

    def single_cold() -> dict[str, Any]:
        s = strategy_mod.load_strategy("sma_crossover")
        return runner.backtest(s, df, SINGLE, commission=COMMISSION).metrics

    def cold_setup() -> None:
        indicators.clear_memo()
        _source.inspect_source.cache_clear()  # read the source again
        _positions._compile.cache_clear()  # and load it through the sandbox again

    grids: Cases = {
        "grid_ls": (batch(df, True), indicators.clear_memo),
        "grid_long": (batch(df, False), indicators.clear_memo),
        "grid_dicts": (dicts(df, True), indicators.clear_memo),
        "grid_10x": (batch(big, True), indicators.clear_memo),
    }
    singles: Cases = {
        "single": (
            lambda: runner.backtest(strat, df, SINGLE, commission=COMMISSION).metrics,
            indicators.clear_memo,
        ),
        "single_cold": (single_cold, cold_setup),
    }
    return warm, grids, singles


def vectorbt_cases(vbt: Any, df: pd.DataFrame) -> tuple[float, Cases, Cases]:
    """(warm-up seconds, grid cases, single-run cases) of vectorbt."""
    vbt.settings.returns["year_freq"] = "252 days"  # annualise like alphaloop (252 bars)
    close = df["close"]

    def grid(windows: Any = np.arange(2, 101)) -> tuple[pd.Series, pd.Series]:
        fast, slow = vbt.MA.run_combs(close, window=windows, r=2, short_names=["fast", "slow"])
        entries = fast.ma_crossed_above(slow)
        exits = fast.ma_crossed_below(slow)
        pf = vbt.Portfolio.from_signals(close, entries, exits, fees=COMMISSION, freq="1D")
        return pf.total_return(), pf.sharpe_ratio()

    def single() -> tuple[float, float]:
        fast = vbt.MA.run(close, SINGLE["fast"])
        slow = vbt.MA.run(close, SINGLE["slow"])
        pf = vbt.Portfolio.from_signals(
            close,
            fast.ma_crossed_above(slow),
            fast.ma_crossed_below(slow),
            fees=COMMISSION,
            freq="1D",
        )
        return pf.total_return(), pf.sharpe_ratio()

    t0 = time.perf_counter()
    single()
    grid(np.arange(2, 8))  # the 2-D (broadcast) specialisations
    warm = time.perf_counter() - t0
    return warm, {"vbt_grid": (grid, None)}, {"vbt_single": (single, None)}


def backtesting_cases(df: pd.DataFrame) -> tuple[float, Cases, Cases]:
    """(warm-up seconds, grid cases, single-run cases) of backtesting.py."""
    data = df.rename(columns=str.capitalize)[["Open", "High", "Low", "Close", "Volume"]]

    def make() -> Any:
        return Backtest(data, SmaCross, cash=1_000_000, commission=COMMISSION)

    def optimize() -> Any:
        return make().optimize(
            n1=list(BT_FAST),
            n2=list(BT_SLOW),
            constraint=lambda p: p.n1 < p.n2,
            maximize="Sharpe Ratio",
        )

    def single() -> Any:
        return make().run(n1=SINGLE["fast"], n2=SINGLE["slow"])

    t0 = time.perf_counter()
    quiet(single)()
    warm = time.perf_counter() - t0
    return warm, {"bt_optimize": (quiet(optimize), None)}, {"bt_single": (quiet(single), None)}


def run_rounds(cases: Cases, rounds: int) -> dict[str, Timing]:
    """Each case once per round, cases interleaved (so drifting machine load hits all alike)."""
    walls: dict[str, list[float]] = {k: [] for k in cases}
    cpus: dict[str, list[float]] = {k: [] for k in cases}
    values: dict[str, Any] = {}
    for _ in range(rounds):
        for key, (fn, setup) in cases.items():
            if setup is not None:
                setup()
            c0, t0 = time.process_time(), time.perf_counter()
            values[key] = fn()
            walls[key].append(time.perf_counter() - t0)
            cpus[key].append(time.process_time() - c0)
    return {
        k: Timing(statistics.median(walls[k]), statistics.median(cpus[k]), walls[k], values[k])
        for k in cases
    }


# -- sanity checks ---------------------------------------------------------------------------------
def sanity(df: pd.DataFrame, vbt: Any, grid: Timing | None, ours: Timing) -> list[str]:
    """Same-semantics comparisons for fast=10, slow=50 and across the grid."""
    from alphaloop.backtest import runner
    from alphaloop.backtest.strategy import load_strategy

    strat = load_strategy("sma_crossover")
    lines = []
    for allow_short in (False, True):
        m = runner.backtest(strat, df, {**SINGLE, "allow_short": allow_short}).metrics
        side = "long/short" if allow_short else "long-only"
        lines.append(
            f"alphaloop {side:10} 10/50, next-open fills : total_return "
            f"{float(m['total_return']):.4f}, sharpe {float(m['sharpe_ratio']):.3f}, "
            f"trades {int(m['num_trades'])}"
        )
    if vbt is not None:
        close, open_ = df["close"], df["open"]
        fast = vbt.MA.run(close, SINGLE["fast"])
        slow = vbt.MA.run(close, SINGLE["slow"])
        en, ex = fast.ma_crossed_above(slow), fast.ma_crossed_below(slow)
        for direction in ("longonly", "both"):
            side = "long-only" if direction == "longonly" else "long/short"
            for how, kw in (
                ("close fills     ", {"entries": en, "exits": ex}),
                (
                    "next-open fills ",
                    {
                        "entries": en.vbt.fshift(1, fill_value=False),
                        "exits": ex.vbt.fshift(1, fill_value=False),
                        "price": open_,
                    },
                ),
            ):
                pf = vbt.Portfolio.from_signals(
                    close, fees=COMMISSION, freq="1D", direction=direction, **kw
                )
                lines.append(
                    f"vectorbt  {side:10} 10/50, {how}: total_return {pf.total_return():.4f}, "
                    f"sharpe {pf.sharpe_ratio():.3f}, trades {int(pf.trades.count())}"
                )
        if grid is not None:
            mine = ours.value.metrics["total_return"]
            mine_sr = ours.value.metrics["sharpe_ratio"]
            theirs = grid.value[0].to_numpy()
            rank = pd.Series(mine).corr(pd.Series(theirs), method="spearman")
            lines.append(
                f"grid total_return, alphaloop long-only vs vectorbt close fills: "
                f"Spearman {rank:.3f}, median |diff| {np.median(np.abs(mine - theirs)):.3f}"
            )
            fa, sa = vbt.MA.run_combs(close, window=np.arange(2, 101), r=2)
            pf = vbt.Portfolio.from_signals(
                close,
                fa.ma_crossed_above(sa).vbt.fshift(1, fill_value=False),
                fa.ma_crossed_below(sa).vbt.fshift(1, fill_value=False),
                price=open_,
                fees=COMMISSION,
                freq="1D",
            )
            tr, sr = pf.total_return().to_numpy(), pf.sharpe_ratio().to_numpy()
            rel = np.abs(mine - tr) / np.maximum(1.0, np.abs(tr))
            dsr = np.abs(mine_sr - sr)
            lines.append(
                f"grid, alphaloop long-only vs vectorbt next-open fills ({len(tr):,} combos): "
                f"|total_return diff| / max(1, |tr|) median {np.median(rel):.1e}, max "
                f"{rel.max():.1e}, > 1e-3 in {(rel > 1e-3).sum()}; |sharpe diff| median "
                f"{np.nanmedian(dsr):.1e}, > 1e-3 in {(dsr > 1e-3).sum()}"
            )
    if _backtesting is not None:
        data = df.rename(columns=str.capitalize)[["Open", "High", "Low", "Close", "Volume"]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            st = Backtest(
                data, SmaCross, cash=1_000_000, commission=COMMISSION, finalize_trades=True
            ).run()
        lines.append(
            f"backtesting.py SmaCross 10/50 (long/short, next open, whole shares): total_return "
            f"{st['Return [%]'] / 100:.4f}, trades {int(st['# Trades'])}"
        )
    return lines


# -- peak memory, one case per fresh subprocess ---------------------------------------------------
def _status_kib(field_name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


def memory_case(case: str) -> dict[str, float]:
    """Run one grid case once, warmed up, in this (fresh) process; its peak memory in MB."""
    import tracemalloc

    from alphaloop.data import load

    df = load("GOOG")
    data = chain(df, 10) if case.endswith("10x") else df
    if case.startswith("alphaloop"):
        from alphaloop.backtest import grid, indicators
        from alphaloop.backtest.strategy import load_strategy

        strat = load_strategy("sma_crossover")
        columns = grid_columns(True)
        grid.run_batch(strat, data, {k: v[:50] for k, v in columns.items()})  # warm up
        indicators.clear_memo()

        def fn() -> Any:
            return grid.run_batch(strat, data, columns, commission=COMMISSION)
    else:
        vbt = importlib.import_module("vectorbt")
        vbt.settings.returns["year_freq"] = "252 days"
        close = data["close"]

        def run(windows: Any) -> Any:
            fast, slow = vbt.MA.run_combs(close, window=windows, r=2, short_names=["f", "s"])
            pf = vbt.Portfolio.from_signals(close, fast.ma_crossed_above(slow),
                                            fast.ma_crossed_below(slow), fees=COMMISSION,
                                            freq="1D")
            return pf.total_return(), pf.sharpe_ratio()

        run(np.arange(2, 8))  # warm up

        def fn() -> Any:
            return run(np.arange(2, 101))
    import gc

    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:
        pass
    base = _status_kib("VmRSS")
    tracemalloc.start()
    t0 = time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = _status_kib("VmHWM")
    return {"rss_peak_above_base_mb": (peak - base) / 1024, "rss_peak_mb": peak / 1024,
            "tracemalloc_peak_mb": traced / 2**20, "wall_s": wall}


def measure_memory(cases: list[str]) -> dict[str, dict[str, float] | str]:
    out: dict[str, dict[str, float] | str] = {}
    for case in cases:
        proc = subprocess.run([sys.executable, __file__, "--memory-case", case],
                              capture_output=True, text=True, env=os.environ.copy())
        if proc.returncode != 0:
            out[case] = (proc.stderr.strip().splitlines() or ["failed"])[-1]
            continue
        out[case] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


# -- report ----------------------------------------------------------------------------------------
def fmt_t(seconds: float) -> str:
    """Seconds as a short string with a unit: ``6.21 s``, ``19.3 ms``, ``144 µs``."""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 repeat per grid, 5 per single run")
    parser.add_argument("--repeat", type=int, default=3, help="timed repeats per grid case")
    parser.add_argument("--single-repeat", type=int, default=20, help="repeats per single run")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--vbt-10x", action="store_true",
                        help="also measure vectorbt's grid on the 10x data (memory section)")
    parser.add_argument("--memory-case", help=argparse.SUPPRESS)  # the subprocess's own run
    args = parser.parse_args()
    if args.memory_case:
        print(json.dumps(memory_case(args.memory_case)))
        return
    repeat, single_repeat = (1, 5) if args.quick else (args.repeat, args.single_repeat)
    load_before = loadavg()

    t0 = time.perf_counter()
    from alphaloop.data import load

    df = load("GOOG")
    big = chain(df, 10)
    t_alpha_import = time.perf_counter() - t0
    vbt, t_vbt_import = timed_import("vectorbt")
    bt_ok = _backtesting is not None

    warm: dict[str, float] = {}
    grids: Cases = {}
    singles: Cases = {}
    warm["alphaloop"], g, si = alphaloop_cases(df, big)
    grids.update(g)
    singles.update(si)
    if vbt is not None:
        warm["vectorbt"], g, si = vectorbt_cases(vbt, df)
        grids.update(g)
        singles.update(si)
    if bt_ok:
        warm["backtesting.py"], g, si = backtesting_cases(df)
        grids.update(g)
        singles.update(si)
    res = run_rounds(grids, repeat)
    for key, case in singles.items():  # each in a block: steady state, caches warm
        res.update(run_rounds({key: case}, single_repeat))

    n_grid = len(grid_params(True))
    n_bt = sum(1 for f in BT_FAST for s in BT_SLOW if f < s)
    n, n_big = len(df), len(big)

    def version(mod: str) -> str:
        try:
            return importlib.import_module(mod).__version__
        except Exception:
            return "not installed"

    import numba

    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"# {stamp}, {platform.machine()}, {cores} cores, Python {platform.python_version()}"
          f" ({sys.prefix})")
    print(f"# numpy {np.__version__}, pandas {pd.__version__}, numba {numba.__version__}, "
          f"vectorbt {version('vectorbt')}, backtesting {version('backtesting')}")
    print(f"# data: GOOG sample {n:,} bars ({df.index[0].date()}..{df.index[-1].date()}); "
          f"10x: {n_big:,} bars; commission {COMMISSION}")
    print(f"# repeats: {repeat} per grid, {single_repeat} per single run; "
          f"NUMBA_NUM_THREADS={os.environ['NUMBA_NUM_THREADS']}")
    imports = {"alphaloop": t_alpha_import, "vectorbt": t_vbt_import}
    warm_text = [
        f"{k} {fmt_t(w)}" + (f" (import {fmt_t(imports[k])})" if k in imports else "")
        for k, w in warm.items()
    ]
    print("# warm-up, untimed (numba compile or cache load): " + "; ".join(warm_text))
    print()
    print("| case | combos | bars | median wall | median CPU | per combo "
          "| ratio | wall min–max |")
    print("|---|---:|---:|---:|---:|---:|---|---|")

    def row(name: str, t: Timing | None, combos: int, bars: int, ratio: str) -> None:
        if t is None:
            print(f"| {name} | {combos:,} | {bars:,} | not installed | | | | |")
            return
        print(f"| {name} | {combos:,} | {bars:,} | {fmt_t(t.wall)} | {fmt_t(t.cpu)} "
              f"| {fmt_t(t.wall / combos)} | {ratio} "
              f"| {fmt_t(min(t.walls))}–{fmt_t(max(t.walls))} |")

    ls, lo, big_t = res["grid_ls"], res["grid_long"], res["grid_10x"]
    v_grid, v_single = res.get("vbt_grid"), res.get("vbt_single")
    b_opt, b_single = res.get("bt_optimize"), res.get("bt_single")
    row("alphaloop grid.run_batch, long/short (default)", ls, n_grid, n, "base")
    row("alphaloop grid.run_batch, long-only", lo, n_grid, n,
        f"{lo.wall / ls.wall:.2f}x long/short")
    row("alphaloop runner.run_grid (+ a metrics dict per combo)", res["grid_dicts"], n_grid, n,
        f"{res['grid_dicts'].wall / ls.wall:.2f}x run_batch")
    row("vectorbt broadcast grid, one call (long-only)", v_grid, n_grid, n,
        f"**{v_grid.wall / lo.wall:.1f}x** alphaloop long-only" if v_grid else "")
    row("backtesting.py optimize, pool of 2 processes", b_opt, n_bt, n,
        f"**{b_opt.wall / n_bt / (ls.wall / n_grid):.0f}x** alphaloop per combo"
        if b_opt else "")
    row("alphaloop grid.run_batch, long/short, 10x data", big_t, n_grid, n_big,
        f"{big_t.wall / ls.wall:.1f}x the {n:,}-bar grid (CPU {big_t.cpu / ls.cpu:.1f}x)")
    single = res["single"].wall
    row("alphaloop single run (backtest + metrics)", res["single"], 1, n, "base")
    row("alphaloop single run incl. load_strategy", res["single_cold"], 1, n,
        f"{res['single_cold'].wall / single:.1f}x")
    row("vectorbt single run", v_single, 1, n, f"{v_single.wall / single:.0f}x" if v_single else "")
    row("backtesting.py single run (Backtest + run)", b_single, 1, n,
        f"{b_single.wall / single:.0f}x" if b_single else "")
    per_bar = (big_t.cpu - ls.cpu) / n_grid / (n_big - n)
    fixed = ls.cpu / n_grid - per_bar * n
    print()
    print(f"# alphaloop grid cost per combination (from CPU medians, 2 sizes): "
          f"{fmt_t(fixed)} + {per_bar * 1e9:.1f} ns per bar")
    load_after = loadavg()
    print(f"# /proc/loadavg before {load_before}, after {load_after}")
    ratio = f"{v_grid.wall / lo.wall:.1f}x (goal >= 20x)" if v_grid else "vectorbt not installed"
    print(f"# targets: 4,851-combination grid {fmt_t(ls.wall)} (<= 250 ms), "
          f"{fmt_t(ls.wall / n_grid)} per combination at the median (<= 50 µs); "
          f"vs vectorbt {ratio}")
    if not args.no_memory:
        cases = ["alphaloop", "alphaloop_10x"]
        if vbt is not None:
            cases.append("vectorbt")
            if args.vbt_10x:
                cases.append("vectorbt_10x")
        mem = measure_memory(cases)
        print()
        print("| peak memory, one run in a fresh process | RSS peak above the warmed-up process "
              "| RSS peak | tracemalloc peak | wall |")
        print("|---|---:|---:|---:|---:|")
        for case, m in mem.items():
            if isinstance(m, str):
                print(f"| {case} | failed: {m} | | | |")
                continue
            print(f"| {case} | {m['rss_peak_above_base_mb']:.0f} MB | {m['rss_peak_mb']:.0f} MB "
                  f"| {m['tracemalloc_peak_mb']:.0f} MB | {fmt_t(m['wall_s'])} |")
        a, v = mem.get("alphaloop"), mem.get("vectorbt")
        if isinstance(a, dict) and isinstance(v, dict):
            print(f"# memory: vectorbt's peak above base / alphaloop's: "
                  f"{v['rss_peak_above_base_mb'] / max(a['rss_peak_above_base_mb'], 1):.1f}x "
                  f"(alphaloop's whole process peak {a['rss_peak_mb']:.0f} MB; goal <= 300 MB)")
    print()
    for line in sanity(df, vbt, res.get("vbt_grid"), res["grid_long"]):
        print("# " + line)


if __name__ == "__main__":
    main()
