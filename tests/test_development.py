"""The offline strategy developer: deterministic, Optuna-driven tuning, real refinements."""

from __future__ import annotations

import numpy as np
import pytest

from alphaloop.agents.development import (
    FIXES,
    REFINEMENTS,
    DevelopmentInput,
    OptunaDeveloper,
    PastResult,
    refine,
)
from alphaloop.backtest.strategy import (
    declared_parameters,
    library_names,
    load_strategy,
    lookahead_check,
)
from alphaloop.data import load

GOOG = load("GOOG")


@pytest.fixture(scope="module")
def dev() -> OptunaDeveloper:
    return OptunaDeveloper({n: load_strategy(n) for n in library_names()})


def history(dev: OptunaDeveloper, n: int = 8) -> list[PastResult]:
    first = dev.propose(DevelopmentInput(action="INITIAL", families=["sma_crossover", "macd"],
                                         n_variants=n, seed=1))
    return [PastResult(variant_id=f"v{i}", strategy_name=p.strategy_name,
                       strategy_code=p.strategy_code, parameters=p.parameters,
                       gate_score=-1.0 + 0.1 * i) for i, p in enumerate(first)]


def test_initial_starts_from_declared_defaults(dev: OptunaDeveloper) -> None:
    props = dev.propose(DevelopmentInput(action="INITIAL", families=["sma_crossover", "macd"],
                                         n_variants=5, seed=1))
    assert len(props) == 5
    assert props[0].parameters == load_strategy("sma_crossover").defaults()
    assert props[1].parameters == load_strategy("macd").defaults()


def test_tuning_is_deterministic_new_and_inside_the_declared_space(dev: OptunaDeveloper) -> None:
    past = history(dev)
    inp = DevelopmentInput(action="TUNE_PARAMETERS", families=["sma_crossover", "macd"],
                           history=past, n_variants=6, seed=1)
    a, b = dev.propose(inp), dev.propose(inp)
    assert a == b
    tried = {(p.strategy_name, repr(sorted(p.parameters.items()))) for p in past}
    for p in a:
        assert (p.strategy_name, repr(sorted(p.parameters.items()))) not in tried
        strat = load_strategy(p.strategy_name)
        assert strat.resolve_params(p.parameters) == p.parameters  # in range, right types
        assert "told" in p.description
    other_seed = dev.propose(inp.model_copy(update={"seed": 2}))
    assert other_seed != a


@pytest.mark.usefixtures("in_process")
@pytest.mark.parametrize("refinement", sorted(REFINEMENTS))
def test_refinements_are_causal_code_that_changes_positions(refinement: str) -> None:
    base = load_strategy("sma_crossover")
    refined = refine(base, refinement)
    assert refined.name == f"sma_crossover+{refinement}"
    # the algorithm is extended in code, visibly: the base's code is all there, and its
    # PARAMETERS literal gains the refinement's parameters (still one literal)
    head, _, rest = base.source.partition("PARAMETERS = ")
    body = rest[rest.index("\ndef ") :]
    assert head in refined.source and body in refined.source
    # ... but the base parameters the refinement decides: out of the search, fixed in the call
    fixed = FIXES.get(refinement, {})
    kept = {k: v for k, v in declared_parameters(base).items() if k not in fixed}
    assert declared_parameters(refined).items() >= kept.items()
    assert not set(fixed) & set(declared_parameters(refined))
    assert refined.source.count("PARAMETERS = ") == 1
    params = refined.defaults()
    pos = refined.positions(GOOG, params)
    assert np.all(np.abs(pos) <= 1.0)
    assert not np.array_equal(pos, base.positions(GOOG, base.defaults()))
    assert lookahead_check(refined, GOOG, params, cuts=8) == []
    if refinement == "long_only":
        assert pos.min() >= 0.0
        assert "(fixes allow_short=False)" in refined.source  # recorded where it is done


def test_refine_algorithm_refines_the_best_and_brings_a_new_family(dev: OptunaDeveloper) -> None:
    past = history(dev)
    props = dev.propose(DevelopmentInput(action="REFINE_ALGORITHM",
                                         families=["sma_crossover", "macd", "momentum"],
                                         history=past, n_variants=4, seed=1))
    names = {p.strategy_name for p in props}
    best = max(past, key=lambda r: r.gate_score or -9).strategy_name
    assert any(n.startswith(f"{best}+") for n in names)
    assert "momentum" in names


def test_fix_bug_resets_to_defaults_and_retires_lookahead(dev: OptunaDeveloper) -> None:
    code = load_strategy("sma_crossover").source
    failing = [
        PastResult(variant_id="a", strategy_name="sma_crossover", strategy_code=code,
                   parameters={"fast": 90, "slow": 95, "allow_short": True}, num_trades=0),
        PastResult(variant_id="b", strategy_name="sma_crossover", strategy_code=code,
                   parameters={"fast": 5, "slow": 9, "allow_short": True}, lookahead=True),
    ]
    props = dev.propose(DevelopmentInput(action="FIX_BUG", families=["sma_crossover"],
                                         failing=failing, n_variants=4))
    assert len(props) == 1
    assert props[0].parent_variant_id == "a"
    assert props[0].parameters == load_strategy("sma_crossover").defaults()
    assert props[0].parameter_changes["fast"] == {"from": 90, "to": 10}


def test_a_fresh_developer_proposes_what_the_first_did(dev: OptunaDeveloper) -> None:
    """Resume builds a new developer from the same history: its proposals are the same, big
    batches (one TPE fit shared by several asks) included, and none repeats a tried point."""
    past = history(dev, n=16)
    inp = DevelopmentInput(action="TUNE_PARAMETERS", families=["sma_crossover", "macd"],
                           history=past, n_variants=40, seed=4)
    first = dev.propose(inp)
    again = OptunaDeveloper({n: load_strategy(n) for n in library_names()}).propose(inp)
    assert first == again and len(first) == 40
    keys = [(p.strategy_name, repr(sorted(p.parameters.items()))) for p in [*past, *first]]
    assert len(set(keys)) == len(keys)
    assert all(p.parameters["fast"] < p.parameters["slow"] for p in first)
