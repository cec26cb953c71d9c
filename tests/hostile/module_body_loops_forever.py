"""The module body never returns: ``while True: pass`` at import time.

Attack (issue): a denial of service before ``generate_positions`` is even defined; with the
old in-process sandbox it hung the whole orchestrator.
Stopped by: the wall-clock timeout (``--timeout`` / the pool's task timeout kill the worker;
RLIMIT_CPU is the backstop). The user sees "timed out after N s" and exit code 2.
"""

import numpy as np

PARAMETERS = {}

n = 0
while True:
    n += 1


def generate_positions(data, **params):
    return np.zeros(len(data))
