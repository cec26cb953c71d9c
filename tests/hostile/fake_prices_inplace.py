"""Overwrite ``data['open']`` / ``data['close']`` in place to fake prices, then stay long.

Attack (issue: this made a run end SUCCESS with Sharpe 76): every price column is rewritten,
through ``data[...] =``, ``.loc``, the underlying numpy buffers (made writeable) and the cached
frame returned by ``alphaloop.data.load``, to a smooth 1 %-a-day climb. The strategy then
returns "always long", whose honest result is buy and hold on the REAL prices.
Stopped by: the engine runs in the clean worker on the worker's own bars; the strategy process
only sends positions.
"""
# honest-positions: long

import numpy as np
import pandas as pd

PARAMETERS = {}


def _fake(n):
    return 100.0 * 1.01 ** np.arange(n)


def generate_positions(data, **params):
    n = len(data)
    for col in ("open", "high", "low", "close"):
        arr = data[col].to_numpy()
        try:
            arr.flags.writeable = True
            arr[:] = _fake(n)
        except Exception:
            pass
        data[col] = _fake(n)
        data.loc[:, col] = _fake(n)
    try:
        from alphaloop import data as market

        cached = market.load("GOOG", "1d", "@@DATA@@")
        for col in ("open", "high", "low", "close"):
            buf = cached[col].to_numpy()
            buf.flags.writeable = True
            buf[:] = _fake(len(buf))
    except Exception:
        pass
    return pd.Series(1.0, index=data.index)
