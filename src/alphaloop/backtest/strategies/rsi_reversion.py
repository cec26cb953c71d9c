"""RSI mean reversion: buy when the RSI is oversold, sell when it has recovered.

Rule, decided at each bar's close (RSI is Wilder's RSI of the close over `period` bars):
- Enter long when RSI < lower; close the long when RSI > exit_level.
- With allow_short: enter short when RSI > upper; close the short when RSI < exit_level.
- Otherwise hold the current position. Flat during the RSI warm-up.
- The levels must satisfy lower < exit_level < upper; otherwise the strategy stays flat.
"""

import numpy as np
import pandas as pd

from alphaloop.backtest import indicators as ind

PARAMETERS = {
    "period": {"default": 14, "low": 2, "high": 50, "unit": "days"},
    "lower": {"default": 30.0, "low": 5.0, "high": 45.0},
    "exit_level": {"default": 50.0, "low": 30.0, "high": 70.0},
    "upper": {"default": 70.0, "low": 55.0, "high": 95.0},
    "allow_short": {"default": False, "choices": [True, False]},
}
CONSTRAINTS = ["lower < exit_level < upper"]


def generate_positions(data, period=14, lower=30.0, exit_level=50.0, upper=70.0, allow_short=False):
    close = data["close"].to_numpy()
    if not lower < exit_level < upper:
        return pd.Series(np.zeros(len(close)), index=data.index)
    rsi = ind.rsi(close, period)  # NaN during warm-up: every comparison below is False
    if allow_short:
        pos = ind.latch(rsi < lower, rsi > exit_level, rsi > upper, rsi < exit_level)
    else:
        pos = ind.latch(rsi < lower, rsi > exit_level)
    return pd.Series(pos, index=data.index)
