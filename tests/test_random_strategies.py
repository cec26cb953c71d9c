"""A strategy that draws from numpy's global generator (a coin-flip baseline) is reproducible
and is not accused of look-ahead: each call into it starts from a seed derived from its code
and its parameter values, the same in any worker, in a grid and on the look-ahead check's
shorter bars."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from alphaloop import data
from alphaloop.backtest import grid
from alphaloop.backtest.lookahead import lookahead_check
from alphaloop.backtest.strategy import executing_in_process, from_source

COIN = '''"""Coin flip: long or flat at random, held for a few bars."""

import numpy as np
import pandas as pd

PARAMETERS = {"hold": {"default": 5, "low": 2, "high": 20}}


def generate_positions(data, hold):
    flips = np.random.random(len(data.index) // hold + 1) > 0.5
    return pd.Series(np.repeat(flips.astype(float), hold)[: len(data.index)], index=data.index)
'''

GOOG = data.load("GOOG")


def test_the_same_variant_draws_the_same_numbers_and_shorter_bars_a_prefix() -> None:
    coin = from_source(COIN, "coin")
    with executing_in_process():
        first = coin.positions(GOOG, {"hold": 5})
        np.random.random(1000)  # whatever ran before in this process
        again = coin.positions(GOOG, {"hold": 5})
        other = coin.positions(GOOG, {"hold": 6})
        shorter = coin.positions(GOOG.iloc[:700], {"hold": np.int64(5)})  # a grid's value
        assert lookahead_check(coin, GOOG, {"hold": 5}) == []
        rows = grid.run_batch(coin, GOOG, [{"hold": 5}, {"hold": 6}]).metric_dicts()
        single = coin.positions(GOOG, {"hold": 6})
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)  # the parameters are part of the seed
    assert np.array_equal(shorter, first[:700])
    assert np.array_equal(single, other)
    assert rows[0] != rows[1]


def test_a_confined_backtest_of_it_is_reproducible_and_passes_the_lookahead_check(
    tmp_path: Path,
) -> None:
    path = tmp_path / "coin.py"
    path.write_text(COIN)
    outs = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "alphaloop.cli", "backtest", str(path), "--ticker", "GOOG",
             "--json"],
            capture_output=True, text=True, timeout=300,
        )
        assert done.returncode == 0, done.stderr
        outs.append(done.stdout)
    assert outs[0] == outs[1]
    assert "sharpe_ratio" in outs[0]
