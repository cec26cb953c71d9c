"""`alphaloop run / resume / status / show` as a user runs them: exit codes, output, errors."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest


def alphaloop(*args: str, home: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alphaloop.cli", *args, "--home", str(home)],
        capture_output=True, text=True, timeout=timeout,
    )


def test_run_success_then_status_show_and_resume(tmp_path: Path) -> None:
    # the mechanics of a success: significance off (its own tests are in test_significance)
    proc = alphaloop("run", "--ticker", "GOOG", "--gate", "sharpe_ratio>=0.2",
                     "--gate", "num_trades>=1", "--variants", "3", "--workers", "2", "--json",
                     "--alpha", "1", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "warning: --alpha 1: the holdout significance test is off" in proc.stderr
    result = json.loads(proc.stdout)
    wid = result["workflow_id"]
    assert result["status"] == "SUCCESS" and wid.startswith("workflow_")
    status = alphaloop("status", home=tmp_path)
    assert status.returncode == 0 and wid in status.stdout and "COMPLETED" in status.stdout
    show = alphaloop("show", wid, home=tmp_path)
    assert show.returncode == 0
    assert "[holdout]" in show.stdout and "keeping it as the winner" in show.stdout
    again = alphaloop("resume", wid, "--json", home=tmp_path)  # a finished run: same result
    assert again.returncode == 0 and json.loads(again.stdout) == result
    assert "significance test is off" in again.stderr  # said again on every run


def test_unreadable_workflow_files_get_one_line_errors(tmp_path: Path) -> None:
    proc = alphaloop("run", "--ticker", "GOOG", "--gate", "num_trades>=1", "--variants", "2",
                     "--json", home=tmp_path)
    assert proc.returncode in (0, 1), proc.stderr  # a finished workflow, whatever its verdict
    wid = json.loads(proc.stdout)["workflow_id"]
    folder = tmp_path / "workflows" / wid

    def refused(command: str, fix: str) -> None:
        out = alphaloop(command, wid, home=tmp_path)
        assert out.returncode == 2, out.stderr
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
        assert fix in out.stderr, out.stderr

    with sqlite3.connect(folder / "queue.db") as conn:  # written by a future alphaloop
        conn.execute("PRAGMA user_version = 99")
    refused("resume", "newer than this alphaloop")
    # a queue that is not a database is rebuilt by resume (tests/test_damaged_home.py); the
    # experiment records cannot be
    for leftover in folder.glob("tracker.db-*"):
        leftover.unlink()
    (folder / "tracker.db").write_bytes(b"not a database at all")
    refused("resume", "tracker.db are damaged (file is not a database); resume cannot rebuild")
    refused("show", "tracker.db are damaged (file is not a database); resume cannot rebuild")


def test_run_without_a_passing_strategy_exits_1_with_a_summary(tmp_path: Path) -> None:
    proc = alphaloop("run", "--ticker", "IBM", "--gate", "sharpe_ratio>=5", "--variants", "2",
                     home=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "FAILED" in proc.stdout and "lessons:" in proc.stdout and ": stopping" in proc.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "--ticker", "GOOG", "--gate", "sharpe>=1"], "sharpe_ratio"),
        (["run", "--ticker", "GOOG", "--gate", "sharpe_ratio=>1"], "use '>='"),
        (["run", "--ticker", "NOPE"], "GOOG"),
        (["run", "--ticker", "GOOG", "--timeframe", "1h"], "daily"),
        (["run", "--ticker", "GOOG", "--start", "2013-01-01"], "holdout"),
        (["run", "--ticker", "GOOG", "--backend", "ray"], "local or dask"),
        (["run", "--ticker", "GOOG", "--backend", "dask"], "--scheduler"),
        (["run", "--ticker", "GOOG", "--variants", "0"], "--variants"),
        (["run", "--ticker", "GOOG", "--strategies", "/no/such/dir"], "folder"),
        (["resume", "workflow_nope"], "workflow_nope"),
        (["show", "workflow_nope"], "workflow_nope"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], expected: str) -> None:
    home = tmp_path / "home"
    proc = alphaloop(*args, home=home)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert not home.exists(), "bad input must not leave a home folder (or a workflow) behind"


SLOW = '''"""Deliberately slow, so the run can be interrupted mid-batch."""
import numpy as np
import pandas as pd

PARAMETERS = {"work": {"default": 400, "low": 400, "high": 401}}


def generate_positions(data, work=400):
    close = data["close"].to_numpy()
    acc = 0.0
    for i in range(len(close)):
        for _ in range(work):
            acc = (acc + close[i]) % 7.0
    return pd.Series(np.where(close > close.mean(), 1.0, 0.0), index=data.index)
'''


def test_ctrl_c_exits_130_and_resume_finishes(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "slow.py").write_text(SLOW)
    home = tmp_path / "home"
    proc = subprocess.Popen(
        [sys.executable, "-m", "alphaloop.cli", "run", "--ticker", "GOOG", "--variants", "2",
         "--strategies", str(mine), "--gate", "sharpe_ratio>=5", "--home", str(home), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(home.glob("workflows/*/queue.db")):
        time.sleep(0.05)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err
    wid = next(home.glob("workflows/*")).name
    assert f"interrupted by SIGINT: state saved; `alphaloop resume {wid}` carries on" in err
    status = alphaloop("status", wid, home=home)
    assert "INTERRUPTED" in status.stdout and "RUNNING" not in status.stdout


def _task_state(db: Path, task_id: str) -> str | None:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            row = conn.execute("SELECT state FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
    except sqlite3.Error:  # not created yet
        return None
    return row[0] if row else None


def test_sigterm_exits_143_and_resume_finishes(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "slow.py").write_text(SLOW)
    home = tmp_path / "home"
    proc = subprocess.Popen(
        [sys.executable, "-m", "alphaloop.cli", "run", "--ticker", "GOOG", "--variants", "2",
         "--strategies", str(mine), "--gate", "num_trades>=1", "--home", str(home), "--json",
         "--alpha", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # wait until a worker is running the slow strategy's check, then terminate the run
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        queues = list(home.glob("workflows/*/queue.db"))
        if queues and _task_state(queues[0], "tools_slow") == "in_progress":
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be terminated"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, (out, err)
    assert "Traceback" not in err
    (wid,) = [p.name for p in home.glob("workflows/*")]
    assert f"interrupted by SIGTERM: state saved; `alphaloop resume {wid}` carries on" in err
    assert _task_state(home / "workflows" / wid / "queue.db", "tools_slow") != "in_progress"
    status = alphaloop("status", wid, home=home)
    assert "INTERRUPTED" in status.stdout and "RUNNING" not in status.stdout
    resumed = alphaloop("resume", wid, "--json", home=home)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "SUCCESS"


def test_run_costs_reach_every_backtest_and_stay_with_the_workflow(tmp_path: Path) -> None:
    """--commission, --slippage-bps, --borrow-bps and --rebalance are the workflow's: every
    task carries them, the result says them, resume cannot change them, and a bad one is a
    one-line error before anything is created."""
    # AAPL: a candidate passes at the first iteration, so the run is short
    proc = alphaloop("run", "--ticker", "AAPL", "--gate", "num_trades>=1", "--variants", "2",
                     "--commission", "0.0005", "--slippage-bps", "3", "--borrow-bps", "40",
                     "--rebalance", "bar", "--json", home=tmp_path)
    assert proc.returncode in (0, 1), proc.stderr
    result = json.loads(proc.stdout)
    wid = result["workflow_id"]
    assert result["costs"] == {"commission": 0.0005, "slippage_bps": 3, "borrow_bps": 40,
                               "rebalance": "bar"}
    folder = tmp_path / "workflows" / wid
    settings = json.loads((folder / "settings.json").read_text())
    assert (settings["commission"], settings["slippage_bps"]) == (0.0005, 3)
    assert (settings["borrow_bps"], settings["rebalance"]) == (40, "bar")
    with sqlite3.connect(folder / "queue.db") as conn:
        payloads = [json.loads(p) for (p,) in conn.execute("SELECT payload FROM payloads")]
    costs = {(p["commission"], p["slippage_bps"], p["borrow_bps"], p["rebalance"])
             for p in payloads}
    assert payloads and costs == {(0.0005, 3, 40, "bar")}
    same = alphaloop("resume", wid, "--borrow-bps", "40", "--rebalance", "bar", home=tmp_path)
    assert same.returncode == proc.returncode, same.stderr
    other = alphaloop("resume", wid, "--rebalance", "change", home=tmp_path)
    assert other.returncode == 2 and len(other.stderr.strip().splitlines()) == 1
    assert "started with --rebalance bar" in other.stderr and "Traceback" not in other.stderr
    for args, words in ((["--commission", "-1"], "commission must be a finite number >= 0"),
                        (["--borrow-bps", "-1"], "borrow_bps must be"),
                        (["--rebalance", "weekly"], "rebalance must be 'change'")):
        bad = alphaloop("run", "--ticker", "IBM", *args, home=tmp_path / "bad")
        assert bad.returncode == 2 and words in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()
