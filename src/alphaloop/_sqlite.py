"""Opening the SQLite files alphaloop keeps (the task queue, the experiment tracker)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alphaloop.errors import ConfigError


@contextmanager
def opening(conn: sqlite3.Connection, path: Path, what: str) -> Iterator[None]:
    """Run the opening statements of ``conn`` (pragmas, schema); a file that is not a usable
    database becomes a one-line :class:`ConfigError` naming it, and ``conn`` is closed on any
    error."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ConfigError(
            f"{what} {path} cannot be opened ({exc}); restore the file or use another --home"
        ) from None
    except BaseException:
        conn.close()
        raise
