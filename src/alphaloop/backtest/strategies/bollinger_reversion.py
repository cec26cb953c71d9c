"""Bollinger-band mean reversion: buy a close below the lower band, exit at the middle band.

Rule, decided at each bar's close (bands = SMA of the close over `period` bars ± k times the
rolling population standard deviation):
- Enter long when close < lower band; close the long when close >= middle band.
- With allow_short: enter short when close > upper band; close the short when
  close <= middle band.
- Otherwise hold the current position. Flat during the warm-up.
"""

import pandas as pd

from alphaloop.backtest import indicators as ind

PARAMETERS = {
    "period": {"default": 20, "low": 5, "high": 200, "unit": "days"},
    "k": {"default": 2.0, "low": 0.5, "high": 4.0},
    "allow_short": {"default": False, "choices": [True, False]},
}


def generate_positions(data, period=20, k=2.0, allow_short=False):
    close = data["close"].to_numpy()
    upper, middle, lower = ind.bbands(close, period, k)  # NaN during warm-up: comparisons False
    if allow_short:
        pos = ind.latch(close < lower, close >= middle, close > upper, close <= middle)
    else:
        pos = ind.latch(close < lower, close >= middle)
    return pd.Series(pos, index=data.index)
