"""The offline research swarm: researchers that measure in-sample bars, and their merge.

Each researcher studies the data from one angle (`TrendResearcher`, `MeanReversionResearcher`,
`VolatilityResearcher`, `BreakoutResearcher`) and returns findings with the numbers behind
them plus weighted votes for strategy families. `ResearchSwarm` merges the votes, applies the
parsed directive and ranks the families, deterministically. Only in-sample bars are passed in;
holdout data never reaches this module. Formulas and thresholds: docs/agents.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from alphaloop.agents._directive import parse_directive
from alphaloop.agents._persistence import MeanReversionResearcher, TrendResearcher
from alphaloop.agents._risk import BreakoutResearcher, VolatilityResearcher
from alphaloop.agents._stats import validated_close
from alphaloop.agents.protocols import (
    FAMILIES,
    RankedFamily,
    Researcher,
    ResearchReport,
    SwarmResult,
)

__all__ = [
    "DIRECTIVE_BOOST",
    "BreakoutResearcher",
    "MeanReversionResearcher",
    "ResearchSwarm",
    "TrendResearcher",
    "VolatilityResearcher",
    "default_researchers",
]

DIRECTIVE_BOOST = 0.5
"""Added to each family the directive prefers; taken from buy_and_hold on low_drawdown."""


def default_researchers() -> list[Researcher]:
    """The four offline researchers, in the order their reports are merged."""
    return [
        TrendResearcher(),
        MeanReversionResearcher(),
        VolatilityResearcher(),
        BreakoutResearcher(),
    ]


class ResearchSwarm:
    """Runs researchers on the same in-sample bars and ranks families by their merged votes."""

    def __init__(self, researchers: Sequence[Researcher] | None = None) -> None:
        """`researchers` defaults to `default_researchers()`."""
        self.researchers = list(researchers) if researchers is not None else default_researchers()

    def run(self, data: pd.DataFrame, directive: str, bars_per_year: float) -> SwarmResult:
        """Study in-sample `data` with every researcher, then merge and rank (deterministic).

        A researcher that raises is recorded in `errors` and left out; bad data raises
        `DataError` before any researcher runs.
        """
        validated_close(data)
        parsed = parse_directive(directive)
        reports: list[ResearchReport] = []
        errors: dict[str, str] = {}
        for researcher in self.researchers:
            try:
                reports.append(researcher.study(data, directive, bars_per_year))
            except Exception as exc:  # a researcher's bug must not sink the swarm; keep it
                errors[researcher.name] = f"{type(exc).__name__}: {exc}"
        weights = {f: 0.0 for f in FAMILIES}
        reasons: dict[str, list[str]] = {f: [] for f in FAMILIES}
        for report in reports:
            for vote in report.favoured_families:
                weights[vote.family] = weights.get(vote.family, 0.0) + vote.weight
                reasons.setdefault(vote.family, []).append(
                    f"{report.researcher} {vote.weight:+.2f}: {vote.reason}"
                )
        for family in parsed.preferred_families:
            weights[family] = weights.get(family, 0.0) + DIRECTIVE_BOOST
            reasons.setdefault(family, []).append(f"directive {DIRECTIVE_BOOST:+.2f}: preferred")
        if parsed.low_drawdown:
            weights["buy_and_hold"] -= DIRECTIVE_BOOST
            reasons["buy_and_hold"].append(f"directive {-DIRECTIVE_BOOST:+.2f}: low drawdown")
        ranked = [
            RankedFamily(family=f, weight=round(w, 10), reasons=reasons[f])
            for f, w in weights.items()
            if f not in parsed.excluded_families
        ]
        ranked.sort(key=lambda r: (-r.weight, r.family))
        return SwarmResult(directive=parsed, ranked=ranked, reports=reports, errors=errors)
