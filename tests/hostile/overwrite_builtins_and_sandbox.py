"""Overwrite ``builtins`` and alphaloop's validators from inside, then return NaN.

Attack (own, plain twin of ``talib_func_globals``): ``builtins.open``/``print`` are replaced,
``alphaloop.backtest.sandbox``'s ``isinstance``/``id`` too, and
``alphaloop.backtest._positions.validate_positions`` accepts anything; the strategy then
returns NaN, which the replaced validator lets through to the reply.
Stopped by: the worker validates the raw positions itself (finite, within [-1, 1]); every
replacement lives in this process only.
"""

import builtins

import numpy as np

from alphaloop.backtest import _positions, sandbox

PARAMETERS = {}

_real_len = builtins.len
sandbox.isinstance = lambda *a: True
sandbox.id = lambda *a: 0
_positions.validate_positions = lambda out, data, name: np.asarray(out, dtype=float)
builtins.open = lambda *a, **k: None
builtins.print = lambda *a, **k: None


def generate_positions(data, **params):
    return np.full(_real_len(data.index), np.nan)
