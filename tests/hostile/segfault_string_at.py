"""Segmentation fault: ``ctypes.string_at(16)`` (address 0 would just allocate).

Attack (own): crash the process that runs strategy code (it crashed the old in-process
backtest and with it the orchestrator).
Stopped by: only the throw-away strategy process dies (no core file: RLIMIT_CORE 0); the user
sees "crashed its process (killed by SIGSEGV)".
"""

import ctypes

PARAMETERS = {}


def generate_positions(data, **params):
    return ctypes.string_at(16, 64)
