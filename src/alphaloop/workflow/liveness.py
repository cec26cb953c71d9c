"""Which process drives a workflow, and whether it still lives.

A workflow's state says RUNNING from its start until it ends; a run killed by a signal, a
crash or a power cut leaves it so. To tell a running workflow from an interrupted one, the
process that runs (or resumes) it writes ``process.json`` in the workflow folder: its pid, its
start time (as the kernel reports it, so a reused pid is not mistaken for it) and the host.
A workflow is INTERRUPTED when its state says RUNNING and that process is gone.

Readers (``alphaloop status``, ``show``, the dashboard) only read the file: they never write
the home.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path
from typing import Any

import psutil

from alphaloop.workflow.state import atomic_write_text

__all__ = [
    "PROCESS_FILE",
    "effective_status",
    "process_alive",
    "process_record",
    "record_process",
    "workflow_of_process",
]

PROCESS_FILE = "process.json"
"""The record of the process driving a workflow, in its folder."""


def process_record() -> str:
    """This process as ``process.json`` holds it: ``{pid, started, host}``."""
    pid = os.getpid()
    started = psutil.Process(pid).create_time()
    return json.dumps({"pid": pid, "started": started, "host": socket.gethostname()})


def record_process(folder: Path) -> None:
    """Write ``process.json`` in ``folder`` (atomically): this process drives the workflow."""
    atomic_write_text(Path(folder) / PROCESS_FILE, process_record())


def _read(folder: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((Path(folder) / PROCESS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def process_alive(folder: Path) -> bool | None:
    """Whether the process recorded in ``folder`` still runs: True, False, or None when
    nothing can be said (no readable record, e.g. a workflow started before records were
    kept, or one driven from another host)."""
    record = _read(folder)
    if record is None:
        return None
    if record.get("host") not in (None, socket.gethostname()):
        return None
    try:
        proc = psutil.Process(int(record["pid"]))
        same = abs(proc.create_time() - float(record["started"])) < 0.01
        return same and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except (KeyError, TypeError, ValueError, psutil.Error):
        return None


def effective_status(status: str, folder: Path) -> str:
    """``status`` as a user should read it: INTERRUPTED for a RUNNING workflow whose process
    is gone, else ``status`` itself."""
    if status == "RUNNING" and process_alive(folder) is False:
        return "INTERRUPTED"
    return status


def workflow_of_process(home: Path) -> str | None:
    """The id of the workflow in ``home`` that this process drives, if any (the newest when
    several)."""
    me = json.loads(process_record())
    found = []
    for path in Path(home).glob(f"workflows/*/{PROCESS_FILE}"):
        record = _read(path.parent)
        if (record is not None and record.get("pid") == me["pid"]
                and record.get("started") == me["started"]):
            with contextlib.suppress(OSError):
                found.append((path.stat().st_mtime, path.parent.name))
    return max(found)[1] if found else None
