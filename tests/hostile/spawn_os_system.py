"""Start programs with ``os``: ``system``, ``popen``, ``spawnv``, ``posix_spawn(p)``.

Attack (own, plain twin of ``pd_eval_globals_os_system``): each command touches a marker in
the private temp (the only place a confined child could write: its existence proves that a
process ran) and one in the canary folder. ``posix_spawn`` uses ``clone(CLONE_VM|CLONE_VFORK)``
inside glibc, a different path from ``fork``.
Stopped by: seccomp (``clone`` without CLONE_THREAD, ``fork``/``vfork``, ``execve`` answer
EPERM).
"""

import os

PARAMETERS = {}


def generate_positions(data, **params):
    marker = os.path.join(os.getcwd(), "spawned-marker")
    touch = f"touch {marker} '@@CANARY_DIR@@/hostile-spawn_os_system'"
    results = {}
    attempts = {
        "system": lambda: os.system(touch),
        "popen": lambda: os.popen(touch).close(),
        "spawnv": lambda: os.spawnv(os.P_WAIT, "/bin/sh", ["sh", "-c", touch]),
        "posix_spawn": lambda: os.waitpid(os.posix_spawn("/bin/sh", ["sh", "-c", touch], {}), 0),
        "posix_spawnp": lambda: os.waitpid(os.posix_spawnp("sh", ["sh", "-c", touch], {}), 0),
    }
    for name, fn in attempts.items():
        try:
            results[name] = fn()
        except Exception as exc:
            results[name] = type(exc).__name__
    if os.path.exists(marker):
        raise RuntimeError("HOSTILE" + f"-ESCAPED a process ran: {results}")
    raise RuntimeError(f"no process: {results}")
