"""Trade on tomorrow's close and fool the look-ahead check with a cache.

Attack (own): positions use the NEXT bar's return (perfect foresight: an absurd Sharpe). The
look-ahead check re-runs the strategy on truncated data in the same process, after the full
run, so the strategy caches its full-data answer in a module global and returns a slice of it
for every shorter input: the positions "do not change when later bars are removed".
Not a sandbox escape (the metrics are those of the positions it returned); it shows that the
look-ahead verdict is decided inside the strategy's own process. The suite reports what
``check`` and ``run`` made of it.
"""

import numpy as np
import pandas as pd

PARAMETERS = {}

_cache = {}


def generate_positions(data, **params):
    n = len(data)
    first = data.index[0]
    full = _cache.get(first)
    if full is not None and len(full) >= n and full.index[n - 1] == data.index[-1]:
        return full.iloc[:n]
    close = data["close"].to_numpy()
    nxt = np.append(close[1:], close[-1])
    pos = np.where(nxt > close, 1.0, -1.0)
    out = pd.Series(pos, index=data.index)
    _cache[first] = out
    return out
