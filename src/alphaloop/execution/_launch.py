"""Start a clean worker process: a new interpreter, not a fork, with a scrubbed environment.

Why not ``fork`` or ``forkserver``: a worker is the template every confined strategy process
is forked from, so it must hold nothing the orchestrator had — no SQLite connections or
threads (the reason the pool never forked the orchestrator), and no API key or other secret
from the orchestrator's environment, which a forked process keeps in its memory where strategy
code could read it. So the worker is a fresh ``python -P -c ...`` started with
`_confine.scrubbed_env`; it then imports numpy, pandas, TA-Lib and the engine once, before any
strategy process is forked from it.

The parent talks to it over two pipes (``multiprocessing.connection.Connection`` framing) and
watches a third whose write end only the worker holds: it reads as end-of-file the moment the
worker is gone (the classic sentinel pipe; portable, unlike pidfd). The worker's exit status
is its ``Popen`` return code (negative: killed by that signal).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from multiprocessing.connection import Connection

from alphaloop.execution._pipes import widen

__all__ = ["WorkerProcess", "start_worker"]

_BOOT = "import alphaloop.execution._worker as w; w.main()"


class WorkerProcess:
    """A started worker: ``pid``, ``sentinel`` (readable once it exited), ``exitcode``
    (None while alive; -N if killed by signal N), ``kill``, ``join``, ``is_alive``."""

    def __init__(self, popen: subprocess.Popen[bytes], sentinel: int, tmp_root: str) -> None:
        self._popen = popen
        self.pid = popen.pid
        self.sentinel = sentinel
        self.tmp_root = tmp_root

    @property
    def exitcode(self) -> int | None:
        return self._popen.poll()

    def is_alive(self) -> bool:
        return self._popen.poll() is None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, OSError):
            self._popen.kill()

    def join(self, timeout: float | None = None) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout)

    def close(self) -> None:
        """Close the sentinel and remove the worker's temporary folder (after the process was
        joined: a killed worker cannot clean up after its strategy processes)."""
        if self.sentinel >= 0:
            with contextlib.suppress(OSError):
                os.close(self.sentinel)
        self.sentinel = -1
        shutil.rmtree(self.tmp_root, ignore_errors=True)


def start_worker(memory_limit: int | None) -> tuple[WorkerProcess, Connection, Connection]:
    """Start a worker (``alphaloop.execution._worker.main``); returns the process, the pipe
    to send it messages and the pipe it answers on. The worker imports for about a second
    before it reads its first message; messages sent meanwhile wait in the pipe."""
    from alphaloop.execution._confine import scrubbed_env

    # the worker's TMPDIR, under which each strategy process gets its private folder:
    # traversable (not listable) by the unprivileged user a confined process may drop to
    tmp_root = tempfile.mkdtemp(prefix="alphaloop-worker-")
    os.chmod(tmp_root, 0o711)
    env = {**scrubbed_env(), "TMPDIR": tmp_root}
    inbox_r, inbox_w = os.pipe()
    outbox_r, outbox_w = os.pipe()
    sent_r, sent_w = os.pipe()
    child_fds = (inbox_r, outbox_w, sent_w)
    try:
        popen = subprocess.Popen(
            [
                sys.executable,
                "-P",
                "-c",
                _BOOT,
                str(inbox_r),
                str(outbox_w),
                str(memory_limit or 0),
            ],
            env=env,
            pass_fds=child_fds,
            stdin=subprocess.DEVNULL,
            close_fds=True,
        )
    except BaseException:
        for fd in (*child_fds, inbox_w, outbox_r, sent_r):
            os.close(fd)
        shutil.rmtree(tmp_root, ignore_errors=True)
        raise
    for fd in child_fds:
        os.close(fd)
    inbox, outbox = Connection(inbox_w, readable=False), Connection(outbox_r, writable=False)
    widen(inbox)
    widen(outbox)
    inbox.send(("init", {"sys_path": list(sys.path), "parent": os.getpid()}))
    return WorkerProcess(popen, sent_r, tmp_root), inbox, outbox
