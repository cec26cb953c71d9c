"""SMA crossover: long after the fast SMA crosses above the slow SMA, short after it crosses below.

Rule, decided at each bar's close:
- fast_sma and slow_sma are simple moving averages of the close over `fast` and `slow` bars.
- A crossover is a change in the sign of fast_sma - slow_sma. Bars where the two are equal keep
  the previous sign (touching is not crossing).
- After a cross above: long (+1). After a cross below: short (-1), or flat (0) when
  allow_short is False.
- Flat before the first crossover, warm-up included: the strategy waits for a fresh signal
  instead of joining a trend that began before the data did.
- fast >= slow is not a crossover system: the strategy stays flat (so a grid over fast and
  slow may include such pairs harmlessly).

generate_positions_batch is the same rule for many parameter sets at once (a grid): each SMA
is computed once and every column's crossover in one compiled loop.
"""

import numpy as np
import pandas as pd

from alphaloop.backtest import indicators as ind

PARAMETERS = {
    "fast": {"default": 10, "low": 2, "high": 100, "unit": "days"},
    "slow": {"default": 50, "low": 3, "high": 300, "unit": "days"},
    "allow_short": {"default": True, "choices": [True, False]},
}
CONSTRAINTS = ["fast < slow"]


def generate_positions(data, fast=10, slow=50, allow_short=True):
    close = data["close"].to_numpy()
    if fast >= slow:
        return pd.Series(np.zeros(len(close)), index=data.index)
    pos = ind.crossover_side(ind.sma(close, fast), ind.sma(close, slow))
    if not allow_short:
        pos = np.maximum(pos, 0.0)
    return pd.Series(pos, index=data.index)


def generate_positions_batch(data, fast, slow, allow_short):
    close = data["close"].to_numpy()
    windows = np.unique(np.concatenate([fast, slow]))
    table = np.stack([ind.sma(close, int(n)) for n in windows])
    pos = ind.crossover_sides(table, np.searchsorted(windows, fast),
                              np.searchsorted(windows, slow))
    pos[fast >= slow] = 0.0
    np.maximum(pos, 0.0, out=pos, where=~allow_short[:, None])
    return pos.T
