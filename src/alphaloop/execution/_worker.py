"""The program each local worker runs: a clean, single-threaded template process.

Started by `_launch.start_worker` (a new interpreter with a scrubbed environment, or forked
from the worker template `_template`, which did `prepare` once), it imports numpy, pandas,
TA-Lib and the engine, compiles the engine's kernels, and then runs the tasks it is sent.
It never runs strategy code itself: `task_runner.run_task` asks `_jail` to fork a
kernel-confined child of this process for that, and measures the child's positions here, with
prices the child never held. Forking is why the worker has no threads (a fork copies only the
calling thread, and whatever locks the others held stay held in the child). The look-ahead
check's cut runs happen in neither: `run_task` sends the cuts, one window at a time, to the
strategy processes of a second clean interpreter that never loads market data (the blind
worker, `_blind`, started beside this one).

Arguments: the inbox and outbox descriptors, the memory limit (0: none) and, from
`_launch.start_worker`, the socket to the blind worker started beside it.

Protocol (parent -> worker, over the inbox pipe):
    ``("init", {"sys_path": [...], "parent": pid})``   first message: the parent's import path
    ``("fn", blob)``                 task function, pickled by reference
    ``("tasks", [(task_id, attempt, payload_json), ...])``   run these in order
    ``("stop",)``                    finish the running task, then exit (rest left unstarted)
Worker -> parent, one message per task, in order:
    ``(task_id, attempt, ok, body, traceback, started_wall, elapsed, rss, fatal, kind)``
    ``body`` is the result's JSON text (ok) or the error message; ``fatal`` means the worker
    exits after this message (memory limit); ``kind`` is a `FailureKind` value (retry or not).

The inbox is read whenever the worker waits (between tasks, and while a confined child
computes), so the parent never blocks long on a full pipe. The worker ignores SIGINT (the
parent decides what Ctrl-C means) and asks the kernel to kill it if its parent dies, so an
orchestrator crash leaves no orphans running tasks.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import resource
import select
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Mapping
from multiprocessing.connection import Connection
from typing import Any

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_NESTED_THREADS_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def die_with_parent() -> None:
    """Linux: deliver SIGKILL to this process when its parent exits."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        pass


_STATM: tuple[int, int] | None = None  # (pid, fd of /proc/self/statm) kept open


def rss_bytes() -> int:
    """Resident set size of this process: one ``pread`` of an open ``/proc/self/statm``
    (~2 us; opening the file each time cost ~20 us per task after a backtest)."""
    global _STATM
    pid = os.getpid()
    try:
        if _STATM is None or _STATM[0] != pid:  # first call, or a forked child
            _STATM = (pid, os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC))
        return int(os.pread(_STATM[1], 128, 0).split()[1]) * _PAGE
    except OSError:  # pragma: no cover - non-Linux
        import psutil

        return int(psutil.Process().memory_info().rss)


def vm_bytes() -> int:
    """Address space this process uses now (what ``RLIMIT_AS`` counts)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[0]) * _PAGE
    except OSError:  # pragma: no cover - non-Linux
        import psutil

        return int(psutil.Process().memory_info().vms)


def set_memory_budget(budget: int | None) -> None:
    """Let this process allocate ``budget`` bytes of address space beyond what it uses now
    (``RLIMIT_AS`` soft limit; None: no limit). A memory limit is a budget on top of the
    interpreter and its libraries, whose own address space (numba and LLVM reserve ~2 GB
    of it) says nothing about what a task needs."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if budget is None:
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
        return
    want = vm_bytes() + budget
    lim = want if hard == resource.RLIM_INFINITY else min(want, hard)
    resource.setrlimit(resource.RLIMIT_AS, (lim, hard))


def failure_kind(exc: BaseException) -> str:
    """The `FailureKind` of an exception raised while running a task."""
    from alphaloop.errors import AlphaloopError
    from alphaloop.execution._task import FailureKind

    kind = getattr(exc, "failure_kind", None)
    if kind is not None:
        return str(FailureKind(kind).value)
    if isinstance(exc, MemoryError):
        return FailureKind.LIMIT.value
    if isinstance(exc, AlphaloopError):
        return FailureKind.PERMANENT.value
    return FailureKind.TRANSIENT.value


def run_one(
    fn: Any, payload: str, memory_limit: int | None
) -> tuple[bool, str, str | None, bool, str]:
    """Run ``fn`` on one task payload; never raises.

    Returns ``(ok, body, traceback, fatal, kind)`` where body is the result's JSON or the error.
    """
    from alphaloop.execution._base import format_bytes
    from alphaloop.execution._task import BacktestTask

    try:
        task = _PARSED.pop(payload, None) or BacktestTask.model_validate_json(payload)
        result = fn(task)
        if not isinstance(result, Mapping):
            raise TypeError(
                f"task function {getattr(fn, '__qualname__', fn)!r} must return a "
                f"dict, got {type(result).__name__}"
            )
        return True, json.dumps(dict(result)), None, False, ""
    except MemoryError as exc:
        tb = traceback.format_exc()
        detail = f"MemoryError: {exc}" if str(exc) else "MemoryError"
        kind = failure_kind(exc)
        if memory_limit:
            msg = f"exceeded memory limit {format_bytes(memory_limit)} ({detail})"
            return False, msg, tb, True, kind
        return False, f"ran out of memory ({detail})", tb, True, kind
    except BaseException as exc:
        msg = str(exc).splitlines()[0] if str(exc) else ""
        if getattr(exc, "verbatim", False):  # already "<Type>: message" from another worker
            body = msg
        else:
            body = f"{type(exc).__name__}: {msg}".rstrip(": ")
        return False, body, traceback.format_exc(), False, failure_kind(exc)


_PARSED: dict[str, Any] = {}  # payload -> task, parsed ahead for a prefetch
_AHEAD = 8  # tasks a prefetch looks at behind the running one


def _prefetch(fn: Any, batch: list[tuple[str, int, str]], i: int) -> None:
    """Let ``fn`` prepare the running task and the ones queued behind it (``fn.prefetch``,
    if it has one: `task_runner.run_task` sends their jobs to its strategy process early)."""
    prefetch = getattr(fn, "prefetch", None)
    if prefetch is None or i + 1 >= len(batch):
        return
    from alphaloop.execution._task import BacktestTask

    tasks = []
    for _tid, _attempt, payload in batch[i : i + 1 + _AHEAD]:
        task = _PARSED.get(payload)
        if task is None:
            try:
                task = _PARSED[payload] = BacktestTask.model_validate_json(payload)
            except Exception:
                break
        tasks.append(task)
    with contextlib.suppress(Exception):
        prefetch(tasks)
    while len(_PARSED) > 4 * _AHEAD:
        _PARSED.pop(next(iter(_PARSED)))


class _Unloadable:
    """Stands in for a task function that could not be unpickled in the worker."""

    def __init__(self, why: str) -> None:
        self.why = why

    def __call__(self, task: Any) -> Any:
        raise RuntimeError(f"cannot load the task function in the worker: {self.why}")


_WARMED = False  # set once `_warm_up` ran (in a worker forked from `_template`: before the fork)


def _warm_up() -> None:
    """Import and compile, once, what every strategy process forked from here will use."""
    global _WARMED
    if _WARMED:
        return
    _WARMED = True
    import numpy as np
    import pandas as pd

    from alphaloop.backtest import engine, indicators, runner, sandbox, strategy  # noqa: F401
    from alphaloop.data import load

    with contextlib.suppress(Exception):
        indicators.warm_up()
        bars = load("GOOG").iloc[:60]
        engine.run(bars, np.zeros(len(bars)))
        pd.Timestamp("2020-01-01", tz="UTC").tz_convert(None)


class _Inbox:
    """The parent's messages, read without blocking whenever the worker waits."""

    def __init__(self, conn: Connection) -> None:
        from alphaloop.execution._pipes import FrameReader

        self.conn = conn
        self.reader = FrameReader(conn)
        self.fd = conn.fileno()
        self.todo: deque[Any] = deque()
        self.stopping = False

    def drain(self) -> bool:
        """Take every waiting message (never blocks); False once the parent is gone."""
        for msg in self.reader.read():
            if msg[0] == "stop":
                self.stopping = True
            else:
                self.todo.append(msg)
        if self.reader.eof:
            self.stopping = True
        return not self.reader.eof

    def wait(self) -> None:
        """Block until a message arrives or the parent is gone."""
        while not self.todo and not self.stopping:
            select.select([self.fd], [], [])
            self.drain()


def main() -> None:
    """Entry point of the worker program (see the module docstring)."""
    inbox_fd, outbox_fd, memory_limit = (int(a) for a in sys.argv[1:4])
    # the socket to the blind worker `_launch` started beside this one
    blind_fd = int(sys.argv[4]) if len(sys.argv) > 4 else None
    serve(inbox_fd, outbox_fd, memory_limit, blind_fd)


def prepare() -> None:
    """What a worker does before its first message, and the imports and warm-up it does before
    it says ready: `_template` runs this once, and the workers it forks skip it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for var in _NESTED_THREADS_ENV:
        os.environ.setdefault(var, "1")
    import numpy  # noqa: F401
    import pandas  # noqa: F401

    from alphaloop.execution import _blind, _jail, task_runner  # noqa: F401
    from alphaloop.execution._task import BacktestTask  # noqa: F401

    _warm_up()


def serve(
    inbox_fd: int,
    outbox_fd: int,
    memory_limit: int,
    blind_fd: int | None,
    parent: int | None = None,
) -> None:
    """Be a worker on these descriptors until told to stop (``parent``: exit at once unless
    the process that started this one still runs; a forked worker's is its template)."""
    if blind_fd is not None:
        from alphaloop.execution import _blind

        _blind.set_companion(blind_fd)
    die_with_parent()
    if parent is not None and os.getppid() != parent:
        os._exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for var in _NESTED_THREADS_ENV:
        os.environ.setdefault(var, "1")
    limit = memory_limit or None
    inbox = _Inbox(Connection(inbox_fd, writable=False))
    outbox = Connection(outbox_fd, readable=False)
    inbox.wait()
    if inbox.todo and inbox.todo[0][0] == "init":
        init = inbox.todo.popleft()[1]
        sys.path[:] = list(init["sys_path"])
    # the libraries every task needs, imported before the memory budget starts to count
    import numpy  # noqa: F401
    import pandas  # noqa: F401

    from alphaloop.execution import _jail
    from alphaloop.execution._task import BacktestTask  # noqa: F401

    set_memory_budget(limit)

    def warm_up() -> None:
        set_memory_budget(None)  # the libraries' own address space is not the tasks' budget
        try:
            _warm_up()
        finally:
            set_memory_budget(limit)

    _jail.become_host(idle_fd=inbox.fd, on_idle=inbox.drain, memory_limit=limit, warm_up=warm_up)
    # the task function comes next; one that can warm up does so before "ready", so that
    # the parent's clock (a task's timeout) never counts the imports and compiles
    inbox.wait()
    fn: Any = None
    if inbox.todo and inbox.todo[0][0] == "fn":
        fn = _load_fn(inbox.todo.popleft()[1])
        inbox.drain()
        if not inbox.stopping:  # (told to stop while importing: no warm-up for nothing)
            with contextlib.suppress(Exception):  # its first task reports what went wrong
                getattr(fn, "warm_up", lambda: None)()
    outbox.send(("ready",))
    try:
        _serve(inbox, outbox, limit, fn)
    finally:
        from alphaloop.execution import _blind

        _blind.shutdown()
        _jail.shutdown()


def _load_fn(blob: bytes) -> Any:
    try:
        return pickle.loads(blob)
    except Exception as exc:
        return _Unloadable(f"{type(exc).__name__}: {exc}")


def _serve(inbox: _Inbox, outbox: Connection, memory_limit: int | None, fn: Any) -> None:
    while True:
        inbox.wait()
        if inbox.stopping:
            return
        msg = inbox.todo.popleft()
        if msg[0] == "fn":
            fn = _load_fn(msg[1])
            continue
        if msg[0] != "tasks":
            continue
        batch = msg[1]
        for i, (task_id, attempt, payload) in enumerate(batch):
            inbox.drain()
            if inbox.stopping:
                return
            started, t0 = time.time(), time.perf_counter()
            _prefetch(fn, batch, i)
            ok, body, tb, fatal, kind = run_one(fn, payload, memory_limit)
            elapsed = time.perf_counter() - t0
            try:
                outbox.send(
                    (task_id, attempt, ok, body, tb, started, elapsed, rss_bytes(), fatal, kind)
                )
            except (OSError, ValueError):
                return
            if fatal:
                with contextlib.suppress(OSError):
                    outbox.close()
                os._exit(0)
