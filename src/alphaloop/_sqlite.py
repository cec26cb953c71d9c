"""Opening the SQLite files alphaloop keeps (the task queue, the experiment tracker), and
telling a damaged file from a sound one."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path

from alphaloop.errors import ConfigError, storage_problem

_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26


def is_damage(exc: BaseException) -> bool:
    """Whether ``exc`` says the file's bytes are not a sound database (SQLITE_CORRUPT: a
    truncated or overwritten file; SQLITE_NOTADB: not SQLite at all), as opposed to a lock,
    a full disk or a permission."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


@contextmanager
def opening(conn: sqlite3.Connection, path: Path, what: str) -> Iterator[None]:
    """Run the opening statements of ``conn`` (pragmas, schema); a file that is not a usable
    database becomes a one-line :class:`ConfigError` naming it, and ``conn`` is closed on any
    error. A full disk or a read-only folder is not the file's fault: that error is re-raised
    as it is, for the caller to report (see :func:`alphaloop.errors.storage_problem`)."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        conn.close()
        if storage_problem(exc) is not None:
            raise
        raise ConfigError(
            f"{what} {path} cannot be opened ({exc}); restore the file or use another --home"
        ) from None
    except BaseException:
        conn.close()
        raise


def problem(conn: sqlite3.Connection, tables: Sequence[str]) -> str | None:
    """What is wrong with the database open on ``conn``, or None if it passes SQLite's
    ``quick_check`` and has ``tables``: ``"damaged (<what SQLite found>)"``, ``"empty"`` (no
    tables at all: a new or zero-length file) or ``"not what alphaloop wrote (no table X)"``.
    Errors that are not about the file's content (locks, a full disk) are raised."""
    try:
        found = [str(r[0]) for r in conn.execute("PRAGMA quick_check(1)").fetchall()]
        if found != ["ok"]:
            return f"damaged ({found[0] if found else 'quick_check failed'})"
        have = {str(r[0]) for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        if is_damage(exc):
            return f"damaged ({exc})"
        raise
    if not have:
        return "empty"
    missing = [t for t in tables if t not in have]
    return f"not what alphaloop wrote (no table {missing[0]})" if missing else None


def file_problem(path: Path, tables: Sequence[str]) -> str | None:
    """:func:`problem` of the existing database file ``path`` (opened, checked, closed)."""
    try:
        with closing(sqlite3.connect(path, isolation_level=None, timeout=30)) as conn:
            return problem(conn, tables)
    except sqlite3.DatabaseError as exc:
        if is_damage(exc):
            return f"damaged ({exc})"
        raise


_JOURNALS = ("-wal", "-shm", "-journal")


def readonly_uri(path: Path) -> str:
    """A URI that reads ``path`` without writing its folder: ``immutable=1`` when no journal
    lies beside it (no process has it open, so nothing can change under the reader), else
    ``mode=ro``, sharing the ``-wal``/``-shm`` its writer made. ``mode=ro`` alone on an idle
    WAL database would create those two files and leave them in the home."""
    live = any(path.with_name(path.name + j).exists() for j in _JOURNALS)
    return f"{path.resolve().as_uri()}?{'mode=ro' if live else 'immutable=1'}"


def read_only(path: Path, timeout: float = 5.0) -> sqlite3.Connection:
    """A read-only connection to ``path`` (see `readonly_uri`); the caller closes it."""
    conn = sqlite3.connect(readonly_uri(path), uri=True, timeout=timeout, isolation_level=None)
    conn.execute("PRAGMA query_only = ON")
    return conn
