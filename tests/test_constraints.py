"""CONSTRAINTS between parameters: read from the source without running it, refused with one
line when malformed, enforced on `backtest -p`, and never violated by the search's proposals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from alphaloop.agents._tuning import Asking, Window, spare_asks
from alphaloop.agents.development import DevelopmentInput, OptunaDeveloper, PastResult
from alphaloop.backtest.strategy import from_source, library_names, load_strategy
from alphaloop.errors import StrategyError

HEAD = '''"""Two lookbacks."""

import pandas as pd

PARAMETERS = {
    "fast": {"default": 10, "low": 2, "high": 100},
    "slow": {"default": 50, "low": 3, "high": 300},
    "band": {"default": 0.5, "low": 0.0, "high": 2.0},
    "allow_short": {"default": True, "choices": [True, False]},
}
'''
TAIL = '''

def generate_positions(data, fast=10, slow=50, band=0.5, allow_short=True):
    return pd.Series(0.0, index=data.index)
'''


def source(constraints: str) -> str:
    return HEAD + constraints + "\n" + TAIL


def alphaloop(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "alphaloop.cli", *args],
                          capture_output=True, text=True, timeout=120)


def test_constraints_are_read_and_judge_points() -> None:
    s = from_source(source('CONSTRAINTS = ["fast < slow", "2 * fast + band <= slow - (1)",'
                           ' "0 <= band / 2 < fast"]'), "two")
    assert [c.text for c in s.constraints] == [
        "fast < slow", "2 * fast + band <= slow - (1)", "0 <= band / 2 < fast"]
    ok = {"fast": 10, "slow": 50, "band": 0.5, "allow_short": True}
    assert all(c.holds(ok) for c in s.constraints)
    assert not s.constraints[0].holds({**ok, "fast": 50})
    assert not s.constraints[1].holds({**ok, "fast": 25})  # 50.5 > 49
    assert not s.constraints[2].holds({**ok, "band": -1.0})  # a chain: both comparisons
    assert from_source(source(""), "none").constraints == ()
    # the library declares the orders its rules need
    assert [c.text for c in load_strategy("sma_crossover").constraints] == ["fast < slow"]
    assert [c.text for c in load_strategy("rsi_reversion").constraints] == [
        "lower < exit_level < upper"]


@pytest.mark.parametrize(("line", "says"), [
    ('CONSTRAINTS = ["fast < slwo"]', "unknown parameter 'slwo'; did you mean 'slow'?"),
    ('CONSTRAINTS = ["allow_short < 1"]', "parameter 'allow_short' is not a number"),
    ('CONSTRAINTS = ["fast == slow"]', "unexpected '='"),
    ('CONSTRAINTS = ["fast < slow and band < 1"]',
     "unexpected 'and'; write each condition as its own string"),
    ('CONSTRAINTS = ["max(fast, 3) < slow"]', "unexpected ',' at column 9"),
    ('CONSTRAINTS = ["fast.real < slow"]', "unexpected '.'"),
    ('CONSTRAINTS = ["fast < slow if fast else 0"]', "unexpected 'if'"),
    ("CONSTRAINTS = [\"fast < 'slow'\"]", "unexpected \"'\""),
    ('CONSTRAINTS = ["fast"]', "compares nothing"),
    ('CONSTRAINTS = ["fast < (slow"]', "'(' is not closed"),
    ('CONSTRAINTS = ["fast * 6 < slow"]', "the declared defaults (fast=10, slow=50) violate it"),
    ('CONSTRAINTS = ["fast < slow < 1e999"]', "not finite"),
    ('CONSTRAINTS = ["fast < slow" + ""]', "must be one list of string literals"),
    ('CONSTRAINTS = [f"fast < slow"]', "must be one list of string literals"),
    ('LIMIT = "fast < slow"\nCONSTRAINTS = [LIMIT]', "must be one list of string literals"),
    ('CONSTRAINTS = ["fast < slow"]\nCONSTRAINTS = []', "CONSTRAINTS is assigned 2 times"),
    ('CONSTRAINTS = ["fast < " + "(" * 30 + "slow" + ")" * 30]',
     "must be one list of string literals"),
    ('CONSTRAINTS = ["fast < ' + "(" * 12 + "slow" + ")" * 12 + '"]', "nested more than"),
    ('CONSTRAINTS = ["fast < slow' + " " * 200 + '"]', "longer than 200 characters"),
])
def test_a_bad_constraint_is_one_line_naming_the_strategy_and_the_constraint(
        line: str, says: str) -> None:
    with pytest.raises(StrategyError) as err:
        from_source(source(line), "two")
    text = str(err.value)
    assert "\n" not in text and text.startswith("strategy 'two'")
    assert says in text


def test_constraint_text_is_parsed_never_run() -> None:
    """Python in a constraint is refused by the grammar: evaluated, this one would not end."""
    with pytest.raises(StrategyError, match="expected a name, a number or '\\(' where '\\*'"):
        from_source(source('CONSTRAINTS = ["fast < slow + 9 ** 9 ** 9"]'), "two")
    with pytest.raises(StrategyError, match="unexpected '\\('"):
        from_source(source('CONSTRAINTS = ["len(fast) < slow"]'), "two")


def test_strategies_check_and_backtest_refuse_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad_order.py"
    bad.write_text(source('CONSTRAINTS = ["fast < slwo"]'))
    proc = alphaloop("strategies", "check", str(bad))
    assert proc.returncode == 1
    assert "bad_order" in proc.stdout and "unknown parameter 'slwo'" in proc.stdout
    proc = alphaloop("backtest", "sma_crossover", "--ticker", "GOOG", "-p", "fast=50",
                     "-p", "slow=20")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "fast=50, slow=20" in lines[0] and "'fast < slow'" in lines[0]


def _score(p: dict) -> float:
    """A made-up gate score peaking at fast 40, slow 60: the best points sit by the border."""
    return -abs(p["fast"] - 40) / 50 - abs(p["slow"] - 60) / 150


def test_proposals_meet_constraints_repeat_nothing_and_waste_no_asks() -> None:
    strat = from_source(source('CONSTRAINTS = ["fast < slow", "slow <= fast + 45"]'), "two")
    dev = OptunaDeveloper({"two": strat})
    history: list[PastResult] = []
    for it in range(6):
        props = dev.propose(DevelopmentInput(
            action="INITIAL" if it == 0 else "TUNE_PARAMETERS", families=["two"],
            history=history, n_variants=16, seed=3))
        assert len(props) == 16
        history += [PastResult(variant_id=f"{it}/{i}", strategy_name="two",
                               strategy_code=p.strategy_code, parameters=p.parameters,
                               gate_score=_score(p.parameters)) for i, p in enumerate(props)]
    points = [r.parameters for r in history]
    assert all(p["fast"] < p["slow"] <= p["fast"] + 45 for p in points)
    assert len({repr(sorted(p.items())) for p in points}) == len(points)
    # one ask per proposal, amortised (the defaults need none)
    assert dev.asks <= len(points) - 1 + spare_asks(16)
    best = max(history, key=lambda r: r.gate_score or -9)
    assert best.gate_score is not None and best.gate_score > -0.25  # TPE found the ridge


def test_an_exhausted_space_gives_fewer_points_not_repeats() -> None:
    """Every point but one tried: one new point, and the asks that found only old points are
    told back pruned (bounded), not retried for ever."""
    tiny = source('CONSTRAINTS = ["fast < slow"]').replace(
        '"low": 2, "high": 100', '"low": 9, "high": 11').replace(
        '"low": 3, "high": 300', '"low": 10, "high": 12').replace(
        '"band": {"default": 0.5, "low": 0.0, "high": 2.0}',
        '"band": {"default": 0.5, "choices": [0.5]}').replace(
        '"slow": {"default": 50', '"slow": {"default": 11').replace("slow=50", "slow=11")
    strat = from_source(tiny, "tiny")
    pairs = [(f, s) for f in (9, 10, 11) for s in (10, 11, 12) if f < s]
    feasible = [{"fast": f, "slow": s, "band": 0.5, "allow_short": a}
                for f, s in pairs for a in (True, False)]
    history = [PastResult(variant_id=str(i), strategy_name="tiny", strategy_code=strat.source,
                          parameters=p, gate_score=0.1 * i) for i, p in enumerate(feasible[1:])]
    dev = OptunaDeveloper({"tiny": strat})
    props = dev.propose(DevelopmentInput(action="TUNE_PARAMETERS", families=["tiny"],
                                         history=history, n_variants=8, seed=0))
    assert [p.parameters for p in props] == [feasible[0]]
    assert dev.asks - dev.pruned == 1 and dev.pruned == spare_asks(8) + 1


def test_the_study_is_told_a_bounded_window_of_a_long_history() -> None:
    dev = OptunaDeveloper({n: load_strategy(n) for n in library_names()},
                          Asking(window=Window(recent=40, best=10)))
    code = load_strategy("sma_crossover").source
    history = [PastResult(variant_id=str(i), strategy_name="sma_crossover", strategy_code=code,
                          parameters={"fast": 2 + i % 90, "slow": 100 + i // 90,
                                      "allow_short": bool(i % 2)},
                          gate_score=_score({"fast": 2 + i % 90, "slow": 100 + i // 90}))
               for i in range(1500)]
    props = dev.propose(DevelopmentInput(action="TUNE_PARAMETERS", families=["sma_crossover"],
                                         history=history, n_variants=4, seed=1))
    assert len(props) == 4
    assert all("told 50 of 1500 results" in p.description for p in props)
    assert all(p.parameters["fast"] < p.parameters["slow"] for p in props)


def test_scaled_lookbacks_keep_their_constraints() -> None:
    """Scaled to the data's bars, a constraint scaling broke at the defaults moves them to
    the nearest point meeting it; where no point can, the constraint goes (stated in code)."""
    from alphaloop.agents.development import fit_to_bars

    days = source('CONSTRAINTS = ["fast + 5 <= slow"]').replace(
        '"high": 100}', '"high": 100, "unit": "days"}').replace(
        '"high": 300}', '"high": 300, "unit": "days"}')
    strat = from_source(days, "days")
    fitted = fit_to_bars(strat, 252.0, 30)  # capped at 10 bars: defaults 9 and 10
    assert [c.text for c in fitted.constraints] == ["fast + 5 <= slow"]
    d = fitted.defaults()
    assert d["fast"] + 5 <= d["slow"] <= 10 and d["fast"] == 5  # the nearest that meets it
    squeezed = fit_to_bars(strat, 1560.0, 30)  # fast and slow both 10..10 bars
    assert squeezed.constraints == ()
    assert "no point meets CONSTRAINTS ['fast + 5 <= slow']" in squeezed.source


def test_integer_ranges_sampled_continuously_come_back_on_their_grid() -> None:
    stepped = source('CONSTRAINTS = ["fast < slow"]').replace(
        '"low": 2, "high": 100}', '"low": 2, "high": 101, "step": 4}')
    strat = from_source(stepped, "stepped")
    dev = OptunaDeveloper({"stepped": strat})
    history: list[PastResult] = []
    for it in range(3):
        props = dev.propose(DevelopmentInput(
            action="INITIAL" if it == 0 else "TUNE_PARAMETERS", families=["stepped"],
            history=history, n_variants=12, seed=5))
        history += [PastResult(variant_id=f"{it}/{i}", strategy_name="stepped",
                               strategy_code=p.strategy_code, parameters=p.parameters,
                               gate_score=_score(p.parameters)) for i, p in enumerate(props)]
    for r in history:
        assert strat.resolve_params(r.parameters) == r.parameters  # types, range, grid
        assert (r.parameters["fast"] - 2) % 4 == 0 and r.parameters["fast"] <= 98
        assert type(r.parameters["slow"]) is int


def test_a_family_without_new_points_leaves_its_share_to_the_others() -> None:
    dev = OptunaDeveloper({n: load_strategy(n) for n in ("buy_and_hold", "sma_crossover")})
    code = load_strategy("buy_and_hold").source
    sma = load_strategy("sma_crossover")
    history = [PastResult(variant_id="a", strategy_name="buy_and_hold", strategy_code=code,
                          parameters={}, gate_score=0.5),
               PastResult(variant_id="b", strategy_name="sma_crossover",
                          strategy_code=sma.source, parameters=sma.defaults(), gate_score=0.1)]
    props = dev.propose(DevelopmentInput(action="TUNE_PARAMETERS",
                                         families=["buy_and_hold", "sma_crossover"],
                                         history=history, n_variants=6, seed=0))
    assert [p.strategy_name for p in props] == ["sma_crossover"] * 6  # no {} again
    assert len({repr(sorted(p.parameters.items())) for p in props}) == 6
    assert sma.defaults() not in [p.parameters for p in props]
