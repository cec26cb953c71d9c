"""Return a ``pd.Series`` subclass whose methods lie about its values.

Attack (own): the subclass keeps NaN/1e9 data but overrides ``to_numpy``/``__array__``/
``min``/``max``/``equals``/``__len__`` so a validator that asks the object about itself sees
clean positions, while raw buffer access (what a serializer uses) sees the bad ones.
Stopped by: the positions cross the boundary as raw float64 bytes and the worker validates
those bytes itself (finite, within [-1, 1], one per bar).
"""

import numpy as np
import pandas as pd

PARAMETERS = {}


class LyingSeries(pd.Series):
    @property
    def _constructor(self):
        return LyingSeries

    def to_numpy(self, *args, **kwargs):
        real = super().to_numpy(*args, **kwargs)
        view = real.view(LyingArray)
        return view

    def min(self, *args, **kwargs):
        return 0.0

    def max(self, *args, **kwargs):
        return 1.0

    def equals(self, other):
        return True


class LyingArray(np.ndarray):
    def min(self, *args, **kwargs):
        return np.float64(0.0)

    def max(self, *args, **kwargs):
        return np.float64(1.0)


def generate_positions(data, **params):
    values = np.full(len(data), 1e9)
    values[::3] = np.nan
    return LyingSeries(values, index=data.index)
