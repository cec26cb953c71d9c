"""The pipes between the local pool and its workers.

Workers write results with :meth:`multiprocessing.connection.Connection.send`: one message
per task, framed as a 4-byte big-endian length (or ``-1`` and an 8-byte length for messages of
2 GiB and more) followed by the pickle. Reading them back one ``recv`` at a time costs the
orchestrating process three system calls per task (a readiness check, the header, the body);
:class:`FrameReader` takes every byte waiting in the pipe with one ``read`` and splits the
frames itself, so the cost per wake-up no longer grows with the number of results.

:func:`widen` raises a pipe's buffer (Linux ``F_SETPIPE_SZ``) so a batch of tasks (a few KB
each) fits without the writer blocking until the worker reads.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pickle
import struct
from multiprocessing.connection import Connection
from typing import Any

PIPE_BYTES = 1 << 20
"""Buffer asked for each pipe (Linux caps it at ``/proc/sys/fs/pipe-max-size``, 1 MiB by
default; other systems keep their default)."""

logger = logging.getLogger(__name__)

_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", None)
_READ_CHUNK = 1 << 18
_LEN = struct.Struct("!i")
_LONG_LEN = struct.Struct("!Q")


def widen(conn: Connection, size: int = PIPE_BYTES) -> None:
    """Best effort: give ``conn``'s pipe a ``size``-byte buffer."""
    widen_fd(conn.fileno(), size)


def widen_fd(fd: int, size: int = PIPE_BYTES) -> None:
    """Best effort: give the pipe ``fd`` a ``size``-byte buffer."""
    if _F_SETPIPE_SZ is None:  # pragma: no cover - non-Linux
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, _F_SETPIPE_SZ, size)


class FrameReader:
    """Non-blocking reader of :class:`Connection`-framed messages from ``conn``'s pipe.

    After construction the pipe is non-blocking and must only be read through this object.
    """

    def __init__(self, conn: Connection) -> None:
        self.fd = conn.fileno()
        os.set_blocking(self.fd, False)
        self._buf = bytearray()
        self.eof = False

    def read(self) -> list[Any]:
        """Every complete message waiting in the pipe, oldest first (never blocks). A frame
        cut short by the writer's death stays unread; :attr:`eof` tells that the writer is
        gone. A frame that does not unpickle is logged and skipped."""
        buf = self._buf
        while not self.eof:
            try:
                chunk = os.read(self.fd, _READ_CHUNK)
            except BlockingIOError:
                break
            except OSError:
                self.eof = True
                break
            if not chunk:
                self.eof = True
                break
            buf += chunk
            if len(chunk) < _READ_CHUNK:
                break
        out: list[Any] = []
        pos, end = 0, len(buf)
        view = memoryview(buf)
        try:
            while end - pos >= 4:
                (n,) = _LEN.unpack_from(buf, pos)
                head = 4
                if n == -1:
                    if end - pos < 12:
                        break
                    (n,) = _LONG_LEN.unpack_from(buf, pos + 4)
                    head = 12
                if end - pos - head < n:
                    break
                try:
                    out.append(pickle.loads(view[pos + head : pos + head + n]))
                except Exception as exc:  # a garbled frame: skip it, keep the stream in step
                    logger.warning("dropped an unreadable message from fd %d: %s", self.fd, exc)
                pos += head + n
        finally:
            view.release()
        if pos:
            del buf[:pos]
        return out
