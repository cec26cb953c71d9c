"""The exceptions alphaloop raises on bad input.

Every message is one line that names the thing at fault and how to fix it; the command line
prints it as is and exits with code 2.

Messages often quote what a file holds (a column name, a cell, a path), so ``str()`` of every
:class:`AlphaloopError` is made safe to print: characters that a terminal would act on
(C0/C1 controls such as ESC, DEL, newlines, bidirectional overrides: anything not printable)
are written as escapes like ``\\x1b``, and a message longer than :data:`MAX_MESSAGE` characters
keeps its start and its end (where the fix usually is) around an ellipsis. The raw text stays in
``exc.args[0]``.
"""

from __future__ import annotations

import errno
import sqlite3

MAX_MESSAGE = 300
"""Longest message, in characters, that ``str()`` of an :class:`AlphaloopError` returns."""

_ELLIPSIS = " ... "


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(ch: str) -> str:
    if ch.isprintable():
        return ch
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _shorten_longest_word(pieces: list[str], over: int) -> str | None:
    """The message with its longest word (a path, usually) ``over`` characters shorter, its
    middle replaced by ``" ... "``, so the words around it — what went wrong, the fix — stay whole;
    None when that word is too short to give so much."""
    words: list[list[str]] = [[]]
    for p in pieces:
        if p == " ":
            words.append([])
        else:
            words[-1].append(p)
    i = max(range(len(words)), key=lambda k: sum(len(p) for p in words[k]))
    word = words[i]
    keep = sum(len(p) for p in word) - over - len(_ELLIPSIS)
    if keep < 24:
        return None
    head, tail, used = [], [], 0
    for p in word:
        if used + len(p) > keep - keep // 3:
            break
        head.append(p)
        used += len(p)
    used = 0
    for p in reversed(word[len(head):]):
        if used + len(p) > keep // 3:
            break
        tail.append(p)
        used += len(p)
    words[i] = [*head, _ELLIPSIS, *reversed(tail)]
    return " ".join("".join(w) for w in words)


def clean_message(text: object, limit: int | None = MAX_MESSAGE) -> str:
    """``text`` as one printable line: every non-printable character (C0/C1 controls, ESC,
    DEL, line breaks, bidi and zero-width marks) escaped as ``\\n``/``\\x1b``/``\\u202e``; when
    longer than ``limit`` characters, its longest word (a long path) loses its middle if that
    is enough, else its first two thirds and last third of ``limit`` are joined by ``" ... "``
    (an escape is never cut in two). ``limit=None`` only escapes."""
    pieces = [_escape(ch) for ch in str(text)]
    total = sum(len(p) for p in pieces)
    if limit is None or total <= limit:
        return "".join(pieces)
    shorter = _shorten_longest_word(pieces, total - limit)
    if shorter is not None:
        return shorter
    room = max(limit - len(_ELLIPSIS), 2)
    head_room, tail_room = room - room // 3, room // 3
    head: list[str] = []
    used = 0
    for p in pieces:
        if used + len(p) > head_room:
            break
        head.append(p)
        used += len(p)
    tail: list[str] = []
    used = 0
    for p in reversed(pieces[len(head):]):
        if used + len(p) > tail_room:
            break
        tail.append(p)
        used += len(p)
    return "".join(head).rstrip() + _ELLIPSIS + "".join(reversed(tail)).lstrip()


class AlphaloopError(Exception):
    """Base class of every error alphaloop raises for bad input or configuration.

    ``str(exc)`` is one printable line of at most :data:`MAX_MESSAGE` characters (see the
    module docstring); ``exc.args[0]`` keeps the message as raised.
    """

    def __str__(self) -> str:
        return clean_message(super().__str__())


class DataError(AlphaloopError):
    """Market data is missing, malformed or cannot serve the request."""


class StrategyError(AlphaloopError):
    """Strategy code cannot be loaded, is rejected by the sandbox, or produced bad positions."""


class ConfigError(AlphaloopError):
    """A setting (parameter, timeframe, gate expression, path...) is invalid."""


class HomeError(ConfigError):
    """The home folder or a workflow's file in it cannot be used: the folder is read-only or
    full, or a file (``state.json``, ``settings.json``, ``queue.db``, ``tracker.db``) is missing
    or damaged. The message says whether ``alphaloop resume`` can carry on (after the fix) or
    the workflow must be started again."""


_OS_PROBLEMS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
_SQLITE_PROBLEMS = {
    "database or disk is full": "no space left on the device",
    "attempt to write a readonly database": "read-only file system",
}
_SQLITE_CODES = {
    13: "no space left on the device",  # SQLITE_FULL
    4874: "no space left on the device",  # SQLITE_IOERR_SHMSIZE: the -shm file cannot grow
    8: "read-only file system",  # SQLITE_READONLY (primary code)
}


def storage_problem(exc: BaseException | None) -> str | None:
    """What is wrong with the disk if ``exc`` (or an exception it was raised from or while
    handling) is a write the file system refused — ``"no space left on the device"``,
    ``"read-only file system"``, ``"permission denied"`` ... — else None (bad input or a bug,
    not the disk)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _OS_PROBLEMS:
            return _OS_PROBLEMS[exc.errno]
        if isinstance(exc, sqlite3.OperationalError):
            code = getattr(exc, "sqlite_errorcode", None)
            if isinstance(code, int) and (code in _SQLITE_CODES or code & 0xFF == 8):
                return _SQLITE_CODES.get(code, _SQLITE_CODES[8])
            text = str(exc).lower()
            for needle, what in _SQLITE_PROBLEMS.items():
                if needle in text:
                    return what
        exc = exc.__cause__ or exc.__context__
    return None
