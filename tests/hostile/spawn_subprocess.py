"""Start programs with ``subprocess`` and ``asyncio``.

Attack (own): ``subprocess.run``, ``Popen`` with ``shell=True``, ``check_output``,
``asyncio.create_subprocess_exec``; each touches a marker in the private temp and one in the
canary folder; a detached ``sleep`` would outlive the strategy.
Stopped by: seccomp (no clone of a process, no execve).
"""

import asyncio
import os
import subprocess

PARAMETERS = {}


def generate_positions(data, **params):
    marker = os.path.join(os.getcwd(), "spawned-marker")
    canary = "@@CANARY_DIR@@/hostile-spawn_subprocess"
    results = {}

    async def run_async():
        proc = await asyncio.create_subprocess_exec("touch", marker, canary)
        return await proc.wait()

    attempts = {
        "run": lambda: subprocess.run(["touch", marker, canary], timeout=5).returncode,
        "shell": lambda: subprocess.Popen(f"touch {marker}", shell=True).wait(5),
        "check_output": lambda: subprocess.check_output(["id"], timeout=5),
        "detached": lambda: subprocess.Popen(["sleep", "30"], start_new_session=True).pid,
        "asyncio": lambda: asyncio.run(run_async()),
    }
    for name, fn in attempts.items():
        try:
            results[name] = fn()
        except Exception as exc:
            results[name] = type(exc).__name__
    if os.path.exists(marker):
        raise RuntimeError("HOSTILE" + f"-ESCAPED a process ran: {results}")
    raise RuntimeError(f"no process: {results}")
