"""Start a clean worker process: a new interpreter, not a fork, with a scrubbed environment.

Why not ``fork`` or ``forkserver``: a worker is the template every confined strategy process
is forked from, so it must hold nothing the orchestrator had — no SQLite connections or
threads (the reason the pool never forked the orchestrator), and no API key or other secret
from the orchestrator's environment, which a forked process keeps in its memory where strategy
code could read it. So the worker is a fresh ``python -P -c ...`` started with
`_confine.scrubbed_env`; it then imports numpy, pandas, TA-Lib and the engine once, before any
strategy process is forked from it. Those imports cost ~1.15 s of CPU, so they are paid once
per process: the first `start_worker` starts a *worker template* (`_template`) the same clean
way, and every worker is then forked from it (ready in milliseconds). Without a usable template
(``ALPHALOOP_WORKER_TEMPLATE=0``, a changed environment, one that died too often) each worker
is a fresh interpreter.

The parent talks to it over two pipes (``multiprocessing.connection.Connection`` framing) and
watches a third whose write end only the worker holds: it reads as end-of-file the moment the
worker is gone (the classic sentinel pipe; portable, unlike pidfd). The worker's exit status
is its ``Popen`` return code (negative: killed by that signal), or the same number as its
template reaped it (`_template.Forked`).

Beside each worker, `start_worker` starts its *blind worker* (`_blind`: the look-ahead check's
cut runs, in processes that never hold market data), the same way, connected to the worker by
a socket pair. It stays a bare interpreter until the worker's first look-ahead job. Both are
descendants of the caller (a forked worker through its template); `WorkerProcess`
kills, joins and reaps the two together (the blind worker also ends when the worker does).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from multiprocessing.connection import Connection

from alphaloop.execution._pipes import widen
from alphaloop.execution._template import Forked

__all__ = ["WorkerProcess", "start_interpreter", "start_worker"]

_BOOT = "import alphaloop.execution._worker as w; w.main()"


class WorkerProcess:
    """A started worker: ``pid``, ``sentinel`` (readable once it exited), ``exitcode``
    (None while alive; -N if killed by signal N), ``kill``, ``join``, ``is_alive``. These
    are the worker's; ``kill``, ``join`` and ``close`` take its blind worker along."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes] | Forked,
        sentinel: int,
        tmp_root: str,
        blind: subprocess.Popen[bytes] | None = None,
    ) -> None:
        self._popen = popen
        self._blind = blind
        self.sentinel = sentinel
        self.tmp_root = tmp_root

    @property
    def pid(self) -> int:
        """The worker's pid (a forked one's once its template forked it: waits for that)."""
        return self._popen.pid

    @property
    def forked(self) -> bool:
        """Whether the worker was forked from this process's template (`_template`)."""
        return isinstance(self._popen, Forked)

    @property
    def exitcode(self) -> int | None:
        return self._popen.poll()

    def is_alive(self) -> bool:
        return self._popen.poll() is None

    def kill(self) -> None:
        for p in (self._popen, self._blind):
            if p is not None:
                with contextlib.suppress(ProcessLookupError, OSError):
                    p.kill()

    def join(self, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` for the worker; once it is gone, for its blind worker too
        (which ends with it; killed after 2 s)."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout)
        if self._blind is not None and self._popen.poll() is not None:
            _end(self._blind, 2.0)

    def close(self) -> None:
        """Close the sentinel and remove the worker's temporary folder (after the process was
        joined: a killed worker cannot clean up after its strategy processes); the blind worker
        is killed if it still runs."""
        if self._blind is not None:
            _end(self._blind, 0.0)
        if self.sentinel >= 0:
            with contextlib.suppress(OSError):
                os.close(self.sentinel)
        self.sentinel = -1
        if isinstance(self._popen, Forked):
            self._popen.release()
        shutil.rmtree(self.tmp_root, ignore_errors=True)


def _end(proc: subprocess.Popen[bytes], grace: float) -> None:
    """Reap ``proc``, killing it if it still runs after ``grace`` seconds."""
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5.0)


def start_interpreter(
    boot: str, args: list[str], pass_fds: tuple[int, ...], env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """A fresh ``python -P -c boot args...`` with exactly ``env`` (give it `scrubbed_env`'s),
    stdin on ``/dev/null`` and no descriptor but ``pass_fds`` (besides stdout and stderr):
    the way every clean process (a worker, `_blind`'s blind worker) starts."""
    return subprocess.Popen(
        [sys.executable, "-P", "-c", boot, *args],
        env=env,
        pass_fds=pass_fds,
        stdin=subprocess.DEVNULL,
        close_fds=True,
    )


_TMP_PREFIX = "alphaloop-worker-"  # then <pid namespace>-<pid of the parent>-<random>
_SWEPT = False


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:[").removesuffix("]")
    except OSError:  # pragma: no cover - non-Linux
        return "0"


def sweep_stale_folders() -> int:
    """Remove the worker folders (`start_worker`'s ``TMPDIR``) of parents that died without
    removing them (SIGKILL, a power cut); how many. Only this user's, and only those whose
    parent was in this pid namespace (a container sharing ``/tmp`` numbers its own processes)
    and is gone: a live parent's, or a reused pid's, stay. Done once per process."""
    import psutil

    root, ns, removed = tempfile.gettempdir(), _pid_namespace(), 0
    try:
        names = os.listdir(root)
    except OSError:
        return 0
    for name in names:
        parts = name.removeprefix(_TMP_PREFIX).split("-")
        if not name.startswith(_TMP_PREFIX) or len(parts) != 3 or parts[0] != ns:
            continue
        if not parts[1].isdigit() or psutil.pid_exists(int(parts[1])):
            continue
        path = os.path.join(root, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid():
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def start_paired(
    boot: str, args: list[str], env: dict[str, str], kind: int = socket.SOCK_STREAM
) -> tuple[subprocess.Popen[bytes], socket.socket]:
    """`start_interpreter` with one end of a new socket pair of ``kind``, whose descriptor
    number it is given as its first argument (before ``args``); returns the process and the
    other end. Nothing leaks if the start fails."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, kind)
    try:
        proc = start_interpreter(boot, [str(theirs.fileno()), *args], (theirs.fileno(),), env)
    except BaseException:
        mine.close()
        raise
    finally:
        theirs.close()
    return proc, mine


def start_worker(memory_limit: int | None) -> tuple[WorkerProcess, Connection, Connection]:
    """Start a worker (``alphaloop.execution._worker.main``) and its blind worker
    (``_blind.main``); returns the process, the pipe to send it messages and the pipe it
    answers on. The worker imports for about a second before it reads its first message;
    messages sent meanwhile wait in the pipe."""
    from alphaloop.execution import _blind
    from alphaloop.execution._confine import scrubbed_env

    # the worker's TMPDIR, under which each strategy process gets its private folder:
    # traversable (not listable) by the unprivileged user a confined process may drop to
    global _SWEPT
    if not _SWEPT:
        _SWEPT = True
        sweep_stale_folders()
    tmp_root = tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{_pid_namespace()}-{os.getpid()}-")
    os.chmod(tmp_root, 0o711)
    env = {**scrubbed_env(), "TMPDIR": tmp_root}
    inbox_r, inbox_w = os.pipe()
    outbox_r, outbox_w = os.pipe()
    sent_r, sent_w = os.pipe()
    to_blind, blind_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    child_fds = (inbox_r, outbox_w, sent_w, to_blind.fileno())
    limit = str(memory_limit or 0)
    blind: subprocess.Popen[bytes] | None = None
    try:
        blind = start_interpreter(
            _blind.BOOT,
            [str(blind_end.fileno()), limit, str(os.getpid())],
            (blind_end.fileno(),),
            env,
        )
        popen = _from_template(child_fds, memory_limit or 0, tmp_root, sent_r)
        if popen is None:
            popen = start_interpreter(
                _BOOT, [str(inbox_r), str(outbox_w), limit, str(to_blind.fileno())], child_fds, env
            )
    except BaseException:
        if blind is not None:
            _end(blind, 0.0)
        for fd in (inbox_r, outbox_w, sent_w, inbox_w, outbox_r, sent_r):
            os.close(fd)
        to_blind.close()
        blind_end.close()
        shutil.rmtree(tmp_root, ignore_errors=True)
        raise
    for fd in child_fds[:3]:
        os.close(fd)
    to_blind.close()
    blind_end.close()
    inbox, outbox = Connection(inbox_w, readable=False), Connection(outbox_r, writable=False)
    widen(inbox)
    widen(outbox)
    inbox.send(("init", {"sys_path": list(sys.path), "parent": os.getpid()}))
    return WorkerProcess(popen, sent_r, tmp_root, blind), inbox, outbox


def _from_template(
    child_fds: tuple[int, ...], memory_limit: int, tmp_root: str, sentinel: int
) -> Forked | None:
    """The worker, forked from this process's template; None if there is none to use."""
    from alphaloop.execution import _template

    tpl = _template.shared()
    if tpl is None:
        return None
    try:
        return Forked(tpl, tpl.fork(child_fds, memory_limit, tmp_root), sentinel)
    except OSError:
        return None
