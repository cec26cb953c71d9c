"""Take privileges and limits back: ``setuid(0)``, ``setrlimit`` up, ``unshare``, ``mount``...

Attack (own): raise RLIMIT_AS/CPU/NOFILE/FSIZE (with ``resource.setrlimit`` and ``prlimit``),
``setuid(0)``/``setresuid``/``setgid(0)``/``setgroups([0])``, ``capset`` everything back,
clear ``no_new_privs``, ``unshare`` a user/mount/net namespace, ``mount`` a tmpfs,
``chroot``, ``sethostname``, ``keyctl``, ``bpf``, ``perf_event_open``, ``userfaultfd``,
``personality``, and ``open_by_handle_at`` (with the CAP_DAC_READ_SEARCH the process may keep,
this is the "shocker" escape that opens any file by inode).
Stopped by: seccomp (each answers EPERM), the capability drop, ``no_new_privs`` being one-way.
"""

import ctypes
import os
import resource

PARAMETERS = {}

RAW = {  # x86-64 numbers: (nr, args)
    "unshare(NEWUSER|NEWNS|NEWNET)": (272, (0x10000000 | 0x00020000 | 0x40000000,)),
    "mount(tmpfs)": None,
    "chroot(/)": None,
    "sethostname": (170, (0, 0)),
    "keyctl(JOIN)": (250, (1, 0)),
    "bpf(MAP_CREATE)": (321, (0, 0, 0)),
    "perf_event_open": (298, (0, 0, -1, -1, 0)),
    "userfaultfd": (323, (0,)),
    "personality(ADDR_NO_RANDOMIZE)": (135, (0x0040000,)),
    "open_by_handle_at": (304, (-100, 0, 0)),
    "capset(all)": None,
}


def generate_positions(data, **params):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    escaped, log = [], []
    for res in (
        resource.RLIMIT_AS,
        resource.RLIMIT_CPU,
        resource.RLIMIT_NOFILE,
        resource.RLIMIT_FSIZE,
    ):
        _soft, _hard = resource.getrlimit(res)
        try:
            resource.setrlimit(res, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            escaped.append(f"setrlimit({res})")
        except Exception as exc:
            log.append(f"setrlimit: {type(exc).__name__}")
        try:
            resource.prlimit(0, res, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            escaped.append(f"prlimit({res})")
        except Exception as exc:
            log.append(f"prlimit: {type(exc).__name__}")
    plain = {
        "setuid(0)": lambda: os.setuid(0),
        "setresuid(0)": lambda: os.setresuid(0, 0, 0),
        "setgid(0)": lambda: os.setgid(0),
        "setgroups([0])": lambda: os.setgroups([0]),
        "seteuid(0)": lambda: os.seteuid(0),
    }
    for name, fn in plain.items():
        try:
            fn()
            escaped.append(name)
        except Exception as exc:
            log.append(f"{name}: {type(exc).__name__}")
    if libc.prctl(38, 0, 0, 0, 0) == 0 and libc.prctl(39, 0, 0, 0, 0) == 0:
        escaped.append("no_new_privs cleared")
    if libc.mount(b"none", b".", b"tmpfs", 0, None) == 0:
        escaped.append("mount")
    if libc.chroot(b".") == 0:
        escaped.append("chroot")
    for name, spec in RAW.items():
        if spec is None:
            continue
        nr, args = spec
        r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
        if r >= 0:
            escaped.append(name)
        else:
            log.append(f"{name}: errno {ctypes.get_errno()}")
    if os.getuid() == 0 or os.geteuid() == 0:
        escaped.append("uid 0")
    if escaped:
        raise RuntimeError("HOSTILE" + "-ESCAPED " + " ".join(escaped))
    raise RuntimeError(f"uid {os.getuid()}, nothing taken back: " + "; ".join(log[:12]))
