"""Read far out of bounds with ``numpy.lib.stride_tricks.as_strided`` (SIGSEGV).

Attack (own): a view of a one-element array with a 2**46-byte stride reads unmapped memory:
numpy's "arbitrary memory access" primitive, used here to crash.
Stopped by: only the strategy process dies; "crashed its process (killed by SIGSEGV)".
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided

PARAMETERS = {}


def generate_positions(data, **params):
    base = np.zeros(1)
    view = as_strided(base, shape=(2,), strides=(2**46,))
    return np.full(len(data), float(view[1]))
