"""The clean workers a Dask worker keeps (`_dask_clean`), driven here without a cluster.

Batches (jobs) from several threads share one clean worker, in order; it is kept between
batches and replaced when it dies; a timeout or a crash fails only the task it ran, and the
tasks fed after it, of its batch or of the next one, run on the next worker; a cut drops what
was not fed. Real clean worker processes, a test task function marked ``needs_clean_worker``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _dask_tasks import clean_mixed
from _tasks import task
from alphaloop.execution import _dask_clean
from alphaloop.execution._dask_batches import Stream, cut

_serial = itertools.count()


@pytest.fixture(scope="module", autouse=True)
def _close_workers() -> Iterator[None]:
    yield
    _dask_clean._close_all()


def items(n: int, prefix: str, **params: Any) -> list[Any]:
    return [(f"{prefix}{i}", 1, task(f"{prefix}{i}", **params).model_dump_json()) for i in range(n)]


def run(todo: list[Any], timeout: float = 60.0, key: str | None = None) -> list[Any]:
    """Run ``todo`` as one batch on a clean worker; its results (all sent at the end: no
    Dask worker here to stream them)."""
    key = key or f"batch-{next(_serial)}"
    stream = Stream("topic", key, 0.05)
    _dask_clean.run(clean_mixed, todo, key, stream, timeout, 2 << 30)
    return stream.take()


def by_id(results: list[Any]) -> dict[str, Any]:
    return {r[0]: r for r in results}


def dead(pid: int) -> bool:
    """``pid`` has exited (a zombie not reaped yet, or gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_for(path: Path, thread: threading.Thread) -> None:
    """Until ``path`` exists (a task of the batch ``thread`` runs has started)."""
    done = threading.Event()
    while not path.exists() and thread.is_alive():
        done.wait(0.01)
    assert path.exists(), f"{path.name} never started"


def test_batches_from_two_threads_share_one_clean_worker_in_order(tmp_path: Path) -> None:
    """A batch submitted while another runs is fed behind it to the same worker (no second
    worker starts) and each gets exactly its own results."""
    run(items(1, "warm"))  # the worker is started
    first = items(20, "a", do="sleep", seconds=0.02, d=tmp_path)  # all fed at once
    second = items(10, "b")
    out: dict[str, list[Any]] = {}
    t = threading.Thread(target=lambda: out.setdefault("a", run(first)))
    t.start()
    wait_for(tmp_path / "ta0.runs", t)
    out["b"] = run(second)
    t.join(60)
    assert sorted(by_id(out["a"])) == sorted(i[0] for i in first)
    assert sorted(by_id(out["b"])) == sorted(i[0] for i in second)
    assert all(r[2] for r in out["a"] + out["b"]), [r[3] for r in out["a"] + out["b"]]
    assert len({r[7] for r in out["a"] + out["b"]}) == 1  # one clean worker process
    assert len(_dask_clean._WORKERS) == 1
    last_a = max(r[5] + r[6] for r in out["a"])
    assert min(r[5] for r in out["b"]) >= last_a - 0.001  # fed behind the first batch


def test_clean_worker_is_kept_across_batches_and_replaced_when_it_dies() -> None:
    pid = run(items(2, "k1"))[0][7]
    assert {r[7] for r in run(items(3, "k2"))} == {pid}  # kept: no new start
    os.kill(pid, signal.SIGKILL)
    while not dead(pid):
        threading.Event().wait(0.01)
    again = run(items(3, "k3"))
    assert all(r[2] for r in again), [r[3] for r in again]  # died idle: nobody is blamed
    assert {r[7] for r in again} != {pid}


def test_timeout_fails_only_the_running_task_and_the_rest_runs_on_a_new_worker(
    tmp_path: Path,
) -> None:
    """Batch ``a``: ok, a task that overruns, ok, ok; batch ``b`` is queued behind it on the
    same worker. The overrunning task fails (limit) once, everything else succeeds."""
    a = [*items(1, "a"), *items(1, "slow", do="block", d=tmp_path, seconds=60), *items(2, "c")]
    b = items(3, "b")
    out: dict[str, list[Any]] = {}
    t = threading.Thread(target=lambda: out.setdefault("a", run(a, timeout=1.5)))
    t.start()
    wait_for(tmp_path / "tslow0.runs", t)
    out["b"] = run(b, timeout=1.5)
    t.join(120)
    ra, rb = by_id(out["a"]), by_id(out["b"])
    assert sorted(ra) == ["a0", "c0", "c1", "slow0"] and sorted(rb) == ["b0", "b1", "b2"]
    assert not ra["slow0"][2] and ra["slow0"][3] == "timed out after 1.5 s"
    assert ra["slow0"][8] == "limit"
    assert all(r[2] for k, r in {**ra, **rb}.items() if k != "slow0")
    assert ra["c0"][7] != ra["a0"][7]  # the worker that ran the overrun was killed


def test_a_crash_fails_the_running_task_once(tmp_path: Path) -> None:
    a = [*items(1, "x"), *items(1, "die", do="kill_first", d=tmp_path), *items(2, "y")]
    out = by_id(run(a))
    assert not out["die0"][2] and "worker process died" in out["die0"][3]
    assert all(out[k][2] for k in ("x0", "y0", "y1"))


def test_a_cut_batch_starts_nothing_from_the_cut_on() -> None:
    key = f"batch-{next(_serial)}"
    asyncio.run(cut(key, 3))
    assert sorted(by_id(run(items(30, "z"), key=key))) == ["z0", "z1", "z2"]
