"""Parity of the units-held engine with vectorbt and backtesting.py (numbers, not speed).

Run: ``python benchmarks/bench_parity.py`` (needs the ``bench`` extra: ``pip install -e
'.[bench]'``; a missing library is reported and its section skipped). Takes ~1 minute.

1. **vectorbt grid.** ``sma_crossover`` long/short over every fast < slow in 2..100 (4,851
   pairs) on the embedded GOOG sample (prices as given), commission 0.001: alphaloop's positions
   (TA-Lib SMAs, ``indicators.crossover_side``) through ``engine.run_arrays`` against
   ``Portfolio.from_signals`` with vectorbt's own SMAs, crossings shifted one bar and filled at
   the open (``price=open``), fractional size (vectorbt's default: all cash, no granularity),
   ``fees=0.001``, long entries on a cross above and short entries on a cross below (a
   reversal closes and reopens). Reported: ``|total_return diff| / max(1, |total_return|)``,
   median and 95th percentile, over all pairs and over the pairs where both libraries' SMAs
   give the same crossing signs. Pairs where TA-Lib and vectorbt disagree on the sign of a
   near-zero ``fast - slow`` difference (rounding of ~1e-13) are named.
2. **backtesting.py README.** ``SmaCross(10, 20)`` long/short on backtesting.py's own copy of
   GOOG, ``cash=1e7``, ``commission=0.002`` (whole shares; the large cash makes rounding
   negligible) against alphaloop on the same frame.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd

os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bar

COMMISSION = 0.001
WINDOWS = np.arange(2, 101)


def optional(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        print(f"# {name}: not installed (pip install -e '.[bench]'); its section is skipped")
        return None


def load_goog() -> pd.DataFrame:
    from alphaloop.data import load

    return load("GOOG", "1d", adjust=False)


def vectorbt_grid(vbt: Any, data: pd.DataFrame) -> None:
    from alphaloop.backtest import engine
    from alphaloop.backtest import indicators as ind

    close, open_ = data["close"], data["open"]
    o = np.ascontiguousarray(open_.to_numpy(dtype=np.float64))
    c = np.ascontiguousarray(close.to_numpy(dtype=np.float64))
    pairs = [(f, s) for f in WINDOWS for s in WINDOWS if f < s]
    t0 = time.perf_counter()
    smas = {int(n): ind.sma(c, int(n)) for n in WINDOWS}
    ours = np.empty(len(pairs))
    signs_ours = {}
    for i, (f, s) in enumerate(pairs):
        pos = ind.crossover_side(smas[f], smas[s])
        signs_ours[(f, s)] = np.sign(smas[f] - smas[s])
        ours[i] = engine.run_arrays(o, c, pos, commission=COMMISSION)["total_return"]
    t_ours = time.perf_counter() - t0

    t0 = time.perf_counter()
    fast, slow = vbt.MA.run_combs(close, window=WINDOWS, r=2)
    entries = fast.ma_crossed_above(slow).vbt.fshift(1, fill_value=False)
    shorts = fast.ma_crossed_below(slow).vbt.fshift(1, fill_value=False)
    pf = vbt.Portfolio.from_signals(close, entries=entries, short_entries=shorts, price=open_,
                                    fees=COMMISSION, freq="1D")
    theirs = pf.total_return().to_numpy()
    t_vbt = time.perf_counter() - t0

    fast_ma = fast.ma.to_numpy()
    slow_ma = slow.ma.to_numpy()
    columns = list(zip(fast.ma.columns.get_level_values(0), slow.ma.columns.get_level_values(0),
                       strict=True))
    assert [(int(a), int(b)) for a, b in columns] == pairs, "vectorbt's pair order changed"
    disagree = []
    for i, pair in enumerate(pairs):
        theirs_sign = np.sign(fast_ma[:, i] - slow_ma[:, i])
        mine = signs_ours[pair]
        both = ~np.isnan(mine) & ~np.isnan(theirs_sign)
        bad = np.flatnonzero(both & (mine != theirs_sign))
        if bad.size:
            gap = float(np.max(np.abs(smas[pair[0]][bad] - smas[pair[1]][bad])))
            disagree.append((i, pair, bad.size, gap))
    rel = np.abs(ours - theirs) / np.maximum(1.0, np.abs(theirs))
    keep = np.ones(len(pairs), dtype=bool)
    keep[[i for i, *_ in disagree]] = False

    def stats(x: np.ndarray) -> str:
        return (f"median {np.median(x):.1e}, 95th percentile {np.percentile(x, 95):.1e}, "
                f"max {x.max():.1e}, > 1e-3 in {(x > 1e-3).sum()}")

    print(f"## vectorbt {vbt.__version__}: sma_crossover long/short, {len(pairs):,} pairs, "
          f"{len(c):,} bars, commission {COMMISSION}")
    print(f"alphaloop {t_ours:.2f} s, vectorbt {t_vbt:.2f} s (wall, both including SMAs)")
    print(f"all pairs:                          {stats(rel)}")
    print(f"pairs whose SMA signs agree ({keep.sum():,}): {stats(rel[keep])}")
    print(f"pairs where TA-Lib and vectorbt disagree on the sign of fast - slow: {len(disagree)}")
    for i, (f, s), bars, gap in disagree:
        print(f"  fast={f:3d} slow={s:3d}: {bars} bar(s), |TA-Lib fast - slow| <= {gap:.1e}; "
              f"total_return {ours[i]:.4f} vs {theirs[i]:.4f}")


def backtesting_readme(bt: Any) -> None:
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover
    from backtesting.test import GOOG, SMA

    from alphaloop.backtest import engine
    from alphaloop.backtest import indicators as ind

    class SmaCross(Strategy):
        n1, n2 = 10, 20

        def init(self) -> None:
            self.sma1 = self.I(SMA, self.data.Close, self.n1)
            self.sma2 = self.I(SMA, self.data.Close, self.n2)

        def next(self) -> None:
            if crossover(self.sma1, self.sma2):
                self.position.close()
                self.buy()
            elif crossover(self.sma2, self.sma1):
                self.position.close()
                self.sell()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = Backtest(GOOG, SmaCross, cash=1e7, commission=0.002).run()
    frame = GOOG.rename(columns=str.lower)
    close = frame["close"].to_numpy(dtype=np.float64)
    pos = ind.crossover_side(ind.sma(close, 10), ind.sma(close, 20))
    held = engine.run(frame, pos, commission=0.002).metrics
    weight = engine.run(frame, pos, commission=0.002, rebalance="bar").metrics
    theirs = float(stats["Return [%]"])
    ours = float(held["total_return"]) * 100
    print(f"## backtesting.py {bt.__version__}: README SmaCross(10, 20) long/short, its GOOG "
          f"({len(frame):,} bars), cash 1e7, commission 0.002")
    print(f"backtesting.py Return {theirs:+.2f}%, max drawdown {-stats['Max. Drawdown [%]']:.2f}%, "
          f"{int(stats['# Trades'])} trades")
    print(f"alphaloop units held {ours:+.2f}% (relative difference "
          f"{abs(ours - theirs) / abs(theirs):.2e}), max drawdown "
          f"{float(held['max_drawdown']) * 100:.2f}%, {held['num_trades']} trades (the last "
          f"still open)")
    bar = float(weight["total_return"]) * 100
    print(f"alphaloop constant weight (rebalance='bar') {bar:+.2f}%")


def main() -> None:
    with open("/proc/loadavg") as fh:
        load = " ".join(fh.read().split()[:3])
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, Python "
          f"{platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
          f"load {load}")
    vbt = optional("vectorbt")
    bt = optional("backtesting")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = load_goog()
    if vbt is not None:
        vectorbt_grid(vbt, data)
    if bt is not None:
        backtesting_readme(bt)
    if vbt is None and bt is None:
        sys.exit(1)


if __name__ == "__main__":
    main()
