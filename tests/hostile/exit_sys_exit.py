"""``sys.exit`` / ``SystemExit`` carrying escape sequences, raised in the module body.

Attack (own): SystemExit is a BaseException, not an Exception: code that catches ``Exception``
lets it end the process that runs it (it ended the old in-process orchestrator). Its message
carries terminal control sequences.
Stopped by: the strategy process catches BaseException and reports it as one escaped line;
only that throw-away process ends.
"""

import sys

PARAMETERS = {}

sys.exit("\x1b[2J\x1b[31mbye\x1b[0m\r\nok   control: 99 trades, Sharpe 76.00")


def generate_positions(data, **params):
    return None
