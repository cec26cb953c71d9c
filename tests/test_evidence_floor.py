"""The evidence floor (``--min-trades``): a candidate needs at least ``min_trades`` trades
in-sample and on the holdout, and a profit factor computed with at least one losing trade,
whatever ``--gate`` says; a split too short to hold that many trades is refused up front."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from rich.console import Console

from alphaloop.agents.development import OptunaDeveloper
from alphaloop.agents.failure import RuleBasedFailureAnalyst
from alphaloop.agents.research import ResearchSwarm
from alphaloop.agents.trajectory import RuleBasedTrajectoryAdvisor
from alphaloop.backtest.strategy import from_source
from alphaloop.errors import ConfigError, HomeError
from alphaloop.execution import QUEUE_FILENAME, LocalPool, TaskQueue
from alphaloop.execution.task_runner import run_task_in_process
from alphaloop.workflow.api import resume_workflow, run_workflow
from alphaloop.workflow.gate import (
    DAYS_PER_TRADE,
    QualityCriteria,
    check_evidence_window,
    check_min_trades,
    evaluate,
    evidence_floor,
)
from alphaloop.workflow.orchestrator import Orchestrator, Parts, WorkflowResult
from alphaloop.workflow.routing import RoutingEngine
from alphaloop.workflow.significance import HoldoutLook, holdout_looks, threshold
from alphaloop.workflow.state import StateManager, workflow_dir
from alphaloop.workflow.tracker import ExperimentTracker
from test_crash_resume import SerialExecutor

PERMISSIVE = ["num_trades>=1"]  # a gate that lets anything through that trades at all
GOOD = {"sharpe_ratio": 1.2, "num_trades": 12, "profit_factor": 1.5}

# -- the verdict ------------------------------------------------------------------------------


def test_too_few_trades_fail_whatever_the_gate() -> None:
    few = {**GOOD, "num_trades": 3}
    assert evaluate(few, PERMISSIVE).passed  # the gate alone lets it through
    result = evaluate(few, PERMISSIVE, min_trades=10)
    assert not result.passed and result.gate_passed and not result.floor_passed
    assert result.score < 0  # every pass still outranks it
    [failed] = result.failed_criteria
    assert failed["metric"] == "num_trades" and failed["threshold"] == 10
    assert failed["reason"] == "evidence: num_trades 3, needs >= 10 (--min-trades)"
    assert "evidence: num_trades 3, needs >= 10" in result.summary()
    # a gate that asks for more trades than the floor is not weakened by it, nor the reverse
    assert not evaluate({**GOOD, "num_trades": 12}, ["num_trades>=20"], min_trades=10).passed
    assert not evaluate({**GOOD, "num_trades": 12}, ["num_trades>=5"], min_trades=15).passed


def test_no_losing_trade_means_no_profit_factor_and_no_pass() -> None:
    all_winners = {**GOOD, "num_trades": 25, "profit_factor": None}
    result = evaluate(all_winners, PERMISSIVE, min_trades=10)
    assert not result.passed and result.gate_passed
    [failed] = result.failed_criteria
    assert failed["metric"] == "profit_factor" and failed["value"] is None
    assert failed["reason"].startswith("evidence: profit_factor undefined (no losing trade)")
    nothing = evaluate({"num_trades": 0, "profit_factor": None}, PERMISSIVE, min_trades=10)
    assert [f["reason"][:40] for f in nothing.failed_criteria] == [
        "num_trades 0, needs >= 1",
        "evidence: num_trades 0, needs >= 10 (--m",
        "evidence: profit_factor undefined (no tr",
    ]
    # a profit factor of 0 (only losing trades) is computed: the floor holds, the gate decides
    assert evaluate({**GOOD, "profit_factor": 0.0}, PERMISSIVE, min_trades=10).passed


def test_the_floor_leaves_a_passing_score_alone_and_no_floor_changes_nothing() -> None:
    gate = ["sharpe_ratio>=1", "num_trades>=5"]
    with_floor, without = evaluate(GOOD, gate, min_trades=10), evaluate(GOOD, gate)
    assert with_floor.passed and with_floor.score == without.score
    assert without.floor == () and with_floor.floor_passed and len(with_floor.floor) == 2
    assert evidence_floor(GOOD, 0) == ()
    # failing scores count the floor's misses: fewer trades never score higher
    scores = [evaluate({**GOOD, "num_trades": n}, gate, min_trades=10).score for n in range(13)]
    assert scores == sorted(scores) and max(scores[:10]) < 0 <= 1 <= scores[10]


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10", 10_001])
def test_min_trades_must_be_a_count(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"^--min-trades must be a whole number of trades"):
        check_min_trades(bad)
    check_min_trades(1)


# -- the split --------------------------------------------------------------------------------


def test_a_window_too_short_for_the_trades_is_refused_in_one_line() -> None:
    index = pd.bdate_range("2012-01-02", periods=300)  # 200 bars in-sample, 100 on the holdout
    check_evidence_window(index, 200, 19)  # 19 trades need 133 days: both parts span more
    with pytest.raises(ConfigError) as caught:
        check_evidence_window(index, 200, 40)  # 40 need 280
    msg = str(caught.value)
    assert msg == (
        "the in-sample window 2012-01-02..2012-10-05 spans 277 days, too short for 40 trades "
        f"of a daily-bar strategy (the evidence floor needs {40 * DAYS_PER_TRADE} days, 7 per "
        "trade); use a longer date range (--start/--end) or a lower --min-trades"
    )
    assert len(msg) <= 300  # the CLI's limit for one line
    with pytest.raises(ConfigError, match=r"^the holdout 2012-10-08\.\.2013-02-22 spans 137 "):
        check_evidence_window(index, 200, 20)  # the in-sample part holds 20, the holdout not
    check_evidence_window(index, 200, 0)  # no floor: nothing to refuse
    hourly = pd.date_range("2012-01-02", periods=24 * 150, freq="h")  # in calendar time
    check_evidence_window(hourly, 24 * 100, 7)
    with pytest.raises(ConfigError, match=r"the holdout 2012-04-11\.\.2012-05-30 spans 49 days"):
        check_evidence_window(hourly, 24 * 100, 8)  # 50 days of holdout: 7 weeks, not 8


def alphaloop(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alphaloop.cli", *args, "--home", str(home)],
        capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--min-trades", "0"], "--min-trades must be a whole number of trades from 1"),
        # GOOG from September 2012: 86 in-sample bars over 125 days; 20 trades need 140
        (["--start", "2012-09-01", "--min-trades", "20"],
         "error: the in-sample window 2012-09-04..2013-01-07 spans 125 days, too short for 20 "
         "trades of a daily-bar strategy (the evidence floor needs 140 days, 7 per trade)"),
    ],
)
def test_run_refuses_with_one_line_and_exit_2(
    tmp_path: Path, args: list[str], words: str
) -> None:
    proc = alphaloop("run", "--ticker", "GOOG", "--gate", "num_trades>=1", *args,
                     home=tmp_path / "home")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in proc.stderr, lines
    made = tmp_path / "home" / "workflows"
    assert not made.exists() or not any(made.iterdir())  # refused before anything exists


# -- holdout looks ----------------------------------------------------------------------------


def test_a_holdout_look_with_too_few_trades_says_so() -> None:
    look = HoldoutLook("e/v00", "donchian_breakout", 2, 1.36, 3.9, 0.997, threshold(0.05, 2),
                       True, True, trades=3, evidence_passed=False, min_trades=10)
    assert not look.passed and look.verdict == "failed the evidence floor"
    assert look.explain() == (
        "passed the gate on the holdout, but with 3 trades; the evidence floor needs 10 "
        "(--min-trades; look 2)"
    )
    winners = HoldoutLook("e/v01", "macd", 1, 1.0, 3.9, 0.99, 0.95, True, True, trades=14,
                          evidence_passed=False, min_trades=10)
    assert winners.explain().startswith(
        "passed the gate on the holdout, but with no losing trade among its 14 trades")


def test_holdout_looks_read_the_floor_from_the_records() -> None:
    def rec(vid: str, passed: bool, failed: tuple[str, ...], trades: int) -> SimpleNamespace:
        return SimpleNamespace(
            experiment_id="exp_1", variant_id=vid, strategy_name="s", gate_passed=passed,
            failed_criteria=failed, eval_start="2010-01-04", end="2013-07-01",
            metrics={"deflated_sharpe": 0.99, "sharpe_ratio": 1.0, "num_trades": trades},
        )

    short = "evidence: num_trades 3, needs >= 10 (--min-trades)"
    looks = holdout_looks(
        [rec("v0", False, (short,), 3),
         rec("v1", False, ("sharpe_ratio 0.2, needs >= 1", short), 3),
         rec("v2", True, (), 30)],
        alpha=0.05, min_trades=10,
    )
    assert [h.verdict for h in looks] == ["failed the evidence floor", "failed the gate", "passed"]
    assert [h.gate_passed for h in looks] == [True, False, True]
    assert looks[0].to_dict()["trades"] == 3 and looks[0].to_dict()["min_trades"] == 10


# -- whole workflows --------------------------------------------------------------------------

RARE = '''"""Long for `hold` bars, then flat for as long: a handful of trades over the years."""
import numpy as np
import pandas as pd

PARAMETERS = {"hold": {"default": 400, "low": 380, "high": 420}}


def generate_positions(data, hold=400):
    i = np.arange(len(data))
    return pd.Series(np.where((i // hold) % 2 == 1, 1.0, 0.0), index=data.index)
'''

BUSY_THEN_RARE = '''"""Long and flat in turns of `turn` bars until 2010, then long from
mid-2011 on: many trades in-sample, a few on the holdout (GOOG's starts in October 2010)."""
import numpy as np
import pandas as pd

PARAMETERS = {"turn": {"default": 15, "low": 14, "high": 16}}


def generate_positions(data, turn=15):
    i = np.arange(len(data))
    busy = np.where((i // turn) % 2 == 1, 1.0, 0.0)
    late = np.where(data.index >= pd.Timestamp("2011-06-01"), 1.0, 0.0)
    return pd.Series(np.where(data.index < pd.Timestamp("2011-01-01"), busy, late),
                     index=data.index)
'''


def workflow(home: Path, source: str, name: str, *, min_trades: int, **limits: Any
             ) -> WorkflowResult:
    """A workflow on GOOG whose only strategy is ``source``, run in this process."""
    settings = {"criteria": PERMISSIVE, "alpha": 1.0, "max_holdout_looks": 1,
                "min_trades": min_trades}  # what `alphaloop show` reads
    state = StateManager.create(home, research_directive="", ticker="GOOG",
                                quality_criteria={"num_trades": 1}, seed=1,
                                files={"settings.json": json.dumps(settings)}, **limits)
    wid = state.state.workflow_id
    parts = Parts(
        state=state,
        tracker=ExperimentTracker(home, wid),
        queue=TaskQueue(workflow_dir(home, wid) / QUEUE_FILENAME),
        executor=SerialExecutor(),
        task_fn=run_task_in_process,
        swarm=ResearchSwarm(),
        developer=OptunaDeveloper({name: from_source(source, name)}),
        router=RoutingEngine(state, RuleBasedFailureAnalyst(), RuleBasedTrajectoryAdvisor()),
        criteria=QualityCriteria.coerce(PERMISSIVE),
        n_variants=2,
        min_trades=min_trades,
        alpha=1.0,  # the floor is the subject here, not the significance test
        max_holdout_looks=1,
    )
    try:
        return Orchestrator(parts).run()
    finally:
        parts.tracker.close()
        parts.queue.close()


def summary(result: WorkflowResult) -> str:
    from alphaloop.cli._workflow import _summary

    out = io.StringIO()
    _summary(Console(file=out, width=300), result, "HOME")
    return out.getvalue()


def test_too_few_trades_in_sample_never_reach_the_holdout(tmp_path: Path) -> None:
    result = workflow(tmp_path, RARE, "rare", min_trades=10, max_total_iterations=2)
    assert result["status"] == "FAILED" and result["min_trades"] == 10
    assert result["holdout_looks"] == 0 and result["holdout_looks_detail"] == []
    with ExperimentTracker(tmp_path, result["workflow_id"], readonly=True) as t:
        records = t.records(sample=None)
    assert records and all(r.sample == "in_sample" and not r.gate_passed for r in records)
    for r in records:  # passed the permissive gate; the floor alone failed them
        assert r.metrics["num_trades"] < 10
        assert r.failed_criteria[0] == (
            f"evidence: num_trades {r.metrics['num_trades']}, needs >= 10 (--min-trades)")
    assert result["floor_blocked"] == {"in_sample": len(records), "holdout": 0}
    assert result["best_failed_criteria"][0].startswith("evidence: num_trades")
    text = summary(result)
    assert "why it failed in-sample: only " in text
    assert "trades; the evidence floor needs 10 (--min-trades)" in text
    assert (f"evidence floor (--min-trades 10: at least 10 trades and a losing one, in-sample "
            f"and on the holdout): {len(records)} variants passed the gate in-sample but not "
            "the floor, so never reached the holdout") in text
    # the same search with a floor of 1 trade reaches the holdout
    lower = workflow(tmp_path / "lower", RARE, "rare", min_trades=1, max_total_iterations=2)
    assert lower["holdout_looks"] == 1


def test_too_few_trades_on_the_holdout_is_not_a_success(tmp_path: Path) -> None:
    result = workflow(tmp_path, BUSY_THEN_RARE, "busy", min_trades=10)
    [look] = result["holdout_looks_detail"]
    assert look["gate_passed"] and not look["evidence_passed"]
    assert look["verdict"] == "failed the evidence floor" and look["trades"] < 10
    assert result["status"] == "FAILED" and result["floor_blocked"]["holdout"] == 1
    words = (f"passed the gate on the holdout, but with {look['trades']} trades; the evidence "
             "floor needs 10 (--min-trades; look 1)")
    assert result["holdout_note"] == f"busy {words}"
    assert result["reason"].startswith("the holdout is spent: 1 of 1 looks used")
    assert words in result["reason"]
    text = summary(result)
    assert words in text and "1 holdout look passed the gate but not the floor" in text
    show = alphaloop("show", result["workflow_id"], home=tmp_path)
    assert show.returncode == 0 and "below the evidence floor (look 1" in show.stdout
    assert "evidence: num_trades" in show.stdout
    # the floor is what stopped it: with one of 1 trade, the same look is the success
    lower = workflow(tmp_path / "lower", BUSY_THEN_RARE, "busy", min_trades=1)
    assert lower["status"] == "SUCCESS" and lower["holdout_metrics"] == result["holdout_metrics"]


@pytest.fixture(scope="module")
def pool() -> Iterator[LocalPool]:
    with LocalPool(max_workers=2) as p:
        yield p


def test_resume_keeps_the_stored_floor(tmp_path: Path, pool: LocalPool) -> None:
    result = run_workflow("GOOG", "", ["sharpe_ratio>=5"], home=tmp_path, n_variants=2,
                          executor=pool, seed=1, max_holdout_looks=1, min_trades=7)
    assert result["min_trades"] == 7
    folder = tmp_path / "workflows" / result["workflow_id"]
    settings = json.loads((folder / "settings.json").read_text())
    assert settings["min_trades"] == 7
    assert resume_workflow(result["workflow_id"], home=tmp_path, executor=pool) == result
    # a workflow from before the floor existed keeps being judged without one
    del settings["min_trades"]
    (folder / "settings.json").write_text(json.dumps(settings))
    assert resume_workflow(result["workflow_id"], home=tmp_path, executor=pool)["min_trades"] == 0
    settings["min_trades"] = 0
    (folder / "settings.json").write_text(json.dumps(settings))
    with pytest.raises(HomeError, match="min_trades is not a count >= 1"):
        resume_workflow(result["workflow_id"], home=tmp_path, executor=pool)
