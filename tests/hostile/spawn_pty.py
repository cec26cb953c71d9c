"""Pseudo-terminals: ``pty.fork``, ``pty.spawn``, ``os.openpty``, ``/dev/ptmx``.

Attack (own): a pty child is a process with a terminal (for interactive shells, or for
``TIOCSTI`` keystroke injection into it); ``os.openpty`` alone gives a terminal to write
escape sequences into.
Stopped by: seccomp (no process clone; TIOCSTI/TIOCLINUX refused) and Landlock (``/dev/ptmx``
and ``/dev/pts`` cannot be opened).
"""

import os
import pty

PARAMETERS = {}


def generate_positions(data, **params):
    marker = os.path.join(os.getcwd(), "spawned-marker")
    results = {}
    try:
        pid, _fd = pty.fork()
        if pid == 0:
            with open(marker, "w") as f:
                f.write("pty")
            os._exit(0)
        results["pty.fork"] = os.waitpid(pid, 0)
    except Exception as exc:
        results["pty.fork"] = type(exc).__name__
    try:
        results["pty.spawn"] = pty.spawn(["sh", "-c", f"touch {marker}"])
    except Exception as exc:
        results["pty.spawn"] = type(exc).__name__
    try:
        results["openpty"] = os.openpty()
    except Exception as exc:
        results["openpty"] = type(exc).__name__
    try:
        results["ptmx"] = os.open("/dev/ptmx", os.O_RDWR)
    except Exception as exc:
        results["ptmx"] = type(exc).__name__
    if os.path.exists(marker):
        raise RuntimeError("HOSTILE" + f"-ESCAPED a process ran: {results}")
    raise RuntimeError(f"no process: {results}")
