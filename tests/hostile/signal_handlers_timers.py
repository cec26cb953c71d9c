"""Signal handlers and interval timers: ignore SIGTERM/SIGINT/SIGHUP/SIGXCPU, SIGALRM every ms.

Attack (own): a process that ignores the polite signals cannot be stopped politely; a SIGXCPU
handler tries to survive the CPU limit; a 1 ms interval timer interrupts whatever the process
does next (the reply write included); ``PR_SET_PDEATHSIG`` is left alone here (see
``orphan_survives_timeout``). Returns "always long".
Stopped by: the worker stops strategy processes with SIGKILL (closing the pipe first); the CPU
limit's hard limit is SIGKILL; signals stay inside the process.
"""
# honest-positions: long

import signal

import numpy as np
import pandas as pd

PARAMETERS = {}

ticks = [0]


def _tick(signum, frame):
    ticks[0] += 1


for _sig in (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGXCPU,
    signal.SIGPIPE,
    signal.SIGUSR1,
    signal.SIGCHLD,
):
    signal.signal(_sig, signal.SIG_IGN)
signal.signal(signal.SIGALRM, _tick)
signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)


def generate_positions(data, **params):
    return pd.Series(np.ones(len(data)), index=data.index)
