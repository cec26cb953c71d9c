"""Kernel confinement of a strategy process: rlimits, privilege drop, Landlock, seccomp.

Contract
--------
`apply(policy)` confines the *calling* process, irreversibly, before any strategy code runs. It
must be called from a single-threaded process (a child freshly forked from the clean worker):
Landlock restricts only the calling thread, so it refuses a process with more than one thread.
It raises `ConfinementError` (one line: what failed and the fix) when `availability()` is not ok
(the caller decides whether to run unconfined) or when a step fails; after a failure part-way
the process is partly confined and should exit rather than run anything. `scrubbed_env()` is
the environment for the exec'd clean worker, so secrets never enter its memory.

Layers, in the order applied, and what each stops
-------------------------------------------------
1. **rlimits**: ``RLIMIT_AS`` (a huge allocation becomes ``MemoryError``), ``RLIMIT_CPU`` (a busy
   loop gets ``SIGXCPU`` at the soft limit and ``SIGKILL`` 5 s later), ``RLIMIT_NOFILE``,
   ``RLIMIT_FSIZE`` (a huge file write fails with ``EFBIG``; Python ignores ``SIGXFSZ``) and
   ``RLIMIT_CORE = 0`` (a crash writes no core file). Soft and hard limits are set together (CPU:
   hard = soft + 5), never above the current hard limit, so the strategy cannot raise them back.
2. **no_new_privs**: no set-user-ID binary or file capability can ever grant anything again.
3. **privilege drop** (only when running as root and ``policy.drop_privileges``): uid/gid 65534,
   no supplementary groups, an empty capability bounding set, and no capabilities at all, except
   ``CAP_DAC_READ_SEARCH`` when some read path (typically the interpreter, e.g. under ``/root``,
   mode 0700) is not readable by 65534 through its "other" permission bits. That capability
   reads any file *the kernel lets the process open*; Landlock still limits which paths can be
   opened and seccomp forbids ``open_by_handle_at``. ``write_dir`` is chowned to 65534 first.
   This is a second layer: the Landlock and seccomp filters below hold for root too.
4. **Landlock**: every file-system right the running ABI knows is handled (ABI 1-7: the
   package's `FSAccess` knows them all; a right added by a later ABI is left unhandled until
   the package knows it; ABI 6's signal and abstract-socket scopes are not used, seccomp
   already covers both). Reads (``READ_FILE``, plus ``READ_DIR`` on folders) are
   allowed beneath `default_read_paths()` and ``policy.read_paths``, except beneath
   ``policy.exclude`` (see `Policy`); all rights beneath
   ``write_dir`` (the only writable place); read and write on ``/dev/null``. Everything else on
   the file system (``/etc``, ``/home``, ``/root``, ``/tmp``, ``/proc``, other workers' folders)
   cannot be opened, and nothing can be executed (no rule grants ``EXECUTE``). Files opened
   before `apply` stay usable.
5. **seccomp**: default ALLOW plus a deny list answering ``EPERM`` (so Python raises a clear
   ``PermissionError`` instead of dying): new programs, new processes (``clone`` without
   ``CLONE_THREAD``: threads keep working; ``clone3`` answers ``ENOSYS`` so glibc falls back to
   ``clone``), sockets of every family, other processes (ptrace, process_vm_*, pidfd_*, signals
   to anything but the process itself), kernel and machine state (mounts, namespaces, bpf,
   perf, io_uring, keyrings, modules, clocks, ...), credentials (set*id, setgroups, capset),
   raising rlimits, and ``TIOCSTI``/``TIOCLINUX`` (typing into a terminal). See `DENIED_SYSCALLS`.
   Syscalls of a foreign ABI (``int 0x80`` on x86-64, x32) kill the process. Names unknown to
   the native architecture are skipped (aarch64 has no fork/vfork).

Libraries: ``pyseccomp`` (ctypes over libseccomp) and the ``landlock`` package. No ctypes
fallback was needed for Landlock; two quirks of the package are worked around here: its calls
report failure by a non-zero *ctypes* errno rather than the return value, so ctypes' errno is
zeroed before each call; and `Ruleset` never closes its file descriptor, so `apply` does.
capget/capset and prctl use ctypes directly (no extra dependency).

What the caller must do before `apply`: import and warm up what the strategy will use.
numba's ``cache=True`` functions need a writable cache folder when they are decorated and when
they compile a new signature, so decorating one after `apply` raises ``RuntimeError`` and
compiling a new signature raises ``PermissionError``; compile them (same argument types)
before forking. Plain ``njit`` compiles fine after `apply`. Open ``/proc/self/...`` files
you need later (``statm`` for memory use) before `apply`: ``/proc`` is closed afterwards.
The privilege drop clears the parent-death signal; `apply` sets it again.

Not covered (accepted): the deny list is only as complete as libseccomp's syscall table (a
syscall newer than the table is allowed unless listed in `_NEWER_SYSCALLS`); reading the
allowed paths (the interpreter, the libraries, the user's data) is possible by design;
CPU time, memory and file sizes are bounded, wall time is the caller's job.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import resource
import stat
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from alphaloop.errors import AlphaloopError

__all__ = [
    "CAPABILITY_NAMES",
    "DENIED_SYSCALLS",
    "NOBODY",
    "OFF_ENV",
    "Applied",
    "Availability",
    "ConfinementError",
    "Policy",
    "apply",
    "availability",
    "capability_names",
    "default_read_paths",
    "read_rules",
    "scrubbed_env",
]

NOBODY = 65534  # uid and gid of nobody/nogroup
OFF_ENV = "ALPHALOOP_TEST_NO_KERNEL_CONFINEMENT"

# prctl(2) options
_PR_SET_PDEATHSIG = 1
_PR_GET_PDEATHSIG = 2
_PR_SET_KEEPCAPS = 8
_PR_GET_SECCOMP = 21
_PR_CAPBSET_READ = 23
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_PR_GET_NO_NEW_PRIVS = 39
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4

_CLONE_THREAD = 0x00010000
_SECCOMP_GET_ACTION_AVAIL = 2
_SECCOMP_RET_ERRNO = 0x00050000
_TIOCSTI = 0x5412
_TIOCLINUX = 0x541C
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_CAP_DAC_READ_SEARCH = 2

CAPABILITY_NAMES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

# Denied outright (EPERM). Names the native architecture lacks are skipped.
DENIED_SYSCALLS: tuple[str, ...] = (
    # new programs
    "execve",
    "execveat",
    "uselib",
    # new processes (clone: see _seccomp)
    "fork",
    "vfork",
    # sockets of any family, and their verbs (defence in depth)
    "socket",
    "socketpair",
    "connect",
    "bind",
    "listen",
    "accept",
    "accept4",
    # other processes (kill-like calls aimed at the process itself: see _seccomp)
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "process_madvise",
    "process_mrelease",
    "kcmp",
    "pidfd_open",
    "pidfd_getfd",
    "pidfd_send_signal",
    "tkill",
    # mounts, namespaces, roots
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    # kernel attack surface and machine state
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "keyctl",
    "add_key",
    "request_key",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "sethostname",
    "setdomainname",
    "iopl",
    "ioperm",
    "modify_ldt",
    "open_by_handle_at",
    "name_to_handle_at",
    "quotactl",
    "quotactl_fd",
    "syslog",
    "vhangup",
    "personality",
    "fanotify_init",
    "lookup_dcookie",
    "nfsservctl",
    "_sysctl",
    # credentials: after our own drop nothing may change them again
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "setfsuid",
    "setfsgid",
    "setgroups",
    "setuid32",
    "setgid32",
    "setreuid32",
    "setregid32",
    "setresuid32",
    "setresgid32",
    "setfsuid32",
    "setfsgid32",
    "setgroups32",
    "capset",
    # raising limits back (prlimit64 is denied only when it sets a limit: see _seccomp)
    "setrlimit",
    # System V and POSIX message IPC: objects that outlive the process, shared with others
    "shmget",
    "shmat",
    "shmctl",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "semget",
    "semop",
    "semtimedop",
    "semctl",
    "mq_open",
    "mq_unlink",
    "mq_timedsend",
    "mq_timedreceive",
    "mq_notify",
    "mq_getsetattr",
    # leaving the process group and session the worker put it in
    "setsid",
    "setpgid",
    # watching other files' changes
    "inotify_init",
    "inotify_init1",
    "fanotify_mark",
)
# Syscalls newer than the libseccomp on many systems (2.5.x); same number on these arches.
_NEWER_SYSCALLS = {"open_tree_attr": 467}
# Denied when the target (argument 0) is not the calling process; kill(0 or negative) = groups.
_SELF_ONLY_SIGNALS = ("kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")
# Scheduling, memory placement of a process: only the calling one (argument 0 = its pid; 0, which
# also means itself, is refused too: nothing here needs these calls)
_SELF_ONLY_TARGET = (
    "sched_setaffinity",
    "sched_setscheduler",
    "sched_setparam",
    "sched_setattr",
    "migrate_pages",
    "move_pages",
    "get_robust_list",
)
# (which, who) calls: setpriority(PRIO_PROCESS=0, pid), ioprio_set(IOPRIO_WHO_PROCESS=1, pid)
_SELF_ONLY_WHO = {"setpriority": 0, "ioprio_set": 1}
# fcntl/ioctl requests that make the kernel signal another process for us (SIGIO/SIGURG to an
# owner, chosen with F_SETSIG: SIGKILL to any process of the same uid, or to a process group)
_F_SETOWN, _F_SETSIG, _F_SETOWN_EX = 8, 10, 15
_FIOSETOWN, _SIOCSPGRP = 0x8901, 0x8902
_PR_SET_PDEATHSIG = 1

_SYSTEM_READ_PATHS = (
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/usr/local/lib",
    "/usr/share/zoneinfo",
    "/etc/localtime",
    "/dev/null",
    "/dev/urandom",
)

_ENV_ALLOWED = frozenset(
    {
        "PATH",
        "LANG",
        "TZ",
        "PYTHONPATH",
        "PYTHONHASHSEED",
        "PYTHONDONTWRITEBYTECODE",
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
        "ALPHALOOP_LOG_LEVEL",
        "ALPHALOOP_PY_SANDBOX",
        OFF_ENV,
    }
)
_ENV_PREFIXES = ("LC_", "NUMBA_")
_ENV_SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH")


class ConfinementError(AlphaloopError):
    """The process cannot be confined by the kernel (what is missing or failed, and the fix)."""


@dataclass(frozen=True)
class Availability:
    """Whether this process can be confined, and if not, why (one line per missing piece)."""

    ok: bool
    missing: tuple[str, ...]
    landlock_abi: int

    def describe(self) -> str:
        if self.ok:
            return f"kernel confinement available (seccomp, Landlock ABI {self.landlock_abi})"
        return f"kernel confinement unavailable: {'; '.join(self.missing)}"


@dataclass(frozen=True)
class Policy:
    """What a confined strategy process may read, write and use.

    ``exclude``: files and folders that no rule lets the process read, even where they lie
    beneath a read path (the look-ahead check's blind process: the package is readable, its
    ``data/sample`` folder and the user's data are not). Landlock rules only allow, and each
    covers everything beneath its folder, so a read path holding an excluded path is split:
    ``READ_DIR`` on it (names beneath it, the excluded folder's included, can still be
    listed) and reading on each of its entries that is not and does not hold an excluded
    path, recursively; symbolic links among the entries get no rule of their own (Landlock
    judges a file by where it really is). Paths are compared after resolving links.
    """

    read_paths: tuple[str, ...] = ()  # extra readable files/folders (the user's data)
    exclude: tuple[str, ...] = ()  # never readable, even beneath a read path
    write_dir: str | None = None  # the private temporary folder: the ONLY writable place
    memory_limit: int | None = 2 << 30  # RLIMIT_AS bytes
    cpu_seconds: int | None = 900  # RLIMIT_CPU soft; hard = soft + 5
    max_open_files: int = 256  # RLIMIT_NOFILE
    max_file_size: int = 64 << 20  # RLIMIT_FSIZE
    drop_privileges: bool = True  # to 65534 when running as root


@dataclass(frozen=True)
class Applied:
    """What `apply` did, for logs, docs and tests."""

    uid: int
    gid: int
    kept_capabilities: tuple[str, ...]
    landlock_abi: int
    seccomp: bool
    read_paths: tuple[str, ...]
    write_dir: str | None


# --- libc helpers -------------------------------------------------------------------------


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = (ctypes.c_int, *(ctypes.c_ulong,) * 4)
    libc.prctl.restype = ctypes.c_int
    for name in ("capget", "capset"):
        fn = getattr(libc, name)
        fn.argtypes = (ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData))
        fn.restype = ctypes.c_int
    return libc


def _prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0) -> int:
    """prctl(2) (the unused arguments are 0, as some options require); OSError on failure."""
    res = _libc().prctl(option, arg2, arg3, arg4, 0)
    if res < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")
    return int(res)


def _capget() -> tuple[int, int, int]:
    """(effective, permitted, inheritable) capability masks of this thread."""
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if _libc().capget(ctypes.byref(hdr), data) < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capget: {os.strerror(err)}")
    lo, hi = data[0], data[1]
    return (
        lo.effective | hi.effective << 32,
        lo.permitted | hi.permitted << 32,
        lo.inheritable | hi.inheritable << 32,
    )


def _capset(effective: int, permitted: int, inheritable: int) -> None:
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i, shift in enumerate((0, 32)):
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    if _libc().capset(ctypes.byref(hdr), data) < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")


def _cap_last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        last = 0
        while last < 63:
            try:
                _prctl(_PR_CAPBSET_READ, last + 1)
            except OSError:
                break
            last += 1
        return last


def capability_names(mask: int) -> tuple[str, ...]:
    """Names of the capabilities in ``mask`` (``CAP_<n>`` for numbers this table lacks)."""
    return tuple(
        CAPABILITY_NAMES[i] if i < len(CAPABILITY_NAMES) else f"CAP_{i}"
        for i in range(64)
        if mask >> i & 1
    )


# --- availability -------------------------------------------------------------------------


def availability() -> Availability:
    """Whether `apply` can work in this process (cached; ``ALPHALOOP_TEST_NO_KERNEL_CONFINEMENT=1``
    turns it off, for tests of the refusal path)."""
    if os.environ.get(OFF_ENV) == "1":
        return Availability(False, (f"kernel confinement turned off by {OFF_ENV}=1",), 0)
    return _probe()


@functools.cache
def _probe() -> Availability:
    if not sys.platform.startswith("linux"):
        return Availability(
            False, (f"Linux (seccomp and Landlock need Linux; this is {sys.platform})",), 0
        )
    missing: list[str] = []
    try:
        _prctl(_PR_GET_NO_NEW_PRIVS)
    except (OSError, AttributeError) as exc:
        missing.append(f"prctl ({exc}: use a Linux libc with prctl)")
    missing += _probe_seccomp()
    abi, why = _probe_landlock()
    if why:
        missing.append(why)
    return Availability(not missing, tuple(missing), abi)


def _import_pyseccomp() -> Any:
    """``import pyseccomp`` without the two ``/sbin/ldconfig -p`` subprocesses its
    ``ctypes.util.find_library`` calls start: the usual sonames are tried with the dynamic
    loader first (a worker should start no program, and it is ~10 ms faster)."""
    import ctypes.util

    real = ctypes.util.find_library
    sonames = {"c": "libc.so.6", "seccomp": "libseccomp.so.2"}

    def find_library(name: str) -> str | None:
        soname = sonames.get(name)
        if soname is not None:
            with contextlib.suppress(OSError):
                ctypes.CDLL(soname)
                return soname
        return real(name)

    ctypes.util.find_library = find_library
    try:
        import pyseccomp
    finally:
        ctypes.util.find_library = real
    return pyseccomp


def _probe_seccomp() -> list[str]:
    try:
        pyseccomp = _import_pyseccomp()
    except ImportError:
        return ["seccomp (python package pyseccomp not installed: pip install pyseccomp)"]
    except (RuntimeError, OSError):
        return ["seccomp (libseccomp.so.2 not found: install libseccomp2)"]
    nr = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, "seccomp")
    res, why = -1, "libseccomp knows no seccomp syscall here"
    if nr >= 0:
        action = ctypes.c_uint32(_SECCOMP_RET_ERRNO)
        ctypes.set_errno(0)
        res = _libc().syscall(
            ctypes.c_long(nr),
            ctypes.c_long(_SECCOMP_GET_ACTION_AVAIL),
            ctypes.c_long(0),
            ctypes.byref(action),
        )
        why = os.strerror(ctypes.get_errno())
    if res != 0:
        return [
            f"seccomp (the kernel refuses seccomp filters: {why}; use a kernel built with "
            "CONFIG_SECCOMP_FILTER, outside a container profile that blocks seccomp)"
        ]
    return []


def _probe_landlock() -> tuple[int, str | None]:
    try:
        import landlock
    except ImportError:
        return 0, "Landlock (python package landlock not installed: pip install landlock)"
    try:
        ctypes.set_errno(0)  # the package reads ctypes' errno, not the return value
        abi = int(landlock.landlock_abi_version())
    except OSError as exc:
        if exc.errno == errno.EOPNOTSUPP:
            return 0, "Landlock (disabled at boot: add 'landlock' to the kernel's lsm= parameter)"
        return 0, (
            f"Landlock (not supported by this kernel: {os.strerror(exc.errno or 0)}; use Linux "
            ">= 5.13 built with CONFIG_SECURITY_LANDLOCK=y)"
        )
    except Exception as exc:  # the package's own platform checks
        return 0, f"Landlock ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    if abi < 1:
        return 0, "Landlock (kernel reports ABI 0: use Linux >= 5.13 with Landlock enabled)"
    return abi, None


# --- paths and environment ----------------------------------------------------------------


def default_read_paths() -> tuple[str, ...]:
    """What Python, numpy, pandas, TA-Lib, numba and alphaloop need to read once confined.

    The interpreter's prefixes, its standard library and site-packages folders, the alphaloop
    package folder, the shared-library folders, time-zone data, ``/dev/null`` and
    ``/dev/urandom``. Only existing paths, each once, in that order. Not ``sys.path``: it may
    hold the current folder (``python -m`` puts it first, ``PYTHONPATH=.`` too), which is the
    user's project with its ``.env`` and the run's home.
    """
    import site
    import sysconfig

    import alphaloop

    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    paths = sysconfig.get_paths()
    candidates += [paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths]
    with contextlib.suppress(AttributeError):  # site.getsitepackages is missing in some venvs
        candidates += site.getsitepackages()
    candidates.append(os.path.dirname(os.path.abspath(alphaloop.__file__)))
    candidates += _SYSTEM_READ_PATHS
    return _existing_unique(candidates)


def _existing_unique(paths: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for p in paths:
        norm = os.path.normpath(os.path.abspath(p))
        if norm not in seen and os.path.exists(norm):
            seen[norm] = None
    return tuple(seen)


def scrubbed_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allow-listed part of ``env`` (default ``os.environ``), without anything secret-like.

    Kept: ``PATH``, ``LANG``, ``LC_*``, ``TZ``, ``PYTHONPATH``, ``PYTHONHASHSEED``,
    ``PYTHONDONTWRITEBYTECODE``, ``NUMBA_*``, the thread-count settings of OpenMP, OpenBLAS,
    MKL, numexpr and vecLib, and ``ALPHALOOP_LOG_LEVEL``, ``ALPHALOOP_PY_SANDBOX``,
    ``ALPHALOOP_TEST_NO_KERNEL_CONFINEMENT``. A name containing KEY, TOKEN, SECRET, PASSWORD,
    PASSWD, CREDENTIAL or AUTH (any case) is dropped even when allow-listed.
    """
    source = os.environ if env is None else env
    out: dict[str, str] = {}
    for name, value in source.items():
        upper = name.upper()
        if any(marker in upper for marker in _ENV_SECRET_MARKERS):
            continue
        if name in _ENV_ALLOWED or name.startswith(_ENV_PREFIXES):
            out[name] = value
    return out


# --- apply --------------------------------------------------------------------------------


def apply(policy: Policy) -> Applied:
    """Confine the calling process, irreversibly (see the module docstring)."""
    avail = availability()
    if not avail.ok:
        raise ConfinementError(f"cannot confine the strategy process: {'; '.join(avail.missing)}")
    threads = _thread_count()
    if threads != 1:
        raise ConfinementError(
            f"cannot confine a process running {threads} threads (Landlock restricts only the "
            "calling thread): call apply() in a freshly forked, single-threaded child"
        )
    write_dir = _checked_write_dir(policy.write_dir)
    read_paths = _existing_unique((*default_read_paths(), *policy.read_paths))
    pid = os.getpid()

    step = "resource limits"
    try:
        _set_rlimits(policy)
        step = "prctl(PR_SET_NO_NEW_PRIVS)"
        _prctl(_PR_SET_NO_NEW_PRIVS, 1)
        if os.geteuid() == 0 and policy.drop_privileges:
            step = "privilege drop to 65534"
            _drop_privileges(read_paths, write_dir)
        step = "Landlock"
        excluded = tuple(os.path.realpath(p) for p in policy.exclude)
        _landlock(avail.landlock_abi, read_paths, write_dir, excluded)
        step = "seccomp"
        _seccomp(pid)
        effective = _capget()[0]
    except Exception as exc:  # OSError mostly; anything else is as fatal
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfinementError(
            f"kernel confinement failed at {step}: {detail}: the process is partly confined; "
            "exit it and run strategies in a container, or fix the cause"
        ) from exc
    return Applied(
        uid=os.getuid(),
        gid=os.getgid(),
        kept_capabilities=capability_names(effective),
        landlock_abi=avail.landlock_abi,
        seccomp=True,
        read_paths=read_paths,
        write_dir=write_dir,
    )


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError as exc:
        raise ConfinementError(
            f"cannot count this process's threads in /proc/self/task ({exc.strerror}): mount /proc"
        ) from exc


def _checked_write_dir(path: str | None) -> str | None:
    if path is None:
        return None
    full = os.path.normpath(os.path.abspath(path))
    if not os.path.isdir(full):
        raise ConfinementError(
            f"write_dir {path!r} is not an existing folder: create it before apply()"
        )
    return full


def _set_rlimits(policy: Policy) -> None:
    def lower(which: int, soft: int, hard: int | None = None) -> None:
        _cur_soft, cur_hard = resource.getrlimit(which)
        hard = soft if hard is None else hard
        if cur_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, cur_hard), min(hard, cur_hard)
        resource.setrlimit(which, (soft, hard))

    if policy.memory_limit is not None:
        lower(resource.RLIMIT_AS, policy.memory_limit)
    if policy.cpu_seconds is not None:
        lower(resource.RLIMIT_CPU, policy.cpu_seconds, policy.cpu_seconds + 5)
    lower(resource.RLIMIT_NOFILE, policy.max_open_files)
    lower(resource.RLIMIT_FSIZE, policy.max_file_size)
    lower(resource.RLIMIT_CORE, 0)


def _other_can_reach(path: str, *, read: bool) -> bool:
    """Whether uid/gid 65534 (no groups) can reach ``path`` through the "other" permission bits:
    x on every ancestor folder and, if ``read``, r on the path (and x if it is a folder)."""
    try:
        for p in {os.path.abspath(path), os.path.realpath(path)}:
            parent = os.path.dirname(p)
            while True:
                if not os.stat(parent).st_mode & stat.S_IXOTH:
                    return False
                if parent == os.path.dirname(parent):
                    break
                parent = os.path.dirname(parent)
            if read:
                mode = os.stat(p).st_mode
                need = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
                if mode & need != need:
                    return False
    except OSError:
        return False
    return True


def _kept_capabilities(read_paths: Iterable[str], write_dir: str | None) -> int:
    """The capability mask 65534 needs: none, or CAP_DAC_READ_SEARCH if a path is out of reach."""
    reachable = all(_other_can_reach(p, read=True) for p in read_paths) and (
        write_dir is None or _other_can_reach(write_dir, read=False)
    )
    return 0 if reachable else 1 << _CAP_DAC_READ_SEARCH


def _drop_privileges(read_paths: tuple[str, ...], write_dir: str | None) -> None:
    keep = _kept_capabilities(read_paths, write_dir)
    deathsig = ctypes.c_int(0)
    _prctl(_PR_GET_PDEATHSIG, ctypes.addressof(deathsig))
    if write_dir is not None:
        os.chown(write_dir, NOBODY, NOBODY)
    for cap in range(_cap_last_cap() + 1):
        if not keep >> cap & 1:
            _prctl(_PR_CAPBSET_DROP, cap)
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    _prctl(_PR_SET_KEEPCAPS, 1)
    os.setresuid(NOBODY, NOBODY, NOBODY)
    _capset(keep, keep, 0)
    _prctl(_PR_SET_KEEPCAPS, 0)
    _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)
    if deathsig.value:  # the kernel clears it when credentials change
        _prctl(_PR_SET_PDEATHSIG, deathsig.value)
    eff, prm, inh = _capget()
    if os.getresuid() != (NOBODY,) * 3 or os.getresgid() != (NOBODY,) * 3 or os.getgroups():
        raise RuntimeError(f"credentials are {os.getresuid()}/{os.getresgid()} after setresuid")
    if (eff, prm, inh) != (keep, keep, 0):
        raise RuntimeError(f"capabilities are {eff:#x}/{prm:#x}/{inh:#x}, wanted {keep:#x}")


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def read_rules(path: str, excluded: tuple[str, ...]) -> list[tuple[str, bool]]:
    """The Landlock read rules for ``path`` with ``excluded`` (resolved paths) kept out:
    ``(path, whole)`` pairs, ``whole`` meaning reading of everything beneath it, else only
    listing it (``READ_DIR``). See `Policy`."""
    real = os.path.realpath(path)
    if any(_within(real, ex) for ex in excluded):
        return []
    inside = tuple(ex for ex in excluded if _within(ex, real))
    if not inside or not os.path.isdir(real):
        return [(real, True)]
    rules = [(real, False)]
    try:
        entries = sorted(os.scandir(real), key=lambda e: e.name)
    except OSError:
        return rules
    for entry in entries:
        if not entry.is_symlink():
            rules += read_rules(entry.path, inside)
    return rules


def _landlock(
    abi: int, read_paths: tuple[str, ...], write_dir: str | None, excluded: tuple[str, ...] = ()
) -> None:
    import landlock
    from landlock import FSAccess as A

    handled = A(0)
    for right in A:  # ABI 1: bits 0-12; REFER: 2; TRUNCATE: 3; IOCTL_DEV: 5 (6 and 7: none)
        since = {A.REFER: 2, A.TRUNCATE: 3, A.IOCTL_DEV: 5}.get(right, 1)
        if abi >= since:
            handled |= right
    file_read = A.READ_FILE
    dir_read = A.READ_FILE | A.READ_DIR
    read_write = (A.READ_FILE | A.WRITE_FILE | A.TRUNCATE) & handled

    ctypes.set_errno(0)  # the package reads ctypes' errno, not the return value
    ruleset = landlock.Ruleset(restrict_rules=handled)
    try:
        for path in read_paths:
            if not excluded:
                _allow(ruleset, path, dir_read if os.path.isdir(path) else file_read)
                continue
            for rule, whole in read_rules(path, excluded):
                isdir = os.path.isdir(rule)
                _allow(ruleset, rule, (dir_read if isdir else file_read) if whole else A.READ_DIR)
        if write_dir is not None:
            _allow(ruleset, write_dir, handled)
        _allow(ruleset, "/dev/null", read_write)
        ctypes.set_errno(0)
        ruleset.apply()
    finally:
        os.close(ruleset._fd)


def _allow(ruleset: Any, path: str, rights: int) -> None:
    ctypes.set_errno(0)
    with contextlib.suppress(FileNotFoundError):  # vanished since it was listed
        ruleset.allow(path, rules=rights)


def _seccomp(pid: int) -> None:
    sc = _import_pyseccomp()
    native = sc.system_arch()
    flt = sc.SyscallFilter(sc.ALLOW)
    for attr, value in ((sc.Attr.ACT_BADARCH, sc.KILL_PROCESS), (sc.Attr.CTL_TSYNC, 1)):
        with contextlib.suppress(OSError):  # older libseccomp or kernel: keep its default
            flt.set_attr(attr, value)
    eperm = sc.ERRNO(errno.EPERM)

    def nr(name: str) -> int:
        num = sc.resolve_syscall(sc.Arch.NATIVE, name)
        if num < 0 and native in (sc.Arch.X86_64, sc.Arch.AARCH64):
            num = _NEWER_SYSCALLS.get(name, -1)
        return num

    for name in DENIED_SYSCALLS + tuple(_NEWER_SYSCALLS):
        if (num := nr(name)) >= 0:
            flt.add_rule(eperm, num)
    # clone: threads only (flags are argument 1 on s390, 0 elsewhere)
    flags_arg = 1 if native in (sc.Arch.S390, sc.Arch.S390X) else 0
    flt.add_rule(eperm, nr("clone"), sc.Arg(flags_arg, sc.MASKED_EQ, _CLONE_THREAD, 0))
    if (num := nr("clone3")) >= 0:  # flags live in a struct seccomp cannot read
        flt.add_rule(sc.ERRNO(errno.ENOSYS), num)
    for name in _SELF_ONLY_SIGNALS:
        if (num := nr(name)) >= 0:
            flt.add_rule(eperm, num, sc.Arg(0, sc.NE, pid))
    for name in _SELF_ONLY_TARGET:
        if (num := nr(name)) >= 0:
            flt.add_rule(eperm, num, sc.Arg(0, sc.NE, pid))
    for name, which in _SELF_ONLY_WHO.items():
        if (num := nr(name)) >= 0:
            flt.add_rule(eperm, num, sc.Arg(0, sc.NE, which))
            flt.add_rule(eperm, num, sc.Arg(1, sc.NE, pid))
    for cmd in (_F_SETOWN, _F_SETSIG, _F_SETOWN_EX):
        for name in ("fcntl", "fcntl64"):
            if (num := nr(name)) >= 0:
                flt.add_rule(eperm, num, sc.Arg(1, sc.EQ, cmd))
    for request in (_FIOSETOWN, _SIOCSPGRP):
        flt.add_rule(eperm, nr("ioctl"), sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, request))
    # the parent-death signal (set again after the privilege drop) stays: no orphans
    flt.add_rule(eperm, nr("prctl"), sc.Arg(0, sc.EQ, _PR_SET_PDEATHSIG))
    # prlimit64 may read limits (glibc's getrlimit) but not set them
    if (num := nr("prlimit64")) >= 0:
        flt.add_rule(eperm, num, sc.Arg(2, sc.NE, 0))
    # typing into the controlling terminal; the kernel reads the request as 32 bits
    for request in (_TIOCSTI, _TIOCLINUX):
        flt.add_rule(eperm, nr("ioctl"), sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, request))
    flt.load()
