"""A quicker start: tool checks cached in the home, workers started while research runs, and
one sync per store per step (group commits).

The tool-development phase runs for real (a confined worker, the look-ahead test) on a few
strategies; the cache is only ever allowed to skip a check whose verdict could not differ.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alphaloop.agents.development import OptunaDeveloper
from alphaloop.agents.failure import RuleBasedFailureAnalyst
from alphaloop.agents.research import ResearchSwarm
from alphaloop.agents.trajectory import RuleBasedTrajectoryAdvisor
from alphaloop.backtest.strategy import load_strategy
from alphaloop.data import load
from alphaloop.execution import QUEUE_FILENAME, LocalPool, TaskQueue
from alphaloop.execution.task_runner import run_task
from alphaloop.workflow import _toolcache
from alphaloop.workflow.gate import QualityCriteria
from alphaloop.workflow.orchestrator import Orchestrator, Parts
from alphaloop.workflow.routing import RoutingEngine
from alphaloop.workflow.state import StateManager, workflow_dir
from alphaloop.workflow.tracker import ExperimentRecord, ExperimentTracker, jsonl_path, read_jsonl

PEEKER = '''"""Goes long when tomorrow's close is higher: look-ahead."""
PARAMETERS = {"k": {"default": 1, "low": 1, "high": 3}}


def generate_positions(data, k=1):
    return (data["close"].shift(-k) > data["close"]).astype(float)
'''
HONEST = PEEKER.replace("shift(-k)", "shift(k)").replace("look-ahead", "honest now")
BROKEN = '''"""Fails on every call."""
PARAMETERS = {"k": {"default": 1, "low": 1, "high": 3}}


def generate_positions(data, k=1):
    raise ValueError("broken on purpose")
'''
LIBRARY = ("sma_crossover",)
ALL = {"sma_crossover", "peeker", "broken"}


@pytest.fixture(scope="module")
def pool() -> Iterator[LocalPool]:
    with LocalPool(max_workers=1) as p:
        yield p


def strategies_in(folder: Path, peeker: str = PEEKER) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "peeker.py").write_text(peeker)
    (folder / "broken.py").write_text(BROKEN)
    return folder


def orchestrator(home: Path, folder: Path, executor: Any, *, data_path: str | None = None,
                 on_event: Any = None, **fields: Any) -> Orchestrator:
    """A workflow on GOOG with one library strategy and the user files in ``folder``, built
    as `api._assemble` builds it."""
    criteria = QualityCriteria.default()
    state = StateManager.create(home, research_directive="", ticker="GOOG",
                                quality_criteria=criteria.to_dict(), seed=1,
                                data_path=data_path, **fields)
    wid = state.workflow_id
    found = {n: load_strategy(n) for n in LIBRARY}
    found.update({p.stem: load_strategy(p) for p in sorted(folder.glob("*.py"))})
    parts = Parts(
        state=state,
        tracker=ExperimentTracker(home, wid),
        queue=TaskQueue(workflow_dir(home, wid) / QUEUE_FILENAME),
        executor=executor,
        task_fn=run_task,
        swarm=ResearchSwarm(),
        developer=OptunaDeveloper(found),
        router=RoutingEngine(state, RuleBasedFailureAnalyst(), RuleBasedTrajectoryAdvisor()),
        criteria=criteria,
        n_variants=2,
    )
    return Orchestrator(parts, on_event=on_event)


def checks(home: Path, folder: Path, executor: Any, **kw: Any) -> tuple[set[str], dict]:
    """Run tool development once in a new workflow: (strategies whose check RAN, i.e. that
    have a ``tools_`` task in the queue; ``tools.json``)."""
    orch = orchestrator(home, folder, executor, **kw)
    try:
        orch._complete(current_phase="TOOL_DEVELOPMENT")
        orch._tools()
        tools = json.loads((orch.dir / "tools.json").read_text())
    finally:
        orch.p.tracker.close()
        orch.p.queue.close()
    with sqlite3.connect(orch.dir / QUEUE_FILENAME) as conn:
        ran = {r[0].removeprefix("tools_") for r in conn.execute("SELECT task_id FROM tasks")}
    return ran, tools


def cache_file(home: Path) -> Path:
    return home / _toolcache.CACHE_FILE


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory, pool: LocalPool) -> dict[str, Any]:
    """One run in a new home: every check runs; its cache is what the tests start from."""
    root = tmp_path_factory.mktemp("startup")
    folder = strategies_in(root / "mine")
    ran, tools = checks(root / "home", folder, pool)
    return {"folder": folder, "ran": ran, "tools": tools,
            "cache": cache_file(root / "home").read_bytes()}


def home_with_cache(tmp_path: Path, baseline: dict[str, Any]) -> Path:
    home = tmp_path / "home"
    cache_file(home).parent.mkdir(parents=True)
    cache_file(home).write_bytes(baseline["cache"])
    return home


def test_first_run_checks_everything_and_excludes_what_fails(baseline: dict[str, Any]) -> None:
    assert baseline["ran"] == ALL
    tools = baseline["tools"]
    assert tools["sma_crossover"] == {"ok": True, "problem": None}
    assert tools["peeker"] == {"ok": False, "problem": "look-ahead bias"}
    assert not tools["broken"]["ok"] and "broken on purpose" in tools["broken"]["problem"]


def test_second_run_in_the_same_home_skips_the_checks_and_decides_the_same(
    tmp_path: Path, pool: LocalPool, baseline: dict[str, Any]
) -> None:
    ran, tools = checks(home_with_cache(tmp_path, baseline), baseline["folder"], pool)
    # a failure is never cached (it may be the machine's: a timeout, a lost worker)
    assert ran == {"broken"}
    assert tools == baseline["tools"]


def test_an_edited_strategy_file_is_checked_again(
    tmp_path: Path, pool: LocalPool, baseline: dict[str, Any]
) -> None:
    folder = tmp_path / "mine"
    shutil.copytree(baseline["folder"], folder)
    home = home_with_cache(tmp_path, baseline)
    # the same file name and strategy name, other code: the cached look-ahead verdict is not
    # this code's; the check runs and finds it honest now
    (folder / "peeker.py").write_text(HONEST)
    ran, tools = checks(home, folder, pool)
    assert ran == {"peeker", "broken"}
    assert tools["peeker"] == {"ok": True, "problem": None}
    # and back: the old code's verdict is still in the cache, for the old code only
    (folder / "peeker.py").write_text(PEEKER)
    ran, tools = checks(home, folder, pool)
    assert ran == {"broken"}
    assert tools["peeker"] == {"ok": False, "problem": "look-ahead bias"}


def test_another_alphaloop_version_checks_again(
    tmp_path: Path, pool: LocalPool, baseline: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_toolcache, "__version__", "999.0")
    ran, tools = checks(home_with_cache(tmp_path, baseline), baseline["folder"], pool)
    assert ran == ALL
    assert tools == baseline["tools"]


def test_changed_data_in_the_same_file_checks_again(tmp_path: Path, pool: LocalPool) -> None:
    data = tmp_path / "data"
    data.mkdir()
    bars = load("GOOG").iloc[:1500]
    bars.to_csv(data / "GOOG.csv", index_label="date")
    folder = tmp_path / "mine"
    folder.mkdir()  # the library strategy alone
    home = tmp_path / "home"
    assert checks(home, folder, pool, data_path=str(data))[0] == {"sma_crossover"}
    assert checks(home, folder, pool, data_path=str(data))[0] == set()
    changed = bars.copy()
    changed.iloc[700, :4] *= 1.01  # one bar's prices, same dates, same path
    changed.to_csv(data / "GOOG.csv", index_label="date")
    assert checks(home, folder, pool, data_path=str(data))[0] == {"sma_crossover"}


def test_a_corrupted_cache_is_ignored_with_its_reason(
    tmp_path: Path, pool: LocalPool, baseline: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    home = home_with_cache(tmp_path, baseline)
    cache_file(home).write_bytes(baseline["cache"][: len(baseline["cache"]) // 2])  # torn
    with caplog.at_level(logging.WARNING, logger="alphaloop.workflow._toolcache"):
        ran, tools = checks(home, baseline["folder"], pool)
    assert ran == ALL
    assert tools == baseline["tools"]
    assert any("not JSON" in r.getMessage() for r in caplog.records)
    # the reason is kept in the file written in its place, which works again
    saved = json.loads(cache_file(home).read_text())
    assert any("not JSON" in i["reason"] for i in saved["ignored"])
    assert checks(home, baseline["folder"], pool)[0] == {"broken"}


def test_a_tampered_entry_never_lets_a_strategy_through(
    tmp_path: Path, pool: LocalPool, baseline: dict[str, Any]
) -> None:
    home = home_with_cache(tmp_path, baseline)
    saved = json.loads(baseline["cache"])
    by_name = {e["material"]["task"]["strategy_name"]: k for k, e in saved["entries"].items()}
    assert set(by_name) == {"sma_crossover", "peeker"}
    # the look-ahead verdict turned into a pass, digest left as it was
    saved["entries"][by_name["peeker"]]["verdict"] = {"ok": True, "problem": None}
    cache_file(home).write_text(json.dumps(saved))
    ran, tools = checks(home, baseline["folder"], pool)
    assert "peeker" in ran and tools["peeker"]["problem"] == "look-ahead bias"
    reasons = [i["reason"] for i in json.loads(cache_file(home).read_text())["ignored"]]
    assert any("digest does not match" in r for r in reasons)
    # a genuine pass (another strategy's entry, digest intact) filed under peeker's key
    saved = json.loads(baseline["cache"])
    saved["entries"][by_name["peeker"]] = saved["entries"][by_name["sma_crossover"]]
    cache_file(home).write_text(json.dumps(saved))
    ran, tools = checks(home, baseline["folder"], pool)
    assert "peeker" in ran and tools["peeker"]["problem"] == "look-ahead bias"
    reasons = [i["reason"] for i in json.loads(cache_file(home).read_text())["ignored"]]
    assert any("stored for other inputs" in r for r in reasons)


def test_workers_start_while_research_runs(
    tmp_path: Path, baseline: dict[str, Any]
) -> None:
    """Every check cached: nothing runs before the first backtest, yet the pool's workers are
    up by then, started when research began (not when the first batch is handed over)."""
    home = home_with_cache(tmp_path, baseline)
    folder = tmp_path / "mine"
    shutil.copytree(baseline["folder"], folder)
    (folder / "broken.py").unlink()  # every check now comes from the cache
    seen: dict[str, list[int]] = {}
    with LocalPool(max_workers=1) as fresh:
        def on_event(kind: str, info: dict[str, Any]) -> None:
            if kind == "phase" and info["phase"] not in seen:
                seen[info["phase"]] = list(fresh.worker_pids)

        # one iteration: tool development, research, development, backtests, the gate
        orch = orchestrator(home, folder, fresh, on_event=on_event, max_total_iterations=1)
        try:
            result = orch.run()
        finally:
            orch.p.tracker.close()
            orch.p.queue.close()
    assert seen["TOOL_DEVELOPMENT"] == [] and seen["RESEARCH_SWARM"] == []
    assert seen["STRATEGY_DEVELOPMENT"], "no worker was started while research ran"
    assert seen["BACKTESTING"] == seen["STRATEGY_DEVELOPMENT"]  # the same, already warm
    assert result["variants_tried"] >= 2  # the backtests ran on the workers started early


# --- group commits ---------------------------------------------------------------------------

WID = "workflow_20260101_120000_abcdef"


def rec(experiment_id: str, task_id: str, **fields: Any) -> ExperimentRecord:
    base: dict[str, Any] = {
        "workflow_id": WID, "experiment_id": experiment_id, "variant_id": task_id[-3:],
        "task_id": task_id, "strategy_name": "flat",
        "strategy_code": "def generate_positions(data):\n    return data.close * 0\n",
        "parameters": {"fast": 10}, "metrics": {"sharpe_ratio": 0.8}, "ticker": "SPY",
        "gate_passed": False, "gate_score": 0.4,
    }  # fmt: skip
    return ExperimentRecord(**{**base, **fields})


def counting_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count this process's ``os.fsync`` calls from Python (the JSON lines, the state);
    SQLite syncs its own file from C, once per transaction."""
    calls: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return calls


def test_a_batch_of_records_is_one_transaction_and_one_synced_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ExperimentTracker(tmp_path, WID) as t:
        exp = t.start_experiment()
        batch = [rec(exp, f"{exp}_v{i:02d}") for i in range(8)]
        calls = counting_fsyncs(monkeypatch)
        assert t.log_records(batch) == [True] * 8
        assert len(calls) == 1  # one append of 8 lines (one by one: 8)
        # a replay stores nothing twice; a new record among old ones is stored alone
        calls.clear()
        more = [*batch[:2], rec(exp, f"{exp}_v08"), batch[2]]
        assert t.log_records(more) == [False, False, True, False]
        assert len(calls) == 1
        # a record the tracker refuses stops the batch before any of it is stored
        with pytest.raises(ValueError, match="belongs to workflow"):
            t.log_records([rec(exp, f"{exp}_v09"), rec(exp, "x_v10", workflow_id="workflow_x")])
        assert [r.task_id for r in t.records(exp)] == [r.task_id for r in [*batch, more[2]]]
    lines = [ln["task_id"] for ln in read_jsonl(jsonl_path(tmp_path, exp))
             if ln["kind"] == "record"]
    assert lines == [r.task_id for r in [*batch, more[2]]]


def test_a_backtesting_step_syncs_each_store_once(
    tmp_path: Path, pool: LocalPool, baseline: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The step that logs a batch of records: the records' JSON lines once, the state file
    and its folder once each (the SQLite transaction syncs itself once); and the step is on
    disk before the next begins (the state names QUALITY_GATE only after the records)."""
    home = home_with_cache(tmp_path, baseline)
    folder = tmp_path / "mine"
    shutil.copytree(baseline["folder"], folder)
    orch = orchestrator(home, folder, pool, max_total_iterations=1)
    try:
        orch._complete(current_phase="TOOL_DEVELOPMENT")
        orch._tools()
        orch._research()
        orch._develop()
        assert orch.p.state.state.current_phase == "BACKTESTING"
        calls = counting_fsyncs(monkeypatch)
        orch._backtest()
        assert orch.p.state.state.current_phase == "QUALITY_GATE"
        n = len(orch.p.tracker.records(orch.p.state.state.current_experiment_id))
    finally:
        orch.p.tracker.close()
        orch.p.queue.close()
    assert n == 2
    assert len(calls) == 3, calls  # JSON lines, state.json, the workflow folder
