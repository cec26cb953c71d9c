"""Signal other processes: kill the parent worker, the process group, everything.

Attack (own): ``os.kill(os.getppid(), SIGKILL)`` (the worker: every later task would fail or
run elsewhere), ``tgkill``/``rt_sigqueueinfo`` on the parent through raw syscalls,
``os.killpg``, and probes (signal 0, harmless even if allowed) of ``kill(-1)`` and
``kill(0)``; also the victim process the test started as uid 65534.
Stopped by: seccomp (kill-like calls are allowed only with the process's own pid as target);
the privilege drop (uid 65534 cannot signal the root worker) as a second layer.
"""

import ctypes
import os
import signal

PARAMETERS = {}

VICTIM = int("@@VICTIM_PID@@")


def generate_positions(data, **params):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    ppid = os.getppid()
    escaped, log = [], []
    attempts = {
        "kill(ppid, KILL)": lambda: os.kill(ppid, signal.SIGKILL),
        "kill(victim, KILL)": lambda: os.kill(VICTIM, signal.SIGKILL),
        "killpg(ppid group, 0)": lambda: os.killpg(os.getpgid(ppid), 0),
        "kill(-1, 0)": lambda: os.kill(-1, 0),
        "kill(0, 0)": lambda: os.kill(0, 0),
    }
    for name, fn in attempts.items():
        try:
            fn()
            escaped.append(name)
        except Exception as exc:
            log.append(f"{name}: {type(exc).__name__}")
    raw = {
        "tgkill(ppid)": (234, ppid, ppid, signal.SIGKILL),
        "tkill(ppid)": (200, ppid, signal.SIGKILL),
        "rt_sigqueueinfo(ppid)": (129, ppid, signal.SIGKILL, 0),
    }
    for name, (nr, *args) in raw.items():
        r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
        if r == 0:
            escaped.append(name)
        else:
            log.append(f"{name}: errno {ctypes.get_errno()}")
    if escaped:
        raise RuntimeError("HOSTILE" + "-ESCAPED signalled: " + " ".join(escaped))
    raise RuntimeError("no other process could be signalled: " + "; ".join(log))
