"""Plain words for what a workflow records in codes: phases, statuses, routing actions, the
analyst's rules, failed criteria, the gate score and the two deflated Sharpe figures.

One vocabulary shared by the command line, the HTML report and the dashboard, so a newcomer
reads the same words everywhere. Only display changes: the state, the tracker and ``--json``
keep the codes (``QUALITY_GATE``, ``R7: far miss``, ``tier 1``).

Every function takes what the records hold (strings, plain mappings) and never raises on text
it does not know: an unknown code or a reason written by a language model is shown as it is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

__all__ = [
    "ACTION_WORDS",
    "DEFLATED_SHARPE_HOLDOUT",
    "DEFLATED_SHARPE_IN_SAMPLE",
    "GATE_SCORE_DEFINITION",
    "METRIC_WORDS",
    "PHASE_WORDS",
    "RULE_WORDS",
    "STATUS_WORDS",
    "TERMINAL_PHASES",
    "Term",
    "failure_sentence",
    "holdout_psr_text",
    "in_sample_dsr_text",
    "plain_action",
    "plain_criterion",
    "plain_decision",
    "plain_lesson",
    "plain_metric",
    "plain_phase",
    "plain_reason",
    "plain_status",
    "status_text",
    "times",
]


class Term(NamedTuple):
    """A figure's short label and its one-line definition; ``str()`` gives both."""

    label: str
    definition: str

    def __str__(self) -> str:
        return f"{self.label}: {self.definition}"


PHASE_WORDS: dict[str, str] = {
    "INITIALIZATION": "starting",
    "TOOL_DEVELOPMENT": "checking strategies",
    "RESEARCH_SWARM": "researching the data",
    "STRATEGY_DEVELOPMENT": "proposing variants",
    "BACKTESTING": "backtesting variants",
    "QUALITY_GATE": "judging variants against the gate",
    "COMPLETED": "finished: a strategy passed",
    "FAILED": "finished: no strategy passed",
}
"""Each phase of `workflow.state.PHASES` as a user would say it."""

TERMINAL_PHASES = frozenset({"COMPLETED", "FAILED"})

STATUS_WORDS: dict[str, str] = {
    "RUNNING": "running",
    "PAUSED": "paused",
    "COMPLETED": "a strategy passed the gate and the holdout",
    "FAILED": "ended without a strategy that passed",
    "INTERRUPTED": "interrupted: its process is gone; `alphaloop resume` carries on",
}
"""Each status of `workflow.state.STATUSES`, plus INTERRUPTED (a RUNNING workflow whose
process is gone, as `workflow.api.process_alive` sees it)."""

ACTION_WORDS: dict[str, str] = {
    "SUCCESS": "keeping it as the winner",
    "TUNE_PARAMETERS": "tuning the parameters",
    "FIX_BUG": "fixing the bug",
    "REFINE_ALGORITHM": "trying a different algorithm",
    "REFINE_RESEARCH": "researching the data again",
    "ABANDON": "stopping",
    "INITIAL": "starting the first research",
    # the trajectory advisor's advice
    "CONTINUE": "carrying on",
    "PIVOT": "changing direction",
}
"""Routing actions (`workflow.routing.Action`), the first pending action and the trajectory
advice, as what happens next."""

RULE_WORDS: dict[str, str] = {
    "R0": "the iteration budget is spent",
    "R1": "signs of a bug (an error, no trades, an undefined metric or a look at later bars)",
    "R2": "passed in-sample but failed on the holdout, so it is overfit",
    "R3": "a near miss",
    "R4": "nothing is left to try",
    "R5": "tuned several times, still far from the gate",
    "R6": "every family the research favoured missed the gate by far",
    "R7": "far from the gate, but tuned little so far",
}
"""The failure analyst's rules (`agents.failure`, docs/agents.md) as plain reasons; the
numbers of a reason are added where it names them."""

_TRAJECTORY_WORDS = {
    "insufficient_data": "too few scores to judge",
    "converging": "scores improving",
    "plateau": "scores flat",
    "diverging": "scores falling",
    "oscillating": "scores going up and down",
}

METRIC_WORDS: dict[str, str] = {
    "total_return": "total return",
    "cagr": "yearly growth (CAGR)",
    "annual_volatility": "yearly volatility",
    "sharpe_ratio": "Sharpe",
    "sortino_ratio": "Sortino",
    "calmar_ratio": "Calmar",
    "max_drawdown": "max drawdown",
    "max_drawdown_duration": "longest drawdown (bars)",
    "win_rate": "win rate",
    "profit_factor": "profit factor",
    "num_trades": "trades",
    "avg_trade_return": "average trade return",
    "exposure": "time in the market",
    "turnover": "turnover",
    "deflated_sharpe": "deflated Sharpe",
}
"""Every metric a gate can judge (`workflow.gate.METRIC_DIRECTIONS`) in words."""

GATE_SCORE_DEFINITION = "gate score: 1 to 3 = passed, below 0 = failed; higher = better margins"
"""One line defining the gate score (`workflow.gate.evaluate`: a pass scores 1 + the mean
margin over the criteria, in [1, 3]; a fail the mean shortfall relative to each threshold, in
[-2, 0); so a higher score is always nearer the gate or further past it). Short enough for an
80-column panel."""

DEFLATED_SHARPE_IN_SAMPLE = Term(
    "in-sample deflated Sharpe",
    "the chance that the best in-sample Sharpe is real given how many variants were tried, "
    "as each trial raises the Sharpe that luck alone reaches",
)
"""The deflated Sharpe ratio of the best variant over every in-sample trial of the workflow
(Bailey & López de Prado 2014; `workflow._dsr`)."""

DEFLATED_SHARPE_HOLDOUT = Term(
    "holdout PSR",
    "the chance that the holdout Sharpe is above 0; at holdout look K it must reach "
    "1 - alpha/K, as every look at the holdout is a test",
)
"""The probabilistic Sharpe ratio of a holdout look against 0 (one trial, so the deflated
Sharpe is the PSR), judged at 1 - alpha/K (`workflow.significance`)."""


def times(n: int) -> str:
    """``once``, ``twice``, ``3 times``."""
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def plain_phase(phase: str) -> str:
    """A phase in words (``TOOL_DEVELOPMENT`` -> ``checking strategies``); an unknown one as
    it is."""
    return PHASE_WORDS.get(phase, phase)


def plain_status(status: str) -> str:
    """A status in words (``FAILED`` -> ``ended without a strategy that passed``)."""
    return STATUS_WORDS.get(status, status)


def status_text(status: str, phase: str) -> str:
    """Status and phase in one phrase that never says a word twice: ``COMPLETED``,
    ``FAILED``, ``RUNNING: backtesting variants``, ``INTERRUPTED while checking strategies``,
    ``FAILED while backtesting variants (an error; resume carries on)``."""
    if phase in TERMINAL_PHASES:
        return status if status == phase or status == "RUNNING" else f"{status} ({phase})"
    if status == "RUNNING":
        return f"RUNNING: {plain_phase(phase)}"
    if status == "FAILED":  # stopped by an error or a signal, not by routing
        return f"FAILED while {plain_phase(phase)} (an error; resume carries on)"
    return f"{status} while {plain_phase(phase)}"


def plain_action(action: str) -> str:
    """What a routing action does next (``REFINE_ALGORITHM`` -> ``trying a different
    algorithm``)."""
    return ACTION_WORDS.get(action, action)


def plain_metric(metric: str) -> str:
    """A metric's name in words (``sharpe_ratio`` -> ``Sharpe``)."""
    return METRIC_WORDS.get(metric, metric.replace("_", " "))


# --- reasons ---------------------------------------------------------------------------------

_RULE = re.compile(r"^(R\d+): (.*)$", re.S)
_SHORTFALL = re.compile(r"worst shortfall (\d+%)")


def _rule_reason(rule: str, text: str) -> str:
    """The plain reason of analyst rule ``rule`` whose own words are ``text``."""
    short = _SHORTFALL.search(text)
    worst = f" (the worst criterion misses by {short.group(1)})" if short else ""
    if rule == "R5" and (m := re.search(r"after (\d+) tuned iterations? of (\S+)", text)):
        return f"{m.group(2)} tuned {times(int(m.group(1)))}, still far from the gate{worst}"
    if rule == "R7" and (m := re.search(r"but (\S+) tuned only (\d+)", text)):
        return (f"far from the gate{worst}, but {m.group(1)} was tuned only "
                f"{times(int(m.group(2)))}")
    if rule == "R3":
        return f"a near miss{worst}"
    if rule == "R4" and (m := re.search(r"nothing left to try: (.*)", text)):
        return f"nothing is left to try: {m.group(1)}"
    if rule == "R6" and (m := re.search(r"favoured family \((.*)\)", text)):
        return f"every family the research favoured ({m.group(1)}) missed the gate by far"
    if rule == "R0":
        return "the iteration budget is spent"
    return RULE_WORDS.get(rule, text)


def plain_reason(reason: str, rule: str | None = None) -> str:
    """A routing reason (`RoutingDecision.reason`) without codes: analyst rules, trajectory
    advice, limits and the holdout's verdict in words. Text it does not know (a language
    model's reasoning) comes back as it is."""
    text = " ".join(str(reason).split())
    if m := re.match(r"multiple strategy refinements failed \((\d+) strategy iterations?\)",
                     text):
        return (f"{m.group(1)} rounds of strategy changes did not pass, so the research needs "
                "to be better")
    if m := re.match(r"trajectory analysis (?:recommends pivoting to research|indicates no "
                     r"convergence): (.*)$", text):
        return _trajectory(m.group(1))
    if m := re.match(r"(Total|Strategy|Research) iteration limit exceeded", text):
        what = {"Total": "iterations", "Strategy": "strategy rounds in this research",
                "Research": "research rounds"}[m.group(1)]
        return f"the limit on {what} is reached"
    if m := re.match(r"(\S+) passed the gate in-sample and on the holdout", text):
        return f"{m.group(1)} passed the gate in-sample and on the holdout"
    if text == "unknown failure classification":
        return "the analyst's advice was not understood"
    if text.startswith("model: "):
        return f"the language model's analysis: {text.removeprefix('model: ')}"
    if m := _RULE.match(text):
        return _rule_reason(rule or m.group(1), m.group(2))
    if rule in RULE_WORDS:
        return _rule_reason(rule, text)
    return text


def _trajectory(advice: str) -> str:
    if m := re.match(r"iteration budget spent \((\d+)/(\d+)\)", advice):
        return f"the iteration budget is spent ({m.group(1)} of {m.group(2)})"
    if m := re.match(r"(\w+): no new best for (\d+) iterations", advice):
        trend = _TRAJECTORY_WORDS.get(m.group(1), m.group(1))
        return f"no new best score for {m.group(2)} iterations ({trend})"
    return f"the search is not converging: {advice}"


def _rule_of(decision: Mapping[str, Any]) -> str | None:
    details = decision.get("details") or {}
    analysis = details.get("failure_analysis") if isinstance(details, Mapping) else None
    rule = analysis.get("rule") if isinstance(analysis, Mapping) else None
    return rule if isinstance(rule, str) else None


def plain_decision(decision: Mapping[str, Any]) -> str:
    """A routing decision (``{"action", "reason", "details"?}``, as `RoutingDecision` dumps
    it or the tracker keeps it) as a plain reason and what happens next, e.g. ``sma_crossover
    tuned twice, still far from the gate: trying a different algorithm``."""
    action = str(decision.get("action") or "")
    reason = str(decision.get("reason") or "")
    # the analyst's own rule, unless routing overrode its recommendation: then the reason
    # names why (limits, trajectory, holdout)
    why = plain_reason(reason, _rule_of(decision))
    what = plain_action(action) if action else ""
    if not why:
        return what
    return f"{why}: {what}" if what else why


_LESSON = re.compile(r"^\[research (\d+), strategy (\d+)\] (\w+) \(([^)]*)\): (.*)$", re.S)


def plain_lesson(lesson: str) -> str:
    """A lesson of the state in words: a routing lesson (``[research 0, strategy 1]
    REFINE_ALGORITHM (tier 1): R5: ...``) becomes ``research 0, strategy 1: <plain
    decision>`` (the iteration numbers as ``alphaloop show`` prints them);
    any other lesson (tools, retired families, language model) comes back as it is."""
    m = _LESSON.match(str(lesson))
    if not m:
        return str(lesson)
    research, strategy, action, _tier, reason = m.groups()
    body = plain_decision({"action": action, "reason": reason})
    return f"research {research}, strategy {strategy}: {body}"


# --- failed criteria -------------------------------------------------------------------------

_NEEDS = re.compile(r"^(evidence: )?(\w+) (\S+), needs (>=|<=) ([^\s(]+)")
_UNDEFINED = re.compile(r"^(evidence: )?(\w+) undefined \(([^)]*)\)")
_MISSING_METRIC = re.compile(r"^(\w+) missing from metrics")


def _num(metric: str, value: float) -> str:
    if metric in ("num_trades", "max_drawdown_duration") and float(value).is_integer():
        return str(int(value))
    if float(value).is_integer():
        return f"{value:.1f}"
    return f"{value:.3g}"


def plain_criterion(failed: str | Mapping[str, Any]) -> str:
    """One failed criterion in words: ``Sharpe 0.976 is below 1.0``, ``only 3 trades; the
    evidence floor needs 10 (--min-trades)``. Accepts the reason a record keeps (text) or a
    `GateResult.failed_criteria` dict."""
    if isinstance(failed, Mapping):
        metric, value = str(failed.get("metric")), failed.get("value")
        op, threshold = failed.get("op"), failed.get("threshold")
        reason = str(failed.get("reason") or "")
        if reason.startswith("evidence: ") or value is None or threshold is None:
            return plain_criterion(reason) if reason else f"{plain_metric(metric)} is undefined"
        return _compare(metric, float(value), str(op), float(threshold))
    text = " ".join(str(failed).split())
    if m := _NEEDS.match(text):
        evidence, metric, value, op, threshold = m.groups()
        try:
            t = float(threshold)
            v = float(value) if value != "undefined" else math.nan
        except ValueError:
            return text
        if evidence and metric == "num_trades":
            n = "no" if not math.isfinite(v) or v == 0 else f"only {int(v)}"
            return f"{n} trades; the evidence floor needs {_num(metric, t)} (--min-trades)"
        if not math.isfinite(v):
            return f"{plain_metric(metric)} is undefined"
        return _compare(metric, v, op, t)
    if m := _UNDEFINED.match(text):
        evidence, metric, why = m.groups()
        if evidence and metric == "profit_factor":
            return (f"{why}, so no profit factor; the evidence floor needs a losing trade "
                    "among them")
        return f"{plain_metric(metric)} is undefined ({why})"
    if m := _MISSING_METRIC.match(text):
        return f"{plain_metric(m.group(1))} was not computed"
    return text


def _compare(metric: str, value: float, op: str, threshold: float) -> str:
    side = "below" if op == ">=" else "above"
    return (f"{plain_metric(metric)} {_num(metric, value)} is {side} "
            f"{_num(metric, threshold)}")


def failure_sentence(
    failed_criteria: Iterable[str | Mapping[str, Any]],
    metrics: Mapping[str, Any] | None = None,
    criteria: Iterable[Any] | Mapping[str, Any] | None = None,
) -> str:
    """Why a candidate failed, in one sentence: ``Sharpe 0.976 is below 1.0; all other
    criteria pass``. ``criteria`` (the gate: expressions, a mapping or `QualityCriteria`)
    lets it say whether any other criterion passed; ``metrics`` is accepted for callers
    that hold only the metrics and the gate (their failures are then found here)."""
    failed = list(failed_criteria)
    gate = _expressions(criteria)
    if not failed and metrics is not None and gate:
        from alphaloop.workflow.gate import evaluate

        failed = list(evaluate(metrics, criteria).failed_criteria)  # type: ignore[arg-type]
    if not failed:
        return "every criterion passes"
    parts = list(dict.fromkeys(plain_criterion(f) for f in failed))
    simple = len(parts) <= 2 and not any(";" in p for p in parts)
    text = " and ".join(parts) if simple else "; ".join(parts)
    failing = {_metric_of(f) for f in failed}
    others = [g for g in gate if _metric_of(g) not in failing]
    if others:
        text += "; all other criteria pass"
    return text


def _expressions(criteria: Any) -> list[str]:
    if criteria is None:
        return []
    if isinstance(criteria, Mapping):
        return [f"{k}{v}" if isinstance(v, str) else f"{k}:{v}" for k, v in criteria.items()]
    return [str(c) for c in criteria]


def _metric_of(item: str | Mapping[str, Any]) -> str:
    if isinstance(item, Mapping):
        return str(item.get("metric"))
    m = re.match(r"^(?:evidence: )?(\w+)", str(item).strip())
    return m.group(1) if m else str(item)


# --- the two deflated Sharpe figures -----------------------------------------------------------

def in_sample_dsr_text(value: float | None, trials: int) -> str:
    """``in-sample deflated Sharpe 0.750 over 16 trials`` (``n/a`` when undefined)."""
    shown = "n/a" if value is None else f"{value:.3f}"
    return f"{DEFLATED_SHARPE_IN_SAMPLE.label} {shown} over {trials} trials"


def holdout_psr_text(psr: float | None, look: int, threshold: float) -> str:
    """``holdout PSR 0.830 at look 3 (needs 0.983)``; ``needs`` is left out when the test
    is off (threshold 0)."""
    shown = "n/a" if psr is None else f"{psr:.3f}"
    need = f" (needs {threshold:.3f})" if threshold else " (significance test off)"
    return f"{DEFLATED_SHARPE_HOLDOUT.label} {shown} at look {look}{need}"
