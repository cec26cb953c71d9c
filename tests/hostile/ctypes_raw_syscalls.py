"""Raw system calls through ``ctypes``: socket, connect, execve, fork, clone, kill, ptrace,
io_uring.

Attack (own): ``libc.syscall(nr, ...)`` with x86-64 numbers, so no Python wrapper (and no
Python-level audit hook) is involved: ``socket(AF_INET)``, ``socket(AF_UNIX)``,
``socketpair``, ``execve("/bin/sh")``, ``fork``, ``clone(SIGCHLD)`` (a process, not a thread),
``clone3``, ``kill(ppid, SIGKILL)``, ``ptrace(ATTACH, ppid)``, ``io_uring_setup`` (whose
operations would bypass the socket filter), ``memfd_create`` + ``execveat``. A forked child
would ``_exit`` at once.
Stopped by: seccomp (EPERM; ENOSYS for clone3, so glibc falls back to the filtered clone).
"""

import ctypes
import os
import platform

PARAMETERS = {}

SIGCHLD = 17


def generate_positions(data, **params):
    if platform.machine() != "x86_64":
        raise RuntimeError("x86-64 system call numbers only")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    ppid = os.getppid()
    sh = ctypes.c_char_p(b"/bin/sh")
    argv = (ctypes.c_char_p * 4)(b"sh", b"-c", b"sleep 1", None)
    calls = {
        "socket(AF_INET)": (41, 2, 1, 0),
        "socket(AF_UNIX)": (41, 1, 1, 0),
        "socket(AF_NETLINK)": (41, 16, 3, 0),
        "socketpair": (53, 1, 1, 0, ctypes.addressof((ctypes.c_int * 2)())),
        "execve(/bin/sh)": (59, ctypes.cast(sh, ctypes.c_void_p).value, ctypes.addressof(argv), 0),
        "fork": (57,),
        "clone(SIGCHLD)": (56, SIGCHLD, 0, 0, 0, 0),
        "clone3": (435, 0, 0),
        "kill(ppid)": (62, ppid, 9),
        "ptrace(ATTACH, ppid)": (101, 16, ppid, 0, 0),
        "io_uring_setup": (425, 8, ctypes.addressof((ctypes.c_char * 120)())),
    }
    escaped, log = [], []
    me = os.getpid()
    for name, (nr, *args) in calls.items():
        r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
        if os.getpid() != me:  # a forked child: leave at once
            os._exit(0)
        if r >= 0 and name != "clone3":
            escaped.append(f"{name}={r}")
        else:
            log.append(f"{name}: errno {ctypes.get_errno()}")
    fd = libc.memfd_create(b"x", 0)
    if fd >= 0:
        r = libc.syscall(
            ctypes.c_long(322),
            ctypes.c_long(fd),
            ctypes.c_char_p(b""),
            ctypes.c_long(ctypes.addressof(argv)),
            ctypes.c_long(0),
            ctypes.c_long(0x1000),
        )
        if r >= 0:
            escaped.append("execveat(memfd)")
        else:
            log.append(f"execveat: errno {ctypes.get_errno()}")
    if escaped:
        raise RuntimeError("HOSTILE" + "-ESCAPED " + " ".join(escaped))
    raise RuntimeError("raw syscalls refused: " + "; ".join(log))
