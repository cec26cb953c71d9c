"""ExperimentTracker: frozen records, one record per task, actions, JSONL log, reconcile."""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import pickle
import sqlite3
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from alphaloop.errors import ConfigError
from alphaloop.workflow import tracker as tracker_mod
from alphaloop.workflow.tracker import (
    ExperimentRecord,
    ExperimentTracker,
    format_tree,
    jsonl_path,
    read_jsonl,
)

WID = "workflow_20260101_120000_abcdef"
CODE = "def generate_positions(data, **p):\n    return data.close * 0\n"


def rec(experiment_id: str, task_id: str, **fields: Any) -> ExperimentRecord:
    base: dict[str, Any] = {
        "workflow_id": WID, "experiment_id": experiment_id, "variant_id": "v0",
        "task_id": task_id, "strategy_name": "flat", "strategy_code": CODE,
        "parameters": {"fast": 10}, "metrics": {"sharpe_ratio": 0.8, "max_drawdown": 0.1},
        "ticker": "SPY", "gate_passed": False, "gate_score": 0.4,
        "failed_criteria": ["sharpe_ratio"],
    }
    base.update(fields)
    return ExperimentRecord(**base)


@pytest.fixture
def tracker(tmp_path: Path):
    with ExperimentTracker(tmp_path, WID) as t:
        yield t


def record_lines(path: Path) -> list[dict[str, Any]]:
    return [line for line in read_jsonl(path) if line["kind"] == "record"]


# --- the record ------------------------------------------------------------------------------


def test_record_is_frozen() -> None:
    r = rec("e", "t1")
    with pytest.raises(ValidationError):
        r.gate_passed = True  # type: ignore[misc]
    with pytest.raises(TypeError):
        r.metrics["sharpe_ratio"] = 9.0  # type: ignore[index]
    with pytest.raises(TypeError):
        r.parameters.update(fast=1)
    with pytest.raises(TypeError):
        del r.parameter_changes["x"]
    assert isinstance(r.failed_criteria, tuple)
    again = pickle.loads(pickle.dumps(r))
    assert again == r
    with pytest.raises(TypeError):
        again.metrics["x"] = 1.0  # type: ignore[index]


def test_record_derived_fields_and_checks() -> None:
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    r = rec("e", "t1", started_at=start, finished_at=start + timedelta(seconds=2.5),
            start=date(2010, 1, 4), end="2020-12-31",
            metrics={"sharpe_ratio": float("nan"), "profit_factor": float("inf"), "n": 3})
    assert r.code_hash == hashlib.sha256(CODE.encode()).hexdigest()
    assert r.duration_s == 2.5 and r.start == "2010-01-04"
    assert r.metrics == {"sharpe_ratio": None, "profit_factor": None, "n": 3.0}
    assert r.sample == "in_sample" and r.attempts == 1 and r.record_id
    with pytest.raises(ValidationError, match="code_hash"):
        rec("e", "t1", code_hash="0" * 64)
    with pytest.raises(ValidationError, match="cannot pass the gate"):
        rec("e", "t1", error="boom", gate_passed=True)
    with pytest.raises(ValidationError):
        rec("e", "t1", sample="out_of_sample")
    with pytest.raises(ValidationError):
        rec("e", "t1", started_at=start, finished_at=start - timedelta(seconds=1))
    roundtrip = ExperimentRecord.model_validate_json(r.model_dump_json())
    assert roundtrip == r


# --- experiments and records -----------------------------------------------------------------


def test_start_experiment_ids_and_idempotence(tracker: ExperimentTracker) -> None:
    e1 = tracker.start_experiment(strategy_iteration=0, description="first")
    e2 = tracker.start_experiment(strategy_iteration=1)
    assert e1 == "exp_20260101_120000_abcdef_001" and e2.endswith("_002")
    assert tracker.start_experiment(strategy_iteration=0, description="again") == e1
    exps = tracker.experiments()
    assert [e.experiment_id for e in exps] == [e1, e2]
    assert exps[0].description == "first" and exps[0].action is None


def test_one_record_per_task(tracker: ExperimentTracker) -> None:
    e = tracker.start_experiment()
    first = rec(e, "task-1")
    assert tracker.log_record(first) is True
    other = rec(e, "task-1", metrics={"sharpe_ratio": 3.0}, gate_passed=True)
    assert tracker.log_record(other) is False
    assert tracker.log_record(first) is False
    assert tracker.records(e) == [first]
    assert tracker.record_for_task("task-1") == first
    assert tracker.record_for_task("task-2") is None
    assert len(record_lines(jsonl_path(tracker.home, e))) == 1


def test_unique_task_is_enforced_by_sqlite(tracker: ExperimentTracker) -> None:
    e = tracker.start_experiment()
    tracker.log_record(rec(e, "t1"))
    conn = sqlite3.connect(tracker.db_path)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        conn.execute("INSERT INTO records (record_id, task_id, experiment_id, variant_id, "
                     "sample, gate_passed, created_at, body) VALUES "
                     "('x', 't1', ?, 'v', 'in_sample', 0, 'now', '{}')", (e,))
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        conn.execute("UPDATE records SET gate_passed = 1")
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        conn.execute("DELETE FROM records")
    conn.close()


def test_log_record_rejects_misfiled_records(tracker: ExperimentTracker) -> None:
    e = tracker.start_experiment()
    with pytest.raises(ValueError, match="unknown experiment"):
        tracker.log_record(rec("exp_nope", "t1"))
    with pytest.raises(ValueError, match="belongs to workflow"):
        tracker.log_record(rec(e, "t1", workflow_id="workflow_other"))
    with pytest.raises(ValueError, match="set_action"):
        tracker.log_record(rec(e, "t1", action_taken="TUNE_PARAMETERS"))
    tracker.log_record(rec(e, "t1", record_id="same"))
    with pytest.raises(ValueError, match="rejected"):
        tracker.log_record(rec(e, "t2", record_id="same"))
    assert tracker.records(e, sample=None) == [tracker.record_for_task("t1")]


def test_records_filters_and_order(tracker: ExperimentTracker) -> None:
    e1 = tracker.start_experiment(strategy_iteration=0)
    e2 = tracker.start_experiment(strategy_iteration=1)
    a = rec(e1, "a")
    b = rec(e2, "b", variant_id="v1")
    c = rec(e1, "c", sample="holdout")
    d = rec(e1, "d", variant_id="v2", error="ZeroDivisionError", gate_score=None)
    for r in (a, b, c, d):
        assert tracker.log_record(r)
    assert tracker.records() == [a, b, d]
    assert tracker.records(e1) == [a, d]
    assert tracker.records(e1, sample="holdout") == [c]
    assert tracker.records(sample=None) == [a, b, c, d]
    assert tracker.experiments()[0].n_records == 3


def test_set_action_once_without_mutating_records(tracker: ExperimentTracker) -> None:
    e = tracker.start_experiment()
    r = rec(e, "t1")
    tracker.log_record(r)
    assert tracker.set_action(e, "TUNE_PARAMETERS", {"grid": (1, 2), "best": r}) is True
    assert tracker.set_action(e, "ABANDON", {"reason": "late"}) is False
    action, details = tracker.get_action(e)  # type: ignore[misc]
    assert action == "TUNE_PARAMETERS" and details["grid"] == [1, 2]
    assert details["best"]["task_id"] == "t1"
    seen = tracker.records(e)[0]
    assert seen.action_taken == "TUNE_PARAMETERS" and seen.record_id == r.record_id
    assert tracker.records(e, with_actions=False) == [r]
    body = sqlite3.connect(tracker.db_path).execute("SELECT body FROM records").fetchone()[0]
    assert json.loads(body)["action_taken"] is None
    assert tracker.experiments()[0].action == "TUNE_PARAMETERS"
    with pytest.raises(ValueError, match="unknown action"):
        tracker.set_action(e, "PANIC")
    with pytest.raises(ValueError, match="unknown experiment"):
        tracker.set_action("exp_nope", "ABANDON")
    lines = read_jsonl(jsonl_path(tracker.home, e))
    assert [line["kind"] for line in lines] == ["experiment", "record", "action"]


# --- JSONL -----------------------------------------------------------------------------------


def test_jsonl_layout(tracker: ExperimentTracker, tmp_path: Path) -> None:
    e = tracker.start_experiment()
    r = rec(e, "t1")
    tracker.log_record(r)
    path = tmp_path / "experiments" / f"{e}.jsonl"
    assert path == jsonl_path(tmp_path, e)
    header, line = read_jsonl(path)
    assert header["kind"] == "experiment" and header["workflow_id"] == WID
    line.pop("kind")
    assert ExperimentRecord.model_validate(line) == r
    assert path.read_bytes().endswith(b"\n")


def test_read_jsonl_skips_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n{"b": 2}\n{"c": 3, "d": "half-writ')
    assert read_jsonl(path) == [{"a": 1}, {"b": 2}]
    path.write_text('{"a": 1}\n{"b": 2}')  # parseable but no newline: still torn
    assert read_jsonl(path) == [{"a": 1}]
    assert read_jsonl(tmp_path / "missing.jsonl") == []


def test_read_jsonl_warns_on_corrupt_middle_line(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n{garbage\n\n[1, 2]\n\xff\xfe\n{"b": 2}\n')
    with caplog.at_level(logging.WARNING, logger="alphaloop.workflow.tracker"):
        assert read_jsonl(path) == [{"a": 1}, {"b": 2}]
    assert f"{path}:2:" in caplog.text and f"{path}:4:" in caplog.text
    assert f"{path}:5:" in caplog.text


# --- reconcile -------------------------------------------------------------------------------


def test_reconcile_restores_lines_lost_after_commit(tmp_path: Path) -> None:
    with ExperimentTracker(tmp_path, WID) as t:
        e = t.start_experiment()
        records = [rec(e, f"t{i}") for i in range(3)]
        for r in records:
            t.log_record(r)
        t.set_action(e, "FIX_BUG", {"where": "line 3"})
    path = jsonl_path(tmp_path, e)
    lines = path.read_text().splitlines(keepends=True)
    # crash: the last record's line was torn, the action line never written
    path.write_text("".join(lines[:3]) + lines[3][:40])
    with ExperimentTracker(tmp_path, WID) as t:
        got = [line["record_id"] for line in record_lines(path)]
        assert got == [r.record_id for r in records]
        assert [line["kind"] for line in read_jsonl(path)][-1] == "action"
        assert path.read_bytes().endswith(b"\n")
        assert t.reconcile() == 0  # idempotent


def test_reconcile_rebuilds_deleted_file(tmp_path: Path) -> None:
    with ExperimentTracker(tmp_path, WID) as t:
        e = t.start_experiment()
        t.log_record(rec(e, "t1"))
    path = jsonl_path(tmp_path, e)
    before = path.read_text()
    path.unlink()
    with ExperimentTracker(tmp_path, WID):
        pass
    assert path.read_text() == before


def test_failed_append_is_not_fatal_and_is_repaired(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    t = ExperimentTracker(tmp_path, WID)
    e = t.start_experiment()
    real = tracker_mod._append_lines

    def full_disk(path: Path, lines: Any) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(tracker_mod, "_append_lines", full_disk)
    with caplog.at_level(logging.WARNING):
        assert t.log_record(rec(e, "t1")) is True
    assert "append failed" in caplog.text
    assert t.record_for_task("t1") is not None
    monkeypatch.setattr(tracker_mod, "_append_lines", real)
    t.close()
    assert record_lines(jsonl_path(tmp_path, e)) == []
    with ExperimentTracker(tmp_path, WID):
        assert [line["task_id"] for line in record_lines(jsonl_path(tmp_path, e))] == ["t1"]


def test_partial_append_is_cut_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "x.jsonl"
    tracker_mod._append_lines(path, ['{"a":1}'])
    real_fsync = tracker_mod.os.fsync

    def fail(fd: int) -> None:
        raise OSError("io error")

    monkeypatch.setattr(tracker_mod.os, "fsync", fail)
    with pytest.raises(OSError):
        tracker_mod._append_lines(path, ['{"b":2}'])
    monkeypatch.setattr(tracker_mod.os, "fsync", real_fsync)
    assert path.read_text() == '{"a":1}\n'


def test_stray_jsonl_records_are_reported(tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    with ExperimentTracker(tmp_path, WID) as t:
        e = t.start_experiment()
    path = jsonl_path(tmp_path, e)
    with open(path, "a") as fh:
        fh.write(json.dumps({"kind": "record", "record_id": "ghost"}) + "\n")
    with caplog.at_level(logging.WARNING), ExperimentTracker(tmp_path, WID) as t:
        assert t.records() == []
    assert "unknown to" in caplog.text


# --- tree, read-only, concurrency ------------------------------------------------------------


def test_tree(tracker: ExperimentTracker) -> None:
    e1 = tracker.start_experiment(strategy_iteration=0)
    tracker.log_record(rec(e1, "a", variant_id="v0"))
    tracker.log_record(rec(e1, "b", variant_id="v1", gate_passed=True, gate_score=1.7,
                           failed_criteria=[]))
    tracker.log_record(rec(e1, "c", variant_id="v1", sample="holdout"))
    tracker.log_record(rec(e1, "d", variant_id="v2", error="ValueError: bad\ntraceback",
                           gate_score=None))
    tracker.set_action(e1, "TUNE_PARAMETERS")
    e2 = tracker.start_experiment(strategy_iteration=1)
    tracker.log_record(rec(e2, "e", variant_id="v3", parent_variant_id="v1"))
    tree = tracker.tree()
    assert [n.experiment.experiment_id for n in tree] == [e1, e2]
    assert [v.variant_id for v in tree[0].variants] == ["v0", "v1", "v2"]
    assert [r.task_id for r in tree[0].variants[1].records] == ["b", "c"]
    assert tree[0].experiment.action == "TUNE_PARAMETERS"
    assert tree[1].variants[0].parent_variant_id == "v1"
    assert tree[1].experiment.action is None
    text = format_tree(tree)
    assert f"{e1}  research 0 / strategy 0  -> TUNE_PARAMETERS" in text
    assert "PASS score=1.7" in text and "FAIL[sharpe_ratio]" in text
    assert "ERROR ValueError: bad" in text and "traceback" not in text
    assert "v3 (from v1)" in text and "(no action yet)" in text
    assert "holdout" in text


def test_readonly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no experiment records"):
        ExperimentTracker(tmp_path, WID, readonly=True)
    with ExperimentTracker(tmp_path, WID) as t:
        e = t.start_experiment()
        t.log_record(rec(e, "t1"))
    with ExperimentTracker(tmp_path, WID, readonly=True) as ro:
        assert [r.task_id for r in ro.records()] == ["t1"]
        assert len(ro.tree()) == 1
        with pytest.raises(ConfigError, match="read-only"):
            ro.log_record(rec(e, "t2"))
        with pytest.raises(ConfigError, match="read-only"):
            ro.set_action(e, "ABANDON")


def test_invalid_workflow_id(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid workflow id"):
        ExperimentTracker(tmp_path, "../escape")


def test_threads_share_a_tracker(tracker: ExperimentTracker) -> None:
    e = tracker.start_experiment()

    def work(n: int) -> None:
        for i in range(25):
            tracker.log_record(rec(e, f"task-{i}", variant_id=f"v{n}"))  # 8 threads race
            tracker.log_record(rec(e, f"own-{n}-{i}", variant_id=f"v{n}"))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(tracker.records(e)) == 25 + 8 * 25
    lines = record_lines(jsonl_path(tracker.home, e))
    assert sorted(line["task_id"] for line in lines) == sorted(
        r.task_id for r in tracker.records(e))


def _race(home: str, experiment_id: str, n: int, out: Any) -> None:
    with ExperimentTracker(Path(home), WID) as t:
        won = sum(t.log_record(rec(experiment_id, f"task-{i}", variant_id=f"p{n}"))
                  for i in range(20))
    out.put(won)


def test_one_record_per_task_across_processes(tmp_path: Path) -> None:
    with ExperimentTracker(tmp_path, WID) as t:
        e = t.start_experiment()
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(tmp_path), e, n, out)) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert sum(out.get(timeout=5) for _ in procs) == 20
    with ExperimentTracker(tmp_path, WID, readonly=True) as t:
        assert sorted(r.task_id for r in t.records(e)) == sorted(f"task-{i}" for i in range(20))
