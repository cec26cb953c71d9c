"""Poison what later Python processes load: ``.pth`` files, ``sitecustomize``, ``.pyc``, numba.

Attack (own): persistence across runs. A ``.pth`` line starting with ``import`` runs at every
interpreter start; ``sitecustomize.py``/``usercustomize.py`` too; an overwritten
``__pycache__/*.pyc`` of ``alphaloop.backtest.indicators`` or a numba cache index would change
every later backtest. The targets are found from the modules' own ``__file__``.
Stopped by: Landlock (the Python install, site-packages and alphaloop are read-only) and DAC.
The test also checks that the targets are unchanged.
"""

import glob
import os

import numpy as np

from alphaloop.backtest import indicators

PARAMETERS = {}

PAYLOAD = "import os; os.system('touch /tmp/hostile-poison_python_caches')\n"


def _targets():
    site = os.path.dirname(os.path.dirname(np.__file__))
    pkg = os.path.dirname(indicators.__file__)
    out = [
        os.path.join(site, "hostile-poison.pth"),
        os.path.join(site, "sitecustomize.py"),
        os.path.join(site, "usercustomize.py"),
    ]
    out += glob.glob(os.path.join(pkg, "__pycache__", "indicators*.pyc"))
    out += glob.glob(os.path.join(pkg, "__pycache__", "*.nbi"))[:3]
    out += [indicators.__file__]
    return out


def generate_positions(data, **params):
    escaped, log = [], []
    for path in _targets():
        try:
            with open(path, "a") as f:
                f.write(PAYLOAD)
            escaped.append(path)
        except Exception as exc:
            log.append(f"{os.path.basename(path)}: {type(exc).__name__}")
    if escaped:
        raise RuntimeError("HOSTILE" + "-ESCAPED poisoned " + " ".join(escaped))
    raise RuntimeError("caches are read-only: " + "; ".join(log))
