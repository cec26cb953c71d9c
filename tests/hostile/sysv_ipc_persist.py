"""System V IPC: read another program's shared memory, leave objects that outlive the run.

Attack (own): SysV IPC lives outside the file system, so Landlock does not see it. The
strategy attaches (read-only) the world-readable shared-memory segment the test created (key
``@@SHM_KEY@@``, standing for any other program's segment) and puts its content in the error;
then it creates a shared-memory segment, a message queue and a semaphore set that stay in the
kernel after the process and the run are gone (a channel to the next strategy, and memory
nobody frees), and tries a POSIX message queue.
Should be stopped by: the kernel boundary. Candidates: seccomp denying ``shmget``/``shmat``/
``msgget``/``semget``/``mq_open`` (alphaloop needs none of them), or an IPC namespace for
strategy processes (``unshare(CLONE_NEWIPC)`` before the privilege drop).
"""

import ctypes
import os

PARAMETERS = {}

KEY = int("@@SHM_KEY@@")
IPC_CREAT = 0o1000
SHM_RDONLY = 0o10000
MINE = 0x48535450  # "HSTP"


def generate_positions(data, **params):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    libc.shmat.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
    found, log = [], []
    shmid = libc.shmget(KEY, 0, 0)
    if shmid >= 0:
        addr = libc.shmat(shmid, None, SHM_RDONLY)
        if addr not in (None, ctypes.c_void_p(-1).value):
            found.append(
                "other program's segment: "
                + ctypes.string_at(addr, 80).split(b"\0")[0].decode(errors="replace")
            )
        else:
            log.append(f"shmat: errno {ctypes.get_errno()}")
    else:
        log.append(f"shmget(other): errno {ctypes.get_errno()}")
    made = []
    for name, fn in (
        ("shm", lambda: libc.shmget(MINE + os.getpid() % 1000, 4096, IPC_CREAT | 0o666)),
        ("msg", lambda: libc.msgget(MINE + os.getpid() % 1000, IPC_CREAT | 0o666)),
        ("sem", lambda: libc.semget(MINE + os.getpid() % 1000, 1, IPC_CREAT | 0o666)),
    ):
        r = fn()
        (made if r >= 0 else log).append(
            f"{name}={r}" if r >= 0 else f"{name}: errno {ctypes.get_errno()}"
        )
    mq = libc.mq_open(b"/hostile-sysv_ipc_persist", os.O_CREAT | os.O_RDWR, 0o666, None)
    (made if mq >= 0 else log).append(
        f"mq={mq}" if mq >= 0 else f"mq_open: errno {ctypes.get_errno()}"
    )
    raise RuntimeError(" | ".join(found) + f" | left behind: {made} | " + "; ".join(log))
