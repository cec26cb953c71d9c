"""A killed run's worker folders (each worker's TMPDIR) do not pile up: the next process that
starts workers removes those of parents that are gone, and only those."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from alphaloop.execution import _launch

_KILLED_PARENT = """
import sys, time
from alphaloop.execution._launch import start_worker
worker, inbox, outbox = start_worker(None)
print(worker.tmp_root, flush=True)
time.sleep(600)
"""


def test_a_killed_parents_folder_is_swept_and_a_live_ones_kept(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_PARENT], stdout=subprocess.PIPE,
                            env=env, text=True)
    try:
        left = Path(proc.stdout.readline().strip())  # type: ignore[union-attr]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
    assert left.is_dir() and left.parent == tmp_path  # nothing cleaned up after a SIGKILL

    ns = _launch._pid_namespace()
    live = tmp_path / f"alphaloop-worker-{ns}-{os.getpid()}-abc"  # this process: alive
    elsewhere = tmp_path / f"alphaloop-worker-1{ns}-{proc.pid}-abc"  # another pid namespace
    unrelated = tmp_path / "alphaloop-worker-oldstyle"
    for d in (live, elsewhere, unrelated):
        d.mkdir()
    old = tempfile.tempdir
    tempfile.tempdir = str(tmp_path)
    try:
        assert _launch.sweep_stale_folders() == 1
    finally:
        tempfile.tempdir = old
    assert not left.exists()
    assert live.is_dir() and elsewhere.is_dir() and unrelated.is_dir()
