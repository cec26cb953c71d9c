"""Where a run keeps its files, and what can go wrong with the folder itself."""

from __future__ import annotations

import os
from pathlib import Path

from alphaloop.errors import ConfigError, HomeError, storage_problem

HOME_ENV = "ALPHALOOP_HOME"
"""Environment variable naming the home folder when ``--home`` is not given."""


def resolve_home(home: str | os.PathLike[str] | None = None, *, create: bool = True) -> Path:
    """The run's home folder: ``home`` (``--home``), else ``$ALPHALOOP_HOME``, else
    ``./.alphaloop/``; the path returned is absolute. With ``create`` (``run``) the folder is
    created if missing; without it (``status``, ``show``, ``resume``) it is never created and
    may not exist.

    Raises:
        ConfigError: the path is a file, or the folder cannot be created.
    """
    if home is None or str(home) == "":
        home = os.environ.get(HOME_ENV) or ".alphaloop"
    path = Path(home).expanduser().resolve()
    if not create:
        if path.exists() and not path.is_dir():
            raise ConfigError(
                f"home folder {path} cannot be used (it is a file); pass --home (or set "
                f"{HOME_ENV}) to the folder your runs are in"
            )
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = "it is a file" if path.is_file() else (exc.strerror or str(exc)).lower()
        raise ConfigError(
            f"home folder {path} cannot be used ({why}); pass --home (or set {HOME_ENV}) to "
            "a folder you can write"
        ) from None
    return path


def storage_error(
    exc: BaseException, home: Path, then: str, *, elsewhere: bool = False
) -> HomeError | None:
    """A one-line :class:`HomeError` for a write to ``home`` that the file system refused (see
    :func:`alphaloop.errors.storage_problem`), ending with ``then`` (what to do once the disk
    is fixed); with ``elsewhere`` it also suggests another home folder (nothing was created in
    this one yet). None when ``exc`` is not about the disk."""
    what = storage_problem(exc)
    if what is None:
        return None
    if "space" in what or "quota" in what:
        fix = "free some space"
    elif elsewhere:
        fix = f"make it writable or pass --home (or set {HOME_ENV}) to a folder you can write"
    else:
        fix = "make it writable"
    return HomeError(f"cannot write to home folder {home} ({what}); {fix}, then {then}")
