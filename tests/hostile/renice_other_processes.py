"""Change another process's scheduling: ``setpriority``, ``sched_setaffinity``,
``sched_setscheduler``, ``ioprio_set`` on the test's victim (uid 65534).

Attack (own): none of these is a signal, so seccomp lets them through; the kernel allows them
on any process of the same uid, i.e. every other strategy process and any ``nobody`` daemon:
starve them (nice 19, SCHED_IDLE, one CPU, idle I/O class).
Should be stopped by: the kernel boundary ("nothing reaches other processes"); seccomp can
refuse these calls when their target is not the process itself (pid argument != 0/own pid).
"""

import ctypes
import os

PARAMETERS = {}

VICTIM = int("@@VICTIM2_PID@@")


class SchedParam(ctypes.Structure):
    _fields_ = [("priority", ctypes.c_int)]


def generate_positions(data, **params):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    done, log = [], []
    attempts = {
        "setpriority": lambda: os.setpriority(os.PRIO_PROCESS, VICTIM, 19),
        "sched_setaffinity": lambda: os.sched_setaffinity(VICTIM, {0}),
        "sched_setscheduler": lambda: os.sched_setscheduler(
            VICTIM, os.SCHED_IDLE, os.sched_param(0)
        ),
    }
    for name, fn in attempts.items():
        try:
            fn()
            done.append(name)
        except Exception as exc:
            log.append(f"{name}: {type(exc).__name__}")
    # ioprio_set(IOPRIO_WHO_PROCESS, victim, IOPRIO_CLASS_IDLE << 13)
    if (
        libc.syscall(
            ctypes.c_long(251), ctypes.c_long(1), ctypes.c_long(VICTIM), ctypes.c_long(3 << 13)
        )
        == 0
    ):
        done.append("ioprio_set")
    else:
        log.append(f"ioprio_set: errno {ctypes.get_errno()}")
    if done:
        raise RuntimeError("HOSTILE" + "-ESCAPED changed the victim: " + " ".join(done))
    raise RuntimeError("victim untouchable: " + "; ".join(log))
