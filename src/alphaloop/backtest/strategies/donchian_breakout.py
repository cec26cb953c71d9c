"""Donchian breakout (turtle-style): buy a close above the prior high, exit below a prior low.

Rule, decided at each bar's close. The channels use the bars *before* the current one, so the
current bar can break out of them:
- Enter long when close > highest high of the previous `period` bars.
- Close the long when close < lowest low of the previous `exit_period` bars.
- With allow_short, the mirror image: enter short when close < lowest low of the previous
  `period` bars, close it when close > highest high of the previous `exit_period` bars.
- Otherwise hold the current position. Flat during the warm-up.

generate_positions_batch is the same rule for many parameter sets at once (a grid): each
channel is computed once and every column latched in one compiled loop.
"""

import numpy as np
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


def generate_positions_batch(data, period, exit_period, allow_short):
    high = data["high"].to_numpy()
    low = data["low"].to_numpy()
    close = data["close"].to_numpy()
    windows = np.unique(np.concatenate([period, exit_period]))
    channels = [ind.donchian(high, low, int(n)) for n in windows]
    above = np.stack([close > up for up, _ in channels])  # NaN warm-up compares False
    below = np.stack([close < dn for _, dn in channels])
    entry = np.searchsorted(windows, period)
    exit_ = np.searchsorted(windows, exit_period)
    short = allow_short[:, None]
    return ind.latch(above[entry], below[exit_], below[entry] & short, above[exit_] & short).T
