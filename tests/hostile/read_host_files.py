"""Read host files and put their content in the error message.

Attack (own): ``/etc/hostname``, ``/etc/passwd``, ``/etc/shadow``, the user's ``~/.ssh/id_rsa``
(a canary), the canary file, ``/root/.bash_history``, ``/proc/self/environ``,
``/proc/1/environ``, the parent worker's ``/proc/<ppid>/environ`` and ``cmdline``,
``/sys/class/net``, ``/dev/mem``. Whatever is read is put first in the error text (which the
user sees and the records keep).
Stopped by: Landlock (only the Python install, alphaloop, the shared libraries, time zones and
the data file are readable). CAP_DAC_READ_SEARCH, kept when the interpreter lives under /root,
does not help: Landlock still refuses the open.
"""

import os

PARAMETERS = {}


def generate_positions(data, **params):
    ppid = os.getppid()
    paths = [
        "@@CANARY_FILE@@",
        "@@SSH_KEY@@",
        "/etc/hostname",
        "/etc/shadow",
        "/etc/passwd",
        "/root/.bash_history",
        "/proc/self/environ",
        "/proc/1/environ",
        f"/proc/{ppid}/environ",
        f"/proc/{ppid}/cmdline",
        "/dev/mem",
    ]
    leaked, log = [], []
    for p in paths:
        try:
            with open(p, "rb") as f:
                leaked.append(f"{p}={f.read(200)!r}")
        except Exception as exc:
            log.append(f"{os.path.basename(p)}: {type(exc).__name__}")
    for d in ("/etc", "/root", "/sys/class/net", "@@USER_HOME@@"):
        try:
            leaked.append(f"{d}: {sorted(os.listdir(d))[:20]}")
        except Exception as exc:
            log.append(f"ls {d}: {type(exc).__name__}")
    if leaked:
        raise RuntimeError("read: " + " ".join(leaked))
    raise RuntimeError("nothing readable: " + "; ".join(log))
