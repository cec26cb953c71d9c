"""SIGIO to the whole process group, for 3 seconds: kill the other strategies' processes.

Attack (own): like ``sigio_owner_victim`` but the owner is the process group (``F_SETOWN``
with ``-pgrp``), the signal SIGTERM (which this process ignores, and every other strategy
process takes with the default action), fired every few milliseconds for ``seconds`` (3 by
default; on the first call only: the look-ahead check calls the strategy again). In a pool
with several workers the strategy processes of the *other* workers (uid 65534, same process
group) die: their honest strategies fail ("crashed its process") and may be excluded from the
workflow. This process then returns "always long".
Should be stopped by: the kernel boundary (a Landlock signal scope, or seccomp on
``F_SETOWN``/``F_SETSIG``); putting each strategy process in its own process group would only
narrow the group route, not the pid route of ``sigio_owner_victim``.
"""
# honest-positions: long

import fcntl
import os
import signal
import time

import numpy as np
import pandas as pd

PARAMETERS = {"seconds": {"default": 3.0, "low": 0.5, "high": 8.0}}

F_SETSIG = 10
_done = []


def generate_positions(data, seconds=3.0):
    if _done:
        return pd.Series(np.ones(len(data)), index=data.index)
    _done.append(True)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGIO, signal.SIG_IGN)
    r, w = os.pipe()
    os.set_blocking(r, False)
    fired = 0
    open("firing", "w").close()  # in the private temp: the test knows the attempt has begun
    armed = False
    try:
        fcntl.fcntl(r, fcntl.F_SETOWN, -os.getpgrp())
        fcntl.fcntl(r, F_SETSIG, signal.SIGTERM)
        fcntl.fcntl(r, fcntl.F_SETFL, fcntl.fcntl(r, fcntl.F_GETFL) | os.O_ASYNC)
        armed = True
    except OSError:
        pass
    # keep at it for `seconds` either way, so the neighbours' tasks run meanwhile
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if armed:
            os.write(w, b"x")
            os.read(r, 16)
            fired += 1
        time.sleep(0.002)
    return pd.Series(np.ones(len(data)) + 0 * fired, index=data.index)
