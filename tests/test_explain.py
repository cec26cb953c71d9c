"""`workflow.explain`: every code the workflow records has plain words, and the words say what
the code means. The codes are read from the code itself, so a new phase, action, rule or metric
without words fails here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest

import alphaloop.agents.failure as failure_module
from alphaloop.agents.protocols import Classification, NextAction
from alphaloop.workflow import explain
from alphaloop.workflow.explain import (
    plain_action,
    plain_decision,
    plain_lesson,
    plain_phase,
    plain_reason,
    plain_status,
    status_text,
)
from alphaloop.workflow.gate import DEFAULT_CRITERIA, METRIC_DIRECTIONS, evaluate
from alphaloop.workflow.routing import TIER, Action
from alphaloop.workflow.state import PHASES, STATUSES

CODE = re.compile(r"\b[A-Z]{2,}_[A-Z_]+\b|\bR\d\b|\btier \d\b")


def _plain(text: str) -> bool:
    """No code left: no SHOUTED_NAME, no rule code, no tier."""
    return not CODE.search(text)


@pytest.mark.parametrize("phase", PHASES)
def test_every_phase_has_plain_words(phase: str) -> None:
    words = plain_phase(phase)
    assert words != phase and _plain(words) and words == words.lower()


def test_phases_read_as_the_issue_asks() -> None:
    assert plain_phase("TOOL_DEVELOPMENT") == "checking strategies"
    assert plain_phase("RESEARCH_SWARM") == "researching the data"
    assert len({plain_phase(p) for p in PHASES}) == len(PHASES)  # no two phases alike


@pytest.mark.parametrize("status", [*STATUSES, "INTERRUPTED"])
def test_every_status_has_plain_words(status: str) -> None:
    assert plain_status(status) != status and _plain(plain_status(status))


@pytest.mark.parametrize("action", sorted({*get_args(Action), *TIER, *get_args(NextAction),
                                           "INITIAL"}))
def test_every_action_has_plain_words(action: str) -> None:
    words = plain_action(action)
    assert words != action and _plain(words)


def test_every_analyst_rule_has_plain_words() -> None:
    used = set(re.findall(r'"(R\d+)"', Path(failure_module.__file__).read_text()))
    assert used == {f"R{i}" for i in range(8)}  # the rules of docs/agents.md
    for rule in used:
        assert rule in explain.RULE_WORDS and _plain(explain.RULE_WORDS[rule])


def test_every_metric_a_gate_judges_has_words() -> None:
    assert set(METRIC_DIRECTIONS) <= set(explain.METRIC_WORDS)


@pytest.mark.parametrize("classification", get_args(Classification))
def test_trajectory_advice_in_words(classification: str) -> None:
    reason = (f"trajectory analysis recommends pivoting to research: {classification}: no new "
              "best for 3 iterations, 0 straight declines; keep the best (-0.049) and change "
              "direction")
    words = plain_decision({"action": "REFINE_RESEARCH", "reason": reason})
    assert words.startswith("no new best score for 3 iterations (")
    assert words.endswith(": researching the data again") and classification not in words


# the analyst's own reasons, as `agents.failure` words them
REASONS = {
    "R0": ("ABANDON", "R0: iteration budget spent (5/5); last score below the best (-0.050)"),
    "R1": ("FIX_BUG", "R1: 2 sign(s) of a bug in the latest batch"),
    "R2": ("REFINE_ALGORITHM", "R2: passed in-sample but failed on holdout: overfit"),
    "R3": ("TUNE_PARAMETERS", "R3: near miss: worst shortfall 19% <= 25%"),
    "R4": ("ABANDON", "R4: nothing left to try: every library family far-missed"),
    "R5": ("REFINE_ALGORITHM",
           "R5: far miss (worst shortfall 107%) after 2 tuned iterations of sma_crossover"),
    "R6": ("REFINE_RESEARCH", "R6: far miss on every favoured family (sma_crossover, rsi)"),
    "R7": ("TUNE_PARAMETERS",
           "R7: far miss (worst shortfall 65%) but donchian_breakout tuned only 1 iteration(s)"),
}


def test_reasons_cover_every_rule() -> None:
    assert set(REASONS) == set(explain.RULE_WORDS)


@pytest.mark.parametrize("rule", sorted(REASONS))
def test_every_rule_decision_reads_without_codes(rule: str) -> None:
    action, reason = REASONS[rule]
    words = plain_decision({"action": action, "reason": reason,
                            "details": {"failure_analysis": {"rule": rule}}})
    assert _plain(words), words
    assert words.endswith(plain_action(action))


def test_the_issues_example_and_its_numbers() -> None:
    action, reason = REASONS["R5"]
    assert plain_decision({"action": action, "reason": reason}) == (
        "sma_crossover tuned twice, still far from the gate (the worst criterion misses by "
        "107%): trying a different algorithm")
    action, reason = REASONS["R7"]
    assert "donchian_breakout was tuned only once" in plain_decision(
        {"action": action, "reason": reason})


def test_routing_overrides_keep_their_own_reason() -> None:
    # REFINE_ALGORITHM turned into REFINE_RESEARCH from the third strategy iteration
    reason = ("multiple strategy refinements failed (3 strategy iterations), need better "
              "research; analyst said: R5: far miss (worst shortfall 127%) after 4 tuned "
              "iterations of donchian_breakout")
    words = plain_decision({"action": "REFINE_RESEARCH", "reason": reason,
                            "details": {"failure_analysis": {"rule": "R5"}}})
    assert words == ("3 rounds of strategy changes did not pass, so the research needs to be "
                     "better: researching the data again")
    spent = plain_decision({"action": "ABANDON", "reason": "the holdout is spent: 10 of 10 "
                            "looks used (--max-holdout-looks) without a significant pass"})
    assert spent == ("the holdout is spent: 10 of 10 looks used (--max-holdout-looks) without "
                     "a significant pass: stopping")  # plain words already, kept whole


@pytest.mark.parametrize("which", ["Total", "Strategy", "Research"])
def test_iteration_limits_in_words(which: str) -> None:
    reason = f"{which} iteration limit exceeded"
    state_source = Path(explain.__file__).with_name("state.py").read_text()
    assert f'"{reason}"' in state_source  # the words the state really uses
    words = plain_decision({"action": "ABANDON", "reason": reason})
    assert words.startswith("the limit on ") and words.endswith(": stopping")


def test_unknown_reasons_pass_through() -> None:
    assert plain_reason("no variant produced a result") == "no variant produced a result"
    assert plain_reason("model: the trend filter is too slow") == (
        "the language model's analysis: the trend filter is too slow")


@pytest.mark.parametrize("tier", sorted(set(TIER.values())))
def test_lessons_lose_codes_and_tiers(tier: str) -> None:
    lesson = f"[research 1, strategy 0] TUNE_PARAMETERS ({tier}): {REASONS['R3'][1]}"
    words = plain_lesson(lesson)
    assert words == ("research 1, strategy 0: a near miss (the worst criterion misses by "
                     "19%): tuning the parameters")
    other = "tool development: excluded slow (timed out)"
    assert plain_lesson(other) == other


def test_failure_sentence_from_real_gate_results() -> None:
    metrics = {"sharpe_ratio": 0.976, "max_drawdown": 0.15, "win_rate": 0.55,
               "num_trades": 30, "profit_factor": 1.4}
    result = evaluate(metrics, DEFAULT_CRITERIA, min_trades=10)
    reasons = [f["reason"] for f in result.failed_criteria]
    gate = DEFAULT_CRITERIA.to_expressions()
    expected = "Sharpe 0.976 is below 1.0; all other criteria pass"
    assert explain.failure_sentence(reasons, criteria=gate) == expected
    assert explain.failure_sentence(result.failed_criteria, criteria=gate) == expected
    assert explain.failure_sentence([], metrics, criteria=gate) == expected
    assert explain.failure_sentence([], metrics, criteria=DEFAULT_CRITERIA.to_dict()) == expected
    worse = evaluate({**metrics, "max_drawdown": 0.31, "win_rate": 0.4}, DEFAULT_CRITERIA)
    both = explain.failure_sentence([f["reason"] for f in worse.failed_criteria],
                                    criteria=gate)
    assert both == ("Sharpe 0.976 is below 1.0; max drawdown 0.31 is above 0.2; win rate 0.4 is "
                    "below 0.5; all other criteria pass")
    every = evaluate({}, ["sharpe_ratio>=1"])
    assert explain.failure_sentence([f["reason"] for f in every.failed_criteria],
                                    criteria=["sharpe_ratio>=1"]) == "Sharpe was not computed"


def test_failure_sentence_explains_the_evidence_floor() -> None:
    few = evaluate({"sharpe_ratio": 2.0, "num_trades": 3, "profit_factor": None},
                   ["sharpe_ratio>=1"], min_trades=10)
    words = explain.failure_sentence([f["reason"] for f in few.failed_criteria],
                                     criteria=["sharpe_ratio>=1"])
    assert words.startswith("only 3 trades; the evidence floor needs 10 (--min-trades)")
    assert "no losing trade" in words and words.endswith("; all other criteria pass")
    alone = explain.failure_sentence([f["reason"] for f in few.failed_criteria],
                                     criteria=["num_trades>=10"])
    assert "all other criteria pass" not in alone  # the only criterion failed


def test_status_and_phase_never_repeat_a_word() -> None:
    for status in (*STATUSES, "INTERRUPTED"):
        for phase in PHASES:
            text = status_text(status, phase)
            words = re.findall(r"\w+", text.lower())
            assert len(words) == len(set(words)) or "the" in words, text
    assert status_text("FAILED", "FAILED") == "FAILED"
    assert status_text("COMPLETED", "COMPLETED") == "COMPLETED"
    assert status_text("RUNNING", "BACKTESTING") == "RUNNING: backtesting variants"
    assert status_text("INTERRUPTED", "TOOL_DEVELOPMENT") == (
        "INTERRUPTED while checking strategies")


def test_definitions_are_one_line_and_labelled() -> None:
    assert "\n" not in explain.GATE_SCORE_DEFINITION
    assert explain.GATE_SCORE_DEFINITION.startswith("gate score: ")
    for term in (explain.DEFLATED_SHARPE_IN_SAMPLE, explain.DEFLATED_SHARPE_HOLDOUT):
        assert "\n" not in str(term) and str(term).startswith(term.label + ": ")
    assert explain.DEFLATED_SHARPE_IN_SAMPLE.label != explain.DEFLATED_SHARPE_HOLDOUT.label
    assert explain.in_sample_dsr_text(0.75, 16) == "in-sample deflated Sharpe 0.750 over 16 trials"
    assert explain.holdout_psr_text(0.8301, 3, 0.98333) == (
        "holdout PSR 0.830 at look 3 (needs 0.983)")
