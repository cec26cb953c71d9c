"""Threads that keep running after ``generate_positions`` returned.

Attack (own): daemon threads that, after the answer, keep rewriting every float64 array the
garbage collector can find (prices included), retry writing outside the private temp and
connecting to the loopback listener, and one that holds the GIL for a while inside a regex,
all while the next job could be read (started on the first call only). The strategy itself
returns "always long".
Stopped by: threads live in the throw-away strategy process (threads are allowed; new
processes are not) and inherit its Landlock domain and seccomp filter; the engine measures the
worker's bars.
"""
# honest-positions: long

import contextlib
import gc
import re
import socket
import threading
import time

import numpy as np
import pandas as pd

PARAMETERS = {}

_started = []


def _scribble():
    end = time.monotonic() + 20
    while time.monotonic() < end:
        for obj in gc.get_objects():
            if isinstance(obj, np.ndarray) and obj.dtype == np.float64 and obj.flags.writeable:
                with contextlib.suppress(Exception):
                    obj[...] = 7.0
        time.sleep(0.2)


def _escape():
    end = time.monotonic() + 20
    while time.monotonic() < end:
        try:
            with open("@@CANARY_DIR@@/hostile-threads_keep_running", "w") as f:
                f.write("x")
        except Exception:
            pass
        with contextlib.suppress(Exception):
            socket.create_connection(("127.0.0.1", int("@@TCP_PORT@@")), timeout=1).close()
        time.sleep(0.2)


def _hold_gil():
    re.match(r"(a+)+$", "a" * 21 + "b")  # catastrophic backtracking: the GIL is held


def generate_positions(data, **params):
    if not _started:
        _started.append(True)
        for fn in (_scribble, _escape, _hold_gil):
            threading.Thread(target=fn, daemon=True).start()
    return pd.Series(np.ones(len(data)), index=data.index)
