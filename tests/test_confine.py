"""Kernel confinement (`alphaloop.execution._confine`) under real faults.

`apply` is irreversible and pytest's process may have threads, so every scenario that confines
runs in a fresh interpreter (`run`), started in its own session so that a signal it manages to
send to "its process group" could only ever reach itself. Each scenario prints one JSON line.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from alphaloop.execution import _confine
from alphaloop.execution._confine import (
    NOBODY,
    Applied,
    Availability,
    ConfinementError,
    Policy,
    apply,
    availability,
    default_read_paths,
    scrubbed_env,
)

AVAILABLE = availability()
needs_kernel = pytest.mark.skipif(not AVAILABLE.ok, reason=AVAILABLE.describe())
IS_ROOT = os.geteuid() == 0
EPERM, EACCES = 1, 13
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")

PRELUDE = """
import ctypes, json, os, sys
ARGS = json.loads(sys.argv[1])
_libc = ctypes.CDLL(None, use_errno=True)

def attempt(fn, *args):
    try:
        value = fn(*args)
    except BaseException as exc:
        return {"ok": False, "type": type(exc).__name__, "errno": getattr(exc, "errno", None)}
    return {"ok": True, "value": repr(value)[:200]}

def syscall(name, *args):
    import pyseccomp
    nr = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
    ctypes.set_errno(0)
    res = _libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return {"ok": res != -1, "errno": ctypes.get_errno() if res == -1 else None, "value": res}

def status_reader():
    fd = os.open("/proc/self/status", os.O_RDONLY)  # opened before Landlock closes /proc
    def read():
        text = os.pread(fd, 1 << 16, 0).decode()
        return dict(line.split(":\\t", 1) for line in text.splitlines() if ":\\t" in line)
    return read

def emit(out):
    print(json.dumps(out), flush=True)
"""


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != _confine.OFF_ENV}
    env.update(dict.fromkeys(THREAD_VARS, "1"))
    env.update(extra)
    return env


def run(
    body: str,
    args: dict[str, Any] | None = None,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run PRELUDE + body in a fresh interpreter, in its own session; never raises on failure."""
    return subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(body), json.dumps(args or {})],
        env=env or child_env(),
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,
        cwd=cwd,
    )


def output(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def denied(result: dict[str, Any], code: int) -> bool:
    return result["ok"] is False and result["errno"] == code


# --- what a confined process cannot do, and can --------------------------------------------

DENIALS = """
import errno, resource, signal, socket, subprocess, threading
from alphaloop.execution._confine import Policy, apply

status = status_reader()
canary, wd = ARGS["canary_dir"], ARGS["write_dir"]
applied = apply(Policy(read_paths=tuple(ARGS["read_paths"]), write_dir=wd,
                       drop_privileges=ARGS["drop"]))
ppid = os.getppid()
out = {"applied": applied.__dict__, "status": status()}

# programs and processes
out["system"] = os.system(f"touch {canary}/from_system")
out["subprocess"] = attempt(subprocess.run, ["/bin/true"])
out["execv"] = attempt(os.execv, "/bin/true", ["true"])
out["fork"] = attempt(os.fork)
ran = []
t = threading.Thread(target=lambda: ran.append(sum(range(1000))))
t.start(); t.join()
out["thread"] = ran
from concurrent.futures import ThreadPoolExecutor
with ThreadPoolExecutor(4) as pool:
    out["thread_pool"] = sorted(pool.map(lambda x: x * x, range(8)))

# network
out["inet"] = attempt(socket.socket, socket.AF_INET, socket.SOCK_STREAM)
out["inet6"] = attempt(socket.socket, socket.AF_INET6, socket.SOCK_DGRAM)
out["unix"] = attempt(socket.socket, socket.AF_UNIX, socket.SOCK_STREAM)
out["socketpair"] = attempt(socket.socketpair)
out["connect"] = attempt(socket.create_connection, ("127.0.0.1", ARGS["port"]), 2)

# files
out["read_canary"] = attempt(lambda: open(f"{canary}/secret.txt").read())
out["write_canary"] = attempt(lambda: open(f"{canary}/new.txt", "w").write("x"))
out["list_canary"] = attempt(os.listdir, canary)
out["read_data_file"] = attempt(lambda: open(ARGS["data_file"]).read())
out["read_data_dir"] = attempt(lambda: sorted(os.listdir(ARGS["data_dir"])))
out["parent_environ"] = attempt(lambda: open(f"/proc/{ppid}/environ", "rb").read())
out["etc_passwd"] = attempt(lambda: open("/etc/passwd").read())
out["list_root"] = attempt(os.listdir, "/")
def write_inside():
    with open(f"{wd}/out.txt", "w") as f:
        f.write("inside")
    os.mkdir(f"{wd}/sub")
    os.rename(f"{wd}/out.txt", f"{wd}/sub/out.txt")
    return open(f"{wd}/sub/out.txt").read()
out["write_inside"] = attempt(write_inside)
out["link_out"] = attempt(os.link, f"{wd}/sub/out.txt", f"{canary}/linked.txt")
out["devnull"] = attempt(lambda: open(os.devnull, "w").write("x"))

# other processes and signals
out["kill_parent"] = attempt(os.kill, ppid, 0)
out["kill_group"] = attempt(os.kill, 0, signal.SIGTERM)
out["kill_all"] = attempt(os.kill, -1, 0)
out["kill_self"] = attempt(os.kill, os.getpid(), 0)
got = []
signal.signal(signal.SIGUSR1, lambda *a: got.append(1))
os.kill(os.getpid(), signal.SIGUSR1)
signal.raise_signal(signal.SIGUSR1)
out["self_signals"] = got
out["ptrace_traceme"] = syscall("ptrace", 0, 0, 0, 0)
out["process_vm_readv"] = syscall("process_vm_readv", ppid, 0, 0, 0, 0, 0)
out["pidfd_open"] = syscall("pidfd_open", ppid, 0)
out["tkill"] = syscall("tkill", ppid, 0)

# kernel state and credentials
params = ctypes.create_string_buffer(256)
out["io_uring_setup"] = syscall("io_uring_setup", 8, ctypes.addressof(params))
out["unshare_userns"] = syscall("unshare", 0x10000000)
out["setgid_same"] = attempt(os.setgid, os.getgid())
out["setuid_root"] = attempt(os.setuid, 0)
out["bpf"] = syscall("bpf", 0, 0, 0)
limit = (ctypes.c_uint64 * 2)(8, 8)  # lowering a limit: always allowed without the filter
out["setrlimit"] = syscall("setrlimit", resource.RLIMIT_NOFILE, ctypes.addressof(limit))
out["prlimit_set"] = syscall("prlimit64", 0, resource.RLIMIT_NOFILE, ctypes.addressof(limit), 0)
out["prlimit_get"] = syscall("prlimit64", 0, resource.RLIMIT_NOFILE, 0, ctypes.addressof(limit))
out["getrlimit"] = resource.getrlimit(resource.RLIMIT_NOFILE)
fd = os.open(os.devnull, os.O_RDONLY)
ch = ctypes.c_char(b"x")
out["tiocsti"] = syscall("ioctl", fd, 0x5412, ctypes.addressof(ch))
out["tiocsti_high_bits"] = syscall("ioctl", fd, (1 << 32) | 0x5412, ctypes.addressof(ch))
emit(out)
"""


@needs_kernel
@pytest.mark.parametrize(
    "drop",
    [
        True,
        pytest.param(
            False, marks=pytest.mark.skipif(not IS_ROOT, reason="the same as True when not root")
        ),
    ],
    ids=["drop_privileges", "root_without_drop"],
)
def test_confined_process_is_denied_everything_outside_the_policy(
    tmp_path: Path, drop: bool
) -> None:
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "secret.txt").write_text("secret")
    (canary / "prices.csv").write_text("date,close\n")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "a.csv").write_text("x")
    wd = tmp_path / "work"
    wd.mkdir()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    args = {
        "canary_dir": str(canary),
        "write_dir": str(wd),
        "data_file": str(canary / "prices.csv"),
        "data_dir": str(data_dir),
        "read_paths": [str(canary / "prices.csv"), str(data_dir), str(tmp_path / "missing")],
        "port": listener.getsockname()[1],
        "drop": drop,
    }
    try:
        out = output(run(DENIALS, args))
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody ever connected
    finally:
        listener.close()

    applied, status = out["applied"], out["status"]
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"
    assert applied["seccomp"] and applied["landlock_abi"] == AVAILABLE.landlock_abi >= 1
    assert applied["write_dir"] == str(wd)
    assert str(canary / "prices.csv") in applied["read_paths"]
    assert str(tmp_path / "missing") not in applied["read_paths"]
    if IS_ROOT:
        assert applied["uid"] == applied["gid"] == (NOBODY if drop else 0)
    else:
        assert (applied["uid"], applied["gid"]) == (os.getuid(), os.getgid())

    # programs and processes
    assert out["system"] != 0 and not (canary / "from_system").exists()
    for key in ("subprocess", "execv", "fork"):
        assert denied(out[key], EPERM), (key, out[key])
    assert out["thread"] == [499500]
    assert out["thread_pool"] == [x * x for x in range(8)]
    # network
    for key in ("inet", "inet6", "unix", "socketpair", "connect"):
        assert denied(out[key], EPERM), (key, out[key])
    # files: Landlock answers EACCES outside the rules
    for key in ("read_canary", "write_canary", "list_canary", "parent_environ", "etc_passwd"):
        assert denied(out[key], EACCES), (key, out[key])
    assert denied(out["list_root"], EACCES)
    assert denied(out["link_out"], EACCES) or denied(out["link_out"], 18)  # EXDEV across dirs
    assert not (canary / "new.txt").exists() and not (canary / "linked.txt").exists()
    assert out["read_data_file"] == {"ok": True, "value": repr("date,close\n")}
    assert out["read_data_dir"] == {"ok": True, "value": repr(["a.csv"])}
    assert out["write_inside"] == {"ok": True, "value": repr("inside")}
    assert (wd / "sub" / "out.txt").read_text() == "inside"
    assert out["devnull"]["ok"]
    # other processes and signals
    for key in ("kill_parent", "kill_group", "kill_all"):
        assert denied(out[key], EPERM), (key, out[key])
    assert out["kill_self"]["ok"] and out["self_signals"] == [1, 1]
    for key in ("ptrace_traceme", "process_vm_readv", "pidfd_open", "tkill"):
        assert denied(out[key], EPERM), (key, out[key])
    # kernel state, credentials, limits, terminal
    for key in ("io_uring_setup", "unshare_userns", "setgid_same", "setuid_root", "bpf"):
        assert denied(out[key], EPERM), (key, out[key])
    for key in ("setrlimit", "prlimit_set", "tiocsti", "tiocsti_high_bits"):
        assert denied(out[key], EPERM), (key, out[key])
    assert out["prlimit_get"]["ok"] and out["getrlimit"] == [256, 256]


# --- the libraries strategies use still work --------------------------------------------------

LIBRARIES = """
def work(np, pd, talib, ind):
    assert "pandas.tseries.holiday" not in sys.modules
    import pandas.tseries.holiday as holiday  # a lazy submodule import, after confinement
    holidays = holiday.USFederalHolidayCalendar().holidays("2024-01-01", "2024-12-31")
    idx = pd.date_range("2024-01-01", periods=300, freq="h", tz="America/New_York")
    close = pd.Series(100 + np.sin(np.arange(300) / 9.0), index=idx)
    frame = pd.DataFrame({"close": close, "volume": 1.0})
    tokyo = pd.Timestamp("2024-03-10 12:00", tz="Europe/London").tz_convert("Asia/Tokyo")
    values = close.to_numpy()
    return {
        "holidays": len(holidays),
        "rolling": round(float(close.rolling(20).mean().iloc[-1]), 6),
        "ewm": round(float(frame["close"].ewm(span=10).mean().iloc[-1]), 6),
        "resample": len(close.tz_convert("UTC").resample("D").last()),
        "tz": str(tokyo),
        "talib_sma": round(float(talib.SMA(values, 20)[-1]), 6),
        "ind_sma": round(float(ind.sma(values, 20)[-1]), 6),
        "ind_rsi": round(float(ind.rsi(values, 14)[-1]), 6),
        "ind_bbands": len(ind.bbands(values, 20, 2.0)),
        "linalg": round(float(np.linalg.inv(np.eye(3) * 2.0)[0, 0]), 6),
    }
"""

COLD = (
    LIBRARIES
    + """
from alphaloop.execution._confine import Policy, apply
apply(Policy(write_dir=ARGS["write_dir"]))
import numpy as np, pandas as pd, talib  # imported only after confinement
from alphaloop.backtest import indicators as ind
emit(work(np, pd, talib, ind))
"""
)

# The clean worker's way: import and warm everything up (numba's cache=True functions need a
# writable cache folder when they are first decorated), fork, confine the child, run.
FORKED = (
    LIBRARIES
    + """
import numpy as np, pandas as pd, talib
from alphaloop.backtest import engine, indicators as ind
from alphaloop.execution._confine import Policy, apply, availability
x = np.sin(np.arange(200) / 5.0)
bars = pd.DataFrame({"open": x + 2, "high": x + 3, "low": x + 1, "close": x + 2, "volume": 1.0},
                    index=pd.date_range("2020-01-01", periods=200))
engine.run(bars, np.sign(x)), ind.crossover_side(x, 0 * x), ind.latch(x > 0.5, x < 0)
availability()
pid = os.fork()
if pid == 0:
    code = 1
    try:
        apply(Policy(write_dir=ARGS["write_dir"]))
        out = work(np, pd, talib, ind)
        y = np.cos(np.arange(400) / 7.0)
        out["crossover"] = ind.crossover_side(y, 0 * y)[-3:].tolist()
        bars2 = pd.DataFrame({"open": y + 2, "high": y + 3, "low": y + 1, "close": y + 2,
                              "volume": 1.0}, index=pd.date_range("2020-01-01", periods=400))
        out["trades"] = engine.run(bars2, np.sign(y)).metrics["num_trades"]
        emit(out)
        code = 0
    finally:
        sys.stdout.flush()
        os._exit(code)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""
)


@needs_kernel
@pytest.mark.parametrize("scenario", ["imported_after_apply", "forked_from_warm_worker"])
def test_numpy_pandas_talib_and_indicators_work_when_confined(
    tmp_path: Path, scenario: str
) -> None:
    script = COLD if scenario == "imported_after_apply" else FORKED
    out = output(run(script, {"write_dir": str(tmp_path)}))
    assert out["holidays"] == 11
    assert out["tz"] == "2024-03-10 21:00:00+09:00"
    assert out["resample"] == 13 and out["ind_bbands"] == 3 and out["linalg"] == 0.5
    assert out["talib_sma"] == out["ind_sma"] == out["rolling"]
    assert 0 < out["ind_rsi"] < 100 and out["ewm"] > 0
    if scenario == "forked_from_warm_worker":  # numba functions compiled before the fork
        assert out["crossover"] == [math.copysign(1.0, math.cos(i / 7.0)) for i in (397, 398, 399)]
        assert out["trades"] > 0


# --- resource limits --------------------------------------------------------------------------

LIMITS = """
import errno, resource
from alphaloop.execution._confine import Policy, apply
wd = ARGS["write_dir"]
apply(Policy(write_dir=wd, max_file_size=1 << 20))
out = {}
out["as"] = resource.getrlimit(resource.RLIMIT_AS)
out["core"] = resource.getrlimit(resource.RLIMIT_CORE)
out["cpu"] = resource.getrlimit(resource.RLIMIT_CPU)
out["fsize"] = resource.getrlimit(resource.RLIMIT_FSIZE)
out["alloc_3gib"] = attempt(bytearray, 3 << 30)
out["alloc_after"] = len(bytearray(64 << 20))
def big_write():
    with open(f"{wd}/big.bin", "wb") as f:
        f.write(b"x" * (2 << 20))
out["big_write"] = attempt(big_write)
files = []
def open_many():
    while len(files) < 10_000:
        files.append(os.open(os.devnull, os.O_RDONLY))
out["open_many"] = attempt(open_many)
out["opened"] = len(files)
emit(out)
"""


@needs_kernel
def test_limits_turn_runaway_memory_files_and_descriptors_into_errors(tmp_path: Path) -> None:
    out = output(run(LIMITS, {"write_dir": str(tmp_path)}))
    assert out["as"] == [2 << 30, 2 << 30]
    assert out["core"] == [0, 0] and out["cpu"] == [900, 905] and out["fsize"] == [1 << 20] * 2
    assert out["alloc_3gib"] == {"ok": False, "type": "MemoryError", "errno": None}
    assert out["alloc_after"] == 64 << 20
    assert denied(out["big_write"], 27)  # EFBIG: Python ignores SIGXFSZ
    assert (tmp_path / "big.bin").stat().st_size == 1 << 20
    assert denied(out["open_many"], 24) and out["opened"] < 256  # EMFILE


CPU_HOG = """
import resource
from alphaloop.execution._confine import Policy, apply
used = resource.getrusage(resource.RUSAGE_SELF)
apply(Policy(write_dir=ARGS["write_dir"], cpu_seconds=int(used.ru_utime + used.ru_stime) + 2))
print("confined", flush=True)
while True:
    pass
"""


@needs_kernel
def test_cpu_limit_kills_a_busy_loop(tmp_path: Path) -> None:
    # run() allows 300 s of wall time for about 2 s of CPU time
    proc = run(CPU_HOG, {"write_dir": str(tmp_path)}, cwd=tmp_path)
    assert "confined" in proc.stdout, proc.stderr
    assert proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL), proc.returncode
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("core")]  # RLIMIT_CORE = 0


# --- privileges -------------------------------------------------------------------------------

PRIVILEGES = """
from alphaloop.execution._confine import Policy, apply
status = status_reader()
_libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL (the kernel clears it on setuid)
applied = apply(Policy(write_dir=ARGS["write_dir"]))
open(os.path.join(ARGS["write_dir"], "mine.txt"), "w").write("x")
deathsig = ctypes.c_int(0)
_libc.prctl(2, ctypes.byref(deathsig), 0, 0, 0)  # PR_GET_PDEATHSIG
emit({"applied": applied.__dict__, "status": status(), "groups": os.getgroups(),
      "resuid": os.getresuid(), "resgid": os.getresgid(), "deathsig": deathsig.value})
"""


def _other_reachable(path: str) -> bool:
    """Independent of the module: can uid 65534 reach ``path`` through the "other" bits?"""
    p = Path(path).resolve()
    mode = p.stat().st_mode
    ok = bool(mode & stat.S_IROTH) and (not p.is_dir() or bool(mode & stat.S_IXOTH))
    return ok and all(a.stat().st_mode & stat.S_IXOTH for a in p.parents)


@needs_kernel
@pytest.mark.skipif(not IS_ROOT, reason="the privilege drop happens only when running as root")
def test_root_becomes_nobody_with_at_most_cap_dac_read_search(tmp_path: Path) -> None:
    wd = tmp_path / "work"
    wd.mkdir()
    out = output(run(PRIVILEGES, {"write_dir": str(wd)}))
    st = out["status"]
    assert st["Uid"].split() == st["Gid"].split() == [str(NOBODY)] * 4
    assert out["resuid"] == out["resgid"] == [NOBODY] * 3 and out["groups"] == []
    assert st["Groups"].strip() == ""
    reachable = all(_other_reachable(p) for p in default_read_paths()) and all(
        a.stat().st_mode & stat.S_IXOTH for a in wd.resolve().parents
    )
    kept = [] if reachable else ["CAP_DAC_READ_SEARCH"]
    assert out["applied"]["kept_capabilities"] == kept
    mask = f"{0 if reachable else 1 << 2:016x}"
    assert st["CapEff"] == st["CapPrm"] == st["CapBnd"] == mask
    assert st["CapInh"] == st["CapAmb"] == f"{0:016x}"
    assert (wd / "mine.txt").stat().st_uid == NOBODY and wd.stat().st_uid == NOBODY
    assert out["deathsig"] == signal.SIGKILL


def test_capability_kept_only_when_a_path_is_out_of_reach_of_nobody(tmp_path: Path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    os.chmod(closed, 0o700)
    os.chmod(open_dir, 0o755)
    # /usr/lib and /dev/null are world-readable on every Linux system
    assert _confine._kept_capabilities(("/usr/lib", "/dev/null"), None) == 0
    assert _confine._kept_capabilities(("/usr/lib", str(closed)), None) == 1 << 2
    reach_tmp = all(a.stat().st_mode & stat.S_IXOTH for a in tmp_path.resolve().parents)
    reach_tmp = reach_tmp and bool(tmp_path.stat().st_mode & stat.S_IXOTH)
    assert _confine._kept_capabilities((str(open_dir),), None) == (0 if reach_tmp else 1 << 2)
    assert _confine._kept_capabilities(("/usr/lib",), str(closed / "w")) == 1 << 2
    assert _confine.capability_names(1 << 2 | 1 << 21 | 1 << 50) == (
        "CAP_DAC_READ_SEARCH",
        "CAP_SYS_ADMIN",
        "CAP_50",
    )


# --- environment ------------------------------------------------------------------------------


def test_scrubbed_env_keeps_the_allow_list_and_drops_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keep = {
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C",
        "TZ": "UTC",
        "PYTHONPATH": "/src",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "NUMBA_NUM_THREADS": "1",
        "NUMBA_CACHE_DIR": "/c",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NUMEXPR_NUM_THREADS": "1",
        "VECLIB_MAXIMUM_THREADS": "1",
        "ALPHALOOP_LOG_LEVEL": "DEBUG",
        "ALPHALOOP_PY_SANDBOX": "1",
        "ALPHALOOP_TEST_NO_KERNEL_CONFINEMENT": "1",
    }
    secrets = {
        "OPENAI_API_KEY": "sk-1",
        "AWS_SECRET_ACCESS_KEY": "s",
        "GITHUB_TOKEN": "t",
        "DB_PASSWORD": "p",
        "my_passwd": "p",
        "GOOGLE_APPLICATION_CREDENTIALS": "/c.json",
        "HTTP_AUTHORIZATION": "Bearer x",
        "NUMBA_API_KEY": "allow-listed prefix, still a secret",
        "LC_TOKEN": "same",
        "ALPHALOOP_AUTH": "same",
    }
    other = {"HOME": "/root", "USER": "root", "LD_PRELOAD": "/x.so", "PYTHONSTARTUP": "/s.py"}
    assert scrubbed_env({**keep, **secrets, **other}) == keep

    monkeypatch.setenv("ALPHALOOP_TEST_SECRET", "hunter2")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    env = scrubbed_env()
    assert "ALPHALOOP_TEST_SECRET" not in env and env["OMP_NUM_THREADS"] == "3"


def test_a_process_started_with_scrubbed_env_never_holds_the_secret() -> None:
    env = child_env(ALPHALOOP_TEST_SECRET_TOKEN="hunter2-canary")
    proc = run(
        """
        raw = open("/proc/self/environ", "rb").read()
        emit({"env": dict(os.environ), "raw_has_secret": b"hunter2-canary" in raw})
        """,
        env=scrubbed_env(env),
    )
    out = output(proc)
    assert out["raw_has_secret"] is False
    assert "ALPHALOOP_TEST_SECRET_TOKEN" not in out["env"]
    assert out["env"]["OPENBLAS_NUM_THREADS"] == "1"


# --- refusals ---------------------------------------------------------------------------------


def test_availability_can_be_turned_off_and_apply_then_refuses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(_confine.OFF_ENV, "1")
    off = availability()
    assert off == Availability(
        ok=False,
        missing=("kernel confinement turned off by ALPHALOOP_TEST_NO_KERNEL_CONFINEMENT=1",),
        landlock_abi=0,
    )
    assert off.describe() == (
        "kernel confinement unavailable: kernel confinement turned off by "
        "ALPHALOOP_TEST_NO_KERNEL_CONFINEMENT=1"
    )
    # apply() checks availability before touching anything, so this is safe in pytest's process
    with pytest.raises(ConfinementError, match="turned off by ALPHALOOP_TEST_NO_KERNEL"):
        apply(Policy())
    monkeypatch.delenv(_confine.OFF_ENV)
    assert availability() is availability() == AVAILABLE


def test_availability_describes_itself() -> None:
    ok = Availability(True, (), 7)
    assert ok.describe() == "kernel confinement available (seccomp, Landlock ABI 7)"
    bad = Availability(False, ("seccomp (libseccomp.so.2 not found: install libseccomp2)", "x"), 0)
    assert bad.describe() == (
        "kernel confinement unavailable: seccomp (libseccomp.so.2 not found: install "
        "libseccomp2); x"
    )
    if AVAILABLE.ok:
        assert AVAILABLE.landlock_abi >= 1 and AVAILABLE.missing == ()


REFUSALS = """
import resource, threading
from alphaloop.execution._confine import ConfinementError, Policy, apply
status = status_reader()
out = {}
try:
    apply(Policy(write_dir=ARGS["missing_dir"]))
except ConfinementError as exc:
    out["missing_dir"] = str(exc)
release = threading.Event()
helper = threading.Thread(target=release.wait)
helper.start()
try:
    apply(Policy(write_dir=ARGS["write_dir"]))
except ConfinementError as exc:
    out["threads"] = str(exc)
release.set()
helper.join()
st = status()
out["untouched"] = [st["NoNewPrivs"], st["Seccomp"], os.getuid(),
                    resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 256,
                    bool(open("/etc/passwd").read())]
emit(out)
"""


@needs_kernel
def test_apply_refuses_a_threaded_process_and_a_missing_write_dir(tmp_path: Path) -> None:
    args = {"write_dir": str(tmp_path), "missing_dir": str(tmp_path / "nope")}
    out = output(run(REFUSALS, args))
    assert out["threads"] == (
        "cannot confine a process running 2 threads (Landlock restricts only the calling "
        "thread): call apply() in a freshly forked, single-threaded child"
    )
    assert out["missing_dir"] == (
        f"write_dir {str(tmp_path / 'nope')!r} is not an existing folder: create it before apply()"
    )
    assert out["untouched"] == ["0", "0", os.getuid(), True, True]


# --- a foreign system-call ABI cannot get round the filter ------------------------------------

INT80 = """
import mmap
code = bytes([0xB8, 20, 0, 0, 0, 0xCD, 0x80, 0xC3])  # mov eax, 20 (i386 getpid); int 0x80; ret
mem = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
mem.write(code)
getpid32 = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(mem)))
if ARGS["confine"]:
    from alphaloop.execution._confine import Policy, apply
    apply(Policy(write_dir=ARGS["write_dir"]))
    print("confined", flush=True)
emit({"pid": getpid32() == os.getpid()})
"""


@needs_kernel
@pytest.mark.skipif(os.uname().machine != "x86_64", reason="i386 syscalls exist only on x86-64")
def test_i386_syscalls_kill_the_confined_process(tmp_path: Path) -> None:
    probe = run(INT80, {"confine": False})
    if probe.returncode != 0 or not output(probe)["pid"]:
        pytest.skip("this kernel has no i386 emulation (int 0x80)")
    proc = run(INT80, {"confine": True, "write_dir": str(tmp_path)})
    assert "confined" in proc.stdout, proc.stderr
    assert proc.returncode == -signal.SIGSYS, (proc.returncode, proc.stdout)


def test_default_read_paths_are_what_the_interpreter_needs_and_no_more() -> None:
    paths = default_read_paths()
    assert len(paths) == len(set(paths)) and all(os.path.isabs(p) for p in paths)
    assert all(os.path.exists(p) for p in paths)
    assert sys.prefix in paths and sys.base_prefix in paths
    assert os.path.dirname(_confine.__file__).rsplit(os.sep, 1)[0] in paths  # the package
    assert "/dev/null" in paths and os.getcwd() not in paths
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for broad in ("/", "/etc", "/home", "/root", "/tmp", "/proc", "/sys", "/dev", "/usr"):
        assert broad not in paths or broad in prefixes


def test_applied_is_a_frozen_record() -> None:
    a = Applied(65534, 65534, (), 7, True, ("/usr/lib",), None)
    with pytest.raises(AttributeError):
        a.uid = 0  # type: ignore[misc]
