"""The workflow's HTML report, rendered on demand in memory, never written to the home.

The report is built from a snapshot: the workflow folder's files copied into a temporary home
outside the real one (databases through SQLite's backup from a read-only connection), so
nothing the report code opens can leave a file behind in the home. The last few reports are
kept in memory, keyed by what would change them.
"""

from __future__ import annotations

import sqlite3
import stat
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

from alphaloop.web import _db
from alphaloop.web._home import Home, read_bytes

_SKIP_SUFFIXES = ("-wal", "-shm", "-journal")
_CACHE_SIZE = 4


class NotReady(Exception):
    """No report for this workflow (yet); the message says why in plain words."""


class Reports:
    """Renders and caches reports (thread-safe: the app serves from a thread pool)."""

    def __init__(self, home: Home):
        self.home = home
        self._cache: OrderedDict[tuple[object, ...], str] = OrderedDict()
        self._lock = threading.Lock()
        self._rendering: dict[str, threading.Lock] = {}  # one render per workflow at a time

    def html(self, wid: str) -> str:
        """The report of ``wid``; :class:`NotReady` when it cannot be made (yet)."""
        folder = self.home.folder(wid)
        if folder is None:
            raise NotReady(f"no workflow {wid} in this home")
        with self._lock:
            busy = self._rendering.setdefault(wid, threading.Lock())
        with busy:  # a second visitor waits for the first render instead of repeating it
            return self._html(wid, folder)

    def _html(self, wid: str, folder: Path) -> str:
        from alphaloop.report import render_report

        key = _fingerprint(folder)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        with tempfile.TemporaryDirectory(prefix="alphaloop-report-") as tmp:
            _snapshot(folder, Path(tmp) / "workflows" / wid)
            try:
                text = render_report(wid, tmp)
            except Exception as exc:  # the report's own "not yet" (no records, no state)
                from alphaloop.errors import AlphaloopError

                if isinstance(exc, AlphaloopError):  # named as the user knows the files
                    raise NotReady(str(exc).replace(tmp, str(self.home.root))) from None
                raise
        with self._lock:
            self._cache[key] = text
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return text


def _fingerprint(folder: Path) -> tuple[object, ...]:
    """Size and modification time of every file in the folder (journals included): any
    write the workflow makes changes it."""
    out: list[object] = [folder.name]
    for p in sorted(folder.iterdir()):
        try:
            st = p.lstat()
        except OSError:
            continue
        out.append((p.name, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _snapshot(folder: Path, target: Path) -> None:
    """Copy the regular files of ``folder`` into ``target``; databases consistently."""
    target.mkdir(parents=True)
    for p in sorted(folder.iterdir()):
        try:
            if not stat.S_ISREG(p.lstat().st_mode) or p.name.endswith(_SKIP_SUFFIXES):
                continue
        except OSError:
            continue
        if p.suffix == ".db":
            with sqlite3.connect(target / p.name) as dst:
                try:
                    _db.read(p, lambda src, dst=dst: src.backup(dst))
                except sqlite3.DatabaseError:
                    continue  # not a database: the report goes without it
            dst.close()
        else:
            try:
                (target / p.name).write_bytes(read_bytes(p))
            except OSError:
                continue


__all__ = ["NotReady", "Reports"]
