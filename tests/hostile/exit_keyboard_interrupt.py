"""Raise ``KeyboardInterrupt`` (after sending itself SIGINT, which is ignored).

Attack (own): a KeyboardInterrupt looks like the user's Ctrl-C; the orchestrator stops and
saves state on it (exit 130). Coming from a strategy it must be just that strategy's failure.
Stopped by: the strategy process ignores SIGINT and reports a raised KeyboardInterrupt as the
strategy's failure; the workflow goes on.
"""

import signal

PARAMETERS = {}


def generate_positions(data, **params):
    signal.raise_signal(signal.SIGINT)
    raise KeyboardInterrupt("strategy pressed Ctrl-C")
