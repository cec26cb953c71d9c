"""Hostile strategies against the kernel boundary alone (``ALPHALOOP_PY_SANDBOX=off``).

Every file in ``tests/hostile/`` is a strategy written by an attacker (its docstring says what
it tries and which layer should stop it; ``tests/hostile/README.md`` has the conventions). With
the Python-level checks turned off, only the strategy process's confinement (a fresh fork of a
clean worker: scrubbed environment, rlimits, privilege drop, Landlock, seccomp) and the
worker's own handling of its replies stand in the way.

Entry points, each run once per module, as real processes:

- ``alphaloop strategies check FOLDER``: every file, one command (``--timeout 6``).
- ``alphaloop run --strategies FOLDER --workers 2 --variants 2 --task-timeout 6``: every file
  the reader accepts (``run`` refuses a folder with an unreadable file, so
  ``source_parse_bomb`` is left out); two workers, so strategies run next to each other. On a
  CLI without ``--task-timeout`` the files that never return (``HANGS``) are left out (the
  pool's derived timeout would cost minutes).
- ``alphaloop backtest FILE``: the subset ``BACKTEST``, two at a time (one CLI start costs
  ~5 s; every file goes through ``check``, ``run`` and, for state, the pool).
- ``LocalPool`` + ``run_task`` (library API), one worker: ``sma_crossover`` first, then after
  each file of ``POOL`` (the ones that change process state), each result compared with the
  reference computed here; and two workers: ``sigio_owner_group`` next to ``sma_crossover``
  variants.

Each entry point gets its own *arena*: a working directory holding a ``.env`` with a secret
(and the run's home, ``./.alphaloop``, the default), a fake ``$HOME`` with an SSH key, a canary
folder with a canary file, the data file, a TMPDIR per command, TCP/UDP/UNIX/abstract-UNIX
listeners on loopback, two victim processes running as uid 65534 (as strategy processes do), a
world-readable System V shared-memory segment holding a secret (another program's), and two
secret environment variables. Asserted per entry point, one test each so that one escape does
not hide another:

- no file written or changed outside the private temp (canary folder, working directory,
  ``$HOME``, data file hash/mode/mtime, site-packages and alphaloop caches, /tmp, /var/tmp,
  /dev/shm), the TMPDIR empty afterwards, no System V IPC object left behind;
- no connection or datagram reached a listener;
- no process spawned (a watcher sees no descendant deeper than worker -> strategy process and
  no non-Python program) and no strategy process outlives the command;
- no secret (env vars, ``.env``, SSH key, canary file, shared memory) in any output or in any
  file of the run's home; no attack reports its own success;
- the victim processes are alive and unchanged (priority, affinity, scheduler, I/O class);
- no metric faked: files marked ``# honest-positions: long`` report buy and hold on the real
  bars of their window, computed here with ``runner.evaluate``;
- no later result changes: the pool tests above; in ``run`` every task of a library strategy
  completed with the result recomputed here;
- clean output: no traceback, printable lines, errors on one line of at most 300 characters,
  exit codes as documented (backtest 0/2, check 1, run 0/1);
- and the look-ahead verdict is not the strategy's to give (``lookahead_cache_cheat``).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from alphaloop.backtest import runner
from alphaloop.backtest.strategy import library_names, library_source, load_strategy
from alphaloop.execution import BacktestTask, LocalPool, TaskQueue, confinement
from alphaloop.execution.task_runner import run_task, run_task_in_process

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not confinement().ok,
    reason=f"needs kernel confinement: {confinement().describe()}",
)

HOSTILE = Path(__file__).resolve().parent / "hostile"
ESCAPED = "HOSTILE" + "-ESCAPED"
SWITCH = {"ALPHALOOP_PY_SANDBOX": "off"}
TIMEOUT = 6.0  # --timeout: the files that never return cost this much (plus a new worker)
# the pool: a worker warms up before it says it is ready, so a task's clock counts the task only
POOL_TIMEOUT = 6.0
MEMORY = "1GiB"
NOBODY = 65534
MAX_LINE = 300
PYTHON = os.path.realpath(sys.executable)
SMA = {"fast": 12, "slow": 40, "allow_short": True}

# never return: left out of `run` until it has --task-timeout
HANGS = {"module_body_loops_forever", "orphan_survives_timeout"}
# one CLI start costs ~5 s: backtest gets one file per kind of outcome (success on faked prices,
# a read leak, a timeout that leaves an orphan, the memory limit, a crash, a hostile message,
# an unreadable file); every file goes through check and run
BACKTEST = [
    "control_buy_and_hold",
    "fake_prices_inplace",
    "read_cli_cwd",
    "orphan_survives_timeout",
    "module_body_allocates_3gib",
    "segfault_string_at",
    "huge_exception_escapes",
    "source_parse_bomb",
]
# the library API test runs sma_crossover after each of these: the files that change process
# state (library functions, options, prices in memory, pipes, signals, the worker itself)
POOL = [
    "control_buy_and_hold",
    "rebind_indicators_sma",
    "global_state_options",
    "monkeypatch_libraries",
    "overwrite_builtins_and_sandbox",
    "sys_modules_poison",
    "talib_func_globals",
    "fake_prices_inplace",
    "write_prices_in_memory",
    "gc_walk_objects",
    "threads_keep_running",
    "signal_handlers_timers",
    "disk_fill_private_temp",
    "poison_python_caches",
    "write_data_file",
    "write_every_fd",
    "forge_reply_fake_metrics",
    "forge_reply_nested_json",
    "forge_reply_escape_text",
    "kill_parent_and_group",
    "sysv_ipc_persist",
    "exit_os_exit",
    "exit_sys_exit",
    "exit_keyboard_interrupt",
    "segfault_as_strided",
    "module_body_allocates_3gib",
    "orphan_survives_timeout",
]
# files made by the test (not kept in git): one whose NAME is terminal escape sequences, and an
# honest one that sorts first, so that the worker's warm-up (charged to the first task, ~4 s on
# a loaded machine) never makes an attack time out instead of showing what it does
EVIL_NAME = "evil_name\x1b]0;pwned\x07\x1b[2J"
WARM_UP = "aaa_first_pays_the_warm_up"
WARM_UP_SOURCE = '''"""Honest and first in name order (made by the test)."""

import numpy as np

PARAMETERS = {}


def generate_positions(data, **params):
    return np.ones(len(data))
'''
EVIL_NAME_SOURCE = '''"""A strategy whose file name is escape sequences (made by the test)."""

PARAMETERS = {}


def generate_positions(data, **params):
    raise RuntimeError("my name is an escape sequence")
'''


def hostile_files() -> list[Path]:
    return sorted(p for p in HOSTILE.glob("*.py") if not p.name.startswith("_"))


def honest_long(path: Path) -> bool:
    return "# honest-positions: long" in path.read_text()


# ----------------------------------------------------------------------------------------
# canaries
# ----------------------------------------------------------------------------------------


class Listeners:
    """TCP, UDP, UNIX and abstract-UNIX listeners on this machine, recording every contact."""

    def __init__(self, folder: Path) -> None:
        self.hits: list[str] = []
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(64)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.unix_path = str(folder / "l.sock")
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix.bind(self.unix_path)
        self.unix.listen(64)
        self.abstract_name = f"alphaloop-hostile-{secrets.token_hex(6)}"
        self.abstract = socket.socket(socket.AF_UNIX)
        self.abstract.bind("\0" + self.abstract_name)
        self.abstract.listen(64)
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def tcp_port(self) -> int:
        return int(self.tcp.getsockname()[1])

    @property
    def udp_port(self) -> int:
        return int(self.udp.getsockname()[1])

    def _serve(self) -> None:
        socks = {self.tcp: "tcp", self.unix: "unix", self.abstract: "abstract"}
        while not self._stop:
            ready, _, _ = select.select([*socks, self.udp], [], [], 0.1)
            for s in ready:
                try:
                    if s is self.udp:
                        data, peer = s.recvfrom(4096)
                        self.hits.append(f"udp datagram from {peer}: {data[:40]!r}")
                    else:
                        conn, peer = s.accept()
                        self.hits.append(f"{socks[s]} connection from {peer!r}")
                        conn.close()
                except OSError:
                    pass

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        for s in (self.tcp, self.udp, self.unix, self.abstract):
            s.close()


VICTIMS: set[int] = set()  # every victim this module started (children of the test process)


class Victim:
    """A process of uid 65534 (like every strategy process), in its own session."""

    def __init__(self) -> None:
        ids = {"user": NOBODY, "group": NOBODY, "extra_groups": []} if os.geteuid() == 0 else {}
        self.proc = subprocess.Popen(["sleep", "3600"], start_new_session=True, **ids)
        self.pid = self.proc.pid
        VICTIMS.add(self.pid)
        self.before = self.state()

    def state(self) -> dict[str, Any]:
        if self.proc.poll() is not None:
            return {"alive": False, "returncode": self.proc.returncode}
        p = psutil.Process(self.pid)
        return {
            "alive": True,
            "nice": p.nice(),
            "affinity": sorted(p.cpu_affinity()),
            "scheduler": os.sched_getscheduler(self.pid),
            "ionice": tuple(p.ionice()),
        }

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


_libc = ctypes.CDLL(None, use_errno=True)
_libc.shmat.restype = ctypes.c_void_p
_libc.shmat.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
_libc.shmdt.argtypes = (ctypes.c_void_p,)
IPC_CREAT, IPC_EXCL, IPC_RMID = 0o1000, 0o2000, 0


class SharedSecret:
    """A world-readable System V shared-memory segment holding a secret (another program's)."""

    def __init__(self, text: str) -> None:
        for _ in range(20):
            self.key = secrets.randbelow(1 << 30) + 1
            self.id = _libc.shmget(self.key, 4096, IPC_CREAT | IPC_EXCL | 0o644)
            if self.id >= 0:
                break
        assert self.id >= 0, f"shmget: errno {ctypes.get_errno()}"
        addr = _libc.shmat(self.id, None, 0)
        ctypes.memmove(addr, text.encode() + b"\0", len(text) + 1)
        _libc.shmdt(addr)

    def close(self) -> None:
        _libc.shmctl(self.id, IPC_RMID, None)


def sysv_objects() -> dict[str, set[tuple[int, int]]]:
    """(id, creator uid) of every System V IPC object, per kind."""
    out: dict[str, set[tuple[int, int]]] = {}
    for kind in ("shm", "msg", "sem"):
        try:
            head, *lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()
        except (OSError, ValueError):
            head, lines = "", []
        names = head.split()
        rows = set()
        for line in lines:
            cols = dict(zip(names, line.split(), strict=False))
            ident = cols.get("shmid") or cols.get("msqid") or cols.get("semid") or "-1"
            rows.add((int(ident), int(cols.get("cuid", -1))))
        out[kind] = rows
    return out


def remove_sysv(kind: str, ident: int) -> None:
    fn = {"shm": _libc.shmctl, "msg": _libc.msgctl, "sem": _libc.semctl}[kind]
    if kind == "sem":
        fn(ident, 0, IPC_RMID)
    else:
        fn(ident, IPC_RMID, None)


def tree(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple[Any, ...]]:
    """Every entry under ``root``: type, size, mode, mtime and content hash."""
    out: dict[str, tuple[Any, ...]] = {}
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d not in skip]
        for name in [*dirnames, *filenames]:
            p = here / name
            st = p.lstat()
            digest = ""
            if p.is_file() and not p.is_symlink():
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            out[str(p.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return out


def sensitive_paths() -> list[Path]:
    """Files whose change would poison later Python processes or alphaloop runs."""
    import alphaloop.backtest.indicators as ind

    site = Path(np.__file__).resolve().parents[1]
    pkg = Path(ind.__file__).resolve().parent
    return [
        site / "hostile-poison.pth",
        site / "sitecustomize.py",
        site / "usercustomize.py",
        Path(ind.__file__).resolve(),
        *sorted((pkg / "__pycache__").glob("indicators*.pyc")),
        *sorted((pkg / "__pycache__").glob("*.nbi"))[:3],
    ]


POISON = b"hostile-poison_python_caches"  # what poison_python_caches appends


def file_state(paths: list[Path]) -> dict[str, Any]:
    """Whether each file exists and carries the poison (other changes may be legitimate:
    numba refreshing its cache, someone editing the source)."""
    return {str(p): p.exists() and POISON in p.read_bytes() for p in paths} | {
        f"{p} exists": p.exists() for p in paths[:3]
    }


def stray_system_files() -> set[str]:
    found: set[str] = set()
    for folder in ("/tmp", "/var/tmp", "/dev/shm"):
        found |= {str(p) for p in Path(folder).glob("hostile-*")}
    return found


# ----------------------------------------------------------------------------------------
# the arena of one entry point
# ----------------------------------------------------------------------------------------


@dataclass
class Arena:
    label: str
    root: Path
    cwd: Path = field(init=False)
    home: Path = field(init=False)
    canary_dir: Path = field(init=False)
    canary_file: Path = field(init=False)
    dotenv: Path = field(init=False)
    ssh_key: Path = field(init=False)
    run_home: Path = field(init=False)
    data: Path = field(init=False)
    cli_tmp: Path = field(init=False)
    folder: Path = field(init=False)
    secrets: dict[str, str] = field(init=False)
    env_secrets: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        r = self.root
        tokens = {k: secrets.token_hex(12) for k in ("env", "key", "file", "dotenv", "ssh", "shm")}
        # what must never show up anywhere: the random part of each secret
        self.secrets = dict(tokens)
        self.env_secrets = {
            "ALPHALOOP_TEST_SECRET_TOKEN": f"canary-{tokens['env']}",
            "OPENAI_API_KEY": f"sk-canary-{tokens['key']}",
        }
        self.cwd = r / "project"
        self.cwd.mkdir()
        self.dotenv = self.cwd / ".env"
        self.dotenv.write_text(f"OPENAI_API_KEY=dotenv-canary-{tokens['dotenv']}\n")
        (self.cwd / "notes.txt").write_text("a project file\n")
        self.run_home = self.cwd / ".alphaloop"  # the default home: ./.alphaloop
        self.home = r / "home"
        (self.home / ".ssh").mkdir(parents=True)
        self.ssh_key = self.home / ".ssh" / "id_rsa"
        self.ssh_key.write_text(f"-----BEGIN KEY-----\nssh-canary-{tokens['ssh']}\n")
        (self.home / ".bashrc").write_text("# bashrc\n")
        self.canary_dir = r / "canary"
        self.canary_dir.mkdir()
        self.canary_file = self.canary_dir / "secret.txt"
        self.canary_file.write_text(f"file-canary-{tokens['file']}\n")
        (self.canary_dir / "sub").mkdir()
        data_dir = r / "data"
        data_dir.mkdir()
        self.data = data_dir / "GOOG.csv"
        from alphaloop.data import load

        load("GOOG").to_csv(self.data)
        self.data.chmod(0o644)
        self.cli_tmp = r / "tmp"
        self.cli_tmp.mkdir()
        self.folder = r / "strategies"
        self.listeners = Listeners(r)
        self.victim = Victim()  # for the signal attacks
        self.victim2 = Victim()  # for the scheduling attacks
        self.shm = SharedSecret(f"shm-canary-{tokens['shm']}")
        self.before = self.snapshot()

    # -- what the attacks aim at
    def placeholders(self) -> dict[str, str]:
        return {
            "CANARY_DIR": str(self.canary_dir),
            "CANARY_FILE": str(self.canary_file),
            "DOTENV": str(self.dotenv),
            "CLI_CWD": str(self.cwd),
            "SSH_KEY": str(self.ssh_key),
            "USER_HOME": str(self.home),
            "RUN_HOME": str(self.run_home),
            "DATA": str(self.data),
            "CLI_TMP": str(self.cli_tmp),
            "TCP_PORT": str(self.listeners.tcp_port),
            "UDP_PORT": str(self.listeners.udp_port),
            "UNIX_SOCK": self.listeners.unix_path,
            "ABSTRACT_SOCK": self.listeners.abstract_name,
            "VICTIM_PID": str(self.victim.pid),
            "VICTIM2_PID": str(self.victim2.pid),
            "SHM_KEY": str(self.shm.key),
        }

    def prepare(self, paths: list[Path], generated: bool = True) -> Path:
        """Copy ``paths`` into the arena's strategy folder, placeholders filled in (and, with
        ``generated``, the two files the test makes)."""
        self.folder.mkdir(exist_ok=True)
        values = self.placeholders()
        for p in paths:
            text = p.read_text()
            for k, v in values.items():
                text = text.replace(f"@@{k}@@", v)
            assert "@@" not in text, f"{p.name}: unknown placeholder"
            (self.folder / p.name).write_text(text)
        if generated:
            (self.folder / f"{EVIL_NAME}.py").write_text(EVIL_NAME_SOURCE)
            (self.folder / f"{WARM_UP}.py").write_text(WARM_UP_SOURCE)
        return self.folder

    def env(self, tmp: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHALOOP_")}
        env.pop("PYTHONPATH", None)
        env.update(self.env_secrets)
        env.update(SWITCH)
        env.update(HOME=str(self.home), TMPDIR=str(tmp), COLUMNS="200")
        return env

    def tmp(self, name: str) -> Path:
        """A TMPDIR of its own for one command (its strategy processes work beneath it)."""
        path = self.cli_tmp / name
        path.mkdir()
        return path

    # -- what must not change
    def snapshot(self) -> dict[str, Any]:
        return {
            "canary": tree(self.canary_dir),
            "cwd": tree(self.cwd, skip=(self.run_home,)),
            "home": tree(self.home),
            "data": tree(self.data.parent),
            "sensitive": file_state(sensitive_paths()),
            "system": stray_system_files(),
            "sysv": sysv_objects(),
        }

    def close(self) -> None:
        self.listeners.close()
        self.victim.close()
        self.victim2.close()
        self.shm.close()
        # objects an attack left behind (kernel memory nobody would ever free)
        now = sysv_objects()
        for kind, rows in now.items():
            for ident, cuid in rows - self.before["sysv"][kind]:
                if cuid == NOBODY:
                    remove_sysv(kind, ident)
        for stray in stray_system_files() - self.before["system"]:
            with contextlib.suppress(OSError):
                if os.path.isdir(stray):
                    shutil.rmtree(stray)
                else:
                    os.unlink(stray)


# ----------------------------------------------------------------------------------------
# running a command under watch
# ----------------------------------------------------------------------------------------


class ProcessWatcher:
    """Polls the descendants of ``root``: anything deeper than worker -> strategy process, or
    any program that is not this Python, was spawned by strategy code."""

    def __init__(self, root: int, worker_depth: int = 2) -> None:
        # workers are forked from the worker template (root -> template -> worker)
        self.root = root
        self.limit = worker_depth + 1  # the strategy processes' depth
        self.spawned: dict[int, str] = {}
        self.seen: set[int] = set()
        self.leftovers: list[str] = []
        self.tmp_left: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _depth(self, p: psutil.Process) -> int:
        d = 0
        while p is not None and p.pid != self.root and d < 20:
            p = p.parent()
            d += 1
        return d

    def _run(self) -> None:
        try:
            root = psutil.Process(self.root)
        except psutil.Error:
            return
        while not self._stop.is_set():
            try:
                kids = root.children(recursive=True)
            except psutil.Error:
                kids = []
            for k in kids:
                if k.pid in self.seen or k.pid in VICTIMS:
                    continue
                try:
                    raw = k.exe()
                    depth = self._depth(k)
                    cmd = " ".join(k.cmdline())[:120]
                except psutil.Error:
                    continue
                if not raw:  # a zombie: nothing to learn from it any more
                    continue
                exe = os.path.realpath(raw)
                if exe != PYTHON or depth > self.limit:
                    self.spawned[k.pid] = f"depth {depth}: {exe}: {cmd}"
                self.seen.add(k.pid)
            self._stop.wait(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def leftovers(tmp: Path, grace: float = 3.0) -> list[str]:
    """Processes still running in a folder under ``tmp`` (strategy processes work in their
    private temp there) after ``grace`` seconds; they are killed after being listed."""
    deadline = time.monotonic() + grace
    while True:
        found = []
        for p in psutil.process_iter():
            try:
                cwd = p.cwd()
            except psutil.Error:
                continue
            if cwd.startswith(str(tmp)):
                found.append(p)
        if not found or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    out = []
    for p in found:
        with contextlib.suppress(psutil.Error):
            out.append(f"pid {p.pid} uid {p.uids().real} ppid {p.ppid()}: {p.cwd()}")
            p.kill()
    return out


@dataclass
class Command:
    args: list[str]
    rc: int
    stdout: str
    stderr: str
    seconds: float
    spawned: dict[int, str]
    leftovers: list[str]
    tmp_left: list[str]


def run_cli(arena: Arena, args: list[str], name: str, timeout: float = 600) -> Command:
    t0 = time.monotonic()
    tmp = arena.tmp(name)
    proc = subprocess.Popen(
        [sys.executable, "-m", "alphaloop.cli", *args],
        cwd=arena.cwd,
        env=arena.env(tmp),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a group of its own: a group signal stays inside
    )
    watcher = ProcessWatcher(proc.pid)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    watcher.stop()
    return Command(
        args=args,
        rc=proc.returncode,
        stdout=out.decode("utf-8", "replace"),
        stderr=err.decode("utf-8", "replace"),
        seconds=time.monotonic() - t0,
        spawned=watcher.spawned,
        leftovers=leftovers(tmp),
        tmp_left=sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*"))[:10],
    )


# ----------------------------------------------------------------------------------------
# assertions shared by the entry points
# ----------------------------------------------------------------------------------------


def diff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    out = []
    for k in sorted(set(before) | set(after)):
        if before.get(k) != after.get(k):
            out.append(
                f"{k}: {'new' if k not in before else 'gone' if k not in after else 'changed'}"
            )
    return out


def fs_violations(arena: Arena) -> list[str]:
    now = arena.snapshot()
    b = arena.before
    problems = []
    for key in ("canary", "cwd", "home", "data", "sensitive"):
        problems += [f"{key}: {d}" for d in diff(b[key], now[key])]
    problems += [f"new file {p}" for p in sorted(now["system"] - b["system"])]
    for kind in ("shm", "msg", "sem"):
        new = [i for i, uid in now["sysv"][kind] - b["sysv"][kind] if uid == NOBODY]
        problems += [f"System V {kind} object {i} left behind by uid 65534" for i in new]
    return problems


def leaks(arena: Arena, blobs: dict[str, bytes]) -> list[str]:
    out = []
    for where, blob in blobs.items():
        for name, token in arena.secrets.items():
            if token.encode() in blob:
                out.append(f"secret {name!r} in {where}")
        if ESCAPED.encode() in blob:
            i = blob.find(ESCAPED.encode())
            out.append(f"an attack reports success in {where}: {blob[i : i + 160]!r}")
    return out


def home_blobs(arena: Arena) -> dict[str, bytes]:
    out = {}
    if arena.run_home.exists():
        for p in arena.run_home.rglob("*"):
            if p.is_file():
                out[str(p.relative_to(arena.root))] = p.read_bytes()
    return out


def output_problems(text: str, where: str) -> list[str]:
    out = []
    if "Traceback" in text:
        out.append(f"traceback in {where}")
    for line in text.splitlines():
        bad = [c for c in line if not c.isprintable()]
        if bad:
            out.append(f"control characters {bad[:5]!r} in {where}: {line[:120]!r}")
    return out


def victim_problems(arena: Arena) -> list[str]:
    out = []
    for v in (arena.victim, arena.victim2):
        now = v.state()
        if now != v.before:
            out.append(f"victim process (uid {NOBODY}, pid {v.pid}): {v.before} -> {now}")
    return out


def metrics_mismatch(got: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    out = []
    for k, v in ref.items():
        g = got.get(k)
        if v is None or g is None:
            if v is not g:
                out.append(f"{k}: {g!r} != {v!r}")
        elif g != pytest.approx(v, rel=1e-9, abs=1e-12):
            out.append(f"{k}: {g!r} != {v!r}")
    return out


def reference(
    arena: Arena, start: str | None = None, end: str | None = None, eval_start: str | None = None
) -> dict[str, Any]:
    """Buy and hold on the real bars of ``arena``'s data (computed in this process)."""
    from alphaloop.data import load, slice_dates

    bars = load("GOOG", "1d", str(arena.data))
    if start or end:
        bars = slice_dates(bars, start, end)
    return dict(runner.evaluate(bars, np.ones(len(bars)), eval_start=eval_start).metrics)


def readable_with_checks_off(path: Path) -> bool:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ALPHALOOP_PY_SANDBOX", "off")
        try:
            load_strategy(path)
        except Exception:
            return False
    return True


@pytest.fixture(scope="module")
def arenas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Arena]]:
    made: dict[str, Arena] = {}
    yield made  # filled by the entry-point fixtures
    for a in made.values():
        a.close()


def report(title: str, problems: list[str]) -> str:
    return f"{title}:\n  " + "\n  ".join(problems[:40])


# ----------------------------------------------------------------------------------------
# entry point: strategies check (every file, one command)
# ----------------------------------------------------------------------------------------

CHECK_LINE = re.compile(r"^(?P<status>ok  |FAIL) (?P<name>.+?): (?P<msg>.*)$")


@dataclass
class CheckRun:
    arena: Arena
    cmd: Command
    lines: dict[str, tuple[str, str]]


@pytest.fixture(scope="module")
def check_run(arenas: dict[str, Arena], tmp_path_factory: pytest.TempPathFactory) -> CheckRun:
    arena = arenas["check"] = Arena("check", tmp_path_factory.mktemp("check"))
    folder = arena.prepare(hostile_files())
    cmd = run_cli(
        arena,
        [
            "strategies",
            "check",
            str(folder),
            "--ticker",
            "GOOG",
            "--data",
            str(arena.data),
            "--timeout",
            str(TIMEOUT),
            "--memory",
            MEMORY,
        ],
        "check",
    )
    lines = {}
    for line in cmd.stdout.splitlines():
        m = CHECK_LINE.match(line)
        if m:
            lines[m["name"]] = (m["status"].strip(), m["msg"])
    (arena.root / "outcomes.txt").write_text(cmd.stdout)
    return CheckRun(arena, cmd, lines)


def test_check_reports_every_file_on_one_clean_line(check_run: CheckRun) -> None:
    cmd = check_run.cmd
    problems = output_problems(cmd.stdout, "stdout") + output_problems(cmd.stderr, "stderr")
    names = [p.stem for p in hostile_files()] + [EVIL_NAME, WARM_UP]
    if cmd.rc != 1:
        problems.append(f"exit code {cmd.rc}, expected 1 (some files fail)")
    for line in cmd.stdout.splitlines():
        m = CHECK_LINE.match(line)
        if not m:
            problems.append(f"not a check line: {line[:120]!r}")
        elif len(m["msg"]) > MAX_LINE:
            problems.append(f"{m['name']}: message of {len(m['msg'])} characters")
    plain = [p.stem for p in hostile_files()]
    missing = [n for n in plain if n not in check_run.lines]
    problems += [f"no line for {n}" for n in missing]
    if len(cmd.stdout.splitlines()) != len(names):
        problems.append(f"{len(cmd.stdout.splitlines())} lines for {len(names)} files")
    assert not problems, report("check output", problems)
    assert check_run.lines["control_buy_and_hold"][0] == "ok"


def test_check_no_file_written_outside_the_private_temp(check_run: CheckRun) -> None:
    problems = fs_violations(check_run.arena)
    problems += [f"left in TMPDIR: {p}" for p in check_run.cmd.tmp_left]
    assert not problems, report("files changed by strategies check", problems)


def test_check_no_socket_no_process(check_run: CheckRun) -> None:
    a, cmd = check_run.arena, check_run.cmd
    problems = [f"listener: {h}" for h in a.listeners.hits]
    problems += [f"spawned: {v}" for v in cmd.spawned.values()]
    problems += [f"outlived the command: {v}" for v in cmd.leftovers]
    assert not problems, report("sockets/processes in strategies check", problems)


def test_check_leaks_no_secret(check_run: CheckRun) -> None:
    cmd = check_run.cmd
    problems = leaks(
        check_run.arena, {"stdout": cmd.stdout.encode(), "stderr": cmd.stderr.encode()}
    )
    assert not problems, report("leaks in strategies check", problems)


def test_check_other_processes_untouched(check_run: CheckRun) -> None:
    problems = victim_problems(check_run.arena)
    assert not problems, report("strategies check", problems)


def test_check_metrics_not_faked(check_run: CheckRun) -> None:
    ref = reference(check_run.arena)
    expected = f"{ref['num_trades']} trades, Sharpe {ref['sharpe_ratio']:.2f} on GOOG 1d"
    problems = []
    for p in hostile_files():
        if not honest_long(p):
            continue
        status, msg = check_run.lines.get(p.stem, ("missing", ""))
        if status == "ok" and not msg.startswith(expected):
            problems.append(f"{p.stem}: {msg!r}, expected {expected!r}")
    assert not problems, report("faked metrics in strategies check", problems)


# ----------------------------------------------------------------------------------------
# entry point: backtest (a representative subset, two at a time)
# ----------------------------------------------------------------------------------------


@dataclass
class BacktestRuns:
    arena: Arena
    cmds: dict[str, Command]


@pytest.fixture(scope="module")
def backtest_runs(
    arenas: dict[str, Arena], tmp_path_factory: pytest.TempPathFactory
) -> BacktestRuns:
    arena = arenas["backtest"] = Arena("backtest", tmp_path_factory.mktemp("backtest"))
    folder = arena.prepare([HOSTILE / f"{n}.py" for n in BACKTEST], generated=False)

    def one(name: str) -> Command:
        return run_cli(
            arena,
            [
                "backtest",
                str(folder / f"{name}.py"),
                "--ticker",
                "GOOG",
                "--data",
                str(arena.data),
                "--json",
                "--timeout",
                str(TIMEOUT if name in HANGS else 60),  # alone: it pays the warm-up
                "--memory",
                MEMORY,
            ],
            name,
        )

    with ThreadPoolExecutor(2) as pool:
        cmds = dict(zip(BACKTEST, pool.map(one, BACKTEST), strict=True))
    (arena.root / "outcomes.txt").write_text(
        "\n".join(
            f"{n}: rc {c.rc} {c.stdout.strip()[:200]} {c.stderr.strip()[-300:]}"
            for n, c in cmds.items()
        )
    )
    return BacktestRuns(arena, cmds)


def _switch_warning(line: str) -> bool:
    return "ALPHALOOP_PY_SANDBOX=off" in line


def test_backtest_exit_codes_and_one_line_errors(backtest_runs: BacktestRuns) -> None:
    problems = []
    for name, c in backtest_runs.cmds.items():
        problems += output_problems(c.stdout, f"{name} stdout")
        problems += output_problems(c.stderr, f"{name} stderr")
        errors = [ln for ln in c.stderr.splitlines() if not _switch_warning(ln)]
        if c.rc == 0:
            try:
                json.loads(c.stdout)
            except ValueError:
                problems.append(f"{name}: exit 0 without a JSON result: {c.stdout[:120]!r}")
            if errors:
                problems.append(f"{name}: exit 0 with stderr {errors[:2]!r}")
        elif c.rc == 2:
            if len(errors) != 1 or not errors[0].startswith("error: "):
                problems.append(f"{name}: exit 2 with stderr {errors[:3]!r}")
            elif len(errors[0]) > MAX_LINE:
                problems.append(f"{name}: error line of {len(errors[0])} characters")
        else:
            problems.append(f"{name}: exit code {c.rc}: {c.stderr[-200:]!r}")
    rcs = {n: c.rc for n, c in backtest_runs.cmds.items()}
    assert rcs["control_buy_and_hold"] == 0, backtest_runs.cmds["control_buy_and_hold"].stderr
    for n in (
        "orphan_survives_timeout",
        "module_body_allocates_3gib",
        "segfault_string_at",
        "source_parse_bomb",
    ):
        if rcs[n] != 2:
            problems.append(f"{n}: exit {rcs[n]}, expected 2")
    assert not problems, report("backtest output", problems)


def test_backtest_no_file_written_outside_the_private_temp(backtest_runs: BacktestRuns) -> None:
    problems = fs_violations(backtest_runs.arena)
    for name, c in backtest_runs.cmds.items():
        problems += [f"{name} left in TMPDIR: {p}" for p in c.tmp_left]
    assert not problems, report("files changed by backtest", problems)


def test_backtest_no_socket_no_process(backtest_runs: BacktestRuns) -> None:
    problems = [f"listener: {h}" for h in backtest_runs.arena.listeners.hits]
    for name, c in backtest_runs.cmds.items():
        problems += [f"{name} spawned: {v}" for v in c.spawned.values()]
        problems += [f"{name} outlived the command: {v}" for v in c.leftovers]
    assert not problems, report("sockets/processes in backtest", problems)


def test_backtest_leaks_no_secret(backtest_runs: BacktestRuns) -> None:
    blobs = {}
    for name, c in backtest_runs.cmds.items():
        blobs[f"{name} stdout"] = c.stdout.encode()
        blobs[f"{name} stderr"] = c.stderr.encode()
    problems = leaks(backtest_runs.arena, blobs)
    assert not problems, report("leaks in backtest", problems)


def test_backtest_other_processes_untouched(backtest_runs: BacktestRuns) -> None:
    problems = victim_problems(backtest_runs.arena)
    assert not problems, report("backtest", problems)


def test_backtest_metrics_not_faked(backtest_runs: BacktestRuns) -> None:
    ref = reference(backtest_runs.arena)
    problems = []
    for name, c in backtest_runs.cmds.items():
        if not honest_long(HOSTILE / f"{name}.py") or c.rc != 0:
            continue
        problems += [f"{name}: {m}" for m in metrics_mismatch(json.loads(c.stdout), ref)]
    assert backtest_runs.cmds["fake_prices_inplace"].rc == 0
    assert not problems, report("faked metrics in backtest", problems)


# ----------------------------------------------------------------------------------------
# entry point: run (the workflow, 2 workers)
# ----------------------------------------------------------------------------------------


@dataclass
class WorkflowRun:
    arena: Arena
    cmd: Command
    result: dict[str, Any] | None
    included: list[str]
    tools: dict[str, Any]
    # every task of the workflow's queue: (task, result or None, error or None)
    tasks: dict[str, tuple[BacktestTask, dict[str, Any] | None, str | None]]


def _has_option(option: str) -> bool:
    out = subprocess.run(
        [sys.executable, "-m", "alphaloop.cli", "run", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    return option in out.stdout


def _queue_tasks(home: Path) -> dict[str, tuple[BacktestTask, Any, str | None]]:
    out: dict[str, tuple[BacktestTask, Any, str | None]] = {}
    for db in home.glob("workflows/*/queue.db"):
        with contextlib.closing(sqlite3.connect(db)) as con:
            ids = [r[0] for r in con.execute("SELECT task_id FROM tasks")]
        q = TaskQueue(db, recover=False)
        try:
            for tid in ids:
                out[tid] = (q.get_task(tid), q.get_result(tid), q.get_error(tid))
        finally:
            q.close()
    return out


@pytest.fixture(scope="module")
def workflow_run(arenas: dict[str, Arena], tmp_path_factory: pytest.TempPathFactory) -> WorkflowRun:
    arena = arenas["run"] = Arena("run", tmp_path_factory.mktemp("run"))
    task_timeout = _has_option("--task-timeout")
    files = [p for p in hostile_files() if readable_with_checks_off(p)]
    if not task_timeout:
        files = [p for p in files if p.stem not in HANGS]
    folder = arena.prepare(files)
    args = [
        "run", "--ticker", "GOOG", "--strategies", str(folder), "--data", str(arena.data),
        "--variants", "2", "--seed", "0", "--workers", "2", "--home", str(arena.run_home),
        "--json",
    ]  # fmt: skip
    if task_timeout:
        args += ["--task-timeout", str(POOL_TIMEOUT)]
    cmd = run_cli(arena, args, "run")
    try:
        result = json.loads(cmd.stdout)
    except ValueError:
        result = None
    tools: dict[str, Any] = {}
    for p in arena.run_home.glob("workflows/*/tools.json"):
        tools = json.loads(p.read_text())
    tasks = _queue_tasks(arena.run_home)
    (arena.root / "outcomes.txt").write_text(json.dumps(tools, indent=1))
    included = [p.stem for p in files] + [EVIL_NAME, WARM_UP]
    return WorkflowRun(arena, cmd, result, included, tools, tasks)


def _one_clean_line(error: str | None) -> bool:
    detail = re.sub(r"^\w+: ", "", error or "")  # the queue prefixes the exception type
    return len(detail) <= MAX_LINE and detail.isprintable()


def test_run_finishes_with_clean_output(workflow_run: WorkflowRun) -> None:
    cmd = workflow_run.cmd
    problems = output_problems(cmd.stdout, "stdout") + output_problems(cmd.stderr, "stderr")
    if cmd.rc not in (0, 1) or workflow_run.result is None:
        problems.append(
            f"exit code {cmd.rc}, stdout {cmd.stdout[:200]!r}, stderr {cmd.stderr[-300:]!r}"
        )
    for name in workflow_run.included:
        if name not in workflow_run.tools:
            problems.append(f"{name!r} not checked in tool development")
    for tid, (_task, _res, err) in workflow_run.tasks.items():
        if err and not _one_clean_line(err):
            problems.append(f"{tid}: error {err[:80]!r} not one clean line")
    assert not problems, report("run output", problems)


def test_run_no_file_written_outside_the_private_temp(workflow_run: WorkflowRun) -> None:
    problems = fs_violations(workflow_run.arena)
    problems += [f"left in TMPDIR: {p}" for p in workflow_run.cmd.tmp_left]
    assert not problems, report("files changed by run", problems)


def test_run_no_socket_no_process(workflow_run: WorkflowRun) -> None:
    a, cmd = workflow_run.arena, workflow_run.cmd
    problems = [f"listener: {h}" for h in a.listeners.hits]
    problems += [f"spawned: {v}" for v in cmd.spawned.values()]
    problems += [f"outlived the command: {v}" for v in cmd.leftovers]
    assert not problems, report("sockets/processes in run", problems)


def test_run_leaks_no_secret(workflow_run: WorkflowRun) -> None:
    cmd = workflow_run.cmd
    blobs = {"stdout": cmd.stdout.encode(), "stderr": cmd.stderr.encode()}
    blobs.update(home_blobs(workflow_run.arena))
    problems = leaks(workflow_run.arena, blobs)
    assert not problems, report("leaks in run (outputs and every file of its home)", problems)


def test_run_other_processes_untouched(workflow_run: WorkflowRun) -> None:
    problems = victim_problems(workflow_run.arena)
    assert not problems, report("run", problems)


def test_run_metrics_not_faked(workflow_run: WorkflowRun) -> None:
    """Every completed task of an honest-long file (tool development and variants) reports
    buy and hold on its window of the real bars."""
    honest = {p.stem for p in hostile_files() if honest_long(p)}
    problems, compared = [], 0
    for tid, (task, res, _err) in workflow_run.tasks.items():
        if task.strategy_name not in honest or res is None or task.strategy_parameters:
            continue
        ref = reference(workflow_run.arena, task.start, task.end, task.eval_start)
        problems += [f"{tid}: {m}" for m in metrics_mismatch(res["metrics"], ref)]
        compared += 1
    assert compared, "no completed task of an honest-long strategy to compare"
    assert not problems, report("faked metrics in the run's results", problems)


def test_run_later_results_unchanged(workflow_run: WorkflowRun) -> None:
    """Every task of a library strategy (tool development included) completed, with the
    result computed again here, in this process; no hostile neighbour changed or failed it,
    and no library family was retired."""
    problems, compared = [], 0
    for state in workflow_run.arena.run_home.glob("workflows/*/state.json"):
        retired = json.loads(state.read_text()).get("retired_strategies") or {}
        problems += [f"library family {f} retired" for f in retired if f in library_names()]
    for tid, (task, res, err) in workflow_run.tasks.items():
        if task.strategy_name.split("+")[0] not in library_names():
            continue
        if res is None:
            problems.append(f"{tid} {task.strategy_name}: failed: {err}")
            continue
        ref = run_task_in_process(task.model_copy(update={"check_lookahead": False}))
        problems += [f"{tid}: {m}" for m in metrics_mismatch(res["metrics"], ref["metrics"])]
        compared += 1
    assert compared, "no library task to compare"
    assert not problems, report("library results in the run", problems)


def test_lookahead_cheat_is_not_taken_for_a_causal_strategy(
    check_run: CheckRun, workflow_run: WorkflowRun
) -> None:
    """``lookahead_cache_cheat`` trades on the next bar's close (perfect foresight) and answers
    the look-ahead re-runs from a cache: ``check`` must not pass it, and ``run`` must not end
    with it as its best strategy (the look-ahead verdict may not be decided inside the
    strategy's own process)."""
    problems = []
    status, msg = check_run.lines.get("lookahead_cache_cheat", ("missing", ""))
    if status == "ok":
        problems.append(f"strategies check passed it: {msg}")
    result = workflow_run.result or {}
    if result.get("best_strategy_name") == "lookahead_cache_cheat":
        sharpe = (result.get("best_metrics") or {}).get("sharpe_ratio")
        problems.append(f"run ended {result.get('status')} with it as best (Sharpe {sharpe})")
    assert not problems, report("a look-ahead strategy got through", problems)


# ----------------------------------------------------------------------------------------
# entry point: LocalPool + run_task (library API)
# ----------------------------------------------------------------------------------------


def _task(
    task_id: str,
    source: str,
    name: str,
    data: Path,
    params: dict[str, Any] | None = None,
    lookahead: bool = False,
    priority: int = 0,
) -> BacktestTask:
    return BacktestTask(
        task_id=task_id,
        experiment_id="hostile",
        variant_id=task_id,
        strategy_code=source,
        strategy_name=name,
        strategy_parameters=params or {},
        ticker="GOOG",
        data_path=str(data),
        max_retries=1,
        check_lookahead=lookahead,
        priority=priority,
    )


@dataclass
class PoolRun:
    arena: Arena
    results: dict[str, Any]
    errors: dict[str, str | None]
    order: list[str]
    spawned: dict[int, str]
    leftovers: list[str]
    sma_reference: dict[str, Any]


def _pool(
    arena: Arena,
    tasks: list[BacktestTask],
    workers: int,
    monkeypatch: pytest.MonkeyPatch,
    task_timeout: float,
    later: list[BacktestTask] | None = None,
) -> tuple[dict[str, Any], dict[str, str | None], ProcessWatcher]:
    """Run ``tasks`` in a LocalPool of ``workers`` (TMPDIR, secrets and the switch set as for
    the CLI); ``later`` are enqueued while it runs, once a strategy process shows a file
    named ``firing`` in its private temp."""
    for k, v in {**arena.env_secrets, **SWITCH}.items():
        monkeypatch.setenv(k, v)
    tmp = arena.tmp(f"pool-{workers}")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    db = arena.root / f"queue-{workers}.db"
    later = later or []
    queue = TaskQueue(db)
    queue.enqueue_batch(tasks)
    watcher = ProcessWatcher(os.getpid())

    def enqueue_later() -> None:
        deadline = time.monotonic() + 120
        while not list(tmp.glob("*/*/firing")) and time.monotonic() < deadline:
            time.sleep(0.02)
        q = TaskQueue(db, recover=False)
        q.enqueue_batch(later)
        q.close()

    helper = threading.Thread(target=enqueue_later, daemon=True) if later else None
    if helper:
        helper.start()
    try:
        with LocalPool(
            workers,
            task_timeout=task_timeout,
            memory_limit=1 << 30,
            cpu_threshold=1.0,
            memory_threshold=1.0,
        ) as pool:
            pool.run(queue, run_task)
    finally:
        watcher.stop()
        if helper:
            helper.join(5)
    everything = [*tasks, *later]
    results = {t.task_id: queue.get_result(t.task_id) for t in everything}
    errors = {t.task_id: queue.get_error(t.task_id) for t in everything}
    queue.close()
    watcher.leftovers = leftovers(tmp)
    watcher.tmp_left = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*"))[:10]
    return results, errors, watcher


@pytest.fixture(scope="module")
def pool_run(
    arenas: dict[str, Arena], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PoolRun]:
    arena = arenas["pool"] = Arena("pool", tmp_path_factory.mktemp("pool"))
    files = [HOSTILE / f"{n}.py" for n in POOL]
    folder = arena.prepare(files, generated=False)
    sma = library_source("sma_crossover")
    sma_ref = run_task_in_process(_task("ref", sma, "sma_crossover", arena.data, SMA))["metrics"]
    tasks, order = [_task("sma-0", sma, "sma_crossover", arena.data, SMA)], []
    for i, p in enumerate(files, 1):
        tasks.append(_task(f"h-{p.stem}", (folder / p.name).read_text(), p.stem, arena.data))
        tasks.append(_task(f"sma-{i}", sma, "sma_crossover", arena.data, SMA))
        order.append(p.stem)
    with pytest.MonkeyPatch.context() as mp:
        results, errors, watcher = _pool(arena, tasks, 1, mp, POOL_TIMEOUT)
    left = watcher.leftovers + [f"left in TMPDIR: {p}" for p in watcher.tmp_left]
    (arena.root / "outcomes.txt").write_text(
        "\n".join(f"{t.task_id}: {errors[t.task_id] or 'ok'}" for t in tasks)
    )
    yield PoolRun(arena, results, errors, order, watcher.spawned, left, sma_ref)


def test_pool_later_results_unchanged(pool_run: PoolRun) -> None:
    """One worker runs sma_crossover, then each hostile file followed by sma_crossover again:
    every sma_crossover result equals the reference computed in this process."""
    problems = []
    for i in range(len(pool_run.order) + 1):
        after = "the start" if i == 0 else pool_run.order[i - 1]
        res = pool_run.results[f"sma-{i}"]
        if res is None:
            problems.append(f"sma_crossover after {after}: failed: {pool_run.errors[f'sma-{i}']}")
            continue
        problems += [
            f"sma_crossover after {after}: {m}"
            for m in metrics_mismatch(res["metrics"], pool_run.sma_reference)
        ]
    assert not problems, report("sma_crossover changed in the same worker", problems)


def test_pool_boundary_holds(pool_run: PoolRun) -> None:
    a = pool_run.arena
    problems = fs_violations(a)
    problems += [f"listener: {h}" for h in a.listeners.hits]
    problems += [f"spawned: {v}" for v in pool_run.spawned.values()]
    problems += [f"outlived the pool: {v}" for v in pool_run.leftovers]
    problems += victim_problems(a)
    blobs = {f"error of {k}": (v or "").encode() for k, v in pool_run.errors.items()}
    blobs["results"] = json.dumps(pool_run.results, default=str).encode()
    problems += leaks(a, blobs)
    for k, v in pool_run.errors.items():
        if v and not _one_clean_line(v):
            problems.append(f"{k}: error {v[:80]!r} not one clean line")
    assert not problems, report("boundary in the pool", problems)


def test_pool_metrics_not_faked(pool_run: PoolRun) -> None:
    ref = reference(pool_run.arena)
    problems = []
    for p in [HOSTILE / f"{n}.py" for n in POOL]:
        res = pool_run.results[f"h-{p.stem}"]
        if honest_long(p) and res is not None:
            problems += [f"{p.stem}: {m}" for m in metrics_mismatch(res["metrics"], ref)]
    assert pool_run.results["h-control_buy_and_hold"] is not None
    assert not problems, report("faked metrics in the pool", problems)


def test_pool_neighbour_cannot_kill_strategy_processes(
    arenas: dict[str, Arena], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Two workers: ``sigio_owner_group`` fires for 5 s on one; two ``sma_crossover`` tasks
    warm the other up, and twelve variants are queued once the attack has begun (it marks its
    private temp), so they run while it fires. Every variant must complete with the result
    computed in this process."""
    arena = arenas["pool2"] = Arena("pool2", tmp_path_factory.mktemp("pool2"))
    folder = arena.prepare([HOSTILE / "sigio_owner_group.py"], generated=False)
    sma = library_source("sma_crossover")
    variants = [{"fast": f, "slow": 40 + f, "allow_short": True} for f in range(2, 16)]
    source = (folder / "sigio_owner_group.py").read_text()
    first = [
        _task("h-group", source, "sigio_owner_group", arena.data, {"seconds": 5.0}, priority=2),
        *[_task(f"sma-{i}", sma, "sma_crossover", arena.data, variants[i], priority=1)
          for i in (0, 1)],
    ]  # fmt: skip
    later = [
        _task(f"sma-{i}", sma, "sma_crossover", arena.data, v, lookahead=True)
        for i, v in enumerate(variants)
        if i > 1
    ]
    with pytest.MonkeyPatch.context() as mp:
        results, errors, _watcher = _pool(arena, first, 2, mp, 60.0, later)
    problems = []
    for i, v in enumerate(variants):
        ref = run_task_in_process(_task("ref", sma, "sma_crossover", arena.data, v))["metrics"]
        if results[f"sma-{i}"] is None:
            problems.append(f"sma_crossover {v}: failed: {errors[f'sma-{i}']}")
        else:
            problems += [
                f"sma_crossover {v}: {m}"
                for m in metrics_mismatch(results[f"sma-{i}"]["metrics"], ref)
            ]
    assert not problems, report("a neighbour killed or changed sma_crossover", problems)
