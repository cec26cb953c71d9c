"""EMA crossover: long after the fast EMA crosses above the slow EMA, short after it crosses below.

Rule, decided at each bar's close:
- fast_ema and slow_ema are exponential moving averages of the close (alpha = 2 / (n + 1),
  seeded with the SMA of the first n bars).
- A crossover is a change in the sign of fast_ema - slow_ema; equal values keep the previous
  sign.
- After a cross above: long (+1). After a cross below: short (-1), or flat (0) when
  allow_short is False.
- Flat before the first crossover, warm-up included.
- fast >= slow is not a crossover system: the strategy stays flat.
"""

import numpy as np
import pandas as pd

from alphaloop.backtest import indicators as ind

PARAMETERS = {
    "fast": {"default": 12, "low": 2, "high": 100, "unit": "days"},
    "slow": {"default": 26, "low": 3, "high": 300, "unit": "days"},
    "allow_short": {"default": True, "choices": [True, False]},
}
CONSTRAINTS = ["fast < slow"]


def generate_positions(data, fast=12, slow=26, allow_short=True):
    close = data["close"].to_numpy()
    if fast >= slow:
        return pd.Series(np.zeros(len(close)), index=data.index)
    pos = ind.crossover_side(ind.ema(close, fast), ind.ema(close, slow))
    if not allow_short:
        pos = np.maximum(pos, 0.0)
    return pd.Series(pos, index=data.index)
