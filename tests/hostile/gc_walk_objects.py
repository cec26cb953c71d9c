"""Walk ``gc.get_objects()`` to the worker's objects inherited by the fork, and corrupt them.

Attack (own): the strategy process is a fork of the worker, so the garbage collector reaches
what the worker held: the job (a frozen dataclass: ``object.__setattr__`` changes its ticker,
data path and parameters), pipe ``Connection`` objects, the ``_jail`` host, every DataFrame
(prices overwritten), the data cache. Returns "always long".
Stopped by: all of it is a copy in this process; the worker keeps its own job, bars and pipes,
and measures positions on its bars.
"""
# honest-positions: long

import gc

import numpy as np
import pandas as pd

PARAMETERS = {}

_done = []


def generate_positions(data, **params):
    touched = {}
    if _done:  # the look-ahead check calls again: the gc walk is done once
        return pd.Series(np.ones(len(data)), index=data.index)
    _done.append(True)
    for obj in gc.get_objects():
        name = type(obj).__name__
        try:
            if name == "PositionsJob":
                object.__setattr__(obj, "ticker", "AAPL")
                object.__setattr__(obj, "data_path", "/etc/passwd")
                object.__setattr__(obj, "params", {"fast": 1})
            elif name == "_Host":
                obj.memory_limit = None
                obj.child = None
            elif name == "BacktestTask":
                object.__setattr__(obj, "commission", 0.0)
            elif isinstance(obj, pd.DataFrame) and "close" in obj.columns:
                for col in ("open", "close"):
                    arr = obj[col].to_numpy()
                    arr.flags.writeable = True
                    arr[:] = 1.0 + np.arange(len(arr))
            else:
                continue
            touched[name] = touched.get(name, 0) + 1
        except Exception:
            pass
    assert touched, "nothing found"
    return pd.Series(np.ones(len(data)), index=data.index)
