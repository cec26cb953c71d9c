"""Failure analysis: why did the latest variant fail the in-sample gate, and what next?

`RuleBasedFailureAnalyst` applies the ordered rules R0-R7 of docs/agents.md to in-sample
metrics, gate verdicts and the iteration history. Holdout metrics never reach it: all it
learns of a holdout is `IterationRecord.holdout_failed`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from alphaloop.agents._criteria import NEAR_MISS_BAND, describe, fmt, is_near_miss, shortfall
from alphaloop.agents.protocols import (
    FAMILIES,
    BugDetection,
    FailureAnalysis,
    FailureAnalysisInput,
    IterationRecord,
)
from alphaloop.agents.trajectory import best_scores_per_iteration

TUNED_BEFORE_REDESIGN = 2
"""Iterations of one family with far misses before the analyst asks for a new algorithm."""
CORE_METRICS = ("sharpe_ratio", "total_return", "max_drawdown", "num_trades")
"""Metrics that must be finite in every record; others (e.g. profit_factor) may be None."""
BENCHMARKS = ("buy_and_hold",)
"""Families that are references, not candidates ('nothing left to try' ignores them)."""


def _label(r: IterationRecord) -> str:
    params = ", ".join(f"{k}={v}" for k, v in sorted(r.parameters.items()))
    return f"variant {r.strategy_name}({params})"


def hard_bugs(r: IterationRecord) -> list[str]:
    """Code faults whatever the parameters: an exception, or look-ahead."""
    found = []
    if r.error:
        found.append(f"{_label(r)}: raised {r.error}")
    if r.lookahead:
        found.append(f"{_label(r)}: look-ahead detected; decide positions from bars <= t only")
    return found


def soft_bugs(r: IterationRecord) -> list[str]:
    """Signs of a fault that one odd parameter set can also cause: no trades, and a core
    metric (`CORE_METRICS`) that is None, NaN or infinite."""
    found = []
    trades = r.metrics.get("num_trades")
    if trades is not None and math.isfinite(trades) and trades == 0:
        found.append(
            f"{_label(r)}: no trades (num_trades 0); entry never fires, check "
            "thresholds and warm-up"
        )
    gated = {c.metric: c.value for c in r.failed_criteria}
    for m in CORE_METRICS:
        if m in r.metrics or m in gated:
            v = r.metrics.get(m, gated.get(m))
            if v is None or not math.isfinite(v):
                found.append(f"{_label(r)}: metric {m} is {v}")
    return found


def bug_evidence(r: IterationRecord) -> list[str]:
    """Why this record looks like a bug rather than a bad idea (empty if it does not)."""
    return hard_bugs(r) + soft_bugs(r)


def _is_far_miss(r: IterationRecord) -> bool:
    return not r.gate_passed and not r.holdout_failed and not is_near_miss(r.failed_criteria)


def _iterations(records: Sequence[IterationRecord]) -> int:
    its = {r.iteration for r in records}
    return len(its) if None not in its else len(records)


class RuleBasedFailureAnalyst:
    """Offline `FailureAnalyst`: the documented rules R0-R7, first match wins."""

    def analyze_failure(self, inp: FailureAnalysisInput) -> FailureAnalysis:
        """Classify the latest in-sample failure of `inp`; see docs/agents.md for the rules."""
        gate, hist = inp.quality_gate_results, list(inp.iteration_history)
        latest = IterationRecord(
            strategy_name=inp.strategy_name,
            metrics=inp.backtest_metrics,
            gate_passed=gate.passed,
            gate_score=gate.score,
            failed_criteria=gate.failed_criteria,
        )
        batch = [
            r for r in hist if hist[-1].iteration is not None and r.iteration == hist[-1].iteration
        ] or hist[-1:]
        same = bool(hist) and hist[-1].metrics == latest.metrics
        head = hist[-1] if same else latest
        hard = [b for r in [head, *batch] for b in hard_bugs(r)]
        soft = [b for r in batch if r is not head for b in soft_bugs(r)]
        odd = sum(bool(soft_bugs(r)) for r in batch if r is not head)
        # a soft sign in the latest record or in most of the batch is a bug; in one odd variant
        # it is a parameter region
        soft = soft_bugs(head) + (soft if 2 * odd > len(batch) else [])
        bugs = list(dict.fromkeys(hard + soft))
        detection = BugDetection(has_bug=bool(bugs), bug_locations=bugs)
        family = next(
            (r.family_name for r in reversed(hist) if r.strategy_name == inp.strategy_name),
            inp.strategy_name,
        )
        fair = [r for r in hist if not bug_evidence(r)]
        tried = {r.family_name for r in fair}
        far = {f for f in tried if all(_is_far_miss(r) for r in fair if r.family_name == f)}
        scores = best_scores_per_iteration(hist)
        remaining = inp.max_iterations - inp.current_iteration
        actions = [describe(c) for c in gate.failed_criteria]

        def out(rec: str, rule: str, why: str, conf: float, acts: list[str]) -> FailureAnalysis:
            return FailureAnalysis(
                recommendation=rec,
                reasoning=f"{rule}: {why}",
                specific_actions=acts,
                bug_detection=detection,
                confidence=conf,
                rule=rule,
            )

        if remaining <= 0:
            trend = "below" if scores and scores[-1] < max(scores) else "at"
            return out(
                "ABANDON",
                "R0",
                f"iteration budget spent ({inp.current_iteration}/{inp.max_iterations}); "
                f"last score {trend} the best ({fmt(max(scores, default=None))})",
                0.9,
                ["record lessons: " + "; ".join(actions)] if actions else [],
            )
        if bugs:
            return out(
                "FIX_BUG",
                "R1",
                f"{len(bugs)} sign(s) of a bug in the latest batch",
                0.95 if hard else 0.85,
                bugs,
            )
        if any(r.holdout_failed for r in batch):
            return out(
                "REFINE_ALGORITHM",
                "R2",
                "passed in-sample but failed on holdout: overfit",
                0.7,
                [
                    "simplify: fewer free parameters, longer lookbacks",
                    "regularise: prefer a broad plateau of good parameters over a peak",
                    "add a trend or regime filter justified by in-sample research",
                ],
            )
        worst = max((shortfall(c) for c in gate.failed_criteria), default=0.0)
        if is_near_miss(gate.failed_criteria):
            conf = 0.5 + 0.4 * (1 - worst / NEAR_MISS_BAND)
            params = ", ".join(
                f"{k}={v}" for k, v in sorted((batch[-1].parameters if batch else {}).items())
            )
            return out(
                "TUNE_PARAMETERS",
                "R3",
                f"near miss: worst shortfall {worst:.0%} <= {NEAR_MISS_BAND:.0%}",
                round(conf, 3),
                [*actions, f"search narrowly around {inp.strategy_name}({params})"],
            )
        candidates = set(FAMILIES) - set(BENCHMARKS)
        declining = len(scores) >= 3 and scores[-1] < scores[-2] < scores[-3]
        if candidates <= far or (declining and remaining <= 1):
            why = (
                "every library family far-missed"
                if candidates <= far
                else f"scores fell three iterations running with {remaining} left"
            )
            return out("ABANDON", "R4", f"nothing left to try: {why}", 0.8, actions)
        tuned = _iterations([r for r in fair if r.family_name == family])
        if tuned >= TUNED_BEFORE_REDESIGN:
            return out(
                "REFINE_ALGORITHM",
                "R5",
                f"far miss (worst shortfall {worst:.0%}) after "
                f"{tuned} tuned iterations of {family}",
                0.65,
                [*actions, f"redesign {family}: change the signal, not its parameters"],
            )
        favoured = [f for f in inp.favoured_families if f not in BENCHMARKS]
        if favoured and set(favoured) <= far and _iterations(fair) >= 2:
            return out(
                "REFINE_RESEARCH",
                "R6",
                f"far miss on every favoured family ({', '.join(favoured)})",
                0.6,
                [*actions, "re-run research: the favoured premise did not hold in-sample"],
            )
        return out(
            "TUNE_PARAMETERS",
            "R7",
            f"far miss (worst shortfall {worst:.0%}) but {family} tuned only {tuned} iteration(s)",
            0.4,
            [*actions, f"widen the parameter ranges of {family}"],
        )
