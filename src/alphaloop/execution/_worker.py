"""The loop run by each local worker process.

Protocol (parent -> worker, over the worker's inbox pipe):
    ``("fn", blob)``                 task function, pickled by reference
    ``("tasks", [(task_id, attempt, payload_json), ...])``   run these in order
    ``("stop",)``                    finish the running task, then exit (rest left unstarted)
Worker -> parent, one message per task, in order:
    ``(task_id, attempt, ok, body, traceback, started_wall, elapsed, rss, fatal)``
    ``body`` is the result's JSON text (ok) or the error message; ``fatal`` means the worker
    exits after this message (memory limit).

A reader thread drains the inbox into a local queue so the parent never blocks on a full pipe.
The worker ignores SIGINT (the parent decides what Ctrl-C means) and asks the kernel to kill
it if its parent dies, so an orchestrator crash leaves no orphans running tasks.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import queue
import resource
import signal
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from multiprocessing.connection import Connection
from typing import Any

_STOP = object()
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_NESTED_THREADS_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def _die_with_parent() -> None:
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


def run_one(fn: Any, payload: str, memory_limit: int | None) -> tuple[bool, str, str | None, bool]:
    """Run ``fn`` on one task payload; never raises.

    Returns ``(ok, body, traceback, fatal)`` where body is the result's JSON or the error.
    """
    from alphaloop.execution._base import format_bytes
    from alphaloop.execution._task import BacktestTask

    try:
        task = BacktestTask.model_validate_json(payload)
        result = fn(task)
        if not isinstance(result, Mapping):
            raise TypeError(
                f"task function {getattr(fn, '__qualname__', fn)!r} must return a "
                f"dict, got {type(result).__name__}"
            )
        return True, json.dumps(dict(result)), None, False
    except MemoryError as exc:
        tb = traceback.format_exc()
        detail = f"MemoryError: {exc}" if str(exc) else "MemoryError"
        if memory_limit:
            return False, f"exceeded memory limit {format_bytes(memory_limit)} ({detail})", tb, True
        return False, f"ran out of memory ({detail})", tb, True
    except BaseException as exc:
        msg = str(exc).splitlines()[0] if str(exc) else ""
        return False, f"{type(exc).__name__}: {msg}".rstrip(": "), traceback.format_exc(), False


class _Unloadable:
    """Stands in for a task function that could not be unpickled in the worker."""

    def __init__(self, why: str) -> None:
        self.why = why

    def __call__(self, task: Any) -> Any:
        raise RuntimeError(f"cannot load the task function in the worker: {self.why}")


def worker_main(inbox: Connection, outbox: Connection, memory_limit: int | None) -> None:
    """Entry point of a worker process (see the module docstring)."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for var in _NESTED_THREADS_ENV:
        os.environ.setdefault(var, "1")
    if memory_limit:
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        lim = memory_limit if hard == resource.RLIM_INFINITY else min(memory_limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (lim, hard))

    todo: queue.SimpleQueue[Any] = queue.SimpleQueue()
    stopping = threading.Event()

    def reader() -> None:
        while True:
            try:
                msg = inbox.recv()
            except (EOFError, OSError):
                msg = ("stop",)
            if msg[0] == "stop":
                stopping.set()
                todo.put(_STOP)
                return
            todo.put(msg)

    threading.Thread(target=reader, name="alphaloop-inbox", daemon=True).start()
    fn: Any = None
    while True:
        msg = todo.get()
        if msg is _STOP or stopping.is_set():
            break
        if msg[0] == "fn":
            try:
                fn = pickle.loads(msg[1])
            except Exception as exc:
                fn = _Unloadable(f"{type(exc).__name__}: {exc}")
            continue
        for task_id, attempt, payload in msg[1]:
            if stopping.is_set():
                break
            started, t0 = time.time(), time.perf_counter()
            ok, body, tb, fatal = run_one(fn, payload, memory_limit)
            elapsed = time.perf_counter() - t0
            try:
                outbox.send((task_id, attempt, ok, body, tb, started, elapsed, rss_bytes(), fatal))
            except (OSError, ValueError):
                return
            if fatal:
                with contextlib.suppress(OSError):
                    outbox.close()
                os._exit(0)
        else:
            continue
        break
