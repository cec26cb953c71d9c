"""Where a run keeps its files."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "ALPHALOOP_HOME"
"""Environment variable naming the home folder when ``--home`` is not given."""


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    """The run's home folder: ``home`` (``--home``), else ``$ALPHALOOP_HOME``, else
    ``./.alphaloop/``. The folder is created if missing; the path returned is absolute."""
    if home is None or str(home) == "":
        home = os.environ.get(HOME_ENV) or ".alphaloop"
    path = Path(home).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path
