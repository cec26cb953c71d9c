"""Variants of one library strategy queued together run as one grid call in the worker
(`execution._together`), with exactly the results each gives alone."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from alphaloop import data as market
from alphaloop.backtest import grid, lookahead
from alphaloop.backtest import strategy as strategies
from alphaloop.backtest.strategy import library_source
from alphaloop.execution import LocalPool, TaskQueue, _together
from alphaloop.execution._task import BacktestTask
from alphaloop.execution.task_runner import run_task, run_task_in_process


def task(tid: str, name: str, params: dict[str, Any], **kw: Any) -> BacktestTask:
    return BacktestTask(
        task_id=tid, experiment_id="e", variant_id=tid, strategy_code=library_source(name),
        strategy_name=name, strategy_parameters=params, ticker=kw.pop("ticker", "GOOG"),
        check_lookahead=kw.pop("check_lookahead", True), end=kw.pop("end", "2012-06-29"),
        **kw,
    )


TUNE = [  # a TUNE_PARAMETERS-like batch: two strategies' variants, side by side
    task("s0", "sma_crossover", {"fast": 5, "slow": 40}),
    task("s1", "sma_crossover", {"fast": 12, "slow": 90, "allow_short": False}),
    task("s2", "sma_crossover", {"fast": 30, "slow": 31}),
    task("s3", "sma_crossover", {"fast": 60, "slow": 20}),  # fast >= slow: flat
    task("d0", "donchian_breakout", {}),
    task("d1", "donchian_breakout", {"allow_short": True}),
    task("m0", "momentum", {}, eval_start="2010-01-04"),
    task("m1", "momentum", {"lookback": 40}, eval_start="2010-01-04"),
]


@pytest.fixture(autouse=True)
def _empty() -> None:
    _together._DONE.clear()


def test_a_group_gives_each_task_exactly_its_own_result() -> None:
    _together.run_groups(TUNE)
    assert {t.task_id for t in TUNE} == set(_together._DONE)  # every one went in a group
    for t in TUNE:
        got = _together.done(t.task_id)
        assert got == run_task_in_process(t), t.task_id
        assert _together.done(t.task_id) is None  # taken: a re-run computes anew


def test_only_tasks_that_differ_in_parameters_alone_are_grouped() -> None:
    alone = [
        task("a", "sma_crossover", {"fast": 5, "slow": 40}, commission=0.002),  # other costs
        task("b", "sma_crossover", {"fast": 8, "slow": 40}, ticker="IBM"),  # other bars
        task("c", "sma_crossover", {"fast": 9, "slow": 40}, end="2011-12-30"),  # other window
        task("d", "rsi_reversion", {}),  # not vectorised
        task("e", "rsi_reversion", {"period": 10}),
        task("f", "sma_crossover", {"fast": 5, "slow": 41}),
        task("g", "sma_crossover", {"fast": 5, "slow": 42}),
    ]
    sent = {"g"}  # already handed to the strategy process: not taken back
    _together.run_groups(alone, skip=sent)
    assert set(_together._DONE) == set()  # f pairs with nobody once g is skipped
    _together.run_groups(alone)
    assert set(_together._DONE) == {"f", "g"}


def test_a_bad_set_leaves_the_whole_group_to_the_single_path() -> None:
    bad = task("bad", "sma_crossover", {"fast": 1000, "slow": 40})  # beyond its range
    _together.run_groups([TUNE[0], TUNE[1], bad])
    assert _together._DONE == {}


def test_edited_library_code_is_never_grouped() -> None:
    edited = library_source("sma_crossover") + "\n# edited\n"
    tasks = [t.model_copy(update={"strategy_code": edited}) for t in TUNE[:3]]
    _together.run_groups(tasks)
    assert _together._DONE == {}


PEEKS = textwrap.dedent('''
    """Peeks one bar ahead when ``ahead`` is set."""
    import numpy as np
    import pandas as pd

    PARAMETERS = {"n": {"default": 10, "low": 2, "high": 50},
                  "ahead": {"default": 0, "low": 0, "high": 1}}


    def _one(close, n, ahead):
        mean = pd.Series(close).rolling(n, min_periods=1).mean().to_numpy()
        ref = np.roll(close, -1) if ahead else close
        pos = np.where(ref > mean, 1.0, 0.0)
        if ahead:
            pos[-1] = 0.0
        return pos


    def generate_positions(data, n=10, ahead=0):
        return pd.Series(_one(data["close"].to_numpy(), n, ahead), index=data.index)


    def generate_positions_batch(data, n, ahead):
        close = data["close"].to_numpy()
        return np.stack([_one(close, int(a), int(b)) for a, b in zip(n, ahead)], axis=1)
''')


def test_the_batched_lookahead_finds_each_sets_own_dates() -> None:
    bars = market.load("GOOG").iloc[:600]
    s = strategies.from_source(PEEKS, "peeks")
    sets = [{"n": 10, "ahead": 0}, {"n": 10, "ahead": 1}, {"n": 25, "ahead": 1},
            {"n": 40, "ahead": 0}]
    with strategies.executing_in_process():
        columns = grid.param_columns(s, sets)
        _fn, batch = grid.batch_function(s)
        positions = [s.positions(bars, s.resolve_params(p)) for p in sets]
        found = _together._lookahead(s, batch, bars, columns, positions)
        reference = [[d.isoformat() for d in lookahead.lookahead_check(s, bars, p, full=pos)]
                     for p, pos in zip(sets, positions, strict=True)]
    assert found == reference
    assert [bool(f) for f in found] == [False, True, True, False]


def test_a_pool_runs_a_batch_together_with_the_single_results(tmp_path: Path) -> None:
    q = TaskQueue(tmp_path / "queue.db")
    try:
        q.enqueue_batch(TUNE)
        with LocalPool(1, max_batch=8, batch_seconds=10.0) as pool:
            summary = pool.run(q, run_task)
        assert summary.completed == len(TUNE)
        for t in TUNE:
            assert q.get_result(t.task_id) == run_task_in_process(t), t.task_id
    finally:
        q.close()


def test_the_library_batch_functions_equal_the_single_ones_bit_for_bit() -> None:
    """What the grouping relies on: column j of the batch is set j's positions, exactly."""
    bars = market.load("MSFT").iloc[:900]
    rng = np.random.default_rng(3)
    for name in ("sma_crossover", "donchian_breakout", "momentum"):
        s = strategies.from_source(library_source(name), name)
        sets = []
        for _ in range(12):
            p = {}
            for key, spec in s.parameters.items():
                if getattr(spec, "choices", None) is not None:
                    p[key] = spec.choices[int(rng.integers(len(spec.choices)))]
                elif isinstance(spec.default, int):
                    p[key] = int(rng.integers(spec.low, min(spec.high, 200) + 1))
                else:
                    p[key] = float(rng.uniform(spec.low, spec.high))
            sets.append(s.resolve_params(p))
        columns = grid.param_columns(s, sets)
        _fn, batch = grid.batch_function(s)
        for cut in (len(bars), 450, 37):
            part = bars.iloc[:cut]
            out = grid.batch_positions(batch, part, columns, name, s.source)
            for j, p in enumerate(sets):
                assert np.array_equal(out[j], s.positions(part, p)), (name, cut, p)
