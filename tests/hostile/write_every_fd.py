"""Write into every open file descriptor (the worker's pipes, a terminal, a log).

Attack (own): descriptors 0-1023 are probed with ``fstat``; every one that is open gets a
frame of garbage (a length prefix claiming a huge header, then escape sequences), which is
what a process would send to hijack the worker's own message stream, a terminal or a log
file. The request pipe is drained too (to steal the next job).
Stopped by: descriptor hygiene (the strategy process keeps only /dev/null on 0-2 and its own
two pipes) and the worker's reply parser (a bad frame is "sent a malformed reply", the process
is killed). The user sees one clean line.
"""

import contextlib
import os
import stat
import struct

PARAMETERS = {}

GARBAGE = struct.pack("!QQ", 1 << 40, 1 << 40) + b"\x1b[2J\x1b]0;pwned\x07" * 64


def generate_positions(data, **params):
    seen = []
    for fd in range(1024):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        kind = "fifo" if stat.S_ISFIFO(st.st_mode) else "chr" if stat.S_ISCHR(st.st_mode) else "?"
        seen.append(f"{fd}:{kind}")
        try:
            os.set_blocking(fd, False)
            os.write(fd, GARBAGE)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            os.read(fd, 1 << 16)
    raise RuntimeError("open descriptors: " + " ".join(seen))
