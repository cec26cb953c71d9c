"""A workflow killed after ANY commit resumes to the uninterrupted result.

The kill test runs one small but complete workflow (tool development, research, development,
backtesting, the gate with holdout looks, TUNE_PARAMETERS, REFINE_ALGORITHM, REFINE_RESEARCH and
SUCCESS) once without interruption and counts its commit points: every state write and every
file the orchestrator writes (``atomic_write_text``), every tracker commit (just after its
SQLite commit, before its JSON line is appended, and again once it is appended) and every
enqueue. Then, for EVERY commit point k, it runs the workflow in a subprocess that SIGKILLs
itself right after commit k, resumes it in a fresh subprocess and compares everything the
workflow produced with the uninterrupted run (ids and timestamps aside).

Speed. Each run uses `SerialExecutor` (below): tasks run one at a time in the orchestrating
process through ``run_task_in_process``, recorded through the queue exactly as the real executors
record them. The runs are forked from one helper process (this file run as a script) that has
imported everything and run the workflow once to warm its caches, so a run costs its backtests,
not an interpreter start; two kill/resume chains run at a time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from alphaloop.agents.development import OptunaDeveloper
from alphaloop.agents.failure import RuleBasedFailureAnalyst
from alphaloop.agents.research import ResearchSwarm
from alphaloop.agents.trajectory import RuleBasedTrajectoryAdvisor
from alphaloop.backtest.strategy import load_strategy
from alphaloop.execution import (
    QUEUE_FILENAME,
    BacktestTask,
    Executor,
    RetryPolicy,
    RunSummary,
    TaskQueue,
    TaskState,
)
from alphaloop.execution.task_runner import run_task_in_process
from alphaloop.workflow import orchestrator as orchestrator_mod
from alphaloop.workflow import state as state_mod
from alphaloop.workflow.gate import QualityCriteria
from alphaloop.workflow.orchestrator import Orchestrator, Parts, WorkflowResult, limit_failure
from alphaloop.workflow.routing import RoutingEngine
from alphaloop.workflow.state import StateManager, list_workflows, workflow_dir
from alphaloop.workflow.tracker import ExperimentTracker, jsonl_path, read_jsonl

# --- the in-process executor -----------------------------------------------------------------


class SerialExecutor(Executor):
    """Runs the queue's tasks one at a time in this process (tests only: no timeout, no memory
    limit, no process boundary around strategy code).

    Follows the executor contract (``alphaloop.execution._base``): claims with ``dequeue``,
    records each attempt with ``mark_completed`` / ``mark_failed`` under the claim's attempt
    number (``"<Type>: <message>"`` and the traceback for an exception, a result that is not a
    JSON object included), waits out retry backoffs, returns when nothing is QUEUED, and calls
    ``on_result`` once per recorded result.
    """

    def run(
        self,
        queue: TaskQueue,
        fn: Callable[[BacktestTask], Any],
        *,
        on_result: Callable[[str, dict[str, Any]], None] | None = None,
        stop_when: Callable[[], bool] | None = None,
    ) -> RunSummary:
        t0 = time.monotonic()
        completed = failed = gave_up = 0
        stopped = False
        pid = os.getpid()
        while True:
            if stop_when is not None and stop_when():
                stopped = not queue.is_empty()
                break
            claim = queue.dequeue(worker_pid=pid)
            if claim is None:
                wait = queue.next_ready_in()
                if wait is None:
                    break
                time.sleep(min(wait, 0.05))  # a failed attempt's retry backoff
                continue
            started = time.time()
            try:
                result = dict(fn(claim.task))
                recorded = queue.mark_completed(
                    claim.task_id, result, claim.attempt, worker_pid=pid, started_at=started
                )
            except Exception as exc:
                failed += 1
                queue.mark_failed(
                    claim.task_id,
                    f"{type(exc).__name__}: {exc}",
                    traceback.format_exc(),
                    attempt=claim.attempt,
                    worker_pid=pid,
                    started_at=started,
                )
                gave_up += queue.state(claim.task_id) is TaskState.FAILED
                continue
            except BaseException:
                queue.release(claim.task_id, claim.attempt, started=True)
                raise
            if recorded:
                completed += 1
                if on_result is not None:
                    on_result(claim.task_id, result)
        return RunSummary(
            completed=completed,
            failed_attempts=failed,
            gave_up=gave_up,
            elapsed=time.monotonic() - t0,
            stopped=stopped,
        )


def test_serial_executor_keeps_the_executor_contract(tmp_path: Path) -> None:
    import _tasks

    with TaskQueue(tmp_path / "q.db", retry=FAST_RETRY) as q:
        q.enqueue_batch(
            [_tasks.task(i) for i in range(5)]
            + [_tasks.task("bad", "fail", max_retries=2)]
            + [_tasks.task("nj", "not_json", max_retries=1)]
            + [_tasks.task("f", "flaky", tmp_path, k=1)]
        )
        seen: list[str] = []
        summary = SerialExecutor().run(q, _tasks.mixed, on_result=lambda t, r: seen.append(t))
        assert sorted(seen) == sorted([f"t{i}" for i in range(5)] + ["tf"])
        assert q.get_stats() == {"queued": 0, "in_progress": 0, "completed": 6, "failed": 2}
        assert [a.error for a in q.attempts("tbad")] == ["ValueError: boom in tbad"] * 2
        assert q.attempts("tnj")[0].error.startswith("TypeError")
        assert [a.outcome for a in q.attempts("tf")] == ["failed", "completed"]
        assert (summary.completed, summary.failed_attempts, summary.gave_up) == (6, 4, 2)


# --- the workflow under test -----------------------------------------------------------------

TICKER = "GOOG"
GATE = ["sharpe_ratio>=0.75"]
SEED = 1
N_VARIANTS = 2
LIMITS = {"max_total_iterations": 5}
STRATEGIES = ("bollinger_reversion", "donchian_breakout", "rsi_reversion", "sma_crossover")
FAST_RETRY = RetryPolicy(base=0.001, factor=2.0, cap=0.004, jitter=0.5)
# what this seed and these limits make the workflow do; the kill test needs all of it
EXPECTED_ACTIONS = {"TUNE_PARAMETERS", "REFINE_ALGORITHM", "REFINE_RESEARCH", "ABANDON"}


def assemble(state: StateManager) -> Orchestrator:
    """The orchestrator of the test workflow, as `api._assemble` builds it but with the serial
    in-process executor, a fast retry policy and four library strategies."""
    home, wid = state.home, state.workflow_id
    criteria = QualityCriteria.coerce(GATE)
    parts = Parts(
        state=state,
        tracker=ExperimentTracker(home, wid),
        queue=TaskQueue(workflow_dir(home, wid) / QUEUE_FILENAME, retry=FAST_RETRY),
        executor=SerialExecutor(),
        task_fn=run_task_in_process,
        swarm=ResearchSwarm(),
        developer=OptunaDeveloper({n: load_strategy(n) for n in STRATEGIES}),
        router=RoutingEngine(state, RuleBasedFailureAnalyst(), RuleBasedTrajectoryAdvisor()),
        criteria=criteria,
        n_variants=N_VARIANTS,
    )
    return Orchestrator(parts)


def drive(state: StateManager) -> WorkflowResult:
    orch = assemble(state)
    try:
        return orch.run()
    finally:
        orch.p.tracker.close()
        orch.p.queue.close()


def start(home: Path) -> WorkflowResult:
    return drive(new_state(home))


def resume(home: Path) -> WorkflowResult:
    (s,) = list_workflows(home)
    return drive(StateManager.load(s.workflow_id, home))


def new_state(home: Path, **fields: Any) -> StateManager:
    return StateManager.create(
        home,
        research_directive="",
        ticker=TICKER,
        quality_criteria=QualityCriteria.coerce(GATE).to_dict(),
        seed=SEED,
        **{**LIMITS, **fields},
    )


def outcome(home: Path, result: WorkflowResult) -> dict[str, Any]:
    """Everything the workflow produced, with ids made run-independent and timestamps left
    out: the result, the final state, the tracker (experiments, actions, records), the JSON
    lines, the queue's counts and the files of the workflow folder."""
    wid = result["workflow_id"]
    tag = wid.removeprefix("workflow_")
    folder = workflow_dir(home, wid)
    s = StateManager.load(wid, home).state
    with ExperimentTracker(home, wid, readonly=True) as t:
        experiments = t.experiments()
        records = t.records(sample=None)
    with TaskQueue(folder / QUEUE_FILENAME, recover=False) as q:
        stats = q.get_stats()
    keep = {
        "gate_passed", "gate_score", "failed_criteria", "error", "sample", "strategy_name",
        "code_hash", "parameters", "metrics", "parameter_changes", "parent_variant_id",
        "variant_id", "experiment_id", "task_id", "action_taken", "data_fingerprint",
    }  # fmt: skip
    lines: dict[str, list[Any]] = {}
    for e in experiments:
        lines[e.experiment_id] = [
            (ln["kind"], ln.get("task_id"), ln.get("action"))
            for ln in read_jsonl(jsonl_path(home, e.experiment_id))
        ]
    files = {
        p.name: (json.loads(p.read_text()) if p.suffix == ".json" and p.name != "state.json"
                 else None)
        for p in sorted(folder.iterdir())
        if not p.name.endswith((".tmp", "-wal", "-shm", "-journal"))
    }
    out = {
        "result": {k: v for k, v in result.items() if k != "workflow_id"},
        "state": s.model_dump(
            mode="json", exclude={"workflow_id", "created_at", "updated_at"}
        ),
        "experiments": [
            e.model_dump(mode="json", exclude={"workflow_id", "created_at", "decided_at"})
            for e in experiments
        ],
        "records": [r.model_dump(mode="json", include=keep) for r in records],
        "jsonl": lines,
        "queue": stats,
        "files": files,
    }
    text = json.dumps(out, sort_keys=True, default=str).replace(tag, "<id>")
    return json.loads(text)


# --- commit points ---------------------------------------------------------------------------


def hook_commits(on_commit: Callable[[str], None]) -> None:
    """Call ``on_commit(label)`` right after every commit of this process (for a forked child
    only: it patches modules in place)."""

    def after(fn: Callable[..., Any], label: Callable[..., str]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            out = fn(*args, **kwargs)
            on_commit(label(*args, **kwargs))
            return out

        return wrapper

    def before(fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            on_commit(label)
            return fn(*args, **kwargs)

        return wrapper

    def written(path: Path, text: str) -> str:
        return "write " + re.sub(r"^exp_.*_(\d+)_", r"exp_\1_", Path(path).name)

    write = after(state_mod.atomic_write_text, written)
    state_mod.atomic_write_text = write  # type: ignore[assignment]
    orchestrator_mod.atomic_write_text = write  # type: ignore[assignment]
    for name in ("start_experiment", "log_record", "log_records", "set_action"):
        method = getattr(ExperimentTracker, name)
        setattr(ExperimentTracker, name, after(method, lambda *a, n=name, **k: f"tracker {n}"))
    # the tracker has committed to SQLite and not yet appended the JSON line
    ExperimentTracker._append = before(  # type: ignore[method-assign]
        ExperimentTracker._append, "tracker SQLite commit, JSON line not yet appended"
    )
    TaskQueue.enqueue_batch = after(  # type: ignore[method-assign]
        TaskQueue.enqueue_batch, lambda *a, **k: "queue enqueue_batch"
    )


# --- the helper process: forks the runs ------------------------------------------------------


def _child(job: Callable[[], None], errors: Path) -> int:
    """Fork, run ``job`` in the child, wait; the child's exit status."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            job()
        except BaseException:
            errors.write_text(traceback.format_exc())
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return status


def _reference(work: Path) -> None:
    labels: list[str] = []
    hook_commits(labels.append)
    result = start(work / "home")
    (work / "commits.json").write_text(json.dumps(labels))
    (work / "outcome.json").write_text(json.dumps(outcome(work / "home", result)))


def _killed(work: Path, k: int, label: str) -> None:
    seen = 0

    def on_commit(got: str) -> None:
        nonlocal seen
        seen += 1
        if seen == k:
            (work / "killed_at.txt").write_text(got)
            os.kill(os.getpid(), signal.SIGKILL)

    hook_commits(on_commit)
    start(work / "home")


def _resumed(work: Path) -> None:
    result = resume(work / "home")
    (work / "outcome.json").write_text(json.dumps(outcome(work / "home", result)))


def _chain(root: Path, k: int, labels: list[str]) -> None:
    """Kill after commit k, then resume; leaves ``status.json`` in ``root/k<k>``."""
    work = root / f"k{k:03d}"
    work.mkdir()
    killed = _child(lambda: _killed(work, k, labels[k - 1]), work / "killed_error.txt")
    resumed = -1
    if os.WIFSIGNALED(killed) and os.WTERMSIG(killed) == signal.SIGKILL:
        resumed = _child(lambda: _resumed(work), work / "resume_error.txt")
    (work / "status.json").write_text(json.dumps({"killed": killed, "resumed": resumed}))


def serve(root: Path, parallel: int) -> None:
    """The helper process: warm up, run the reference, then every kill/resume chain."""
    start(root / "warm-up")  # imports, compiled kernels and caches are inherited by every fork
    ref = root / "reference"
    ref.mkdir()
    if _child(lambda: _reference(ref), ref / "error.txt") != 0:
        return
    labels = json.loads((ref / "commits.json").read_text())
    running: set[int] = set()
    for k in range(1, len(labels) + 1):
        while len(running) >= parallel:
            running.discard(os.wait()[0])
        pid = os.fork()
        if pid == 0:
            try:
                _chain(root, k, labels)
            finally:
                os._exit(0)
        running.add(pid)
    while running:
        running.discard(os.wait()[0])


# --- the kill test ---------------------------------------------------------------------------


def _diff(a: Any, b: Any, where: str = "") -> Iterator[str]:
    """Where ``b`` (resumed) differs from ``a`` (uninterrupted), one line per difference."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            yield from _diff(a.get(key, "<missing>"), b.get(key, "<missing>"), f"{where}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            yield from _diff(x, y, f"{where}[{i}]")
        if len(a) != len(b):
            yield f"{where}: {len(b)} items (uninterrupted: {len(a)})"
    elif a != b:
        yield f"{where}: {str(b)[:160]} (uninterrupted: {str(a)[:160]})"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the runs are forked from a helper process")
def test_kill_after_every_commit_then_resume_gives_the_uninterrupted_result(
    tmp_path: Path,
) -> None:
    # a process crash loses nothing the kernel has, so fsync buys nothing here: the runs write
    # to memory (tmpfs) when the machine has it, which makes their many fsyncs free
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path
    try:
        _check_every_kill_point(root)
    finally:
        if root != tmp_path:
            shutil.rmtree(root, ignore_errors=True)


def _check_every_kill_point(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, __file__, str(tmp_path), str(min(2, os.cpu_count() or 1))],
        capture_output=True,
        text=True,
        timeout=900,  # a safety net only: the test waits for the helper's exit
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ref = tmp_path / "reference"
    assert not (ref / "error.txt").exists(), (ref / "error.txt").read_text()
    reference = json.loads((ref / "outcome.json").read_text())
    labels = json.loads((ref / "commits.json").read_text())

    # the workflow goes through every phase and the routing actions the test is about
    actions = {e["action"] for e in reference["experiments"]}
    assert actions >= EXPECTED_ACTIONS, actions
    assert reference["result"]["holdout_looks"] >= 2
    assert reference["state"]["research_iteration"] >= 1
    assert sum(label == "write state.json" for label in labels) >= 15

    failures: list[str] = []
    for k, label in enumerate(labels, start=1):
        work = tmp_path / f"k{k:03d}"
        where = f"kill after commit {k}/{len(labels)} ({label})"
        status = json.loads((work / "status.json").read_text())
        killed_error = work / "killed_error.txt"
        if killed_error.exists():
            failures.append(f"{where}: the run failed before it was killed:\n"
                            f"{killed_error.read_text()[-1500:]}")
            continue
        if not (os.WIFSIGNALED(status["killed"])
                and os.WTERMSIG(status["killed"]) == signal.SIGKILL):
            failures.append(f"{where}: the run was not killed (status {status['killed']}): "
                            "it made fewer commits than the uninterrupted run")
            continue
        at = (work / "killed_at.txt").read_text()
        if at != label:
            failures.append(f"{where}: killed at a different commit ({at}): the run is not "
                            "deterministic")
        if status["resumed"] != 0:
            error = work / "resume_error.txt"
            text = error.read_text()[-1500:] if error.exists() else f"status {status['resumed']}"
            failures.append(f"{where}: resume failed:\n{text}")
            continue
        got = json.loads((work / "outcome.json").read_text())
        diffs = list(_diff(reference, got))
        if diffs:
            failures.append(f"{where}: differs from the uninterrupted run:\n  "
                            + "\n  ".join(diffs[:8]))
    assert not failures, f"{len(failures)} of {len(labels)} kill points fail:\n" + "\n".join(
        failures[:12]
    )


# --- a strategy that hits a resource limit twice is retired ----------------------------------


def test_limit_failures_are_told_from_other_errors() -> None:
    assert limit_failure("timed out after 3 s") == ("timed out", "3 s")
    assert limit_failure(
        "StrategyProcessError: strategy 'hogs' exceeded the memory limit 1 GiB (MemoryError: x)"
    ) == ("exceeded the memory limit", "1 GiB")
    assert limit_failure(
        "StrategyProcessError: strategy 'hogs' line 9: ValueError: exceeded the memory limit 1 GiB"
    ) is None
    assert limit_failure("timed out after 0.5 s") == ("timed out", "0.5 s")
    assert limit_failure("exceeded memory limit 2 GiB (MemoryError: x)") == (
        "exceeded the memory limit",
        "2 GiB",
    )
    assert limit_failure("ran out of memory (MemoryError)") == ("ran out of memory", None)
    # strategy code's own exceptions are reported as "<Type>: <message>": never a limit
    assert limit_failure("ValueError: timed out after 3 s") is None
    assert limit_failure("worker process died (exit code 1)") is None
    assert limit_failure(None) is None


def test_a_retired_strategy_is_never_proposed(tmp_path: Path) -> None:
    """The retired set lives in the state, so a resumed run (which has only the state) keeps
    it: here a workflow starts with a family retired and never proposes it."""
    state = new_state(tmp_path, retired_strategies={"donchian_breakout": "0" * 64})
    result = drive(state)
    with ExperimentTracker(tmp_path, result["workflow_id"], readonly=True) as t:
        names = {r.strategy_name.split("+")[0] for r in t.records(sample=None)}
    assert names and "donchian_breakout" not in names
    assert result["best_strategy_name"].split("+")[0] != "donchian_breakout"
    s = StateManager.load(result["workflow_id"], tmp_path).state
    assert s.retired_strategies == {"donchian_breakout": "0" * 64}


SPINNER = '''"""A trend filter that never returns unless its window is the default: a runaway."""
import numpy as np
import pandas as pd

PARAMETERS = {"window": {"default": 20, "low": 5, "high": 60}}


def generate_positions(data, window=20):
    while window != 20:
        pass
    close = data["close"]
    return pd.Series(np.where(close > close.rolling(window).mean(), 1.0, 0.0), index=data.index)
'''


SPIN_LIMIT = 8


@pytest.mark.slow
def test_strategy_that_times_out_twice_is_retired_with_a_lesson(tmp_path: Path) -> None:
    from alphaloop.execution import LocalPool
    from alphaloop.workflow.api import run_workflow

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "spinner.py").write_text(SPINNER)
    # At its default window the spinner passes tool development; user strategies come first
    # and the fifth variant of the first round is a TPE proposal for it, at another window.
    # The limit leaves a loaded machine's honest tasks (the spinner's own checks at its
    # default window, the library's variants: under a second when quiet) room of several
    # times their time; only the runaway hits it.
    with LocalPool(max_workers=1, task_timeout=SPIN_LIMIT) as pool:
        result = run_workflow(
            "GOOG", "", ["sharpe_ratio>=4.0"], home=tmp_path / "home", n_variants=5,
            strategies_dir=str(mine), executor=pool, seed=SEED,
        )  # fmt: skip
    home, wid = tmp_path / "home", result["workflow_id"]
    lessons = result["lessons_learned"]
    retire = [i for i, text in enumerate(lessons) if text.startswith("retired spinner")]
    assert len(retire) == 1, lessons
    assert f"timed out twice (limit {SPIN_LIMIT} s)" in lessons[retire[0]]
    assert "spinner" in StateManager.load(wid, home).state.retired_strategies
    with ExperimentTracker(home, wid, readonly=True) as t:
        experiments = t.experiments()
        records = t.records(sample=None)
    timed_out = [r for r in records if r.error and r.error.startswith("timed out after")]
    assert timed_out and all(r.strategy_name == "spinner" for r in timed_out)
    # the lesson was written with the routing decision of experiment n (the n-th routing
    # lesson): no experiment after it has a variant of the spinner
    n = sum(1 for text in lessons[: retire[0]] if text.startswith("[research "))
    assert 1 <= n < len(experiments), (n, len(experiments))
    later = {e.experiment_id for e in experiments[n:]}
    assert not [r.task_id for r in records
                if r.experiment_id in later and r.strategy_name.split("+")[0] == "spinner"]


if __name__ == "__main__":
    serve(Path(sys.argv[1]), int(sys.argv[2]))
