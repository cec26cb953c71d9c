"""Outlive the run: clear the parent-death signal, ignore SIGTERM/SIGHUP/SIGINT, leave the
process group, then sleep until the wall-clock timeout kills the worker.

Attack (own): when a strategy times out, the worker (its parent) is SIGKILLed. The strategy
process relies on ``PR_SET_PDEATHSIG`` to die with it, but ``prctl`` is allowed, so it clears
the death signal and calls ``setsid``; sleeping uses no CPU, so RLIMIT_CPU never fires. It
would live on after the command exits, reparented to init (here it gives up after 90 s, so a
failing test leaves no permanent process).
Should be stopped by: the kernel boundary or the process management: seccomp refusing
``prctl(PR_SET_PDEATHSIG)`` (and ``setsid``), or killing the worker's children (e.g. the whole
process group / a cgroup, or a pidfd kill of the child) before or when the worker is killed.
"""

import contextlib
import ctypes
import os
import signal
import time

PARAMETERS = {}

PR_SET_PDEATHSIG = 1


def generate_positions(data, **params):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.setsid()
    end = time.monotonic() + 90
    while time.monotonic() < end:
        time.sleep(0.5)
    raise RuntimeError("still alive after 90 s")
