"""Rebind ``indicators.sma`` (and friends) for the life of the process, then fail.

Attack (issue): in a long-lived worker, a strategy that rebinds library functions changes every
later strategy's results (``sma_crossover`` got different numbers after it ran). Here
``sma``, ``ema``, ``crossover_side`` and numpy's ``convolve``/``cumsum`` are replaced by
functions that return garbage, and the strategy then raises so nobody looks at it.
Stopped by: one strategy process per strategy (a new fork of the clean worker for the next
one); nothing this process rebinds exists anywhere else.
"""

import numpy as np

from alphaloop.backtest import indicators as ind

PARAMETERS = {}


def _garbage(*args, **kwargs):
    x = np.asarray(args[0], dtype=float)
    return np.where(np.arange(len(x)) % 2 == 0, 1e6, -1e6)


for _name in ("sma", "ema", "rsi"):
    setattr(ind, _name, _garbage)
ind.crossover_side = lambda a, b: np.ones(len(a))
np.convolve = _garbage
np.cumsum = _garbage


def generate_positions(data, **params):
    raise RuntimeError("rebound indicators.sma, ema, rsi, crossover_side, np.convolve, np.cumsum")
