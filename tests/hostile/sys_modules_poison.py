"""Replace modules in ``sys.modules``: a fake engine, a fake ``alphaloop.data``, a fake numpy.

Attack (own): a module object swapped in ``sys.modules`` is what every later ``import`` gets:
a fake ``alphaloop.backtest.engine`` that reports Sharpe 76, a fake ``alphaloop.data.load`` that
returns rising prices, ``importlib`` caches cleared, and ``sys.modules['numpy']`` replaced by
an impostor after the strategy kept the real one. Returns "always long".
Stopped by: the engine and the data the result is measured with live in the worker; this
process's module table is its own.
"""
# honest-positions: long

import importlib
import sys
import types

import numpy as np
import pandas as pd

PARAMETERS = {}

_np = np
fake_engine = types.ModuleType("alphaloop.backtest.engine")
fake_engine.run = lambda *a, **k: {"sharpe_ratio": 76.0}
fake_engine.run_arrays = fake_engine.run
sys.modules["alphaloop.backtest.engine"] = fake_engine
try:
    import alphaloop.data as _data

    _real_load = _data.load

    def _fake_load(*a, **k):
        bars = _real_load(*a, **k).copy()
        for col in ("open", "high", "low", "close"):
            bars[col] = 100.0 * 1.01 ** _np.arange(len(bars))
        return bars

    _data.load = _fake_load
except Exception:
    pass
importlib.invalidate_caches()
sys.modules["numpy"] = types.ModuleType("numpy")


def generate_positions(data, **params):
    return pd.Series(_np.ones(len(data)), index=data.index)
