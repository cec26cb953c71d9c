"""The grid path: many parameter sets of one strategy in one call (`backtest.grid`), the
vectorised library strategies, the confined grid task and `alphaloop grid` as a user runs it.

Every grid number is checked against the single-run path (`runner.backtest`, whose metrics
`test_engine` checks against empyrical and an independent broker)."""

from __future__ import annotations

import csv
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from alphaloop.backtest import grid, metrics, runner
from alphaloop.backtest._grid_space import combinations, parse_axes, where_mask
from alphaloop.backtest.strategy import executing_in_process, from_source, load_strategy
from alphaloop.data import load
from alphaloop.errors import ConfigError, StrategyError

GOOG = load("GOOG")

USER_SMA = '''"""A user's SMA crossover, simple interface only (pandas rolling means)."""

import numpy as np
import pandas as pd

PARAMETERS = {
    "fast": {"default": 10, "low": 2, "high": 100},
    "slow": {"default": 50, "low": 3, "high": 300},
    "short": {"default": 0.5, "low": 0.0, "high": 1.0},
}


def generate_positions(data, fast=10, slow=50, short=0.5):
    close = data["close"]
    pos = np.where(close.rolling(fast).mean() > close.rolling(slow).mean(), 1.0, -short)
    pos[:slow] = 0.0
    return pd.Series(pos, index=data.index)
'''


def same(a: Any, b: Any) -> bool:
    """Equal metrics: None where the other is None, numbers within 1e-12 (relative above 1)."""
    if a is None or b is None:
        return a is None and b is None
    return type(a) is type(b) and abs(a - b) <= 1e-12 * max(1.0, abs(a))


def assert_matches_single(strategy: Any, sets: list[dict[str, Any]], **kw: Any) -> None:
    result = grid.run_batch(strategy, GOOG, sets, **kw)
    got = result.metric_dicts()
    assert len(got) == len(sets)
    for params, row in zip(sets, got, strict=True):
        single = runner.backtest(strategy, GOOG, params, **kw).metrics
        assert list(row) == list(metrics.METRIC_KEYS)
        bad = {k: (single[k], row[k]) for k in single if not same(single[k], row[k])}
        assert not bad, (params, bad)


LIBRARY_SETS = {
    "sma_crossover": [
        {"fast": f, "slow": s, "allow_short": a}
        for f, s, a in itertools.product((2, 7, 20, 60), (5, 20, 100, 250), (True, False))
    ],
    "donchian_breakout": [
        {"period": p, "exit_period": e, "allow_short": a}
        for p, e, a in itertools.product((5, 20, 120), (2, 10, 60), (True, False))
    ],
    "momentum": [
        {"lookback": lb, "long_only": lo, "vol_target": vt, "vol_window": w}
        for lb, lo, vt, w in itertools.product((5, 126), (True, False), (0.0, 0.15), (5, 60))
    ],
}


@pytest.mark.parametrize("name", sorted(LIBRARY_SETS))
def test_vectorised_library_strategy_equals_single_runs(name: str) -> None:
    strategy = load_strategy(name)
    _fn, batch = grid.batch_function(strategy)
    assert batch is not None, f"{name} declares {grid.BATCH_FUNCTION}"
    assert_matches_single(strategy, LIBRARY_SETS[name], commission=0.0007, slippage_bps=1.5)


def test_costs_borrow_rebalance_and_eval_start_reach_every_column() -> None:
    strategy = load_strategy("sma_crossover")
    sets = LIBRARY_SETS["sma_crossover"][::3]
    assert_matches_single(strategy, sets, borrow_bps=250.0, rebalance="bar")
    assert_matches_single(strategy, sets, eval_start="2009-01-02", timeframe="1d")


def test_user_strategy_loops_the_simple_interface_and_equals_single_runs() -> None:
    strategy = from_source(USER_SMA, "user_sma")
    sets = [{"fast": f, "slow": s, "short": sh}
            for f, s, sh in itertools.product((5, 30), (40, 120), (0.0, 0.5, 1.0))]
    with executing_in_process():
        assert grid.batch_function(strategy)[1] is None
        assert_matches_single(strategy, sets, commission=0.002)


def test_user_strategy_runs_only_where_strategy_code_may_run() -> None:
    strategy = from_source(USER_SMA, "user_sma")
    with pytest.raises(RuntimeError, match="kernel-confined"):
        grid.run_batch(strategy, GOOG, [{"fast": 5}])


def test_sets_may_come_as_columns_and_defaults_fill_the_rest() -> None:
    strategy = load_strategy("sma_crossover")
    by_rows = grid.run_batch(strategy, GOOG, [{"fast": 5, "slow": 40}, {"fast": "8"}])
    by_cols = grid.run_batch(strategy, GOOG, {"fast": [5, 8], "slow": [40, 50]})
    assert by_rows.params["slow"].tolist() == [40, 50]
    assert by_rows.params["allow_short"].tolist() == [True, True]
    assert by_rows.metric_dicts() == by_cols.metric_dicts()


def test_grid_result_ranks_and_reports_rows() -> None:
    strategy = load_strategy("sma_crossover")
    result = grid.run_batch(strategy, GOOG, LIBRARY_SETS["sma_crossover"])
    sharpe = result.metrics["sharpe_ratio"]
    order = result.ranking("sharpe_ratio")
    finite = sharpe[~np.isnan(sharpe)]
    assert sharpe[order[0]] == finite.max()
    assert np.isnan(sharpe[order[-1]])  # fast >= slow stays flat: no Sharpe ratio, ranked last
    rows = result.rows(order[:3])
    assert rows[0]["sharpe_ratio"] == finite.max()
    assert set(rows[0]) == {"fast", "slow", "allow_short", *metrics.METRIC_KEYS}
    assert type(rows[0]["fast"]) is int and type(rows[0]["num_trades"]) is int
    lowest = result.ranking("max_drawdown", descending=False)[0]
    assert result.metrics["max_drawdown"][lowest] == result.metrics["max_drawdown"].min()
    with pytest.raises(ConfigError, match="unknown metric"):
        result.ranking("sharpe")


def test_bad_values_and_bad_positions_name_the_set() -> None:
    strategy = load_strategy("sma_crossover")
    with pytest.raises(ConfigError, match="'fast'"):
        grid.run_batch(strategy, GOOG, [{"fast": 5}, {"fast": 1}])
    with pytest.raises(ConfigError, match=r"no parameter 'fats'.*did you mean"):
        grid.run_batch(strategy, GOOG, [{"fats": 5}])
    nan_late = USER_SMA.replace(
        "pos[:slow] = 0.0", "pos[:slow] = 0.0\n    pos[-1] = np.nan if fast > 20 else 0.0")
    with executing_in_process(), pytest.raises(StrategyError, match="NaN at 2013-03-01"):
        grid.run_batch(from_source(nan_late, "nan_late"), GOOG, [{"fast": 5}, {"fast": 30}])
    wide = '''"""Vectorised, but out of range for one set."""
import numpy as np

PARAMETERS = {"k": {"default": 1.0, "low": 0.0, "high": 3.0}}


def generate_positions(data, k=1.0):
    return np.full(len(data), k)


def generate_positions_batch(data, k):
    return np.tile(k, (len(data), 1))
'''
    with executing_in_process(), pytest.raises(StrategyError, match=r"k=2\.0\).*2004-08-19"):
        grid.run_batch(from_source(wide, "wide"), GOOG, {"k": [0.5, 1.0, 2.0]})


def test_metric_columns_equal_from_stats_row_by_row() -> None:
    """The column-wise metrics, including every None case, are `metrics.from_stats`'s."""
    from alphaloop.backtest import _kernels

    rng = np.random.default_rng(7)
    n = 300
    returns = [np.zeros(n), rng.normal(0.0005, 0.01, n), np.abs(rng.normal(0, 0.01, n)),
               np.full(n, 0.001), np.r_[0.0, np.full(n - 1, -0.002)]]
    rows = []
    for r in returns:
        eq = np.cumprod(1.0 + r)
        held = np.sign(r)
        tr = r[r != 0][:20]
        rows.append(_kernels.summarize(r, eq, held, tr, tr.shape[0], 3.0))
    stats = np.array(rows)
    cols = grid.metric_columns(stats, 252.0)
    got = grid.GridResult({}, cols).metric_dicts()
    for s, row in zip(stats, got, strict=True):
        want = metrics.from_stats(s, 252.0)
        assert all(same(want[k], row[k]) for k in want), (want, row)


# -- the parameter space ----------------------------------------------------------------------
def test_axes_ranges_lists_and_the_4851_grid() -> None:
    sma = load_strategy("sma_crossover")
    axes = parse_axes(sma, ["fast=2:100", "slow=3:100", "allow_short=true"])
    assert axes["fast"][:3] == [2, 3, 4] and axes["fast"][-1] == 100 and axes["slow"][0] == 3
    cols = combinations(sma, axes, "fast<slow")
    assert len(cols["fast"]) == 4851 and (cols["fast"] < cols["slow"]).all()
    mom = load_strategy("momentum")
    axes = parse_axes(mom, ["vol_target=0:0.3:0.1", "long_only=true,false"])
    assert axes["vol_target"] == [0.0, 0.1, 0.2, 0.3]
    cols = combinations(mom, axes)
    assert len(cols["lookback"]) == 8 and set(cols["lookback"].tolist()) == {126}


def test_where_is_parsed_never_evaluated() -> None:
    """--where shares the grammar of CONSTRAINTS (`_constraints`), conditions joined by ','
    or 'and'; anything else is a one-line error, nothing is evaluated."""
    sma = load_strategy("sma_crossover")
    cols = {"fast": np.array([2, 5, 10]), "slow": np.array([10, 10, 10]),
            "allow_short": np.array([True] * 3)}
    assert where_mask("2*fast <= slow and slow - fast > 0", sma, cols).tolist() == [
        True, True, False]
    assert where_mask("fast < slow, fast > 2", sma, cols).tolist() == [False, True, False]
    assert where_mask("1 < fast <= slow / (fast - 3)", sma, cols).tolist() == [
        False, True, False]
    assert where_mask("-fast < slow / (fast - 2)", sma, cols).tolist() == [False, True, True]
    for text in ("__import__('os').system('true') < 1", "fast.real < slow", "fast",
                 "fastest < slow", "fast < (slow", "fast < slow or 1", "allow_short < 1"):
        with pytest.raises(ConfigError, match=r"^--where .*\(e\.g\. --where"):
            where_mask(text, sma, cols)


@pytest.mark.parametrize("item, why", [
    ("fast=2-100", "must be an integer"),
    ("fast=100:2", "above high"),
    ("vol_target=0:0.5", "needs a step"),
    ("allow_short=0:1", "listed values"),
    ("fast=1:10", "'fast'"),
    ("fats=2:10", "did you mean"),
    ("fast", "not name=values"),
])
def test_bad_axes_are_one_line_errors(item: str, why: str) -> None:
    name = "momentum" if item.startswith("vol") else "sma_crossover"
    with pytest.raises(ConfigError, match=why):
        parse_axes(load_strategy(name), [item])


# -- through the confined path ----------------------------------------------------------------
@pytest.fixture(scope="module")
def host() -> Any:
    """One clean worker for the module, started with the Python checks off
    (``ALPHALOOP_PY_SANDBOX=off``, as `test_hostile` does): the kernel is the only boundary."""
    from alphaloop.execution._host import Host

    before = os.environ.get("ALPHALOOP_PY_SANDBOX")
    os.environ["ALPHALOOP_PY_SANDBOX"] = "off"
    try:
        h = Host().start()
    finally:
        if before is None:
            del os.environ["ALPHALOOP_PY_SANDBOX"]
        else:
            os.environ["ALPHALOOP_PY_SANDBOX"] = before
    yield h
    h.close()


def grid_task(source: str, name: str, columns: dict[str, list[Any]], **kw: Any) -> Any:
    from alphaloop.execution import BacktestTask
    from alphaloop.execution.grid_runner import grid_task as with_sets

    task = BacktestTask(task_id=f"grid-{name}", experiment_id="test", variant_id=name,
                        strategy_code=source, strategy_name=name, ticker="GOOG", **kw)
    return with_sets(task, columns)


def test_grid_task_of_a_user_file_runs_confined_and_equals_single_runs(host: Any) -> None:
    from alphaloop.execution.grid_runner import run_grid_task

    sets = {"fast": [5, 5, 30, 30], "slow": [40, 120, 40, 120], "short": [0.0, 0.5, 1.0, 0.5]}
    out = host.run(run_grid_task, grid_task(USER_SMA, "user_sma", sets), timeout=120)
    assert out["params"] == sets and out["bars"] == len(GOOG)
    strategy = from_source(USER_SMA, "user_sma")
    assert out["code_hash"] == strategy.code_hash
    with executing_in_process():
        for j in range(4):
            params = {k: v[j] for k, v in sets.items()}
            single = runner.backtest(strategy, GOOG, params).metrics
            assert {k: out["metrics"][k][j] for k in single} == single, params


def test_grid_task_of_a_library_strategy_equals_run_batch(host: Any) -> None:
    from alphaloop.execution.grid_runner import run_grid_task

    strategy = load_strategy("donchian_breakout")
    sets = {"period": [10, 20, 55], "exit_period": [5, 10, 20], "allow_short": [True] * 3}
    out = host.run(run_grid_task, grid_task(strategy.source, strategy.name, sets,
                                            commission=0.002, unconfined_ok=True), timeout=120)
    local = grid.run_batch(strategy, GOOG, sets, commission=0.002)
    assert out["metrics"] == {k: [None if np.isnan(v) else v for v in col.tolist()]
                              for k, col in local.metrics.items()}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kernel confinement: Linux")
def test_grid_user_code_cannot_write_files_with_python_checks_off(host: Any,
                                                                  tmp_path: Path) -> None:
    """The grid's user code runs in the kernel-confined strategy process, not in the worker:
    with the Python checks off, its write is refused by the kernel."""
    from alphaloop.execution import TaskFailed, confinement
    from alphaloop.execution.grid_runner import run_grid_task

    if not confinement().ok:
        pytest.skip(f"needs kernel confinement: {confinement().describe()}")
    canary = tmp_path / "escaped.txt"
    writer = USER_SMA.replace(
        '    close = data["close"]\n',
        f"    open({str(canary)!r}, 'w').write('escaped')\n    close = data[\"close\"]\n")
    with pytest.raises(TaskFailed, match="Permission denied"):
        host.run(run_grid_task, grid_task(writer, "writer", {"fast": [5, 30]}), timeout=120)
    assert not canary.exists()


# -- alphaloop grid, as a user runs it ---------------------------------------------------------
def test_cli_grid_rows_equal_single_backtests(tmp_path: Path) -> None:
    out = tmp_path / "grid.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "alphaloop.cli", "grid", "sma_crossover", "--ticker", "GOOG",
         "-p", "fast=5:30:5", "-p", "slow=20:60:10", "--where", "fast < slow", "--top", "3",
         "--json", "--csv", str(out), "--commission", "0.0005"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    with out.open() as f:
        table = list(csv.DictReader(f))
    expected = [(f, s) for f in range(5, 31, 5) for s in range(20, 61, 10) if f < s]
    assert doc["combinations"] == len(table) == len(expected)
    assert sorted((int(r["fast"]), int(r["slow"])) for r in table) == sorted(expected)
    sharpes = [float(r["sharpe_ratio"]) for r in table]
    assert sharpes == sorted(sharpes, reverse=True)
    strategy = load_strategy("sma_crossover")
    assert len(doc["rows"]) == 3
    for row in doc["rows"]:
        params = {k: row[k] for k in ("fast", "slow", "allow_short")}
        single = runner.backtest(strategy, GOOG, params, commission=0.0005).metrics
        assert all(same(single[k], row[k]) for k in single), (params, single, row)


@pytest.mark.parametrize("args, why", [
    (["-p", "fast=2:x"], "not a number"),
    (["-p", "fast=2:10", "--metric", "sharp_ratio"], "did you mean 'sharpe_ratio'"),
    (["-p", "fast=2:10", "--where", "fast < slow or 1"], "unexpected 'or'"),
    (["-p", "fast=2:10", "--where", "fast < slowest"], "unknown parameter 'slowest'"),
    (["-p", "fast=60:70", "-p", "slow=10:20", "--where", "fast<slow"], "no parameter set"),
    (["-p", "fast=2:10", "--csv", "/nonexistent-folder/x.csv"], "existing folder"),
])
def test_cli_grid_bad_input_is_one_line_exit_2(args: list[str], why: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from alphaloop.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["grid", "sma_crossover", "--ticker", "GOOG", *args])
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and why in lines[0], lines
