"""Read the parent worker's memory and descriptors.

Attack (own): ``/proc/<ppid>/mem`` (the worker holds other tasks and the real prices),
``process_vm_readv`` on the parent, ``ptrace(PTRACE_ATTACH)``, ``pidfd_open`` +
``pidfd_getfd`` to steal the worker's pipes, ``/proc/<ppid>/fd`` listing.
Stopped by: Landlock (/proc is not readable) and seccomp (process_vm_readv, ptrace, pidfd_*
answer EPERM); the privilege drop (uid 65534 against a root worker) as a second layer.
"""

import ctypes
import os

PARAMETERS = {}

SYS = {"ptrace": 101, "process_vm_readv": 310, "pidfd_open": 434, "pidfd_getfd": 438}


def generate_positions(data, **params):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    ppid = os.getppid()
    escaped, log = [], []
    try:
        with open(f"/proc/{ppid}/mem", "rb") as f:
            escaped.append(f"mem={f.read(16)!r}")
    except Exception as exc:
        log.append(f"mem: {type(exc).__name__}")
    try:
        escaped.append("fds=" + ",".join(os.listdir(f"/proc/{ppid}/fd")))
    except Exception as exc:
        log.append(f"fd: {type(exc).__name__}")

    class Iovec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

    buf = ctypes.create_string_buffer(64)
    local = Iovec(ctypes.cast(buf, ctypes.c_void_p), 64)
    remote = Iovec(0x400000, 64)
    calls = {
        "process_vm_readv": (ppid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0),
        "ptrace": (16, ppid, 0, 0),  # PTRACE_ATTACH
        "pidfd_open": (ppid, 0),
    }
    for name, args in calls.items():
        r = libc.syscall(
            ctypes.c_long(SYS[name]), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args]
        )
        if r >= 0:
            escaped.append(f"{name}={r}")
            if name == "pidfd_open":
                for fd in range(3, 10):
                    got = libc.syscall(
                        ctypes.c_long(SYS["pidfd_getfd"]),
                        ctypes.c_long(r),
                        ctypes.c_long(fd),
                        ctypes.c_long(0),
                    )
                    if got >= 0:
                        escaped.append(f"pidfd_getfd({fd})={got}")
        else:
            log.append(f"{name}: errno {ctypes.get_errno()}")
    if escaped:
        raise RuntimeError("HOSTILE" + "-ESCAPED parent: " + " ".join(escaped))
    raise RuntimeError("parent out of reach: " + "; ".join(log))
