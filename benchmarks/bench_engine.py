"""Benchmark of the backtest engine: time per backtest, from positions to metrics (and trades).

Run: ``PYTHONPATH=src python benchmarks/bench_engine.py [--repeat N]``

Data: the embedded GOOG sample (`alphaloop.data.load("GOOG")`) if available, else a seeded
random walk of 2,148 daily bars; the 10x case tiles the same bars' returns to 21,480 bars.
Positions: an SMA(20)/SMA(50) long/short crossover scaled by a volatility target, so they are
fractional and change every bar a little, with ~40 sign changes per 2,148 bars (a realistic
load for the trade accounting; with units held, the default, every change is a trade).
Reports medians and p90 in microseconds; the machine is shared, so read medians, not single
runs. ``--previous REV`` also times the numba kernel of git revision REV (e.g. the constant
weight kernel before units held) in the same process, interleaved, and prints the ratio.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from alphaloop.backtest import engine

BARS = 2148


def load_bars() -> tuple[pd.DataFrame, str]:
    """GOOG sample bars if the data layer provides them, else a synthetic random walk."""
    try:
        from alphaloop.data import load

        df = load("GOOG")
        return df.iloc[-BARS:] if len(df) > BARS else df, "GOOG sample"
    except Exception:  # data layer not there yet: fall back to synthetic
        return synthetic(BARS), "synthetic random walk"


def synthetic(n: int, seed: int = 7) -> pd.DataFrame:
    """A GOOG-like random walk: ~30% annual volatility, small overnight gaps."""
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0.0004, 0.019, n)))
    open_ = close * np.exp(rng.normal(0.0, 0.006, n))
    open_[1:] = close[:-1] * np.exp(rng.normal(0.0, 0.006, n - 1))
    index = pd.bdate_range("2015-01-02", periods=n, name="date")
    return pd.DataFrame({"open": open_, "close": close}, index=index)


def tile(df: pd.DataFrame, times: int) -> pd.DataFrame:
    """Repeat the bars' log returns ``times`` times into one longer, continuous series."""
    gap = np.log(df["open"].to_numpy()[1:] / df["close"].to_numpy()[:-1])
    intra = np.log(df["close"].to_numpy() / df["open"].to_numpy())
    steps = np.zeros(2 * len(df))  # open0->close0, close0->open1, ..., close[-1]->next open0
    steps[0::2] = intra
    steps[1:-1:2] = gap
    path = np.concatenate(([0.0], np.cumsum(np.tile(steps, times))[:-1]))
    levels = df["open"].iat[0] * np.exp(path)
    n = len(df) * times
    index = pd.bdate_range("1950-01-02", periods=n, name="date")
    return pd.DataFrame({"open": levels[0::2], "close": levels[1::2]}, index=index)


def positions(df: pd.DataFrame) -> np.ndarray:
    """Vol-targeted SMA(20)/SMA(50) crossover, long/short, in [-1, 1]."""
    close = df["close"]
    fast = close.rolling(20).mean()
    slow = close.rolling(50).mean()
    vol = close.pct_change().rolling(20).std() * np.sqrt(252)
    w = np.sign(fast - slow) * (0.25 / vol).clip(upper=1.0)
    return w.fillna(0.0).to_numpy()


def timeit(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(median, p90) of ``repeat`` calls, microseconds."""
    for _ in range(min(50, repeat)):
        fn()
    samples = np.empty(repeat)
    for i in range(repeat):
        t0 = time.perf_counter_ns()
        fn()
        samples[i] = time.perf_counter_ns() - t0
    return float(np.median(samples)) / 1e3, float(np.percentile(samples, 90)) / 1e3


def previous_kernels(rev: str) -> object:
    """The ``_kernels`` module of git revision ``rev``, imported under another name."""
    source = subprocess.run(["git", "show", f"{rev}:src/alphaloop/backtest/_kernels.py"],
                            capture_output=True, text=True, check=True).stdout
    folder = tempfile.mkdtemp(prefix="alphaloop-prev-kernels-")
    path = os.path.join(folder, "prev_kernels.py")
    with open(path, "w") as fh:
        fh.write(source)
    spec = importlib.util.spec_from_file_location("prev_kernels", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def compare(df: pd.DataFrame, w: np.ndarray, prev: object, rounds: int,
            calls: int) -> list[float]:
    """Per round, median time of the current kernel / the previous one (interleaved)."""
    from alphaloop.backtest import _kernels

    o = df["open"].to_numpy().copy()
    c = df["close"].to_numpy().copy()
    prev_stats = prev.backtest_stats  # type: ignore[attr-defined]
    prev_argc = prev_stats.py_func.__code__.co_argcount  # 4 before units held, then 6
    args = (o, c, w, 0.001, 0.0, False)
    ratios = []
    for _ in range(rounds):
        new, _ = timeit(lambda: _kernels.backtest_stats(o, c, w, 0.001, 0.0, False), calls)
        old, _ = timeit(lambda: prev_stats(*args[: prev_argc]), calls)
        ratios.append(new / old)
    return ratios


def bench(df: pd.DataFrame, repeat: int) -> dict[str, tuple[float, float]]:
    """Timings of the three entry points on one data set."""
    w = positions(df)
    o = df["open"].to_numpy().copy()
    c = df["close"].to_numpy().copy()
    from alphaloop.backtest import _kernels

    return {
        "numba kernel only": timeit(
            lambda: _kernels.backtest_stats(o, c, w, 0.001, 0.0, False), repeat),
        "numba kernel, constant weight": timeit(
            lambda: _kernels.backtest_stats(o, c, w, 0.001, 0.0, True), repeat),
        "run_arrays (metrics)": timeit(lambda: engine.run_arrays(o, c, w), repeat),
        "run (metrics)": timeit(lambda: engine.run(df, w), repeat),
        "run + trades DataFrame": timeit(lambda: engine.run(df, w).trades, repeat),
        "run + all lazy outputs": timeit(
            lambda: _touch_all(engine.run(df, w)), max(repeat // 4, 20)),
    }


def _touch_all(result: engine.BacktestResult) -> None:
    result.trades, result.equity, result.returns, result.positions  # noqa: B018


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000, help="timed calls per case")
    parser.add_argument("--previous", metavar="REV", help="also time REV's kernel (git)")
    args = parser.parse_args()

    df, source = load_bars()
    big = tile(df, 10)
    t0 = time.perf_counter()
    first = engine.run(df, positions(df))  # loads (or compiles) the numba kernels
    warmup = time.perf_counter() - t0
    small = bench(df, args.repeat)
    large = bench(big, max(args.repeat // 10, 100))
    m = first.metrics

    cpu = platform.processor() or platform.machine()
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"# {stamp}, {cpu}, {len(os.sched_getaffinity(0))} cores, "
          f"Python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}")
    print(f"# data: {source}, {len(df)} bars; {m['num_trades']} trades, "
          f"exposure {m['exposure']:.2f}; first call (kernel load/compile) {warmup * 1e3:.0f} ms")
    print()
    extra = len(big) - len(df)
    print(f"| case | {len(df):,} bars median (p90) µs | {len(big):,} bars median (p90) µs "
          "| ratio of medians | ns per extra bar |")
    print("|---|---:|---:|---:|---:|")
    for name, (med, p90) in small.items():
        big_med, big_p90 = large[name]
        print(f"| {name} | {med:.1f} ({p90:.1f}) | {big_med:.1f} ({big_p90:.1f}) "
              f"| {big_med / med:.1f}x | {(big_med - med) * 1e3 / extra:.1f} |")
    if args.previous:
        from alphaloop.backtest import indicators as ind

        prev = previous_kernels(args.previous)
        close = df["close"].to_numpy()
        cases = {
            "vol-targeted (a trade every bar)": positions(df),
            "SMA 10/50 long/short, +-1": ind.crossover_side(ind.sma(close, 10),
                                                           ind.sma(close, 50)),
        }
        print()
        for label, w in cases.items():
            ratios = compare(df, w, prev, 7, max(args.repeat // 4, 100))
            print(f"# numba kernel, this tree / {args.previous}, {label} (same process, "
                  f"interleaved, 7 rounds on {len(df):,} bars): median {np.median(ratios):.2f}, "
                  f"range {min(ratios):.2f}-{max(ratios):.2f}; load {_load()}")


def _load() -> str:
    try:
        with open("/proc/loadavg") as fh:
            return " ".join(fh.read().split()[:3])
    except OSError:
        return "n/a"


if __name__ == "__main__":
    main()
