"""``os._exit(0)`` from inside ``generate_positions``.

Attack (own): leave without a reply and with a success exit code, hoping the caller takes
"exit 0" for "done" (or hangs waiting).
Stopped by: the worker reads end-of-file on the reply pipe and reports "process exited
unexpectedly (exit code 0)"; exit code 2 for ``backtest``.
"""

import os

PARAMETERS = {}


def generate_positions(data, **params):
    os._exit(0)
