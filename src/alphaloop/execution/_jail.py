"""Strategy processes: forked from the clean worker, confined by the kernel, one per strategy.

The worker (`_worker`) is a clean template: a fresh interpreter with a scrubbed environment
that has imported numpy, pandas, TA-Lib and the engine. To compute a strategy's positions it
forks a child, and the child, before it runs a line of strategy code:

- points stdin/stdout/stderr at ``/dev/null`` (nothing it prints reaches a terminal) and
  closes every other descriptor but its two pipes;
- moves into a private temporary folder (removed when the child is done);
- calls `_confine.apply`: rlimits, ``no_new_privs``, the privilege drop when root, Landlock
  (read-only file system except that folder) and seccomp (no exec, no new processes, no
  sockets, no signals or tracing of other processes).

A child serves one strategy only — one code hash and data source (`_Key`) — so nothing one
strategy rebinds (``indicators.sma``, a pandas option) can reach another's results. Variants
of one strategy share its child. A worker keeps the children of its last few strategies
(`_KEEP`): a run alternates between a handful of families, and each new child costs a fork
and the confinement (~20-35 ms), ten times a typical backtest.

The child gets the job pickled (the worker is trusted) and answers with bytes only: a length,
a small JSON header and the raw float64 positions. The worker never unpickles anything the
child sends, validates the positions itself, and runs the engine on its own bars: the prices
that are measured are never in a process that ran strategy code. The look-ahead check is not
asked of this child (it has seen the whole series): `_blind` runs the cut runs in a process
that never held bars beyond each cut.

Where the kernel cannot confine (`_confine.availability`), library code and tasks marked
``unconfined_ok`` still run in a separate child with rlimits; anything else is refused with
`ConfinementError`.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import resource
import select
import shutil
import signal
import struct
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from alphaloop.errors import AlphaloopError, clean_message

__all__ = [
    "PositionsJob",
    "StrategyProcessError",
    "become_host",
    "confined_for",
    "current",
    "is_clean_host",
    "job_code_hash",
    "require_kernel",
    "shutdown",
]

_HEAD = struct.Struct("!QQ")  # header length, positions length (bytes)
_LEN = struct.Struct("!I")  # length of a request pickle
_MAX_HEADER = 1 << 20
_MAX_ERROR = 300
_MAX_JOBS_PER_CHILD = 10_000
_KEEP = 4  # strategy processes a worker keeps alive, the least recently used ended first


class StrategyProcessError(AlphaloopError):
    """The strategy process failed: its code raised, crashed, hit a limit or misbehaved.
    ``failure_kind`` tells the queue whether another attempt can help."""

    def __init__(self, message: str, failure_kind: str = "permanent") -> None:
        super().__init__(message)
        self.failure_kind = failure_kind


@dataclass(frozen=True)
class PositionsJob:
    """What a strategy process computes: the positions of one strategy variant on one data
    window. Parameters are already resolved by the worker."""

    source: str
    name: str
    params: dict[str, Any]
    ticker: str
    timeframe: str
    data_path: str | None
    start: str | None
    end: str | None
    unconfined_ok: bool = False
    code_hash: str = ""
    adjust: bool = True  # the file's 'Adj Close' adjusts its OHLC (False: --no-adjust)

    def request(self) -> tuple[Any, ...]:
        """What travels to the strategy process (its code it already has)."""
        return (
            self.params,
            self.ticker,
            self.timeframe,
            self.data_path,
            self.start,
            self.end,
            self.adjust,
        )


@dataclass(frozen=True)
class PositionsReply:
    positions: np.ndarray


@dataclass(frozen=True)
class _Key:
    code_hash: str
    name: str
    data_path: str | None
    confined: bool


@dataclass(eq=False)
class _Child:
    key: _Key
    pid: int
    requests: int  # fd: length-prefixed pickles to the child
    replies: int  # fd: length-prefixed bytes from the child (never unpickled)
    tmp: str
    poller: Any
    jobs: int = 0
    # (tag, request) sent and not yet answered, oldest first
    pending: deque[tuple[str | None, tuple[Any, ...]]] = field(default_factory=deque)
    buf: bytearray = field(default_factory=bytearray)


def clean(text: str, limit: int = _MAX_ERROR) -> str:
    """One printable line of at most ``limit`` characters (what a hostile process sent)."""
    return clean_message(" ".join(text.split()), limit)


# -- the child -----------------------------------------------------------------------------
def _reply(header: dict[str, Any], positions: np.ndarray | None = None) -> bytes:
    head = _OK if header == {"ok": True} else json.dumps(header).encode()
    if positions is None:
        return _HEAD.pack(len(head), 0) + head
    body = np.ascontiguousarray(positions, np.float64)
    return b"".join((_HEAD.pack(len(head), body.nbytes), head, body.data))


_OK = json.dumps({"ok": True}).encode()
_COW = int(pd.__version__.split(".")[0]) >= 3 or bool(pd.get_option("mode.copy_on_write"))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd: int, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = os.read(fd, n - len(out))
        if not chunk:
            raise EOFError
        out += chunk
    return bytes(out)


class _Compute:
    """The child's side: the strategy (one per process), bars cached per window."""

    def __init__(self, source: str, name: str) -> None:
        self.source, self.name = source, name
        self.bars: dict[tuple[Any, ...], Any] = {}
        self.strategy: Any = None

    def _bars(
        self, ticker: str, timeframe: str, path: str | None, start: Any, end: Any, adjust: bool
    ) -> Any:
        key = (ticker, timeframe, path, start, end, adjust)
        bars = self.bars.get(key)
        if bars is None:
            from alphaloop import data as market

            bars = market.load(ticker, timeframe, path, adjust=adjust)
            if start is not None or end is not None:
                bars = market.slice_dates(bars, start, end)
            if len(self.bars) > 16:
                self.bars.clear()
            self.bars[key] = bars
        return bars

    def __call__(self, request: tuple[Any, ...]) -> bytes:
        from alphaloop.backtest.strategy import from_source

        params, ticker, timeframe, path, start, end, adjust = request
        bars = self._bars(ticker, timeframe, path, start, end, adjust)
        if self.strategy is None:
            self.strategy = from_source(self.source, self.name)
        # its own copy: what one variant does to its bars cannot reach the next one (pandas'
        # copy-on-write makes the copy cheap where it is on)
        return _reply({"ok": True}, self.strategy.positions(bars.copy(deep=not _COW), params))

    def answer(self, request: tuple[Any, ...], memory_limit: int | None) -> tuple[bytes, bool]:
        """The reply to one request and whether the child must exit after sending it."""
        try:
            return self(request), False
        except BaseException as exc:
            return failure_reply(exc, self.name, memory_limit)


def failure_reply(exc: BaseException, name: str, memory_limit: int | None) -> tuple[bytes, bool]:
    """A strategy process's reply when running strategy ``name`` raised ``exc``, and whether
    the process must exit after sending it (memory exhausted, or SystemExit & co)."""
    from alphaloop.execution._base import format_bytes

    if isinstance(exc, MemoryError):
        limit = f"memory limit {format_bytes(memory_limit)}" if memory_limit else "memory"
        detail = f"MemoryError: {exc}" if str(exc) else "MemoryError"
        msg = f"strategy {name!r} exceeded the {limit} ({detail})"
        return _reply({"ok": False, "error": msg, "kind": "limit", "exit": True}), True
    if isinstance(exc, AlphaloopError):
        return _reply({"ok": False, "error": str(exc), "kind": "permanent"}), False
    if isinstance(exc, Exception):  # alphaloop's own code failed: another attempt may pass
        msg = f"{type(exc).__name__}: {exc}"
        return _reply({"ok": False, "error": msg, "kind": "transient"}), False
    msg = f"strategy {name!r} raised {type(exc).__name__}: {exc}"  # SystemExit & co
    return _reply({"ok": False, "error": msg, "kind": "permanent", "exit": True}), True


def _close_other_fds(keep: set[int]) -> None:
    top = max(keep) + 1
    lo = 0
    for fd in sorted(keep):
        if lo < fd:  # closerange(n, n) closes everything on Linux (close_range(n, UINT_MAX))
            os.closerange(lo, fd)
        lo = fd + 1
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd >= top and fd not in keep:
                with contextlib.suppress(OSError):
                    os.close(fd)
    os.closerange(top, 1 << 16)


def _limits_only(address_space: int | None) -> None:
    """Without kernel confinement: rlimits still apply (no core files, bounded memory)."""
    wanted = [(resource.RLIMIT_CORE, 0), (resource.RLIMIT_FSIZE, 64 << 20)]
    if address_space:
        wanted.append((resource.RLIMIT_AS, address_space))
    for res, value in wanted:
        with contextlib.suppress(ValueError, OSError):
            _soft, hard = resource.getrlimit(res)
            v = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(res, (v, hard))


def _child_main(
    req_fd: int,
    rep_fd: int,
    tmp: str,
    key: _Key,
    source: str,
    memory_limit: int | None,
    parent: int,
) -> None:
    from alphaloop.backtest import _positions, indicators
    from alphaloop.execution._worker import die_with_parent, vm_bytes

    die_with_parent()
    if os.getppid() != parent:
        os._exit(0)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    _close_other_fds({0, 1, 2, req_fd, rep_fd})
    for var in ("TMPDIR", "TMP", "TEMP", "HOME"):
        os.environ[var] = tmp
    tempfile.tempdir = tmp
    os.chdir(tmp)
    indicators.no_disk_cache()  # the folder numba caches in is not writable from here on
    # the memory limit is a budget on top of the address space inherited from the worker
    address_space = vm_bytes() + memory_limit if memory_limit else None
    problem: str | None = None
    if key.confined:
        from alphaloop.execution import _confine

        try:
            _confine.apply(_policy(key, tmp, address_space))
        except Exception as exc:
            problem = clean(f"cannot confine the strategy process: {exc}")
    else:
        _limits_only(address_space)
    _positions.permit_execution()
    compute = _Compute(source, key.name)
    del source
    while True:
        try:
            (n,) = _LEN.unpack(_read_exact(req_fd, _LEN.size))
            request = pickle.loads(_read_exact(req_fd, n))  # from the worker: trusted
        except (EOFError, OSError):
            os._exit(0)
        if problem is not None:
            header = {"ok": False, "error": problem, "kind": "permanent", "exit": True}
            data, fatal = _reply(header), True
        else:
            data, fatal = compute.answer(request, memory_limit)
        try:
            _write_all(rep_fd, data)
        except OSError:
            os._exit(0)
        if fatal:
            os._exit(0)


def _policy(key: _Key, tmp: str, address_space: int | None) -> Any:
    from alphaloop.execution import _confine

    reads = list(_confine.default_read_paths())
    if key.data_path:
        reads.append(key.data_path)
    return _confine.Policy(read_paths=tuple(reads), write_dir=tmp, memory_limit=address_space)


# -- the worker's side ---------------------------------------------------------------------
def _describe_death(status: int, name: str) -> StrategyProcessError:
    from alphaloop.execution._base import describe_exit

    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        sig = -code
        if sig == signal.SIGKILL:
            return StrategyProcessError(
                f"strategy {name!r} process was killed ({describe_exit(code)})", "limit"
            )
        if sig == signal.SIGXCPU:
            return StrategyProcessError(
                f"strategy {name!r} used up its CPU time limit ({describe_exit(code)})", "limit"
            )
        return StrategyProcessError(
            f"strategy {name!r} crashed its process ({describe_exit(code)})", "permanent"
        )
    return StrategyProcessError(
        f"strategy {name!r} process exited unexpectedly ({describe_exit(code)})", "permanent"
    )


class _Host:
    """The worker's side: a child per strategy, the last `_KEEP` strategies' kept alive.

    Requests are pipelined: `submit` sends a job ahead of time (the worker's prefetch), so
    the child computes the next task's positions while the worker measures this one's, and
    `positions` takes the answers in order."""

    def __init__(
        self,
        idle_fd: int | None,
        on_idle: Callable[[], bool] | None,
        memory_limit: int | None,
        warm_up: Callable[[], None] | None,
    ) -> None:
        self.idle_fd, self.on_idle = idle_fd, on_idle
        self.memory_limit = memory_limit
        self.child: _Child | None = None  # the one used last (prefetch sends to it)
        self.children: dict[_Key, _Child] = {}  # least recently used first
        self._warm_up = warm_up

    # ---- children
    def _spawn(self, key: _Key, source: str) -> _Child:
        self.warm_up_now()
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        tmp = tempfile.mkdtemp(prefix="alphaloop-strategy-")
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            try:
                os.close(req_w)
                os.close(rep_r)
                _child_main(req_r, rep_w, tmp, key, source, self.memory_limit, parent)
            finally:
                os._exit(70)
        os.close(req_r)
        os.close(rep_w)
        os.set_blocking(rep_r, False)
        from alphaloop.execution._pipes import PIPE_BYTES, widen_fd

        widen_fd(req_w, PIPE_BYTES)
        widen_fd(rep_r, PIPE_BYTES)
        poller = select.poll()
        poller.register(rep_r, select.POLLIN)
        if self.idle_fd is not None:
            poller.register(self.idle_fd, select.POLLIN)
        return _Child(key=key, pid=pid, requests=req_w, replies=rep_r, tmp=tmp, poller=poller)

    def _retire(self, child: _Child, kill: bool = False) -> int | None:
        """End ``child`` (closing its request pipe ends it; ``kill`` at once); its status."""
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.close(child.requests)
        status: int | None = None
        with contextlib.suppress(ChildProcessError):
            deadline = time.monotonic() + 5.0
            while True:
                pid, st = os.waitpid(child.pid, os.WNOHANG)
                if pid:
                    status = st
                    break
                if time.monotonic() > deadline:
                    os.kill(child.pid, signal.SIGKILL)
                    _, status = os.waitpid(child.pid, 0)
                    break
                time.sleep(0.001)
        with contextlib.suppress(OSError):
            os.close(child.replies)
        shutil.rmtree(child.tmp, ignore_errors=True)
        if self.children.get(child.key) is child:
            del self.children[child.key]
        if self.child is child:
            self.child = None
        return status

    def warm_up_now(self) -> None:
        """Run the warm-up now if it has not run (else it runs before the first fork), so
        that no task's clock pays for it."""
        if self._warm_up is not None:
            warm, self._warm_up = self._warm_up, None
            warm()

    def close(self) -> None:
        for child in list(self.children.values()):
            self._retire(child, kill=True)
        self.child = None

    def _key(self, job: PositionsJob) -> _Key:
        return _Key(job_code_hash(job), job.name, job.data_path, confined_for(job))

    def submit(self, jobs: list[tuple[str, PositionsJob]], ahead: int = 8, low: int = 2) -> None:
        """Send the next ``jobs`` (``(tag, job)``, in the order they will run) to the running
        strategy process ahead of time (the worker's prefetch; `positions` with the same tag
        takes the answer). Only when at most ``low`` are still waiting, and then up to
        ``ahead`` in one write: the process is woken once per batch, not once per task. Stops
        at the first job that needs another strategy process."""
        c = self.child
        if c is None or len(c.pending) > low or c.jobs + ahead > _MAX_JOBS_PER_CHILD:
            return
        waiting = {t for t, _r in c.pending}
        frames: list[bytes] = []
        for tag, job in jobs:
            if tag in waiting:
                continue
            if len(c.pending) >= ahead:
                break
            try:
                if self._key(job) != c.key:
                    break
            except AlphaloopError:
                break
            request = job.request()
            data = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
            frames.append(_LEN.pack(len(data)) + data)
            c.jobs += 1
            c.pending.append((tag, request))
        if frames:
            with contextlib.suppress(OSError):  # if it died, the reply pipe tells how
                _write_all(c.requests, b"".join(frames))

    def waiting(self) -> int:
        """Jobs sent ahead and not yet taken."""
        return 0 if self.child is None else len(self.child.pending)

    def _send(self, child: _Child, request: tuple[Any, ...], tag: str | None) -> None:
        data = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        child.jobs += 1
        child.pending.append((tag, request))
        with contextlib.suppress(OSError):  # if it died, the reply pipe tells how
            _write_all(child.requests, _LEN.pack(len(data)) + data)

    # ---- one job
    def positions(
        self, job: PositionsJob, bars: int, timeout: float | None = None, tag: str | None = None
    ) -> PositionsReply:
        """Positions of ``job`` (validated, ``bars`` of them).

        Raises `StrategyProcessError` (the strategy failed, crashed, hit a limit or sent a
        bad reply) or `ConfinementError` (the kernel cannot confine and the job may not run
        without it)."""
        key = self._key(job)
        request = job.request()
        c = self.children.pop(key, None)
        if c is not None and (
            (c.pending and c.pending[0] != (tag, request))  # sent ahead, not run: restart
            or (not c.pending and c.jobs >= _MAX_JOBS_PER_CHILD)
        ):
            self._retire(c, kill=bool(c.pending))
            c = None
        if c is None:
            while len(self.children) >= _KEEP:
                self._retire(next(iter(self.children.values())), kill=True)
            c = self._spawn(key, job.source)
        self.children[key] = self.child = c  # the most recently used, last
        if not c.pending:
            self._send(c, request, tag)
        head, body = self._read_reply(c, job.name, bars, timeout)
        c.pending.popleft()
        return self._decode(c, head, body, bars, job.name)

    def _read_reply(
        self, child: _Child, name: str, bars: int, timeout: float | None
    ) -> tuple[dict[str, Any], bytes]:
        deadline = None if timeout is None else time.monotonic() + timeout
        buf = child.buf
        while True:
            if len(buf) >= _HEAD.size:
                hlen, blen = _HEAD.unpack_from(buf)
                if hlen > _MAX_HEADER or blen > 8 * bars:
                    self._retire(child, kill=True)
                    raise StrategyProcessError(f"strategy {name!r} process sent a malformed reply")
                total = _HEAD.size + hlen + blen
                if len(buf) >= total:
                    head = bytes(buf[_HEAD.size : _HEAD.size + hlen])
                    with memoryview(buf) as view:
                        body = view[_HEAD.size + hlen : total].tobytes()
                    del buf[:total]
                    try:
                        header = {"ok": True} if head == _OK else json.loads(head)
                    except (ValueError, RecursionError):  # RecursionError: nested 1 MiB deep
                        header = None
                    if not isinstance(header, dict):
                        self._retire(child, kill=True)
                        raise StrategyProcessError(
                            f"strategy {name!r} process sent a malformed reply"
                        )
                    return header, body
            try:
                chunk = os.read(child.replies, 1 << 20)
            except BlockingIOError:
                chunk = None
            if chunk == b"":  # the child is gone
                status = self._retire(child)
                if status is None:
                    raise StrategyProcessError(f"strategy {name!r} process vanished")
                raise _describe_death(status, name)
            if chunk is not None:
                # (replies sent ahead may be waiting behind this one: each frame's sizes are
                # checked when it comes first, so the buffer holds at most one frame + 1 MiB)
                buf += chunk
                continue
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if wait == 0.0:
                self._retire(child, kill=True)
                from alphaloop.execution._base import format_seconds

                raise StrategyProcessError(
                    f"timed out after {format_seconds(timeout or 0)} s", "limit"
                )
            for fd, _ev in child.poller.poll(None if wait is None else int(wait * 1000) + 1):
                if fd == self.idle_fd and self.on_idle is not None and not self.on_idle():
                    child.poller.unregister(fd)

    def _decode(
        self, child: _Child, head: dict[str, Any], body: bytes, bars: int, name: str
    ) -> PositionsReply:
        if head.get("ok") is not True:
            kind = head.get("kind")
            if kind not in ("permanent", "limit", "transient"):
                kind = "permanent"
            error = head.get("error")
            text = clean(error if isinstance(error, str) else "strategy process failed")
            if head.get("exit"):
                self._retire(child)  # it exits after this answer; reap it now
            raise StrategyProcessError(text, kind)
        if len(body) != 8 * bars:
            raise StrategyProcessError(
                f"strategy {name!r} process returned {len(body) // 8} positions for {bars} bars"
            )
        positions = np.frombuffer(body, dtype=np.float64).copy()
        if bars and not (positions.min() >= -1.0 and positions.max() <= 1.0):  # NaN fails too
            raise StrategyProcessError(
                f"strategy {name!r} process returned positions outside [-1, 1]"
            )
        return PositionsReply(positions)


def job_code_hash(job: PositionsJob) -> str:
    """The code hash of ``job``'s strategy (given, or computed from its source)."""
    from alphaloop.backtest._source import code_hash

    return job.code_hash or code_hash(job.source)


def confined_for(job: PositionsJob) -> bool:
    """Whether ``job``'s strategy process is kernel-confined: True where the kernel can
    confine; False where it cannot and the job may run without (library code, or
    ``unconfined_ok``); `ConfinementError` for anything else."""
    from alphaloop.backtest._source import library_hashes
    from alphaloop.execution import _confine

    if _confine.availability().ok:
        return True
    if job.unconfined_ok or job_code_hash(job) in library_hashes():
        return False
    raise _confine.ConfinementError(
        f"{_confine.availability().describe()}; strategy code from outside the library "
        "runs only under kernel confinement (pass --unconfined to run it without, unsafe)"
    )


def require_kernel(untrusted: list[str]) -> None:
    """Raise `ConfinementError` if the kernel cannot confine strategy code and ``untrusted``
    (names of strategies from outside the library) is not empty: they would run unconfined."""
    from alphaloop.execution import _confine

    status = _confine.availability()
    if not status.ok and untrusted:
        raise _confine.ConfinementError(
            f"{status.describe()}; strategy code from outside the library "
            f"({', '.join(untrusted[:3])}) runs only under kernel confinement: use Linux with "
            "seccomp and Landlock, or pass --unconfined (unsafe)"
        )


_HOST: _Host | None = None


def become_host(
    *,
    idle_fd: int | None = None,
    on_idle: Callable[[], bool] | None = None,
    memory_limit: int | None = None,
    warm_up: Callable[[], None] | None = None,
) -> None:
    """Mark this process as a clean worker that forks strategy processes (called once, by
    `_worker.main`, before any task runs). ``on_idle`` is called when ``idle_fd`` is readable
    while a strategy process computes (the worker drains its inbox); it returns False to stop
    watching the descriptor. ``warm_up`` runs once, before the first fork (imports and
    compiles what every strategy process uses, so none pays for it)."""
    global _HOST
    _HOST = _Host(idle_fd, on_idle, memory_limit, warm_up)


def is_clean_host() -> bool:
    """Whether this process is a clean worker (and may fork strategy processes)."""
    return _HOST is not None


def current() -> _Host:
    """This worker's strategy-process manager (`RuntimeError` in any other process)."""
    if _HOST is None:
        raise RuntimeError("strategy processes are forked only from a clean alphaloop worker")
    return _HOST


def shutdown() -> None:
    """End the strategy process, if any (the worker is exiting)."""
    if _HOST is not None:
        _HOST.close()
