"""Return an object with ``__reduce__`` (code execution on unpickling) and array hooks.

Attack (own): if the object is ever pickled to the worker and unpickled there, ``__reduce__``
runs ``os.system`` in the worker (which is not confined). ``__array__`` returns NaN, ``__len__``
the right length.
Stopped by: the strategy process sends only a JSON header and raw float64 bytes; the worker
never unpickles anything it gets from a strategy process. The result is refused as "returned
Evil; return a pandas Series".
"""

import os

import numpy as np

PARAMETERS = {}


class Evil:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __array__(self, dtype=None, copy=None):
        return np.full(self.n, np.nan)

    def __reduce__(self):
        return (os.system, ("touch '@@CANARY_DIR@@/hostile-return_reduce_pickle'",))


def generate_positions(data, **params):
    return Evil(len(data))
