"""The look-ahead check's cut runs, in processes that never held a bar beyond the cut.

Why
---
The look-ahead check (`backtest.lookahead`) re-runs a strategy on the data cut at about 20
dates and compares the positions with the full-data ones. Asked of the strategy's own process
after its full run, the verdict is given by code that has just seen the whole series: it can
answer the cut runs from a cache filled during the full run
(``tests/hostile/lookahead_cache_cheat.py`` did: Sharpe 8.6, the best of its run), read the
data file (readable there), or scan its memory (a fork of a worker that holds the bars). So the
worker asks a *blind* process instead, and decides the verdict itself:

    worker (`_worker`: loads the bars)            blind worker (`main` below)
      full positions <- its strategy process        a fresh interpreter, scrubbed environment;
      cuts = lookahead.cut_points(full)             never loads market data (its warm-up uses
      job: code, parameters, + 2 new pipes  ---->   synthetic bars), never reads a window;
                                                    forks one child per job, hands it the pipes
      window 1 = bars[:k1]  ------------------->  blind strategy process: confined; the data
      <--------- positions on window 1              file and the embedded sample unreadable;
      window 2 = bars[k1:k2] (appended) ------->    rebuilds each window as `data.load` shapes
      <--------- positions on window 2              bars and runs the strategy on it
      ...
      compares each with full[:k] (`lookahead.differs`): the dates that differ are the task's
      ``lookahead``, as `lookahead_check` finds them (a cut where the strategy fails counts)

What the blind strategy process can know
----------------------------------------
At every call of ``generate_positions`` it has never held a bar beyond the current cut:

- *Its memory* is a fork of the blind worker, which never loaded, received or relayed bars,
  nor anything a strategy process sent: windows go from the worker straight into the child
  through a pipe made for the job, replies straight back through another; the blind worker
  only hands the pipe ends on (``SCM_RIGHTS``) and closes its copies.
- *Its files*: a strategy process's Landlock policy minus the user's data file or folder and
  the embedded sample: the alphaloop package stays readable except ``data/sample``
  (`_confine.Policy.exclude`).
- *Its windows* come one at a time, shortest first, each sent only once the answer to the
  previous one has been read. A process given all cuts at once could answer the short ones
  from the longest (n - 1 bars: nearly the whole future of every shorter cut): either each
  cut gets a fresh process (about 20 forks per variant), or the cuts go shortest first with
  one window per call, so that at every call the longest window it has held is the current
  one. Each window after the first travels as the bars it adds to the previous one.
- *Its predecessors*: one process per job (per variant), not one per code hash as `_jail`
  keeps. A process kept for the next variant of the same code would start that variant's
  shortest cut holding the previous variant's longest window (a module-level cache carries
  it over). So each variant pays a fork, the confinement and the process's exit.
- *Its pipes* are new for each job: bytes a previous child left unread (a window it answered
  without reading it whole) cannot reach the next one.

What it still learns: the cut lengths come from the full-data positions (half of them right
after a position change), so a cut ending at bar t says that the full-data position changed
at t; the evenly spaced cuts carry no such hint, and a foresighted strategy fails them. Side
channels between the full-data strategy process and the blind one (the same unprivileged
user, running at the same time: CPU load, page cache, file access times) are not closed.

Processes
---------
`_launch.start_worker` starts the blind worker beside each worker (both children of the pool,
the CLI or the Dask worker that needs one), connected to it by a socket pair; it stays a bare
interpreter until the worker's first look-ahead job, then imports and warms up. So every
strategy process, blind or not, is a grandchild of the process that started the worker (the
attack suite's process watcher checks that depth), and the blind one is forked once per job
(not through a second, re-parenting fork: a fork and an exit of this ~240 MB process cost
about 6 ms each). The blind worker dies with its parent (parent-death signal) and ends when
the worker does (its socket closes); `WorkerProcess.kill` kills both. A worker whose blind
worker died, or that has none (`_jail.become_host` in a plain process: benchmarks, tests),
starts one of its own (`start`), the same program.

Protocol
--------
worker -> blind worker (Unix socket pair; 4-byte length + pickle, from the trusted worker):
    ``("init", {"sys_path": [...]})``   first message: it imports and warms up
    ``("job", {...})`` with two descriptors attached: the windows' read end, the replies'
    write end
    ``("reap", pid, kill)``   (kill the child and) wait for it, at most a few seconds
blind worker -> worker (4-byte length + JSON):
    ``{"ready": true}`` after its warm-up; ``{"pid": n}`` the job's child runs;
    ``{"error": text}`` it could not fork one; ``{"exit": n, "status": s}`` after a reap
worker -> child (windows pipe): per window ``!QQ`` (bars in the window, bars this frame adds),
    then the added bars: int64 nanoseconds, then float64 open, high, low, close, volume, one
    column after the other.
child -> worker (replies pipe): per window `_jail`'s reply frame: ``!QQ`` lengths, a JSON
    header (``ok``; ``cut``: the strategy failed on this window, a difference; otherwise
    ``error``, ``kind``, ``exit``) and one raw float64 position per bar of the window. Never
    unpickled; the worker checks lengths and compares values.

Failures are the strategy's, as with `_jail`: a crash, a limit or a malformed reply raises
`StrategyProcessError` with its ``failure_kind``; a blind worker that died or did not start is
``transient``. Where the kernel cannot confine (`_confine.availability`), the rules of `_jail`
hold: library code and ``unconfined_ok`` tasks run in a blind child with rlimits only,
anything else is refused (`ConfinementError`).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import pickle
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alphaloop.execution._jail import (
    _HEAD,
    _MAX_HEADER,
    PositionsJob,
    StrategyProcessError,
    _describe_death,
    _read_exact,
    _reply,
    _write_all,
    clean,
    failure_reply,
)

__all__ = ["BOOT", "cut_positions", "lookahead", "main", "prepare", "set_companion", "shutdown"]

BOOT = (  # a bare interpreter until the first message (and none at all if the worker ends)
    "import socket, sys; s = socket.socket(fileno=int(sys.argv[1])); "
    "s.recv(1, socket.MSG_PEEK) or sys.exit(0); s.detach(); "
    "import alphaloop.execution._blind as b; b.main()"
)
_LEN = struct.Struct("!I")  # length of a message on the socket
_SEG = struct.Struct("!QQ")  # bars in the window, bars added by this frame
_COLUMNS = ("open", "high", "low", "close", "volume")
_MAX_MESSAGE = 1 << 20  # from the blind worker
_STARTUP_SECONDS = 120.0
_REAP_SECONDS = 5.0


class _Gone(Exception):
    """The blind worker is gone (or never answered)."""


def _fail(message: str, kind: str = "permanent") -> StrategyProcessError:
    """The strategy's failure, worded as `_jail` words it (the workflow's rules read those
    words) and placed: ``strategy 'x' crashed its process (...) in the look-ahead check``."""
    return StrategyProcessError(f"{message} in the look-ahead check", kind)


def _infra(message: str) -> StrategyProcessError:
    """alphaloop's failure, not the strategy's: another attempt may pass."""
    return StrategyProcessError(f"look-ahead check: {message}", "transient")


# -- the worker's side ---------------------------------------------------------------------
@dataclass(eq=False)
class _Child:
    pid: int
    windows: int  # fd: the worker writes windows
    replies: int  # fd: the worker reads replies (never unpickled)
    tmp: str
    buf: bytearray = field(default_factory=bytearray)
    status: int | None = None  # once reaped


_COMPANION: int | None = None  # the socket to the blind worker started beside this worker


def set_companion(fd: int) -> None:
    """Use the blind worker at the other end of socket ``fd`` (`_worker.main` passes the one
    `_launch.start_worker` started beside it)."""
    global _COMPANION
    _COMPANION = fd


class _Client:
    """The worker's side: its blind worker, and the child of the job that runs."""

    def __init__(self, idle_fd: int | None, on_idle: Any, memory_limit: int | None) -> None:
        self.idle_fd, self.on_idle = idle_fd, on_idle
        self.memory_limit = memory_limit
        self.proc: subprocess.Popen[bytes] | None = None  # a blind worker of its own
        self.sock: socket.socket | None = None
        self.inbuf = bytearray()
        self.ready = False
        self.started = 0.0
        self.reaping: dict[int, str] = {}  # pid -> folder: killed, its exit not yet reported

    # ---- the blind worker
    def start(self) -> None:
        """Have a blind worker (the companion `_launch` started, else one of its own) and send
        it its first message: it imports and warms up while the caller goes on."""
        global _COMPANION
        if self.sock is not None and (self.proc is None or self.proc.poll() is None):
            return
        self.stop()
        if _COMPANION is not None:
            self.sock, _COMPANION = socket.socket(fileno=_COMPANION), None
        else:
            from alphaloop.execution._confine import scrubbed_env
            from alphaloop.execution._launch import start_paired

            env = {**scrubbed_env(), "TMPDIR": tempfile.gettempdir()}
            args = [str(self.memory_limit or 0), str(os.getpid())]
            self.proc, self.sock = start_paired(BOOT, args, env)
        self.ready, self.started = False, time.monotonic()
        self.inbuf.clear()
        with contextlib.suppress(_Gone):  # a dead one is found when the answer is awaited
            self._send(("init", {"sys_path": list(sys.path)}))

    def stop(self) -> None:
        """End the blind worker (its children die with it) and remove their folders."""
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
        if self.proc is not None:
            with contextlib.suppress(OSError):
                self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5.0)
        for tmp in self.reaping.values():
            shutil.rmtree(tmp, ignore_errors=True)
        self.reaping.clear()
        self.proc = self.sock = None
        self.ready = False

    def _send(self, msg: tuple[Any, ...], fds: tuple[int, ...] = ()) -> None:
        if self.sock is None:
            raise _Gone
        data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
        head = _LEN.pack(len(data))
        try:
            if fds:
                socket.send_fds(self.sock, [head], list(fds))
            else:
                self.sock.sendall(head)
            self.sock.sendall(data)
        except OSError as exc:
            raise _Gone from exc

    def _message(self, deadline: float | None = None) -> dict[str, Any]:
        """The blind worker's next message; `_Gone` at its end or after ``deadline``. Reports
        of children reaped after their job (``exit`` of a pid in `reaping`) are taken here."""
        if self.sock is None:
            raise _Gone
        while True:
            while len(self.inbuf) >= _LEN.size:
                (n,) = _LEN.unpack_from(self.inbuf)
                if n > _MAX_MESSAGE:
                    raise _Gone
                if len(self.inbuf) < _LEN.size + n:
                    break
                body = bytes(self.inbuf[_LEN.size : _LEN.size + n])
                del self.inbuf[: _LEN.size + n]
                msg = json.loads(body)
                if not isinstance(msg, dict):
                    raise _Gone
                tmp = self.reaping.pop(msg.get("exit"), None)  # type: ignore[arg-type]
                if tmp is not None:
                    shutil.rmtree(tmp, ignore_errors=True)
                    continue
                return msg
            try:
                chunk = self.sock.recv(1 << 16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                chunk = None
            except OSError as exc:
                raise _Gone from exc
            if chunk == b"":
                raise _Gone
            if chunk:
                self.inbuf += chunk
                continue
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                raise _Gone
            self._wait([(self.sock.fileno(), select.POLLIN)], wait)

    def _wait(self, fds: list[tuple[int, int]], wait: float | None) -> None:
        """Block until one of ``fds`` is ready (or ``wait`` seconds), draining the worker's
        inbox meanwhile (as `_jail` does while a strategy process computes)."""
        poller = select.poll()
        for fd, events in fds:
            poller.register(fd, events)
        if self.idle_fd is not None:
            poller.register(self.idle_fd, select.POLLIN)
        timeout = None if wait is None else int(wait * 1000) + 1
        for fd, _ev in poller.poll(timeout):
            if fd == self.idle_fd and self.on_idle is not None and not self.on_idle():
                self.idle_fd = None  # the parent is gone: stop watching its pipe

    def _ensure_ready(self) -> None:
        self.start()
        while not self.ready:
            try:
                msg = self._message(self.started + _STARTUP_SECONDS)
            except _Gone:
                code = None if self.proc is None else self.proc.poll()
                self.stop()
                from alphaloop.execution._base import describe_exit

                raise _infra(f"the blind worker did not start ({describe_exit(code)})") from None
            self.ready = bool(msg.get("ready"))

    # ---- one job
    def cuts(self, job: PositionsJob, bars: Any, lengths: list[int]) -> list[np.ndarray | None]:
        """The positions of ``job``'s strategy on ``bars[:k]`` for each ``k`` of ``lengths``
        (ascending), computed in a new blind strategy process, one window at a time; None
        where the strategy failed on that window. Raises `ConfinementError` (the job may not
        run unconfined here) or `StrategyProcessError` (the process crashed, hit a limit,
        raised something else than a strategy error, or sent a malformed reply)."""
        from alphaloop.execution import _jail
        from alphaloop.execution._pipes import PIPE_BYTES, widen_fd

        confined = _jail.confined_for(job)
        self._ensure_ready()
        win_r, win_w = os.pipe()
        rep_r, rep_w = os.pipe()
        widen_fd(win_w, PIPE_BYTES)
        widen_fd(rep_r, PIPE_BYTES)
        tmp = tempfile.mkdtemp(prefix="alphaloop-blind-")
        request = {
            "source": job.source,
            "name": job.name,
            "params": job.params,
            "data_path": job.data_path,
            "confined": confined,
            "tmp": tmp,
        }
        try:
            for again in (True, False):
                try:
                    self._send(("job", request), (win_r, rep_w))
                    pid = self._child_pid()
                    break
                except _Gone:  # it died since the last job: start another, once
                    self.stop()
                    if not again:
                        raise _infra("the blind worker died") from None
                    self._ensure_ready()
        except BaseException:
            for fd in (win_w, rep_r):
                os.close(fd)
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            os.close(win_r)
            os.close(rep_w)
        child = _Child(pid, win_w, rep_r, tmp)
        os.set_blocking(win_w, False)
        os.set_blocking(rep_r, False)
        try:
            return self._run(child, job.name, bars, lengths)
        finally:
            self._end(child)

    def _child_pid(self) -> int:
        msg = self._message()
        if "pid" in msg:
            return int(msg["pid"])
        raise _infra(clean(str(msg.get("error", "no strategy process"))))

    def _run(
        self, child: _Child, name: str, bars: Any, lengths: list[int]
    ) -> list[np.ndarray | None]:
        index = np.ascontiguousarray(bars.index.as_unit("ns").asi8, dtype=np.int64)
        columns = np.vstack([bars[c].to_numpy(dtype=np.float64) for c in _COLUMNS])
        out: list[np.ndarray | None] = []
        have = 0
        for k in lengths:
            frame = _SEG.pack(k, k - have) + index[have:k].tobytes() + columns[:, have:k].tobytes()
            have = k
            self._write(child, frame, name)
            head, body = self._reply(child, name, k)
            if head.get("ok") is True:
                if len(body) != 8 * k:
                    raise _fail(
                        f"strategy {name!r} process returned {len(body) // 8} positions "
                        f"for {k} bars"
                    )
                out.append(np.frombuffer(body, dtype=np.float64).copy())
            elif head.get("cut") is True:
                out.append(None)
            else:
                kind = head.get("kind")
                if kind not in ("permanent", "limit", "transient"):
                    kind = "permanent"
                error = head.get("error")
                if head.get("exit"):
                    self._status(child)  # it exits after this answer; reap it now
                raise _fail(clean(error if isinstance(error, str) else "strategy failed"), kind)
        return out

    def _write(self, child: _Child, data: bytes, name: str) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(child.windows, view) :]
                continue
            except BlockingIOError:
                pass
            except BrokenPipeError:
                raise self._death(child, name) from None
            self._wait([(child.windows, select.POLLOUT), (child.replies, select.POLLIN)], None)
            self._take(child, name, limit=_HEAD.size + _MAX_HEADER)  # early words, or its end

    def _take(self, child: _Child, name: str, limit: int) -> None:
        """Read what the child sent (never blocks); its death raises."""
        while True:
            try:
                chunk = os.read(child.replies, 1 << 20)
            except BlockingIOError:
                return
            if chunk == b"":
                raise self._death(child, name)
            child.buf += chunk
            if len(child.buf) > limit:
                raise _fail(f"strategy {name!r} process sent a malformed reply")

    def _reply(self, child: _Child, name: str, bars: int) -> tuple[dict[str, Any], bytes]:
        buf = child.buf
        limit = _HEAD.size + _MAX_HEADER + 8 * bars
        while True:
            if len(buf) >= _HEAD.size:
                hlen, blen = _HEAD.unpack_from(buf)
                if hlen > _MAX_HEADER or blen > 8 * bars:
                    raise _fail(f"strategy {name!r} process sent a malformed reply")
                total = _HEAD.size + hlen + blen
                if len(buf) >= total:
                    head = bytes(buf[_HEAD.size : _HEAD.size + hlen])
                    body = bytes(buf[_HEAD.size + hlen : total])
                    del buf[:total]
                    try:
                        header = json.loads(head)
                    except ValueError:
                        header = None
                    if not isinstance(header, dict) or buf:
                        raise _fail(f"strategy {name!r} process sent a malformed reply")
                    return header, body
            before = len(buf)
            self._take(child, name, limit)
            if len(buf) == before:
                self._wait([(child.replies, select.POLLIN)], None)

    def _death(self, child: _Child, name: str) -> StrategyProcessError:
        """How the child ended (it closed its reply pipe: it is gone or going)."""
        status = self._status(child)
        if status is None:  # the blind worker is gone, and its child with it
            return _infra("the blind worker died")
        err = _describe_death(status, name)
        return _fail(str(err), err.failure_kind)

    def _status(self, child: _Child, kill: bool = False) -> int | None:
        """Reap ``child`` through the blind worker (killing it first if ``kill``): its wait
        status, or None if the blind worker is gone."""
        if child.status is None:
            try:
                self._send(("reap", child.pid, kill))
                while True:
                    msg = self._message()
                    if msg.get("exit") == child.pid:
                        child.status = int(msg.get("status", 0))
                        break
            except (_Gone, ValueError, TypeError):
                self.stop()
        return child.status

    def _end(self, child: _Child) -> None:
        for fd in (child.windows, child.replies):
            with contextlib.suppress(OSError):
                os.close(fd)
        if child.status is None and self.sock is not None:
            try:  # its exit overlaps the engine's run; the report is taken with the next message
                self._send(("reap", child.pid, True))
                self.reaping[child.pid] = child.tmp
                return
            except _Gone:
                self.stop()
        shutil.rmtree(child.tmp, ignore_errors=True)


_CLIENT: _Client | None = None


def _client() -> _Client:
    global _CLIENT
    if _CLIENT is None:
        from alphaloop.execution import _jail

        host = _jail.current()  # RuntimeError outside a clean worker
        _CLIENT = _Client(host.idle_fd, host.on_idle, host.memory_limit)
    return _CLIENT


def prepare() -> None:
    """Wake the blind worker now, if it is not ready (call it before the full run of a
    look-ahead task: it imports while the strategy process computes). Clean workers only."""
    _client().start()


def cut_positions(job: PositionsJob, bars: Any, lengths: list[int]) -> list[np.ndarray | None]:
    """The strategy's positions on ``bars[:k]`` for each ``k`` of ``lengths``, from a blind
    strategy process that gets the windows shortest first; None where the strategy failed.
    Raises `StrategyProcessError` or `ConfinementError`. Clean workers only."""
    return _client().cuts(job, bars, sorted(set(lengths)))


def lookahead(job: PositionsJob, bars: Any, full: np.ndarray) -> list[str]:
    """The task's look-ahead result: the dates (ISO text) of the cuts where the positions of
    ``job``'s strategy on the cut data differ from the full-data positions ``full`` on
    ``bars`` (or where it fails), the cuts chosen by `lookahead.cut_points` (the same as
    `lookahead_check`'s). Raises as `cut_positions` does."""
    from alphaloop.backtest.lookahead import cut_points, differs

    lengths = cut_points(full, len(bars))
    if not lengths:
        return []
    parts = cut_positions(job, bars, lengths)
    return [
        bars.index[k - 1].isoformat()
        for k, part in zip(lengths, parts, strict=True)
        if part is None or differs(part, full[:k])
    ]


def shutdown() -> None:
    """End the blind worker and its children (the worker is exiting)."""
    if _CLIENT is not None:
        _CLIENT.stop()


# -- the blind worker ----------------------------------------------------------------------
def _recv_exact(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise EOFError
        out += chunk
    return bytes(out)


def _recv(sock: socket.socket) -> tuple[Any, list[int]]:
    """The worker's next message (trusted: a pickle) and the descriptors sent with it."""
    head = b""
    fds: list[int] = []
    while len(head) < _LEN.size:
        data, got, _flags, _addr = socket.recv_fds(sock, _LEN.size - len(head), 4)
        fds += got
        if not data:
            for fd in fds:
                os.close(fd)
            raise EOFError
        head += data
    (n,) = _LEN.unpack(head)
    return pickle.loads(_recv_exact(sock, n)), fds


def _say(sock: socket.socket, msg: dict[str, Any]) -> None:
    data = json.dumps(msg).encode()
    sock.sendall(_LEN.pack(len(data)) + data)


def _frame(index: np.ndarray, columns: np.ndarray) -> Any:
    """Bars shaped as `alphaloop.data.load` returns them: a ``DatetimeIndex`` named ``date``
    (nanoseconds, no time zone, no frequency), float64 ``open, high, low, close, volume``."""
    import pandas as pd

    return pd.DataFrame(
        columns.T,
        index=pd.DatetimeIndex(index.view("M8[ns]"), name="date"),
        columns=list(_COLUMNS),
        copy=True,
    )


def _sample_dir() -> str:
    """The embedded sample's folder (its module imported, the data not read)."""
    from alphaloop.data._sample import SAMPLE_PATH

    return str(SAMPLE_PATH.parent)


def _warm_up() -> None:
    """Import and compile what blind strategy processes use, on synthetic bars only: this
    process never loads market data (`indicators.warm_up` compiles on its own arrays)."""
    import pandas as pd

    from alphaloop.backtest import _positions, indicators, sandbox, strategy  # noqa: F401
    from alphaloop.execution import _confine

    _confine.availability()
    _confine.default_read_paths()
    _sample_dir()
    with contextlib.suppress(Exception):
        import talib  # noqa: F401
    with contextlib.suppress(Exception):  # the library's own code may run here (trusted)
        for name in strategy.library_names():
            _positions.compiled(strategy.library_source(name), name)
    with contextlib.suppress(Exception):
        indicators.warm_up()
        n = 64
        start = np.datetime64("2001-01-01", "ns").astype(np.int64)
        index = start + np.arange(n, dtype=np.int64) * 86_400_000_000_000
        close = 100.0 + np.sin(np.arange(n) / 5.0)
        bars = _frame(index, np.vstack([close, close + 1.0, close - 1.0, close, np.ones(n)]))
        c = bars["close"]
        (c.rolling(5).mean() - c.ewm(span=5).mean() + c.shift(1).diff().pct_change()).fillna(0.0)
        pd.Timestamp("2020-01-01", tz="UTC").tz_convert(None)


def main() -> None:
    """Entry point of the blind worker program (see the module docstring)."""
    from alphaloop.execution._worker import _NESTED_THREADS_ENV, die_with_parent, set_memory_budget

    sock_fd, memory_limit, parent = (int(a) for a in sys.argv[1:4])
    die_with_parent()
    if os.getppid() != parent:
        os._exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for var in _NESTED_THREADS_ENV:
        os.environ.setdefault(var, "1")
    set_memory_budget(None)  # the worker's budget is not this process's
    sock = socket.socket(fileno=sock_fd)
    with contextlib.suppress(EOFError, OSError):  # the worker is gone (and so are we)
        _serve(sock, memory_limit or None)
    os._exit(0)  # children die with this process


def _serve(sock: socket.socket, memory_limit: int | None) -> None:
    msg, fds = _recv(sock)
    for fd in fds:
        os.close(fd)
    sys.path[:] = list(msg[1]["sys_path"])
    _warm_up()
    gc.collect()
    gc.freeze()  # what the warm-up made stays put: fewer pages copied into each child
    _say(sock, {"ready": True})
    while True:
        msg, fds = _recv(sock)
        if msg[0] == "job" and len(fds) == 2:
            _fork(sock, msg[1], fds[0], fds[1], memory_limit)
            continue
        for fd in fds:
            os.close(fd)
        if msg[0] == "reap":
            _say(sock, {"exit": msg[1], "status": _reap(int(msg[1]), bool(msg[2]))})


def _fork(
    sock: socket.socket, job: dict[str, Any], win_fd: int, rep_fd: int, memory_limit: int | None
) -> None:
    """Fork the job's child, hand it the pipes, tell the worker its pid.

    The source is read here first (`inspect_source`: parsed and checked, never run, as the
    orchestrator reads it; the result is cached): the child inherits the reading instead of
    redoing it, and the next variants of the same code skip it (~5 ms of ~110 per job)."""
    from alphaloop.backtest._source import inspect_source

    with contextlib.suppress(Exception):  # a refused source is the child's to report
        inspect_source(str(job["source"]), str(job["name"]))
    me = os.getpid()
    try:
        pid = os.fork()
    except OSError as exc:
        _say(sock, {"error": f"cannot fork a strategy process: {exc}"})
        return
    finally:
        if os.getpid() == me:
            os.close(win_fd)
            os.close(rep_fd)
    if pid == 0:
        try:
            _child_main(win_fd, rep_fd, job, me, memory_limit)
        finally:
            os._exit(70)
    _say(sock, {"pid": pid})


def _reap(pid: int, kill: bool) -> int:
    """Wait for child ``pid`` (SIGKILL first if ``kill``; after `_REAP_SECONDS` anyway):
    its wait status (0 if it was not a child)."""
    if kill:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + _REAP_SECONDS
    try:
        while True:
            done, status = os.waitpid(pid, 0 if kill else os.WNOHANG)
            if done:
                return status
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                return os.waitpid(pid, 0)[1]
            time.sleep(0.001)
    except ChildProcessError:
        return 0


# -- the blind strategy process ------------------------------------------------------------
def _policy(job: dict[str, Any], tmp: str, address_space: int | None) -> Any:
    """A strategy process's policy with no market data readable: the defaults minus the
    embedded sample's folder and the user's data file or folder."""
    from alphaloop.execution import _confine

    exclude = [_sample_dir()]
    if job.get("data_path"):
        exclude.append(str(job["data_path"]))
    return _confine.Policy(
        read_paths=(), exclude=tuple(exclude), write_dir=tmp, memory_limit=address_space
    )


def _answer(job: dict[str, Any], bars: Any, memory_limit: int | None) -> tuple[bytes, bool]:
    """The reply for one window and whether the process must exit after sending it."""
    from alphaloop.backtest.strategy import from_source
    from alphaloop.errors import StrategyError

    name = str(job["name"])
    try:
        positions = from_source(str(job["source"]), name).positions(bars, job["params"])
    except StrategyError:  # the strategy fails on this cut: a difference, as lookahead_check
        return _reply({"ok": False, "cut": True}), False
    except BaseException as exc:
        return failure_reply(exc, name, memory_limit)
    return _reply({"ok": True}, positions), False


def _child_main(
    win_fd: int, rep_fd: int, job: dict[str, Any], parent: int, memory_limit: int | None
) -> None:
    """The blind strategy process (never returns): set up and confined as `_jail`'s, with
    `_policy`; then one window in, one reply out, until the worker closes the windows pipe."""
    from alphaloop.backtest import _positions, indicators
    from alphaloop.execution._jail import _close_other_fds, _limits_only
    from alphaloop.execution._worker import die_with_parent, vm_bytes

    die_with_parent()
    if os.getppid() != parent:
        os._exit(0)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    _close_other_fds({0, 1, 2, win_fd, rep_fd})
    tmp = str(job["tmp"])
    for var in ("TMPDIR", "TMP", "TEMP", "HOME"):
        os.environ[var] = tmp
    tempfile.tempdir = tmp
    os.chdir(tmp)
    indicators.no_disk_cache()
    address_space = vm_bytes() + memory_limit if memory_limit else None
    problem: str | None = None
    if job["confined"]:
        from alphaloop.execution import _confine

        try:
            _confine.apply(_policy(job, tmp, address_space))
        except Exception as exc:
            problem = clean(f"cannot confine the strategy process: {exc}")
    else:
        _limits_only(address_space)
    _positions.permit_execution()
    index = np.empty(0, dtype=np.int64)
    columns = np.empty((len(_COLUMNS), 0), dtype=np.float64)
    while True:
        try:
            k, m = _SEG.unpack(_read_exact(win_fd, _SEG.size))
            raw = _read_exact(win_fd, 8 * (1 + len(_COLUMNS)) * m)
        except (EOFError, OSError):
            os._exit(0)
        if k != len(index) + m:
            os._exit(0)
        index = np.concatenate([index, np.frombuffer(raw, np.int64, m)])
        added = np.frombuffer(raw, np.float64, len(_COLUMNS) * m, 8 * m)
        columns = np.concatenate([columns, added.reshape(len(_COLUMNS), m)], axis=1)
        if problem is not None:
            header = {"ok": False, "error": problem, "kind": "permanent", "exit": True}
            data, fatal = _reply(header), True
        else:
            data, fatal = _answer(job, _frame(index, columns), memory_limit)
        try:
            _write_all(rep_fd, data)
        except OSError:
            os._exit(0)
        if fatal:
            os._exit(0)
