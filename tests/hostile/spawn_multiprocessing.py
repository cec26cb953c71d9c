"""``multiprocessing`` and ``concurrent.futures`` process pools.

Attack (own): ``multiprocessing.get_context('fork'|'spawn'|'forkserver').Process`` and a
``ProcessPoolExecutor``; the child function writes a marker in the private temp. ``spawn``
and ``forkserver`` exec a new interpreter, which would escape the address-space and CPU
budgets of this process.
Stopped by: seccomp (no process clone, no execve; the helper pipes/sockets fail too).
"""

import concurrent.futures
import multiprocessing
import os

PARAMETERS = {}


def _child(path):
    with open(path, "w") as f:
        f.write("child")


def generate_positions(data, **params):
    marker = os.path.join(os.getcwd(), "spawned-marker")
    results = {}
    for method in ("fork", "spawn", "forkserver"):
        try:
            p = multiprocessing.get_context(method).Process(target=_child, args=(marker,))
            p.start()
            p.join(5)
            results[method] = p.exitcode
        except Exception as exc:
            results[method] = type(exc).__name__
    try:
        with concurrent.futures.ProcessPoolExecutor(1) as ex:
            results["pool"] = ex.submit(_child, marker).result(timeout=5)
    except Exception as exc:
        results["pool"] = type(exc).__name__
    if os.path.exists(marker):
        raise RuntimeError("HOSTILE" + f"-ESCAPED a process ran: {results}")
    raise RuntimeError(f"no process: {results}")
