"""Workers forked from the worker template (`_template`): as clean as a fresh worker, the
same exit codes, and the template's death costs retries, never tasks."""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
from pathlib import Path

import psutil
import pytest

import _tasks
from _tasks import task
from alphaloop.execution import LocalPool, RetryPolicy, TaskQueue, _template
from alphaloop.execution._confine import scrubbed_env
from alphaloop.execution._launch import start_worker

FAST = RetryPolicy(base=0.01, factor=2.0, cap=0.05, jitter=0.5)
pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")


@pytest.fixture
def q(tmp_path: Path) -> TaskQueue:
    queue = TaskQueue(tmp_path / "queue.db", retry=FAST)
    yield queue
    queue.close()


def _ready(inbox: object, outbox: object) -> None:
    inbox.send(("fn", pickle.dumps(_tasks.mixed)))  # type: ignore[attr-defined]
    assert outbox.recv() == ("ready",)  # type: ignore[attr-defined]


def _stop(proc: object, inbox: object, outbox: object) -> None:
    with contextlib.suppress(OSError):
        inbox.send(("stop",))  # type: ignore[attr-defined]
    proc.join(30)  # type: ignore[attr-defined]
    proc.kill()  # type: ignore[attr-defined]
    proc.join(30)  # type: ignore[attr-defined]
    for c in (inbox, outbox):
        c.close()  # type: ignore[attr-defined]
    proc.close()  # type: ignore[attr-defined]


def _inode(link: str) -> str:
    return link.split(":", 1)[1] if ":" in link else link


def test_forked_worker_holds_only_its_own_descriptors_and_a_scrubbed_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALPHALOOP_TEST_API_KEY", "hunter2-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter3-secret")
    proc, inbox, outbox = start_worker(None)
    try:
        _ready(inbox, outbox)
        assert proc.forked
        tpl = _template.shared()
        assert tpl is not None and psutil.Process(proc.pid).ppid() == tpl.proc.pid
        fd_dir = f"/proc/{proc.pid}/fd"
        links = {int(n): os.readlink(f"{fd_dir}/{n}") for n in os.listdir(fd_dir)}
        assert links[0] == "/dev/null"
        own = {k: v for k, v in links.items() if k > 2}
        # exactly its inbox, outbox, sentinel (the other ends of ours) and the blind socket
        mine = {
            _inode(os.readlink(f"/proc/self/fd/{fd}"))
            for fd in (inbox.fileno(), outbox.fileno(), proc.sentinel)
        }
        pipes = {_inode(v) for v in own.values() if v.startswith("pipe:")}
        sockets = [v for v in own.values() if v.startswith("socket:")]
        assert pipes == mine and len(own) == 4 and len(sockets) == 1, links
        with open(f"/proc/{proc.pid}/environ", "rb") as f:
            raw = f.read()
        env = dict(
            item.decode().split("=", 1) for item in raw.split(b"\0") if b"=" in item
        )
        assert b"secret" not in raw.lower()
        assert scrubbed_env(env) == env  # nothing the allow-list would drop
        assert psutil.Process(proc.pid).num_threads() == 1
    finally:
        _stop(proc, inbox, outbox)


def test_sigkilled_forked_worker_reports_minus_nine() -> None:
    proc, inbox, outbox = start_worker(None)
    try:
        _ready(inbox, outbox)
        assert proc.forked and proc.is_alive() and proc.exitcode is None
        os.kill(proc.pid, signal.SIGKILL)
        assert select.select([proc.sentinel], [], [], 60)[0] == [proc.sentinel]
        proc.join(60)
        assert proc.exitcode == -9 and not proc.is_alive()
    finally:
        _stop(proc, inbox, outbox)


def test_replaced_workers_are_forked_not_started(q: TaskQueue) -> None:
    """max_tasks_per_worker recycles workers: every replacement is forked from the same
    warmed template (counted by the template, not timed)."""
    q.enqueue_batch([task(i) for i in range(40)])
    with LocalPool(2, max_tasks_per_worker=5, max_batch=4) as pool:
        summary = pool.run(q, _tasks.mixed)
        tpl = _template.shared()
        assert tpl is not None
        assert set(pool.worker_pids) <= set(tpl.recent)
    pids = {r["pid"] for _, r in q.results()}
    assert summary.completed == 40 and len(pids) >= 8
    assert pids <= set(tpl.recent)
    assert _template.shared() is tpl  # the same template served them all


def test_killed_template_is_replaced_and_tasks_complete(q: TaskQueue) -> None:
    q.enqueue_batch([task(i, max_retries=6) for i in range(60)])
    done: list[str] = []
    with LocalPool(2, max_batch=2) as pool:
        old = _template.shared()
        assert old is not None

        def on_result(tid: str, result: dict[str, object]) -> None:
            done.append(tid)
            if len(done) == 10:  # mid-run: its workers die with it (PR_SET_PDEATHSIG)
                os.kill(old.proc.pid, signal.SIGKILL)

        summary = pool.run(q, _tasks.mixed, on_result=on_result)
        assert summary.completed == 60
        assert q.get_stats()["completed"] == 60
        assert old.proc.wait(60) == -9
        # the pool's next tasks run on workers of a new template
        q.enqueue_batch([task(i, max_retries=6) for i in range(60, 70)])
        assert pool.run(q, _tasks.mixed).completed == 10
        new = _template.shared()
        assert new is not None and new is not old and old.dead
        late = {r["pid"] for tid, r in q.results() if int(tid[1:]) >= 60}
        assert late <= set(new.recent)


def test_switched_off_template_starts_a_fresh_interpreter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALPHALOOP_WORKER_TEMPLATE", "0")
    proc, inbox, outbox = start_worker(None)
    try:
        _ready(inbox, outbox)
        assert not proc.forked and psutil.Process(proc.pid).ppid() == os.getpid()
    finally:
        _stop(proc, inbox, outbox)
