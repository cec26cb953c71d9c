"""The module body allocates 3 GiB (and touches it).

Attack (issue): memory exhaustion at import time, as numpy ones and as a bytearray.
Stopped by: RLIMIT_AS (the ``--memory`` budget on top of the interpreter): MemoryError, reported
as "exceeded the memory limit", exit code 2.
"""

import numpy as np

PARAMETERS = {}

big = np.ones(3 * 2**30 // 8)
more = bytearray(3 * 2**30)


def generate_positions(data, **params):
    return np.zeros(len(data)) + big[:1] * 0 + len(more) * 0
