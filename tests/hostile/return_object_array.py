"""Return an object array of values whose ``__float__``/comparisons lie and run code.

Attack (own): elements define ``__float__`` (returns 1e9 the second time), ``__le__``/
``__ge__`` (always True, to pass a range check) and ``__reduce__`` (runs ``os.system`` if
anyone unpickles them).
Stopped by: positions must have a numeric dtype; nothing is ever unpickled from a strategy
process.
"""

import os

import numpy as np

PARAMETERS = {}


class Liar:
    calls = 0

    def __float__(self):
        Liar.calls += 1
        return 0.5 if Liar.calls < 2 else 1e9

    def __le__(self, other):
        return True

    def __ge__(self, other):
        return True

    def __reduce__(self):
        return (os.system, ("touch /tmp/hostile-return_object_array",))


def generate_positions(data, **params):
    out = np.empty(len(data), dtype=object)
    for i in range(len(out)):
        out[i] = Liar()
    return out
