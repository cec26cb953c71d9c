"""'Adj Close' reaches every process that loads bars: the worker, the strategy process and the
workflow; `--no-adjust` turns it off for `backtest` and for a whole workflow (kept on resume)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from alphaloop import data as market
from alphaloop.execution import LocalPool
from alphaloop.workflow.api import run_workflow


@pytest.fixture(scope="module")
def split_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GOOG's bars as a Yahoo-style file with a 2:1 split half way: before it, Adj Close is
    half the close (the file's prices are as traded, twice the adjusted ones)."""
    bars = market.load("GOOG").copy()
    factor = np.where(np.arange(len(bars)) < len(bars) // 2, 0.5, 1.0)
    bars.loc[bars.index[: len(bars) // 2], ["open", "high", "low", "close"]] *= 2.0
    bars["adj_close"] = bars["close"] * factor
    path = tmp_path_factory.mktemp("data") / "SPLIT.csv"
    out = bars.rename(columns=str.title).rename(columns={"Adj_Close": "Adj Close"})
    out.to_csv(path, index_label="Date", date_format="%Y-%m-%d")
    return path


def backtest(path: Path, *extra: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "alphaloop.cli", "backtest", "buy_and_hold", "--ticker", "SPLIT",
         "--data", str(path), "--json", "--no-lookahead-check", *extra],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_backtest_adjusts_unless_told_not_to(split_file: Path) -> None:
    adjusted = backtest(split_file)
    raw = backtest(split_file, "--no-adjust")
    goog = market.load("GOOG")
    # adjusted, the file is GOOG again; as traded, the split halves the price half way
    expected = goog["close"].iloc[-1] / goog["open"].iloc[1] - 1
    assert adjusted["total_return"] == pytest.approx(expected, rel=5e-3)
    assert raw["total_return"] == pytest.approx((1 + expected) / 2 - 1, rel=5e-3)


def test_a_workflow_keeps_no_adjust_in_every_task(split_file: Path, tmp_path: Path) -> None:
    with LocalPool(max_workers=2) as pool:
        result = run_workflow("SPLIT", "", ["num_trades>=1"], data_path=str(split_file),
                              home=tmp_path, n_variants=2, executor=pool, alpha=1.0,
                              adjust=False)
    folder = tmp_path / "workflows" / result["workflow_id"]
    assert json.loads((folder / "settings.json").read_text())["adjust"] is False
    with sqlite3.connect(folder / "queue.db") as conn:
        payloads = [json.loads(p) for (p,) in conn.execute("SELECT payload FROM payloads")]
    assert payloads and all(p["adjust"] is False for p in payloads)
