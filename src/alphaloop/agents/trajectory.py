"""Trajectory analysis: is the search converging, stuck, getting worse or just noise?

`TrajectoryAnalyzer` computes statistics of the best in-sample gate score of each iteration
and classifies the sequence; a `TrajectoryAdvisor` turns that into CONTINUE / PIVOT / ABANDON.
Scores are in-sample gate scores only, never holdout results. Thresholds: docs/agents.md.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from alphaloop.agents.protocols import (
    Classification,
    IterationRecord,
    RecordsSummary,
    TrajectoryAdvice,
    TrajectoryStats,
)

FLAT_TOL = 0.01
"""A step smaller than this (in score units) is 'no change'."""
T_SIGNIFICANT = 2.0
"""|t| of the least-squares slope that counts as a real trend."""
T_CAP = 1e6
"""The slope t-stat of a perfect line (zero residuals) is reported as +-T_CAP."""
PATIENCE = 3
"""Iterations without a new best before the advisor pivots."""
ABANDON_AFTER = 6
"""Iterations without a new best before the advisor abandons (two patience windows)."""


def best_scores_per_iteration(history: Sequence[IterationRecord]) -> list[float]:
    """Best gate score of each iteration, in iteration order (not the running best).

    Records are grouped by `iteration`; a record without one is its own iteration. Records
    without a score (errors) are skipped, and so is an iteration with no score at all.
    """
    groups: dict[tuple[int, int], list[float]] = {}
    for pos, rec in enumerate(history):
        key = (rec.iteration, -1) if rec.iteration is not None else (pos, pos)
        scores = groups.setdefault(key, [])
        if rec.gate_score is not None and math.isfinite(rec.gate_score):
            scores.append(rec.gate_score)
    return [max(v) for _, v in sorted(groups.items()) if v]


class TrajectoryAnalyzer:
    """Statistics and classification of the per-iteration best scores (in-sample)."""

    def __init__(self, best_scores_per_iteration: Sequence[float], *, tol: float = FLAT_TOL):
        """Non-finite scores are dropped; `tol` is the smallest step that counts as a change."""
        self.scores = np.array([s for s in best_scores_per_iteration if math.isfinite(s)], float)
        self.tol = tol

    def analyze_trajectory(self) -> TrajectoryStats:
        """Slope (least squares) and its t-stat, mean/last improvement, sign changes, volatility."""
        s, tol = self.scores, self.tol
        n = len(s)
        d = np.diff(s)
        slope, slope_t = 0.0, None
        if n >= 2:
            x = np.arange(n, dtype=float) - (n - 1) / 2
            sxx = float(x @ x)
            slope = float(x @ (s - s.mean()) / sxx)
        if n >= 3:
            resid = s - s.mean() - slope * (np.arange(n) - (n - 1) / 2)
            se = math.sqrt(float(resid @ resid) / (n - 2) / sxx)
            slope_t = slope / se if se > 1e-12 else math.copysign(T_CAP, slope) if slope else 0.0
        signs = [int(np.sign(v)) for v in d if abs(v) > tol]
        sign_changes = sum(a != b for a, b in itertools.pairwise(signs))
        best_idx, running = 0, -math.inf
        for i, v in enumerate(s):
            if v > running + tol:
                best_idx = i
            running = max(running, v)
        decline_run = 0
        for v in d[::-1]:
            if v >= -tol:
                break
            decline_run += 1
        flat_run = 0
        for v in d[::-1]:
            if abs(v) > tol:
                break
            flat_run += 1
        mean_imp = float(d.mean()) if len(d) else 0.0
        stats = {
            "n": n,
            "slope": slope,
            "slope_t": slope_t,
            "mean_improvement": mean_imp,
            "sign_changes": sign_changes,
            "last_improvement": float(d[-1]) if len(d) else None,
            "volatility": float(d.std(ddof=1)) if len(d) >= 2 else 0.0,
            "best": float(s.max()) if n else None,
            "iterations_since_best": n - 1 - best_idx if n else 0,
            "decline_run": decline_run,
        }
        cls = _classify(
            n,
            slope_t,
            mean_imp,
            sign_changes,
            len(signs),
            decline_run,
            flat_run,
            float(np.ptp(s)) if n else 0.0,
            tol,
        )
        return TrajectoryStats(**stats, classification=cls)


def _classify(
    n: int,
    slope_t: float | None,
    mean_imp: float,
    sign_changes: int,
    moves: int,
    decline_run: int,
    flat_run: int,
    spread: float,
    tol: float,
) -> Classification:
    """The rules of docs/agents.md, first match wins."""
    if n < 3 or slope_t is None:
        return "insufficient_data"
    if flat_run >= 2 or spread <= tol:
        return "plateau"
    if decline_run >= 3 or (slope_t <= -T_SIGNIFICANT and mean_imp < -tol):
        return "diverging"
    if slope_t >= T_SIGNIFICANT and mean_imp > tol:
        return "converging"
    if sign_changes >= 2 and sign_changes >= (moves - 1) / 2:
        return "oscillating"
    if mean_imp > tol:
        return "converging"
    return "diverging" if mean_imp < -tol else "plateau"


class RuleBasedTrajectoryAdvisor:
    """Offline advisor: CONTINUE while improving, PIVOT when stuck, ABANDON when long stuck.

    Rules (first match): fewer than 3 scored iterations -> CONTINUE; iteration budget spent ->
    ABANDON; converging -> CONTINUE; no new best for `abandon_after` iterations -> ABANDON;
    for `patience` iterations (or `patience` straight declines) -> PIVOT; else CONTINUE.
    A decline alone never abandons: it says the last changes hurt, not that the idea is dead,
    and the best variant is kept; pivoting from it is cheaper than giving up.
    """

    def __init__(self, patience: int = PATIENCE, abandon_after: int = ABANDON_AFTER) -> None:
        """`patience` / `abandon_after`: iterations without a new best before PIVOT / ABANDON."""
        if not 1 <= patience < abandon_after:
            raise ValueError("need 1 <= patience < abandon_after, e.g. patience=3, abandon_after=6")
        self.patience, self.abandon_after = patience, abandon_after

    def analyze_trajectory(
        self, records_summary: RecordsSummary, stats: TrajectoryStats
    ) -> TrajectoryAdvice:
        """Advise from in-sample trajectory statistics and the records summary."""
        cls, since = stats.classification, stats.iterations_since_best
        summary = records_summary
        if stats.n < 3:
            action, why = "CONTINUE", f"only {stats.n} scored iterations; too few to judge"
        elif summary.max_iterations is not None and summary.iterations >= summary.max_iterations:
            action, why = (
                "ABANDON",
                (f"iteration budget spent ({summary.iterations}/{summary.max_iterations})"),
            )
        elif cls == "converging":
            action, why = (
                "CONTINUE",
                (f"scores improving (slope {stats.slope:+.3f}/iteration, t {stats.slope_t:+.1f})"),
            )
        elif since >= self.abandon_after:
            action, why = (
                "ABANDON",
                (
                    f"{cls}: no new best for {since} iterations (>= "
                    f"{self.abandon_after}); further search mostly mines noise"
                ),
            )
        elif since >= self.patience or stats.decline_run >= self.patience:
            action, why = (
                "PIVOT",
                (
                    f"{cls}: no new best for {since} iterations, "
                    f"{stats.decline_run} straight declines; keep the best "
                    f"({'n/a' if stats.best is None else f'{stats.best:.3f}'}) and change direction"
                ),
            )
        else:
            action, why = "CONTINUE", f"{cls}, but a new best only {since} iterations ago"
        return TrajectoryAdvice(next_action=action, reasoning=why, classification=cls, stats=stats)
