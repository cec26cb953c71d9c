"""Fill the disk from the private temp: a 32 MiB file, a file past 64 MiB, 500 small files.

Attack (own): the private temp is writable; RLIMIT_FSIZE caps a single file at 64 MiB (a
write past it fails with EFBIG, tried here with a seek so nothing big is written) but nothing
caps the number of files or the total. Returns "always long". Done once per process (the
look-ahead check calls the strategy 20 more times).
Stopped by: RLIMIT_FSIZE for the big file; the private temp is removed when the strategy
process is done, so nothing is left behind (the test checks the TMPDIR is empty afterwards).
Not stopped: the total written while the process lives (bounded here by the attack itself).
"""
# honest-positions: long

import os

import numpy as np
import pandas as pd

PARAMETERS = {}

_done = []


def _fill():
    with open("fill", "wb") as f:
        for _ in range(32):
            f.write(b"\0" * (1 << 20))
    big = False
    try:
        with open("too-big", "wb") as f:
            f.seek(65 << 20)
            f.write(b"x")
        big = True
    except OSError:
        pass
    for i in range(500):
        with open(f"small-{i}", "w") as f:
            f.write("x")
    assert os.path.getsize("fill") == 32 << 20 and not big


def generate_positions(data, **params):
    if not _done:
        _fill()
        _done.append(True)
    return pd.Series(np.ones(len(data)), index=data.index)
