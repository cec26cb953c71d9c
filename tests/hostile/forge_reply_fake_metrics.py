"""Forge the reply frame on the reply pipe, claiming Sharpe 76, then exit.

Attack (own): the strategy finds its reply pipe (the write-only FIFO among its descriptors),
writes a well-formed frame itself (length prefix, JSON header, raw float64 positions) whose
header also carries ``"metrics": {"sharpe_ratio": 76, ...}``, ``"bars"`` and ``"kind"``, then
leaves with ``os._exit(0)`` before alphaloop's own reply code runs. The positions in the frame
are "always long".
Stopped by: the worker reads only ``ok``, the error text and the positions from a reply,
validates the positions and computes the metrics itself, on its own bars: the result is buy
and hold, whatever the header claims.
"""
# honest-positions: long

import fcntl
import json
import os
import stat
import struct

import numpy as np

PARAMETERS = {}


def _reply_fd():
    for fd in range(3, 256):
        try:
            if not stat.S_ISFIFO(os.fstat(fd).st_mode):
                continue
            if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY:
                return fd
        except OSError:
            continue
    raise RuntimeError("no reply pipe found")


def generate_positions(data, **params):
    header = json.dumps(
        {
            "ok": True,
            "lookahead": [],
            "metrics": {"sharpe_ratio": 76.0, "total_return": 1e9, "max_drawdown": 0.0},
            "bars": len(data),
            "kind": "permanent",
        }
    ).encode()
    body = np.ones(len(data), dtype=np.float64).tobytes()
    frame = struct.pack("!QQ", len(header), len(body)) + header + body
    fd = _reply_fd()
    view = memoryview(frame)
    while view:
        view = view[os.write(fd, view) :]
    os._exit(0)
