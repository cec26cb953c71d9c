"""The dashboard's only way into the home folder: an allow-list of the workflow folders
actually there, and files inside them that are what they look like.

A workflow id from a URL is never joined to a path as it came: it must match
:data:`WORKFLOW_ID` and be the name of a real directory (not a symlink) under
``<home>/workflows``, listed from the disk. A file is read only if it is a regular file (not a
symlink) directly inside that folder. So ``..``, encoded or not, an absolute path, or a symlink
pointing out of the home reaches nothing.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from alphaloop.workflow.state import STATE_FILE, WorkflowState

WORKFLOW_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
"""What a workflow id may look like in a URL (ids are ``workflow_YYYYMMDD_HHMMSS_abcdef``)."""

SETTINGS_FILE = "settings.json"  # as alphaloop.workflow.api writes it (not imported: heavy)


class Home:
    """Read-only view of a home folder (which may not exist yet: no workflows then)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def _workflows(self) -> Path | None:
        folder = self.root / "workflows"
        try:
            st = folder.lstat()
        except OSError:
            return None
        return folder if stat.S_ISDIR(st.st_mode) else None  # a symlink is not followed

    def workflow_ids(self) -> list[str]:
        """Every workflow folder in the home, sorted: real directories holding a regular
        ``state.json``."""
        folder = self._workflows
        if folder is None:
            return []
        try:
            names = os.listdir(folder)
        except OSError:
            return []
        return sorted(n for n in names if WORKFLOW_ID.fullmatch(n)
                      and _regular_dir(folder / n) and _regular_file(folder / n / STATE_FILE))

    def folder(self, workflow_id: str) -> Path | None:
        """The folder of ``workflow_id`` if it is one of :meth:`workflow_ids`, else None."""
        if not isinstance(workflow_id, str) or not WORKFLOW_ID.fullmatch(workflow_id):
            return None
        folder = self._workflows
        if folder is None or workflow_id not in self.workflow_ids():
            return None
        return folder / workflow_id  # a name just listed from the disk

    def file(self, workflow_id: str, name: str) -> Path | None:
        """``name`` (a fixed file name chosen by the caller) in the workflow's folder, if it
        is a regular file there."""
        folder = self.folder(workflow_id)
        if folder is None or "/" in name or name.startswith("."):
            return None
        path = folder / name
        return path if _regular_file(path) else None

    def state(self, workflow_id: str) -> WorkflowState | None:
        """The workflow's state (written atomically, so always whole), or None."""
        path = self.file(workflow_id, STATE_FILE)
        if path is None:
            return None
        try:
            return WorkflowState.model_validate_json(read_bytes(path))
        except (OSError, ValueError):
            return None

    def settings(self, workflow_id: str) -> dict[str, Any]:
        """The workflow's settings without anything whose name says it is a credential."""
        path = self.file(workflow_id, SETTINGS_FILE)
        if path is None:
            return {}
        try:
            raw = json.loads(read_bytes(path).decode("utf-8"))
        except (OSError, ValueError):
            return {}
        return no_secrets(raw) if isinstance(raw, dict) else {}


def no_secrets(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings through the workflow document's secret filter."""
    from alphaloop.workflow.document import _no_secrets

    return _no_secrets(settings)


def read_bytes(path: Path) -> bytes:
    """The bytes of ``path``, refusing a symlink put there after it was checked."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def _regular_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except OSError:
        return False


def _regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


__all__ = ["SETTINGS_FILE", "WORKFLOW_ID", "Home", "no_secrets", "read_bytes"]
