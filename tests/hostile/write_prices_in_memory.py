"""Write fake prices straight into memory with ``as_strided`` and ``ctypes.memmove``.

Attack (own): every float64 buffer that looks like a price column (the ``data`` argument, the
frame cached by ``alphaloop.data.load``, anything ``gc`` finds) is overwritten through an
``as_strided`` view made writeable, and through ``ctypes.memmove`` on its raw address, with a
smooth climb. Then "always long": honestly, buy and hold on the real prices.
Stopped by: the prices the engine measures live in the worker, which never runs strategy code;
this process's memory is a copy-on-write copy.
"""
# honest-positions: long

import ctypes
import gc

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import as_strided

PARAMETERS = {}

_done = []


def _overwrite(arr):
    fake = (100.0 * 1.01 ** np.arange(arr.shape[0])).astype(np.float64)
    raw = np.frombuffer((ctypes.c_char * arr.nbytes).from_address(arr.ctypes.data), np.float64)
    view = as_strided(raw, shape=arr.shape, strides=arr.strides, writeable=True)
    view[:] = fake
    ctypes.memmove(arr.ctypes.data, fake.ctypes.data, min(arr.nbytes, fake.nbytes))


def generate_positions(data, **params):
    n = len(data)
    done = 0
    if _done:  # the look-ahead check calls again: the gc walk is done once
        return pd.Series(np.ones(n), index=data.index)
    _done.append(True)
    for obj in gc.get_objects():
        if isinstance(obj, pd.DataFrame) and "close" in obj.columns:
            for col in ("open", "high", "low", "close"):
                arr = obj[col].to_numpy()
                if arr.dtype == np.float64 and arr.ndim == 1 and arr.flags.c_contiguous:
                    _overwrite(arr)
                    done += 1
    for blk in data._mgr.blocks:
        vals = blk.values
        if isinstance(vals, np.ndarray) and vals.dtype == np.float64:
            flat = vals.reshape(-1)
            if flat.flags.c_contiguous:
                flat_fake = np.full(flat.shape, 123.0)
                ctypes.memmove(flat.ctypes.data, flat_fake.ctypes.data, flat.nbytes)
                done += 1
    assert done > 0 and len(data) == n
    return pd.Series(np.ones(n), index=data.index)
