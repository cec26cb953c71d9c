"""Where a run keeps its files."""

from __future__ import annotations

import os
from pathlib import Path

from alphaloop.errors import ConfigError

HOME_ENV = "ALPHALOOP_HOME"
"""Environment variable naming the home folder when ``--home`` is not given."""


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    """The run's home folder: ``home`` (``--home``), else ``$ALPHALOOP_HOME``, else
    ``./.alphaloop/``. The folder is created if missing; the path returned is absolute.

    Raises:
        ConfigError: the path is a file, or the folder cannot be created.
    """
    if home is None or str(home) == "":
        home = os.environ.get(HOME_ENV) or ".alphaloop"
    path = Path(home).expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = "it is a file" if path.is_file() else (exc.strerror or str(exc)).lower()
        raise ConfigError(
            f"home folder {path} cannot be used ({why}); pass --home (or set {HOME_ENV}) to "
            "a folder you can write"
        ) from None
    return path
