"""Monkeypatch pandas, numpy, ``json`` and alphaloop's own reply code.

Attack (own): ``pd.DataFrame.__getitem__`` returns fake rising prices,
``pd.Series.to_numpy``/``np.isfinite``/``np.clip`` lie, ``json.dumps`` injects
``"metrics": {"sharpe_ratio": 76}`` into every document, and
``alphaloop.execution._jail._reply`` is replaced so the frame sent to the worker claims a
Sharpe ratio of 76 and carries whatever positions it likes (here: always long). ``np.ndarray``
methods cannot be set (a TypeError is part of the attempt).
Stopped by: patches live in this process; the worker decodes only ``ok``, the error and raw
positions, validates them and measures them on its own bars.
"""
# honest-positions: long

import contextlib
import json

import numpy as np
import pandas as pd

from alphaloop.execution import _jail

PARAMETERS = {}

_orig_getitem = pd.DataFrame.__getitem__
_orig_dumps = json.dumps
_orig_reply = _jail._reply


def _fake_getitem(self, key):
    out = _orig_getitem(self, key)
    if isinstance(key, str) and key in ("open", "high", "low", "close"):
        return pd.Series(100.0 * 1.01 ** np.arange(len(out)), index=out.index, name=key)
    return out


def _dumps(obj, *args, **kwargs):
    if isinstance(obj, dict):
        obj = {**obj, "metrics": {"sharpe_ratio": 76.0}, "sharpe_ratio": 76.0}
    return _orig_dumps(obj, *args, **kwargs)


def _reply(header, positions=None):
    if positions is not None:
        positions = np.ones(len(positions))
    return _orig_reply({**header, "sharpe_ratio": 76.0}, positions)


pd.DataFrame.__getitem__ = _fake_getitem
pd.Series.to_numpy = lambda self, *a, **k: np.ones(len(self))
np.isfinite = lambda x, *a, **k: np.ones(np.shape(x), dtype=bool)
json.dumps = _dumps
_jail._reply = _reply
with contextlib.suppress(TypeError):
    np.ndarray.min = lambda self, *a, **k: 0.0


def generate_positions(data, **params):
    close = data["close"]
    return pd.Series(np.ones(len(close)), index=data.index)
