"""``os.fork`` (the child writes a marker and exits), ``os.forkpty``, then ``os.execv``.

Attack (own): a forked child could keep running strategy code after the parent answered, or
exec anything; ``execv`` replaces the strategy process itself with ``/bin/sh -c 'sleep 1'``
(a non-Python process the test's process watcher would see).
Stopped by: seccomp (``clone`` of a process and ``execve`` answer EPERM).
"""

import os

PARAMETERS = {}


def generate_positions(data, **params):
    marker = os.path.join(os.getcwd(), "spawned-marker")
    results = {}
    try:
        pid = os.fork()
        if pid == 0:
            with open(marker, "w") as f:
                f.write("child")
            os._exit(0)
        results["fork"] = os.waitpid(pid, 0)
    except Exception as exc:
        results["fork"] = type(exc).__name__
    try:
        pid, _fd = os.forkpty()
        if pid == 0:
            with open(marker, "w") as f:
                f.write("pty child")
            os._exit(0)
        results["forkpty"] = os.waitpid(pid, 0)
    except Exception as exc:
        results["forkpty"] = type(exc).__name__
    if os.path.exists(marker):
        raise RuntimeError("HOSTILE" + f"-ESCAPED forked: {results}")
    for prog, argv in (("/bin/sh", ["sh", "-c", "sleep 1"]), ("/usr/bin/env", ["env"])):
        try:
            os.execv(prog, argv)
        except Exception as exc:
            results[f"execv {prog}"] = type(exc).__name__
    raise RuntimeError(f"no process: {results}")
