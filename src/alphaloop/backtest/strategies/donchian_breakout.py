"""Donchian breakout (turtle-style): buy a close above the prior high, exit below a prior low.

Rule, decided at each bar's close. The channels use the bars *before* the current one, so the
current bar can break out of them:
- Enter long when close > highest high of the previous `period` bars.
- Close the long when close < lowest low of the previous `exit_period` bars.
- With allow_short, the mirror image: enter short when close < lowest low of the previous
  `period` bars, close it when close > highest high of the previous `exit_period` bars.
- Otherwise hold the current position. Flat during the warm-up.
"""

import pandas as pd

from alphaloop.backtest import indicators as ind

PARAMETERS = {
    "period": {"default": 20, "low": 5, "high": 250, "unit": "days"},
    "exit_period": {"default": 10, "low": 2, "high": 250, "unit": "days"},
    "allow_short": {"default": False, "choices": [True, False]},
}


def generate_positions(data, period=20, exit_period=10, allow_short=False):
    high = data["high"].to_numpy()
    low = data["low"].to_numpy()
    close = data["close"].to_numpy()
    entry_high, entry_low = ind.donchian(high, low, period)
    exit_high, exit_low = ind.donchian(high, low, exit_period)
    if allow_short:
        pos = ind.latch(close > entry_high, close < exit_low, close < entry_low, close > exit_high)
    else:
        pos = ind.latch(close > entry_high, close < exit_low)
    return pd.Series(pos, index=data.index)
