"""`alphaloop backtest` as a user runs it: real process, real data, exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from alphaloop.data import load

# the keys the foundation issue names, restated here (not imported) so the test can fail
METRIC_KEYS = {
    "total_return",
    "cagr",
    "annual_volatility",
    "sharpe_ratio",
    "sortino_ratio",
    "calmar_ratio",
    "max_drawdown",
    "max_drawdown_duration",
    "win_rate",
    "profit_factor",
    "num_trades",
    "avg_trade_return",
    "exposure",
    "turnover",
}


def alphaloop(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alphaloop.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_backtest_json_has_every_metric_and_matches_library() -> None:
    proc = alphaloop(
        "backtest", "sma_crossover", "--ticker", "goog", "-p", "fast=20", "-p", "slow=100", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out.keys() >= METRIC_KEYS
    assert "trades" not in out and "equity" not in out  # only with --full
    assert out["parameters"]["fast"] == 20 and out["parameters"]["slow"] == 100
    assert out["bars"] == len(load("GOOG")) == 2148
    assert out["num_trades"] > 0
    assert 0.0 <= out["max_drawdown"] <= 1.0


def test_backtest_costs_and_position_model_reach_the_engine() -> None:
    """--borrow-bps and --rebalance change a long/short result as the engine says, and the
    JSON names the costs it was measured with."""
    from alphaloop.backtest import engine
    from alphaloop.backtest import indicators as ind

    args = ("backtest", "sma_crossover", "--ticker", "GOOG", "-p", "fast=10", "-p", "slow=20",
            "--commission", "0.002", "--json")
    held = json.loads(alphaloop(*args).stdout)
    borrowed = json.loads(alphaloop(*args, "--borrow-bps", "300").stdout)
    weight = json.loads(alphaloop(*args, "--rebalance", "bar").stdout)
    assert (held["rebalance"], held["borrow_bps"], held["commission"]) == ("change", 0.0, 0.002)
    assert (borrowed["borrow_bps"], weight["rebalance"]) == (300.0, "bar")
    data = load("GOOG")
    close = data["close"].to_numpy()
    pos = ind.crossover_side(ind.sma(close, 10), ind.sma(close, 20))
    for out, kw in ((held, {}), (borrowed, {"borrow_bps": 300.0}), (weight, {"rebalance": "bar"})):
        m = engine.run(data, pos, commission=0.002, **kw).metrics
        assert out["total_return"] == pytest.approx(m["total_return"], rel=1e-9)
    assert borrowed["total_return"] < held["total_return"]
    assert weight["total_return"] != pytest.approx(held["total_return"], rel=1e-3)


def test_backtest_table_and_date_range() -> None:
    proc = alphaloop(
        "backtest",
        "buy_and_hold",
        "--ticker",
        "MSFT",
        "--start",
        "2005-01-01",
        "--end",
        "2006-12-31",
    )
    assert proc.returncode == 0, proc.stderr
    assert "sharpe_ratio" in proc.stdout and "2005-01-03" in proc.stdout


def test_costs_lower_the_return() -> None:
    free = json.loads(
        alphaloop(
            "backtest", "sma_crossover", "--ticker", "GOOG", "--commission", "0", "--json"
        ).stdout
    )
    paid = json.loads(
        alphaloop(
            "backtest",
            "sma_crossover",
            "--ticker",
            "GOOG",
            "--commission",
            "0.002",
            "--slippage-bps",
            "5",
            "--json",
        ).stdout
    )
    assert paid["total_return"] < free["total_return"]


BAD_STRATEGIES = {
    "syntax.py": ("PARAMETERS = {}\ndef generate_positions(data:\n    return 0\n", "line 2"),
    "noimport.py": (
        "import os\nPARAMETERS = {}\ndef generate_positions(data):\n    return data.close * 0\n",
        "line 1",
    ),
    "nofunc.py": ("PARAMETERS = {}\n", "generate_positions"),
    "nan.py": (
        "import numpy as np\nPARAMETERS = {}\n"
        "def generate_positions(data):\n    return data.close * np.nan\n",
        "NaN",
    ),
    "boom.py": ("PARAMETERS = {}\n\ndef generate_positions(data):\n    return 1 / 0\n", "line 4"),
}


@pytest.mark.parametrize("filename", sorted(BAD_STRATEGIES))
def test_bad_strategy_is_one_line_exit_2(tmp_path: Path, filename: str) -> None:
    source, expected = BAD_STRATEGIES[filename]
    path = tmp_path / filename
    path.write_text(source)
    proc = alphaloop("backtest", str(path), "--ticker", "GOOG")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0] and path.stem in lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["backtest", "sma_crosover", "--ticker", "GOOG"], "sma_crossover"),  # did you mean
        (["backtest", "sma_crossover", "--ticker", "GOOGL"], "GOOG"),
        (["backtest", "sma_crossover", "--ticker", "GOOG", "-p", "fats=3"], "fast"),
        (["backtest", "sma_crossover", "--ticker", "GOOG", "-p", "fast"], "name=value"),
        (["backtest", "sma_crossover", "--ticker", "GOOG", "--timeframe", "1h"], "1d"),
        (["backtest", "sma_crossover", "--ticker", "GOOG", "--start", "2020-01-01"], "2013"),
        (["backtest", "sma_crossover", "--ticker", "GOOG", "--commission", "-1"], "commission"),
        (["backtest", "sma_crossover", "--ticker", "GOOG", "--borrow-bps", "-5"], "borrow_bps"),
        (["backtest", "sma_crossover", "--ticker", "GOOG", "--rebalance", "daily"], "'bar'"),
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str], expected: str) -> None:
    proc = alphaloop(*args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], proc.stderr
