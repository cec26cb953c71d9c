"""Importable task functions for the execution tests (workers import them by name).

Behaviour is chosen per task through ``task.strategy_parameters``:
``do`` (ok | fail | flaky | hang | hog | kill_first | sleep | block), ``dir`` (a folder for
counters), ``k`` (failures before success), ``seconds`` (sleep).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from alphaloop.execution import BacktestTask


def task(
    i: int | str, do: str = "ok", d: Path | None = None, max_retries: int = 3, **params: object
) -> BacktestTask:
    """A test task `t<i>` whose parameters tell `mixed` what to do (`do`, files under `d`)."""
    sp: dict[str, object] = {"do": do, **params}
    if d is not None:
        sp["dir"] = str(d)
    return BacktestTask(
        task_id=f"t{i}",
        experiment_id="e",
        variant_id=f"v{i}",
        strategy_code="",
        ticker="SPY",
        strategy_parameters=sp,
        max_retries=max_retries,
    )


def trivial(task: BacktestTask) -> dict[str, Any]:
    """The cheapest possible task."""
    return {"ok": 1}


def trivial_int(i: int) -> int:
    """Reference for a bare ProcessPoolExecutor.map."""
    return i


def _bump(task: BacktestTask, suffix: str) -> int:
    """Append one line to ``<dir>/<task_id>.<suffix>`` and return the line count."""
    path = Path(task.strategy_parameters["dir"]) / f"{task.task_id}.{suffix}"
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
        f.flush()
        os.fsync(f.fileno())
    return len(path.read_text().splitlines())


def mixed(task: BacktestTask) -> dict[str, Any]:
    """Do what ``strategy_parameters['do']`` says."""
    p = task.strategy_parameters
    do = p.get("do", "ok")
    runs = _bump(task, "runs") if "dir" in p else 0
    if do == "ok":
        return {"task_id": task.task_id, "pid": os.getpid(), "runs": runs}
    if do == "sleep":
        t0 = time.time()
        time.sleep(p.get("seconds", 0.2))
        return {"task_id": task.task_id, "pid": os.getpid(), "start": t0, "end": time.time()}
    if do == "fail":
        raise ValueError(f"boom in {task.task_id}")
    if do == "flaky":
        if runs <= p["k"]:
            raise RuntimeError(f"flaky failure {runs} of {p['k']}")
        return {"task_id": task.task_id, "runs": runs}
    if do == "hang":
        while True:
            pass
    if do == "hog":
        import numpy as np

        big = np.ones(int(50e9 / 8))
        return {"n": float(big[0])}
    if do == "kill_first":
        if runs == 1:
            if "wait_for" in p:  # a file the test creates when it is time to die
                deadline = time.monotonic() + 60
                while not Path(p["wait_for"]).exists() and time.monotonic() < deadline:
                    time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(10)
        return {"task_id": task.task_id, "runs": runs}
    if do == "sleep_once":
        if runs == 1:
            pidfile = Path(p["dir"]) / f"{task.task_id}.pid"
            tmp = pidfile.with_suffix(".tmp")
            tmp.write_text(str(os.getpid()))
            os.replace(tmp, pidfile)  # atomic: the test never reads a half-written file
            time.sleep(p.get("seconds", 10))
        return {"task_id": task.task_id, "runs": runs}
    if do == "block":  # until the test creates <dir>/<task_id>.release (or `seconds` pass)
        release = Path(p["dir"]) / f"{task.task_id}.release"
        deadline = time.monotonic() + p.get("seconds", 60)
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        (Path(p["dir"]) / f"{task.task_id}.done").touch()
        return {"task_id": task.task_id, "runs": runs}
    if do == "not_json":
        return {"x": object()}
    raise AssertionError(f"unknown behaviour {do!r}")


def claim_all(path: str, batch: int) -> list[str]:
    """Claim tasks from the queue at ``path`` until none is left; return their ids."""
    from alphaloop.execution import TaskQueue

    q = TaskQueue(path, recover=False)
    got: list[str] = []
    while claims := q.dequeue_many(batch):
        got.extend(c.task_id for c in claims)
    q.close()
    return got


def claim_and_exit(path: str, n: int) -> None:
    """Claim ``n`` tasks, then die without resolving them (an orchestrator crash)."""
    from alphaloop.execution import TaskQueue

    q = TaskQueue(path, recover=False)
    q.dequeue_many(n)
    os._exit(0)
