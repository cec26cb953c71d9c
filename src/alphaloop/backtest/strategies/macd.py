"""MACD: long after the MACD line crosses above its signal line, short after it crosses below.

Rule, decided at each bar's close:
- MACD line = EMA(close, fast) - EMA(close, slow); signal line = EMA(MACD line, signal).
- After the MACD line crosses above the signal line: long (+1). After it crosses below: short
  (-1), or flat (0) when allow_short is False. Equal values keep the previous side.
- Flat before the first crossover, warm-up included.
- fast >= slow is not a valid MACD: the strategy stays flat.
"""

import numpy as np
import pandas as pd

from alphaloop.backtest import indicators as ind

PARAMETERS = {
    "fast": {"default": 12, "low": 2, "high": 50, "unit": "days"},
    "slow": {"default": 26, "low": 5, "high": 150, "unit": "days"},
    "signal": {"default": 9, "low": 2, "high": 50, "unit": "days"},
    "allow_short": {"default": True, "choices": [True, False]},
}
CONSTRAINTS = ["fast < slow"]


def generate_positions(data, fast=12, slow=26, signal=9, allow_short=True):
    close = data["close"].to_numpy()
    if fast >= slow:
        return pd.Series(np.zeros(len(close)), index=data.index)
    line, signal_line, _ = ind.macd(close, fast, slow, signal)
    pos = ind.crossover_side(line, signal_line)
    if not allow_short:
        pos = np.maximum(pos, 0.0)
    return pd.Series(pos, index=data.index)
