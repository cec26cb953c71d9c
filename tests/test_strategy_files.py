"""A user's strategy files: the look-ahead check of `backtest`, `--full`, out-of-range options,
bad files in `run --strategies`, and no retry for a deterministic failure."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from alphaloop.cli._limits import parse_bytes, positive_seconds
from alphaloop.errors import ConfigError
from alphaloop.execution import (
    BacktestTask,
    LocalPool,
    RetryPolicy,
    TaskQueue,
    TaskState,
    confinement,
)
from alphaloop.execution.task_runner import run_task
from alphaloop.workflow.api import load_strategies, make_executor

needs_kernel = pytest.mark.skipif(
    not confinement().ok, reason=f"needs kernel confinement: {confinement().describe()}"
)

PEEKS = '''"""Long when tomorrow closes higher: it reads the next bar."""
PARAMETERS = {}


def generate_positions(data):
    close = data["close"]
    print("peeking at tomorrow")  # dropped: docs/strategies.md says so
    return (close.shift(-1) > close).astype(float)
'''
LONG = '''"""Long above the 30-bar mean."""
PARAMETERS = {"n": {"default": 30, "low": 5, "high": 100}}


def generate_positions(data, n=30):
    close = data["close"]
    return (close > close.rolling(n).mean()).astype(float)
'''
NAN = '''"""NaN positions."""
import numpy as np

PARAMETERS = {}


def generate_positions(data):
    return data["close"] * np.nan
'''
IMPORTS_OS = "import os\n\nPARAMETERS = {}\n\n\ndef generate_positions(data):\n    return 0\n"


def alphaloop(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alphaloop.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


# -- backtest: the look-ahead check by default ------------------------------------------------
@needs_kernel
def test_backtest_refuses_a_strategy_that_reads_the_next_bar(tmp_path: Path) -> None:
    """Before the check ran by default, this file reported a total return of 87,801 (that is
    8,780,100 %) on GOOG, and exit 0."""
    path = tmp_path / "peeks.py"
    path.write_text(PEEKS)
    proc = alphaloop("backtest", str(path), "--ticker", "GOOG", "--json")
    assert proc.returncode == 2, proc.stdout
    assert proc.stdout == ""
    line = one_line(proc)
    assert line.startswith("error: strategy 'peeks' has look-ahead bias")
    # the first cut that differs, named by its last bar (a date of GOOG's sample)
    assert "when the bars after 2005-08-11 are removed" in line
    assert "--no-lookahead-check" in line


@needs_kernel
def test_backtest_without_the_check_and_full_json(tmp_path: Path) -> None:
    """--no-lookahead-check measures the file as it is; --full adds the trades and the equity
    curve, consistent with the metrics."""
    path = tmp_path / "peeks.py"
    path.write_text(PEEKS)
    proc = alphaloop(
        "backtest", str(path), "-t", "GOOG", "--json", "--full", "--no-lookahead-check"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and "peeking" not in proc.stdout  # print() is dropped
    out = json.loads(proc.stdout)
    assert out["total_return"] > 1000
    equity, trades = out["equity"], out["trades"]
    assert len(equity["dates"]) == len(equity["values"]) == out["bars"] == 2148
    assert equity["dates"][0] == out["start"] and equity["dates"][-1] == out["end"]
    assert equity["values"][-1] == pytest.approx(1 + out["total_return"], rel=1e-12)
    assert len(trades) == out["num_trades"] > 0
    first = trades[0]
    assert set(first) == {
        "entry_date",
        "exit_date",
        "side",
        "entry_price",
        "exit_price",
        "return",
        "bars_held",
        "is_open",
    }
    assert first["entry_date"] < first["exit_date"] and first["side"] == "long"


# -- out-of-range options: one line, exit 2 ---------------------------------------------------
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["backtest", "buy_and_hold", "-t", "GOOG", "--timeout", "inf"], "--timeout"),
        (["backtest", "buy_and_hold", "-t", "GOOG", "--full"], "--json"),
        (["strategies", "check", "buy_and_hold.py", "--memory", "99999999T"], "1 TiB"),
    ],
)
def test_out_of_range_options_are_one_line_exit_2(args: list[str], expected: str) -> None:
    proc = alphaloop(*args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert expected in one_line(proc)


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf"), 1e12])
def test_timeout_out_of_range(seconds: float) -> None:
    with pytest.raises(ConfigError, match="--timeout must be a number of seconds above 0"):
        positive_seconds(seconds, "--timeout")


@pytest.mark.parametrize(("text", "problem"), [("1MiB", "below 64 MiB"), ("2TiB", "above 1 TiB")])
def test_memory_out_of_range(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_bytes(text)
    assert positive_seconds(86_400, "--timeout") == 86_400 and parse_bytes("1TiB") == 1 << 40


@pytest.mark.parametrize("workers", [0, -1, 10_000])
def test_make_executor_refuses_a_worker_count_out_of_range(workers: int) -> None:
    with pytest.raises(ConfigError, match="--workers must be between 1 and 256"):
        make_executor(workers=workers)


# -- run --strategies: bad files are left out, with one warning each ------------------------
def test_load_strategies_leaves_out_bad_files_with_one_warning_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "good.py").write_text(LONG)
    (tmp_path / "sneaky.py").write_text(IMPORTS_OS)
    (tmp_path / "badparams.py").write_text(
        LONG.replace('{"n": {"default": 30', '{"n": {"dflt": 30')
    )
    (tmp_path / "nofunc.py").write_text("PARAMETERS = {}\n")
    (tmp_path / "sma_crossover.py").write_text(LONG)  # clashes with the library's
    with caplog.at_level(logging.WARNING, logger="alphaloop.workflow.api"):
        strategies = load_strategies(str(tmp_path))
        load_strategies(str(tmp_path))  # run_workflow reads the folder twice: warned once
    assert "good" in strategies and "buy_and_hold" in strategies
    assert not {"sneaky", "badparams", "nofunc"} & set(strategies)
    assert strategies["sma_crossover"].is_library
    warnings = {r.getMessage().split(": ")[1]: r.getMessage() for r in caplog.records}
    assert len(caplog.records) == len(warnings) == 4, [r.getMessage() for r in caplog.records]
    by_file = {Path(k.removeprefix("excluded ")).stem: v for k, v in warnings.items()}
    assert "forbidden import" in by_file["sneaky"] and "line 1" in by_file["sneaky"]
    assert "parameter 'n'" in by_file["badparams"]
    assert "generate_positions" in by_file["nofunc"]
    assert "clashes with a library strategy" in by_file["sma_crossover"]
    assert all("\n" not in w for w in warnings.values())


def test_load_strategies_needs_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a folder"):
        load_strategies(str(tmp_path / "missing"))


# -- no retry for a deterministic failure -----------------------------------------------------
@needs_kernel
def test_sandbox_and_validation_failures_get_one_attempt(tmp_path: Path) -> None:
    """A sandbox rule and invalid positions fail the same way every time: no second attempt
    (a strategy's own exception, a crash and the limits are pinned in test_jail)."""

    def task(tid: str, source: str) -> BacktestTask:
        return BacktestTask(
            task_id=tid,
            experiment_id="e",
            variant_id=tid,
            strategy_code=source,
            strategy_name=tid,
            ticker="GOOG",
            max_retries=3,
        )

    queue = TaskQueue(tmp_path / "queue.db", retry=RetryPolicy(base=0.01, cap=0.05))
    try:
        queue.enqueue_batch([task("sneaky", IMPORTS_OS), task("nan", NAN), task("ok", LONG)])
        with LocalPool(1) as pool:
            pool.run(queue, run_task)
        assert queue.state("ok") is TaskState.COMPLETED
        for tid, text in (("sneaky", "forbidden import"), ("nan", "NaN")):
            assert queue.state(tid) is TaskState.FAILED
            assert len(queue.attempts(tid)) == 1, [a.error for a in queue.attempts(tid)]
            assert text in (queue.get_error(tid) or "")
    finally:
        queue.close()
