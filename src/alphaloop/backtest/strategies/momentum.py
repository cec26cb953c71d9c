"""Time-series momentum: hold the sign of the past return, optionally volatility-targeted.

Rule, decided at each bar's close:
- Momentum = close / close `lookback` bars ago - 1. Long (+1) when it is positive, short (-1)
  when negative (flat instead of short when long_only), flat when exactly 0.
- vol_target > 0 scales the position to aim at that annualised volatility: size =
  min(1, vol_target / realised), where realised = standard deviation of the last `vol_window`
  one-bar returns times sqrt(bars per year) — the data's own, from its timestamps up to the
  bar (`ind.bars_per_year`: 252 for daily bars, about 1,560 for FX 4-hour bars).
  vol_target = 0 trades full size.
- Flat during the warm-up (the first `lookback` bars, or `vol_window` bars when targeting;
  on intraday bars also the first week, before the bars per year are known).

generate_positions_batch is the same rule for many parameter sets at once (a grid): each
lookback's momentum and each window's volatility are computed once.
"""

import numpy as np
import pandas as pd

from alphaloop.backtest import indicators as ind

PARAMETERS = {
    "lookback": {"default": 126, "low": 5, "high": 504, "unit": "days"},
    "long_only": {"default": False, "choices": [True, False]},
    "vol_target": {"default": 0.0, "low": 0.0, "high": 0.6},
    "vol_window": {"default": 20, "low": 5, "high": 126, "unit": "days"},
}


def generate_positions(data, lookback=126, long_only=False, vol_target=0.0, vol_window=20):
    close = data["close"].to_numpy()
    pos = np.nan_to_num(np.sign(ind.returns(close, lookback)))
    if long_only:
        pos = np.maximum(pos, 0.0)
    if vol_target > 0:
        annualise = np.sqrt(ind.bars_per_year(data.index))
        realised = ind.rolling_std(ind.returns(close, 1), vol_window) * annualise
        with np.errstate(divide="ignore", invalid="ignore"):
            size = np.minimum(1.0, vol_target / realised)
        pos = pos * np.nan_to_num(size, nan=0.0, posinf=1.0)
    return pd.Series(pos, index=data.index)


def generate_positions_batch(data, lookback, long_only, vol_target, vol_window):
    close = data["close"].to_numpy()
    lookbacks = np.unique(lookback)
    signs = np.stack([np.nan_to_num(np.sign(ind.returns(close, int(n)))) for n in lookbacks])
    pos = signs[np.searchsorted(lookbacks, lookback)]
    np.maximum(pos, 0.0, out=pos, where=long_only[:, None])
    sized = vol_target > 0
    if sized.any():
        annualise = np.sqrt(ind.bars_per_year(data.index))
        windows = np.unique(vol_window[sized])
        realised = np.stack([ind.rolling_std(ind.returns(close, 1), int(n)) * annualise
                             for n in windows])
        with np.errstate(divide="ignore", invalid="ignore"):
            size = np.minimum(1.0, vol_target[sized][:, None]
                              / realised[np.searchsorted(windows, vol_window[sized])])
        pos[sized] = pos[sized] * np.nan_to_num(size, nan=0.0, posinf=1.0)
    return pos.T
