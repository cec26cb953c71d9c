"""Forge a reply whose JSON header is nested 200 000 levels deep, then exit.

Attack (own): the worker parses the header with ``json.loads``; deep nesting makes the parser
recurse (RecursionError, not ValueError) — an attempt to crash the worker or to get a
traceback printed.
Stopped by: the worker's reply handling (the header is size-capped; any failure to parse is a
failed attempt with one line). The user sees one clean line, no traceback.
"""

import fcntl
import os
import stat
import struct

PARAMETERS = {}


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
    header = b"[" * 200_000 + b"]" * 200_000
    frame = struct.pack("!QQ", len(header), 0) + header
    fd = _reply_fd()
    view = memoryview(frame)
    while view:
        view = view[os.write(fd, view) :]
    os._exit(0)
