"""An exception whose class name has escapes and a newline, whose ``__str__`` returns 1 MB and
whose ``args`` is not text.

Attack (own): the error report is built from ``type(exc).__name__`` and ``str(exc)``, both
under the strategy's control (a class made with ``type()`` can have any name).
Stopped by: the report is escaped and capped in the strategy process and again in the worker.
"""

PARAMETERS = {}


def _str(self):
    return "\x1b]0;title\x07" + "A" * 1_000_000


Evil = type("Evil\x1b[31m\nError\r", (Exception,), {"__str__": _str})


def generate_positions(data, **params):
    raise Evil(object(), b"\x00\xff", 1e308)
