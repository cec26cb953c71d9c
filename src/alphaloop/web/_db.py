"""Read-only SQLite for the dashboard: never a byte written to the home, and a database being
written by a running workflow is retried, never a crash.

SQLite's ``mode=ro`` alone is not enough: opening a WAL database read-only creates its
``-wal`` and ``-shm`` files when no writer holds them, and leaves them behind. So a database
with no journal beside it (no process has it open: it is idle) is opened ``immutable=1``,
which reads the main file and creates nothing; one with a journal (a workflow is writing it)
is opened ``mode=ro``, sharing the files its writer already made.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_JOURNALS = ("-wal", "-journal")


class Busy(Exception):
    """The database stayed locked (or mid-write) for the whole retry budget."""


def _uri(path: Path) -> str:
    live = any(path.with_name(path.name + j).exists() for j in _JOURNALS)
    return f"{path.resolve().as_uri()}?{'mode=ro' if live else 'immutable=1'}"


@contextmanager
def _connect(path: Path, timeout: float) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(_uri(path), uri=True, timeout=timeout, isolation_level=None,
                           check_same_thread=False)
    with closing(conn):
        conn.execute("PRAGMA query_only = ON")
        yield conn


def _transient(exc: sqlite3.Error) -> bool:
    """A lock, or a page read while a writer checkpointed under an ``immutable`` reader."""
    text = str(exc).lower()
    return any(w in text for w in ("locked", "busy", "malformed", "disk i/o", "not a database",
                                   "unable to open"))


def read(path: Path, fn: Callable[[sqlite3.Connection], T], *, budget: float = 3.0) -> T:
    """``fn(conn)`` on a fresh read-only connection to ``path``; a busy, locked or torn read
    is retried with backoff for about ``budget`` seconds, then :class:`Busy`."""
    deadline = time.monotonic() + budget
    pause = 0.02
    while True:
        try:
            with _connect(path, timeout=min(1.0, budget)) as conn:
                return fn(conn)
        except sqlite3.Error as exc:
            if not _transient(exc):
                raise
            if time.monotonic() + pause > deadline:
                raise Busy(f"{path.name} is busy ({exc})") from None
        time.sleep(pause)  # a writer holds the lock: back off, then read again
        pause = min(pause * 2, 0.25)


__all__ = ["Busy", "read"]
