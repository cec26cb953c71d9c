"""WorkflowState / StateManager: ids, atomic persistence, resume, counters and limits."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from alphaloop.errors import ConfigError
from alphaloop.workflow import state as state_mod
from alphaloop.workflow.state import (
    PHASES,
    StateManager,
    WorkflowState,
    atomic_write_text,
    list_workflows,
    new_workflow_id,
    state_path,
)

SRC = Path(__file__).resolve().parents[1] / "src"

DESIGN_FIELDS = {
    "workflow_id", "created_at", "updated_at", "current_phase", "research_directive", "ticker",
    "timeframe", "quality_criteria", "strategy_iteration", "research_iteration",
    "total_iterations", "max_strategy_iterations", "max_research_iterations",
    "max_total_iterations", "current_experiment_id", "active_variants", "best_strategy",
    "best_metrics", "lessons_learned", "max_parallel_workers", "current_active_workers",
    "status", "failure_reason",
}


def make(home: Path, **fields: object) -> StateManager:
    return StateManager.create(home, research_directive="mean reversion on dips", ticker="SPY",
                               quality_criteria={"sharpe_ratio": 1.0, "max_drawdown": 0.2},
                               **fields)


# --- schema and ids --------------------------------------------------------------------------


def test_state_has_every_design_field_and_defaults() -> None:
    assert set(WorkflowState.model_fields) >= DESIGN_FIELDS
    s = WorkflowState(workflow_id="w", research_directive="d", ticker="SPY",
                      quality_criteria={"sharpe_ratio": 1.0})
    assert (s.max_strategy_iterations, s.max_research_iterations, s.max_total_iterations) == (
        5, 3, 15)
    assert s.current_phase == "INITIALIZATION" and s.status == "RUNNING"
    assert s.timeframe == "1d" and s.max_parallel_workers == 5
    assert PHASES == ("INITIALIZATION", "TOOL_DEVELOPMENT", "RESEARCH_SWARM",
                      "STRATEGY_DEVELOPMENT", "BACKTESTING", "QUALITY_GATE", "COMPLETED",
                      "FAILED")
    assert s.created_at.utcoffset().total_seconds() == 0  # aware UTC


def test_state_rejects_bad_values() -> None:
    base = {"workflow_id": "w", "research_directive": "d", "ticker": "SPY",
            "quality_criteria": {"sharpe_ratio": 1.0}}
    with pytest.raises(ValidationError):
        WorkflowState(**base, current_phase="DONE")
    with pytest.raises(ValidationError):
        WorkflowState(**base, status="STOPPED")
    with pytest.raises(ValidationError):
        WorkflowState(**base, created_at=datetime(2026, 1, 1))  # naive
    with pytest.raises(ValidationError):
        WorkflowState(**base, colour="red")  # unknown field
    with pytest.raises(ValidationError):
        WorkflowState(**{**base, "quality_criteria": {"sharpe_ratio": float("nan")}})


def test_workflow_id_format() -> None:
    wid = new_workflow_id(datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC))
    assert re.fullmatch(r"workflow_20260304_050607_[0-9a-f]{6}", wid)


def test_workflow_ids_unique_in_tight_loop() -> None:
    ids = [new_workflow_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(re.fullmatch(r"workflow_\d{8}_\d{6}_[0-9a-f]{6}", i) for i in ids)


def test_workflow_ids_unique_within_one_second_even_when_random_collides(
        monkeypatch: pytest.MonkeyPatch) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    draws = iter(["aaaaaa", "aaaaaa", "aaaaaa", "bbbbbb"])
    monkeypatch.setattr(state_mod.secrets, "token_hex", lambda n: next(draws))
    first, second = new_workflow_id(now), new_workflow_id(now)
    assert first.endswith("_aaaaaa") and second.endswith("_bbbbbb")


def test_same_second_thousand_ids_unique() -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    assert len({new_workflow_id(now) for _ in range(1000)}) == 1000


def test_create_claims_distinct_dirs(tmp_path: Path) -> None:
    ids = {make(tmp_path).workflow_id for _ in range(20)}
    assert len(ids) == 20
    assert sorted(p.name for p in (tmp_path / "workflows").iterdir()) == sorted(ids)


# --- persistence -----------------------------------------------------------------------------


def test_state_file_location_and_content(tmp_path: Path) -> None:
    sm = make(tmp_path, seed=7)
    path = tmp_path / "workflows" / sm.workflow_id / "state.json"
    assert path == state_path(tmp_path, sm.workflow_id) == sm.state_file
    on_disk = json.loads(path.read_text())
    assert on_disk["workflow_id"] == sm.workflow_id and on_disk["seed"] == 7
    assert on_disk["revision"] == 0


def test_every_change_is_persisted_and_resume_equals_saved(tmp_path: Path) -> None:
    sm = make(tmp_path, seed=42, data_path="/data", start="2010-01-01", end="2020-12-31")
    sm.update_phase("RESEARCH_SWARM")
    sm.increment_strategy_iteration()
    sm.add_lesson_learned("momentum fails in 2008")
    sm.update_best_strategy({"name": "sma", "parameters": {"fast": 10}},
                            {"sharpe_ratio": 1.3, "max_drawdown": None})
    sm.set_pending_action("TUNE_PARAMETERS", {"grid": [1, 2, 3]})
    sm.update(current_experiment_id="exp_1", active_variants=["v0", "v1"], holdout_looks=1,
              variants_tried=12)
    sm.complete_step(current_active_workers=2)
    resumed = StateManager.load(sm.workflow_id, tmp_path)
    assert resumed.state == sm.state
    s = resumed.state
    assert s.pending_action == "TUNE_PARAMETERS"
    assert s.pending_action_details == {"grid": [1, 2, 3]}
    assert s.best_metrics == {"sharpe_ratio": 1.3, "max_drawdown": None}
    assert s.step == 1 and s.revision == 7
    assert s.updated_at >= s.created_at and s.updated_at.tzinfo is not None


def test_json_values_are_normalised(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    sm = make(tmp_path)
    sm.update_best_strategy({"parameters": {"fast": np.int64(10), "k": np.float64(2.5)},
                             "window": (1, 2), "when": datetime(2026, 1, 1, tzinfo=UTC)},
                            {"sharpe_ratio": np.float64(1.5), "profit_factor": float("inf"),
                             "sortino": float("nan")})
    s = sm.state
    assert s.best_strategy == {"parameters": {"fast": 10, "k": 2.5}, "window": [1, 2],
                               "when": "2026-01-01T00:00:00+00:00"}
    assert s.best_metrics == {"sharpe_ratio": 1.5, "profit_factor": None, "sortino": None}
    assert StateManager.load(sm.workflow_id, tmp_path).state == s
    with pytest.raises(ConfigError):
        sm.set_pending_action("FIX_BUG", {"obj": object()})


def test_noop_change_does_not_write(tmp_path: Path) -> None:
    sm = make(tmp_path)
    assert sm.update_phase("BACKTESTING") is True
    rev = sm.state.revision
    assert sm.update_phase("BACKTESTING") is False
    assert sm.state.revision == rev
    assert sm.save() is True and sm.state.revision == rev + 1


def test_state_property_is_a_copy(tmp_path: Path) -> None:
    sm = make(tmp_path)
    copy = sm.state
    copy.lessons_learned.append("sneaky")
    copy.strategy_iteration = 4
    assert sm.state.lessons_learned == [] and sm.state.strategy_iteration == 0


def test_load_unknown_names_id_and_known_ones(tmp_path: Path) -> None:
    a, b = make(tmp_path), make(tmp_path)
    with pytest.raises(ConfigError) as err:
        StateManager.load("workflow_nope", tmp_path)
    msg = str(err.value)
    assert "workflow_nope" in msg and a.workflow_id in msg and b.workflow_id in msg
    with pytest.raises(ConfigError, match="known: none"):
        StateManager.load("workflow_nope", tmp_path / "empty")


def test_create_over_existing_refused(tmp_path: Path) -> None:
    sm = make(tmp_path)
    with pytest.raises(ConfigError, match="already exists"):
        StateManager(sm.workflow_id, tmp_path, initial=sm.state)


def test_update_validates_names_and_values(tmp_path: Path) -> None:
    sm = make(tmp_path)
    with pytest.raises(ConfigError, match="did you mean 'failure_reason'"):
        sm.update(failure_reson="x")
    with pytest.raises(ConfigError, match="managed by StateManager"):
        sm.update(workflow_id="other")
    with pytest.raises(ConfigError, match="invalid workflow state change"):
        sm.update_phase("NOT_A_PHASE")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        sm.update(strategy_iteration=-1)
    assert sm.state.revision == 0
    assert json.loads(sm.state_file.read_text())["revision"] == 0


def test_list_workflows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert list_workflows(tmp_path) == []
    a, b = make(tmp_path), make(tmp_path)
    (tmp_path / "workflows" / "workflow_broken").mkdir()
    (tmp_path / "workflows" / "workflow_broken" / "state.json").write_text("{not json")
    with caplog.at_level(logging.WARNING):
        found = list_workflows(tmp_path)
    assert [s.workflow_id for s in found] == [a.workflow_id, b.workflow_id]
    assert "workflow_broken" in caplog.text


def test_corrupt_state_file_is_a_config_error(tmp_path: Path) -> None:
    sm = make(tmp_path)
    sm.state_file.write_text('{"workflow_id": ')
    with pytest.raises(ConfigError, match="unreadable"):
        StateManager.load(sm.workflow_id, tmp_path)


def test_second_writer_is_detected(tmp_path: Path) -> None:
    first = make(tmp_path)
    second = StateManager.load(first.workflow_id, tmp_path)
    first.increment_strategy_iteration()
    with pytest.raises(ConfigError, match="another process"):
        second.increment_strategy_iteration()
    assert StateManager.load(first.workflow_id, tmp_path).state.strategy_iteration == 1


# --- atomic writes ---------------------------------------------------------------------------


@pytest.mark.parametrize("broken", ["fsync", "replace"])
def test_crash_mid_write_keeps_old_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         broken: str) -> None:
    sm = make(tmp_path)
    sm.increment_strategy_iteration()
    before = sm.state_file.read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(state_mod.os, broken, boom)
    with pytest.raises(OSError, match="disk on fire"):
        sm.increment_strategy_iteration()
    monkeypatch.undo()
    assert sm.state_file.read_bytes() == before
    assert sm.state.strategy_iteration == 1  # memory not ahead of disk
    assert [p.name for p in sm.dir.iterdir()] == ["state.json"]  # temp file cleaned up
    assert sm.increment_strategy_iteration() and sm.state.strategy_iteration == 2


def test_leftover_temp_file_is_ignored_and_removed(tmp_path: Path) -> None:
    sm = make(tmp_path)
    sm.update_phase("BACKTESTING")
    torn = sm.dir / ".state.json.abc123.tmp"
    torn.write_text('{"workflow_id": "' + sm.workflow_id + '", "current_phase": "QUAL')
    assert [s.workflow_id for s in list_workflows(tmp_path)] == [sm.workflow_id]
    resumed = StateManager.load(sm.workflow_id, tmp_path)
    assert resumed.state.current_phase == "BACKTESTING"
    assert torn.exists()  # a reader never touches a writer's temporary files
    resumed.update_phase("QUALITY_GATE")  # the writer's first write clears leftovers
    assert not torn.exists()


def test_atomic_write_text_says_it_happened(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    assert atomic_write_text(target, "one") is True
    assert atomic_write_text(target, "two") is True
    assert target.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_killed_writer_leaves_parseable_state(tmp_path: Path) -> None:
    """SIGKILL a process that writes state in a tight loop: state.json is always whole."""
    sm = make(tmp_path)
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from alphaloop.workflow.state import StateManager
        sm = StateManager.load({sm.workflow_id!r}, Path({str(tmp_path)!r}))
        print("ready", flush=True)
        while True:
            sm.add_lesson_learned("x" * 2000)
    """)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", script], env=env,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        resumed = StateManager.load(sm.workflow_id, tmp_path)  # parses, no temp file matters
        s = resumed.state
        assert s.revision == len(s.lessons_learned)
    assert s.revision > 0


# --- counters and limits ---------------------------------------------------------------------


def test_strategy_iteration_counts_strategy_and_total(tmp_path: Path) -> None:
    sm = make(tmp_path)
    sm.increment_strategy_iteration()
    sm.increment_strategy_iteration()
    s = sm.state
    assert (s.strategy_iteration, s.research_iteration, s.total_iterations) == (2, 0, 2)


def test_research_iteration_counts_research_and_total_and_resets_strategy(
        tmp_path: Path) -> None:
    sm = make(tmp_path)
    for _ in range(3):
        sm.increment_strategy_iteration()
    sm.increment_research_iteration()
    s = sm.state
    assert (s.strategy_iteration, s.research_iteration, s.total_iterations) == (0, 1, 4)
    sm.increment_strategy_iteration()
    s = StateManager.load(sm.workflow_id, tmp_path).state
    assert (s.strategy_iteration, s.research_iteration, s.total_iterations) == (1, 1, 5)


def test_strategy_limit_is_five(tmp_path: Path) -> None:
    sm = make(tmp_path)
    for _ in range(4):
        sm.increment_strategy_iteration()
    assert sm.check_iteration_limits() == (False, "")
    sm.increment_strategy_iteration()
    assert sm.check_iteration_limits() == (True, "Strategy iteration limit exceeded")


def test_research_limit_is_three(tmp_path: Path) -> None:
    sm = make(tmp_path)
    for _ in range(2):
        sm.increment_research_iteration()
    assert sm.check_iteration_limits() == (False, "")
    sm.increment_research_iteration()
    assert sm.check_iteration_limits() == (True, "Research iteration limit exceeded")


def test_total_limit_is_fifteen(tmp_path: Path) -> None:
    sm = make(tmp_path)
    # 2 research rounds of 4 strategy iterations + 4 more: 14 total, no single limit hit
    for _ in range(2):
        for _ in range(4):
            sm.increment_strategy_iteration()
        sm.increment_research_iteration()
    for _ in range(4):
        sm.increment_strategy_iteration()
    s = sm.state
    assert (s.strategy_iteration, s.research_iteration, s.total_iterations) == (4, 2, 14)
    assert sm.check_iteration_limits() == (False, "")
    sm.update(max_strategy_iterations=10)
    sm.increment_strategy_iteration()
    assert sm.state.total_iterations == 15
    assert sm.check_iteration_limits() == (True, "Total iteration limit exceeded")


def test_limit_order_total_then_strategy_then_research(tmp_path: Path) -> None:
    sm = make(tmp_path)
    sm.update(strategy_iteration=5, research_iteration=3, total_iterations=15)
    assert sm.check_iteration_limits()[1] == "Total iteration limit exceeded"
    sm.update(total_iterations=0)
    assert sm.check_iteration_limits()[1] == "Strategy iteration limit exceeded"
    sm.update(strategy_iteration=0)
    assert sm.check_iteration_limits()[1] == "Research iteration limit exceeded"
    sm.update(research_iteration=2)
    assert sm.check_iteration_limits() == (False, "")


def test_custom_limits_survive_resume(tmp_path: Path) -> None:
    sm = make(tmp_path, max_strategy_iterations=2, max_research_iterations=1,
              max_total_iterations=4)
    sm.increment_strategy_iteration()
    sm.increment_strategy_iteration()
    resumed = StateManager.load(sm.workflow_id, tmp_path)
    assert resumed.check_iteration_limits() == (True, "Strategy iteration limit exceeded")


def test_complete_step_is_one_write(tmp_path: Path) -> None:
    sm = make(tmp_path)
    rev = sm.state.revision
    sm.complete_step(current_phase="QUALITY_GATE", variants_tried=8)
    s = StateManager.load(sm.workflow_id, tmp_path).state
    assert (s.step, s.current_phase, s.variants_tried, s.revision) == (
        1, "QUALITY_GATE", 8, rev + 1)
    with pytest.raises(ConfigError):
        sm.complete_step(step=5)
    with pytest.raises(ConfigError, match="unknown workflow field"):
        sm.complete_step(phase="X")


def test_complete_step_carries_counters_and_lessons_in_the_same_write(tmp_path: Path) -> None:
    sm = make(tmp_path)
    sm.increment_strategy_iteration()
    rev = sm.state.revision
    sm.complete_step(advance="strategy", current_phase="STRATEGY_DEVELOPMENT",
                     pending_action="TUNE_PARAMETERS", lessons=["tuned", "again"])
    s = StateManager.load(sm.workflow_id, tmp_path).state
    assert (s.strategy_iteration, s.research_iteration, s.total_iterations) == (2, 0, 2)
    assert (s.current_phase, s.pending_action, s.lessons_learned) == (
        "STRATEGY_DEVELOPMENT", "TUNE_PARAMETERS", ["tuned", "again"])
    assert (s.step, s.revision) == (1, rev + 1)  # one write
    sm.complete_step(advance="research", current_phase="RESEARCH_SWARM", lessons=["pivot"])
    s = StateManager.load(sm.workflow_id, tmp_path).state
    # the design's rule: research + 1, total + 1, strategy back to 0
    assert (s.strategy_iteration, s.research_iteration, s.total_iterations) == (0, 1, 3)
    assert s.lessons_learned == ["tuned", "again", "pivot"] and s.revision == rev + 2


def test_complete_step_refuses_what_it_sets_itself(tmp_path: Path) -> None:
    sm = make(tmp_path)
    with pytest.raises(ConfigError, match="lessons="):
        sm.complete_step(lessons_learned=["x"])
    with pytest.raises(ConfigError, match="'total_iterations' itself"):
        sm.complete_step(advance="strategy", total_iterations=9)
    with pytest.raises(ConfigError, match="list of strings"):
        sm.complete_step(lessons="one lesson")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown iteration kind"):
        sm.complete_step(advance="tools")  # type: ignore[arg-type]
    assert sm.state.revision == 0 and StateManager.load(sm.workflow_id, tmp_path).state.step == 0


def test_a_step_killed_before_its_write_is_replayed_whole(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The write of a step is all or nothing: a crash inside it leaves the old state, and
    replaying the step then adds its counter and lessons exactly once."""
    sm = make(tmp_path)

    def crash(path: Path, text: str) -> bool:
        raise OSError("disk gone")

    monkeypatch.setattr(state_mod, "atomic_write_text", crash)
    with pytest.raises(OSError):
        sm.complete_step(advance="strategy", lessons=["L"], current_phase="STRATEGY_DEVELOPMENT")
    monkeypatch.undo()
    again = StateManager.load(sm.workflow_id, tmp_path)
    assert (again.state.total_iterations, again.state.lessons_learned) == (0, [])
    again.complete_step(advance="strategy", lessons=["L"], current_phase="STRATEGY_DEVELOPMENT")
    s = StateManager.load(sm.workflow_id, tmp_path).state
    assert (s.strategy_iteration, s.total_iterations, s.lessons_learned, s.step) == (1, 1, ["L"], 1)


def test_retired_strategies_persist(tmp_path: Path) -> None:
    sm = make(tmp_path)
    assert sm.state.retired_strategies == {}
    sm.complete_step(retired_strategies={"spinner": "ab" * 32}, lessons=["retired spinner"])
    s = StateManager.load(sm.workflow_id, tmp_path).state
    assert s.retired_strategies == {"spinner": "ab" * 32}
    assert s.lessons_learned == ["retired spinner"]


def test_create_writes_its_files_before_the_state(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    real = state_mod.atomic_write_text

    def spy(path: Path, text: str) -> bool:
        order.append(Path(path).name)
        return real(path, text)

    monkeypatch.setattr(state_mod, "atomic_write_text", spy)
    sm = make(tmp_path, files={"settings.json": '{"n_variants": 3}'})
    assert order == ["settings.json", "state.json"]  # killed in between: no state, no workflow
    assert json.loads((sm.dir / "settings.json").read_text()) == {"n_variants": 3}
    with pytest.raises(ConfigError, match="plain file name"):
        make(tmp_path, files={"../escape.json": "{}"})
    assert [s.workflow_id for s in list_workflows(tmp_path)] == [sm.workflow_id]
    assert len(list((tmp_path / "workflows").iterdir())) == 1  # the refused one was removed


def test_create_with_bad_settings_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid workflow settings"):
        make(tmp_path, max_total_iterations=0)
    with pytest.raises(ConfigError, match="invalid workflow settings"):
        make(tmp_path, colour="red")
    assert list((tmp_path / "workflows").iterdir()) == []
