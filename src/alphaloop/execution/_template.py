"""The worker template: one clean, warmed process per parent that forks the parent's workers.

A worker needs ~1.15 s of CPU to import numpy, pandas, numba and the engine and to compile
its kernels before it serves. So a process that starts workers (`_launch.start_worker`)
starts, once, a *template* exactly as it would start a worker: a fresh ``python -P`` with the
scrubbed environment, no descriptor but its control socket, PR_SET_PDEATHSIG. The template
does the worker's imports and warm-up (`_worker.prepare`; it holds no market data: the
warm-up's sample bars are dropped again), and then only serves fork requests from its parent:
it never runs a task or strategy code, starts no strategy process and stays single-threaded
(it refuses to fork otherwise). A worker forked from it is ready in milliseconds.

Protocol, over a ``SOCK_SEQPACKET`` socket pair, one JSON object per packet:
    parent -> template: ``{"op": "init", "sys_path": [...]}`` first;
        ``{"op": "fork", "id": n, "limit": bytes, "tmpdir": path}`` with the new worker's
        inbox, outbox, sentinel and blind-worker descriptors (SCM_RIGHTS);
        ``{"op": "kill", "id": n}`` (SIGKILL, if that child was not reaped yet: no pid reuse race)
    template -> parent: ``{"op": "forked", "id": n, "pid": p}`` or ``{"op": "error", ...}``;
        ``{"op": "exit", "id": n, "code": c}`` when it reaped child ``n`` (``Popen`` return
        code: negative = killed by that signal), since the parent cannot wait for a grandchild.

The forked child closes the template's socket and every descriptor but stdio and the four it
was sent, takes its own TMPDIR, reseeds numpy's global generator, and runs the worker program
from where a fresh worker would be after its imports (`_worker.serve`): PR_SET_PDEATHSIG
(its parent is the template, whose own parent is the orchestrator, so the chain still ends
with the orchestrator), init message, serving. A template that dies takes its workers along
(they are killed by that signal: ``exitcode`` -9); the next `start_worker` starts a new template, or
falls back to a fresh interpreter per worker (also with ``ALPHALOOP_WORKER_TEMPLATE=0``).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import signal
import socket
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["Forked", "Template", "shared"]

BOOT = "import alphaloop.execution._template as t; t.main()"
_MAX_PACKET = 1 << 16
_MAX_RESTARTS = 3  # templates a process starts after its first one died
_KILLED = -signal.SIGKILL  # what a worker's PR_SET_PDEATHSIG delivers when its template died


# -- the parent's side -----------------------------------------------------------------------
class Template:
    """The parent's handle on its template process (thread-safe)."""

    def __init__(self, env: dict[str, str]) -> None:
        from alphaloop.execution._launch import start_paired

        self.env = env  # what it was started with: its workers' environment
        self.proc, self.sock = _in_keeper(
            lambda: start_paired(BOOT, [str(os.getpid())], env, socket.SOCK_SEQPACKET)
        )
        self.sock.setblocking(False)
        self.forks = 0  # children the template reported forked
        self.users = 0  # forked workers not released yet
        self.recent: deque[int] = deque(maxlen=256)  # their pids, the latest last
        self.dead = False
        self.error = ""  # why the last fork was refused
        self._lock = threading.Lock()
        self._next = 0
        self._pids: dict[int, int] = {}  # request id -> pid (0: never forked)
        self._codes: dict[int, int] = {}  # request id -> exit code
        self._send({"op": "init", "sys_path": list(sys.path)})

    def _send(self, msg: dict[str, Any], fds: tuple[int, ...] = ()) -> None:
        data = json.dumps(msg).encode()
        self.sock.setblocking(True)  # a full buffer waits: the template reads it soon
        try:
            if fds:
                socket.send_fds(self.sock, [data], list(fds))
            else:
                self.sock.send(data)
        finally:
            self.sock.setblocking(False)

    def fork(self, fds: tuple[int, ...], memory_limit: int, tmpdir: str) -> int:
        """Ask for a worker on ``fds`` (inbox, outbox, sentinel, blind socket); its request id.
        Returns at once: the template forks once it is warm. `OSError` if it is gone."""
        with self._lock:
            if self.dead:
                raise OSError("the worker template is gone")
            self._next += 1
            rid = self._next
            msg = {"op": "fork", "id": rid, "limit": memory_limit, "tmpdir": tmpdir}
            self._send({**msg, "cwd": os.getcwd()}, fds)
            self.users += 1
            return rid

    def kill(self, rid: int) -> None:
        with self._lock, contextlib.suppress(OSError):
            if not self.dead and rid not in self._codes:
                self._send({"op": "kill", "id": rid})

    def pump(self, timeout: float | None = 0.0) -> None:
        """Read what the template said, waiting up to ``timeout`` for something."""
        if timeout:
            with contextlib.suppress(OSError, ValueError):
                select.select([self.sock], [], [], timeout)
        with self._lock:
            while not self.dead:
                try:
                    data = self.sock.recv(_MAX_PACKET)
                except BlockingIOError:
                    return
                except OSError:
                    data = b""
                if not data:  # gone: its workers went with it (PR_SET_PDEATHSIG)
                    self.dead = True
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self.proc.wait(5.0)
                    for rid in self._pids.keys() - self._codes.keys():
                        self._codes[rid] = _KILLED
                    return
                msg = json.loads(data)
                if msg["op"] == "forked":
                    self._pids[msg["id"]] = msg["pid"]
                    self.forks += 1
                    self.recent.append(msg["pid"])
                elif msg["op"] == "error":
                    self.error = str(msg.get("error", ""))[:300]
                    self._pids[msg["id"]] = 0
                    self._codes[msg["id"]] = 1
                elif msg["op"] == "exit":
                    self._codes[msg["id"]] = msg["code"]

    def pid(self, rid: int, timeout: float = 120.0) -> int:
        """The pid of request ``rid``'s worker (0 if it was never forked)."""
        deadline = _now() + timeout
        self.pump()
        while rid not in self._pids and not self.dead and _now() < deadline:
            self.pump(min(1.0, max(0.0, deadline - _now())))
        return self._pids.get(rid, 0)

    def code(self, rid: int) -> int | None:
        """Request ``rid``'s worker's exit code, or None while it runs or is not forked yet;
        once the template is gone, a worker it had not reported is taken as killed."""
        self.pump()
        if rid in self._codes:
            return self._codes[rid]
        return _KILLED if self.dead else None

    def forget(self, rid: int) -> None:
        with self._lock:
            self.users -= 1
            self._pids.pop(rid, None)
            self._codes.pop(rid, None)

    def close(self) -> None:
        """End the template (it exits when its socket closes; its workers die with it)."""
        with self._lock:
            self.dead = True
            self.sock.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5.0)


class Forked:
    """A forked worker, as `subprocess.Popen` would show it (``pid``, ``poll``, ``wait``,
    ``kill``): what `_launch.WorkerProcess` wraps. ``sentinel`` reads end-of-file once the
    worker is gone; its exit code then follows from the template within moments."""

    def __init__(self, template: Template, rid: int, sentinel: int) -> None:
        self.template, self.rid = template, rid
        self._sentinel = os.dup(sentinel)
        self._code: int | None = None  # kept once known (the template forgets it on release)
        self._released = False
        self._pid: int | None = None

    @property
    def pid(self) -> int:
        if self._pid is None:
            pid = self.template.pid(self.rid, 0.0 if self._released else 120.0)
            if not pid and self._released:
                return 0
            self._pid = pid
        return self._pid

    def _gone(self, timeout: float | None) -> bool:
        if self._sentinel < 0:
            return True
        try:
            return bool(select.select([self._sentinel], [], [], timeout)[0])
        except (OSError, ValueError):
            return True

    def poll(self) -> int | None:
        if self._code is not None or self._released:
            return self._code
        code = self.template.code(self.rid)
        if code is None and self._gone(0.0):  # exited: the template reports it at once
            deadline = _now() + 10.0
            while code is None and _now() < deadline:
                self.template.pump(0.5)
                code = self.template.code(self.rid)
        self._code = code
        return code

    def wait(self, timeout: float | None = None) -> int:
        if not self._gone(timeout):
            raise subprocess.TimeoutExpired("worker", timeout or 0.0)
        code = self.poll()
        if code is None:
            raise subprocess.TimeoutExpired("worker", timeout or 0.0)
        return code

    def kill(self) -> None:
        self.template.kill(self.rid)

    def release(self) -> None:
        self.poll()
        self.template.pump()
        if self._pid is None and self.rid in self.template._pids:
            self._pid = self.template._pids[self.rid]
        if self._released:
            return
        self._released = True
        if self._sentinel >= 0:
            with contextlib.suppress(OSError):
                os.close(self._sentinel)
            self._sentinel = -1
        self.template.forget(self.rid)


def _now() -> float:
    import time

    return time.monotonic()


_SHARED: dict[tuple[tuple[str, str], ...], Template] = {}  # by the environment it serves
_SHARED_PID = 0  # the process they belong to (a fork of it has none)
_RESTARTS = 0
_SHARED_LOCK = threading.Lock()


def shared() -> Template | None:
    """This process's template for the environment a worker would get now, started on first
    use (a library reads some of the environment once, on import, so a template serves only
    the one it was started with; an idle template for another one is ended). None if it is
    switched off (``ALPHALOOP_WORKER_TEMPLATE=0``) or died too often: then a worker is a fresh
    interpreter."""
    global _SHARED_PID, _RESTARTS
    from alphaloop.execution._confine import scrubbed_env

    if os.environ.get("ALPHALOOP_WORKER_TEMPLATE", "1") == "0":
        return None
    env = scrubbed_env()
    key = tuple(sorted(env.items()))
    with _SHARED_LOCK:
        if os.getpid() != _SHARED_PID:
            _SHARED.clear()
            _SHARED_PID = os.getpid()
        tpl = _SHARED.get(key)
        if tpl is not None:
            tpl.pump()
            if not tpl.dead and tpl.proc.poll() is None:
                return tpl
            del _SHARED[key]
            # start another only if this one worked (a template that never forked is broken
            # here, and each attempt would cost every waiting worker a crash)
            if tpl.forks == 0 or _RESTARTS >= _MAX_RESTARTS:
                return None
            _RESTARTS += 1
        for other, idle in list(_SHARED.items()):
            if idle.users == 0:
                idle.close()
                del _SHARED[other]
        try:
            tpl = Template(env)
        except OSError:
            return None
        _SHARED[key] = tpl
        return tpl


# PR_SET_PDEATHSIG fires when the *thread* that started a process ends. The template outlives
# the pool (or Dask task) that first needed it, so a thread that lives as long as the process
# starts it.
_KEEPER: queue.SimpleQueue[tuple[Callable[[], Any], queue.SimpleQueue[Any]]] | None = None


def _in_keeper(fn: Callable[[], Any]) -> Any:
    global _KEEPER
    if threading.current_thread() is threading.main_thread():
        return fn()
    if _KEEPER is None:
        _KEEPER = queue.SimpleQueue()
        threading.Thread(
            target=_keep, args=(_KEEPER,), name="alphaloop-template", daemon=True
        ).start()
    answer: queue.SimpleQueue[Any] = queue.SimpleQueue()
    _KEEPER.put((fn, answer))
    ok, value = answer.get()
    if not ok:
        raise value
    return value


def _keep(requests: queue.SimpleQueue[tuple[Callable[[], Any], queue.SimpleQueue[Any]]]) -> None:
    while True:
        fn, answer = requests.get()
        try:
            answer.put((True, fn()))
        except BaseException as exc:  # handed to the caller
            answer.put((False, exc))


# -- the template's side ----------------------------------------------------------------------
def main() -> None:
    """Entry point of the template program (see the module docstring)."""
    from alphaloop.execution import _worker

    sock_fd, parent = int(sys.argv[1]), int(sys.argv[2])
    _worker.die_with_parent()
    if os.getppid() != parent:
        os._exit(0)
    sock = socket.socket(fileno=sock_fd)
    init = json.loads(sock.recv(_MAX_PACKET) or b"{}")
    if init.get("op") != "init":
        return
    sys.path[:] = list(init["sys_path"])
    _worker.prepare()
    from alphaloop import data

    data.clear_cache()  # the warm-up's sample bars: a template holds no market data
    import gc

    gc.collect()
    _serve(sock, _threads())


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:  # pragma: no cover - non-Linux
        return threading.active_count()


def _serve(sock: socket.socket, threads: int) -> None:
    """Serve fork requests until the parent closes the socket. ``threads``: how many the
    warm-up left running (the libraries' own, as in a fresh worker: a fork copies only the
    calling thread, and they prepare for it); the template never forks with more."""
    wake_r, wake_w = os.pipe()
    for fd in (wake_r, wake_w):
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, int] = {}  # pid -> request id, until reaped
    pids: dict[int, int] = {}  # request id -> pid
    out: deque[bytes] = deque()
    while True:
        readable, _w, _x = select.select([sock, wake_r], [sock] if out else [], [], None)
        if wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 512)
        while True:  # reap
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if not pid:
                break
            rid = children.pop(pid, None)
            if rid is not None:
                pids.pop(rid, None)
                code = os.waitstatus_to_exitcode(status)
                out.append(json.dumps({"op": "exit", "id": rid, "code": code}).encode())
        if sock in readable:
            try:
                data, fds, _flags, _addr = socket.recv_fds(sock, _MAX_PACKET, 8)
            except OSError:
                data, fds = b"", []
            if not data:  # the parent is gone or done: so are we (and our children with us)
                os._exit(0)
            msg = json.loads(data)
            if msg["op"] == "fork":
                reply = _fork(sock, msg, fds, (wake_r, wake_w), children, pids, threads)
                out.append(json.dumps(reply).encode())
            elif msg["op"] == "kill" and msg["id"] in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pids[msg["id"]], signal.SIGKILL)
        while out:  # (a full socket: the rest waits until it is writable)
            try:
                sock.send(out[0], socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            except OSError:
                os._exit(0)
            out.popleft()


def _fork(
    sock: socket.socket,
    msg: dict[str, Any],
    fds: list[int],
    own: tuple[int, int],
    children: dict[int, int],
    pids: dict[int, int],
    threads: int,
) -> dict[str, Any]:
    rid = msg["id"]
    try:
        if len(fds) != 4:
            raise OSError(f"a fork request carries 4 descriptors, got {len(fds)}")
        if _threads() > threads:
            raise OSError("the worker template started a thread: it forks no more")
        pid = os.fork()
    except OSError as exc:
        for fd in fds:
            os.close(fd)
        return {"op": "error", "id": rid, "error": str(exc)}
    if pid == 0:
        _child(sock, msg, fds, own)
    for fd in fds:
        os.close(fd)
    children[pid] = rid
    pids[rid] = pid
    return {"op": "forked", "id": rid, "pid": pid}


def _child(sock: socket.socket, msg: dict[str, Any], fds: list[int], own: tuple[int, int]) -> None:
    """The forked worker: never returns."""
    code = 1
    try:
        from alphaloop.execution import _jail, _worker

        template = os.getppid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        sock.close()
        for fd in own:
            os.close(fd)
        _jail._close_other_fds({0, 1, 2, *fds})
        with contextlib.suppress(OSError):  # where the parent is now, as a new worker would be
            os.chdir(msg["cwd"])
        os.environ["TMPDIR"] = msg["tmpdir"]
        import tempfile

        tempfile.tempdir = None  # computed again, from TMPDIR
        import numpy as np

        np.random.seed()  # not the template's (and every sibling's) stream
        inbox, outbox, _sentinel, blind = fds
        _worker.serve(inbox, outbox, int(msg["limit"]), blind, parent=template)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
