"""Return leverage: +inf on one bar, 1000 on the others.

Attack (own): a position of 1000 turns a 1 % move into +1000 %; inf turns the equity curve into
inf/NaN and can make Sharpe "infinite".
Stopped by: validation (positions must lie in [-1, 1]) in the strategy process and in the
worker.
"""

import numpy as np

PARAMETERS = {}


def generate_positions(data, **params):
    pos = np.full(len(data), 1000.0)
    pos[len(pos) // 2] = np.inf
    return pos
