"""The agents' contracts: small `typing.Protocol`s with typed pydantic inputs and outputs.

Every provider (the offline heuristics in this package, LLM-backed ones later) implements one
of `Researcher`, `FailureAnalyst` or `TrajectoryAdvisor`. Inputs are in-sample only: no
agent ever receives holdout bars or holdout metrics; the only thing it learns about a holdout
is the boolean `IterationRecord.holdout_failed`.
"""

from __future__ import annotations

import re
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

FAMILIES: tuple[str, ...] = (
    "sma_crossover",
    "ema_crossover",
    "rsi_reversion",
    "bollinger_reversion",
    "donchian_breakout",
    "macd",
    "momentum",
    "buy_and_hold",
)
"""Strategy families of the built-in library the agents may recommend."""

Recommendation = Literal[
    "TUNE_PARAMETERS", "FIX_BUG", "REFINE_ALGORITHM", "REFINE_RESEARCH", "ABANDON"
]
Classification = Literal["insufficient_data", "converging", "plateau", "diverging", "oscillating"]
NextAction = Literal["CONTINUE", "PIVOT", "ABANDON"]


class _Frozen(BaseModel):
    """Frozen and strict; JSON keeps inf/NaN (a half-life can be infinite) as constants."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")


class _Lenient(BaseModel):
    """Frozen, and ignores unknown keys so records of other layers can be passed as dicts."""

    model_config = ConfigDict(frozen=True, extra="ignore", ser_json_inf_nan="constants")


# --------------------------------------------------------------------------- research
class Finding(_Frozen):
    """One measured fact about the in-sample data: a statement and the number behind it."""

    statement: str
    statistic: str
    value: float
    detail: dict[str, Any] = Field(default_factory=dict)


class FamilyWeight(NamedTuple):
    """A vote for (positive) or against (negative) a strategy family, with its reason."""

    family: str
    weight: float
    reason: str


class ResearchReport(_Frozen):
    """What one researcher found in the in-sample data and which families that favours."""

    researcher: str
    findings: list[Finding]
    favoured_families: list[FamilyWeight] = Field(default_factory=list)
    suggestions: list[str] = Field(default_factory=list)


class Directive(_Frozen):
    """The research directive parsed into the preferences the swarm applies."""

    text: str = ""
    preferred_styles: list[str] = Field(default_factory=list)
    preferred_families: list[str] = Field(default_factory=list)
    excluded_families: list[str] = Field(default_factory=list)
    long_only: bool = False
    low_drawdown: bool = False


class RankedFamily(_Frozen):
    """A family's combined weight over all reports (after the directive) and every reason."""

    family: str
    weight: float
    reasons: list[str]


class SwarmResult(_Frozen):
    """Merged research: families ranked best first (ties broken by name), plus every report."""

    directive: Directive
    ranked: list[RankedFamily]
    reports: list[ResearchReport]
    errors: dict[str, str] = Field(default_factory=dict)

    @property
    def findings(self) -> list[Finding]:
        """Every finding of every report, in report order."""
        return [f for r in self.reports for f in r.findings]

    @property
    def suggestions(self) -> list[str]:
        """Every report's refinement suggestions (e.g. volatility targeting), deduplicated."""
        return list(dict.fromkeys(s for r in self.reports for s in r.suggestions))

    def top(self, n: int = 3) -> list[str]:
        """The `n` best families with a positive combined weight."""
        return [r.family for r in self.ranked if r.weight > 0][:n]


@runtime_checkable
class Researcher(Protocol):
    """Studies in-sample OHLCV bars from one angle and reports numbers, not opinions."""

    name: str

    def study(self, data: pd.DataFrame, directive: str, bars_per_year: float) -> ResearchReport:
        """Study in-sample bars (DatetimeIndex; open, high, low, close, volume); never holdout."""
        ...


# --------------------------------------------------------------------------- failure analysis
class GateCriterion(_Lenient):
    """One quality-gate criterion: `value op threshold` must hold (e.g. max_drawdown <= 0.2).

    `margin` is the gate's normalised margin (negative when failing) if the gate supplied it.
    """

    metric: str
    value: float | None = None
    op: Literal[">=", ">", "<=", "<"]
    threshold: float
    margin: float | None = None
    reason: str | None = None


_EXPRESSION = re.compile(r"^\s*(\w+)\s*(>=|<=|>|<)\s*([-+0-9.eE]+)\s*(%?)\s*$")


def parse_failed(item: Any, metrics: dict[str, Any]) -> Any:
    """A criterion given as an expression ("sharpe_ratio>=1", "max_drawdown<=20%") becomes a
    `GateCriterion` dict with its value from `metrics`; a non-string is returned unchanged and
    any other string (a free-text failure note) gives None."""
    if not isinstance(item, str):
        return item
    m = _EXPRESSION.match(item)
    if m is None:
        return None
    threshold = float(m.group(3)) / (100.0 if m.group(4) else 1.0)
    return {
        "metric": m.group(1),
        "op": m.group(2),
        "threshold": threshold,
        "value": metrics.get(m.group(1)),
    }


class QualityGateResults(_Lenient):
    """The in-sample quality gate's verdict on the latest variant."""

    passed: bool
    score: float | None = None
    failed_criteria: list[GateCriterion] = Field(default_factory=list)


class IterationRecord(_Lenient):
    """One backtested variant, in-sample only; `holdout_failed` is all that leaks of a holdout.

    Unknown keys are ignored, and `failed_criteria` may be expressions ("sharpe_ratio>=1"), so
    a dumped tracker record can be passed as is; other strings there are notes, dropped, except
    that a note mentioning look-ahead sets `lookahead`.
    """

    strategy_name: str
    family: str | None = None
    iteration: int | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float | None] = Field(default_factory=dict)
    gate_passed: bool = False
    gate_score: float | None = None
    failed_criteria: list[GateCriterion] = Field(default_factory=list)
    error: str | None = None
    lookahead: bool = False
    holdout_failed: bool = False

    @model_validator(mode="before")
    @classmethod
    def _expressions(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("failed_criteria"):
            metrics = dict(data.get("metrics") or {})
            raw = list(data["failed_criteria"])
            parsed = [parse_failed(c, metrics) for c in raw]
            notes = [c for c, p in zip(raw, parsed, strict=True) if p is None]
            data = {**data, "failed_criteria": [p for p in parsed if p is not None]}
            if any("look-ahead" in n.lower() or "lookahead" in n.lower() for n in notes):
                data["lookahead"] = True
        return data

    @property
    def family_name(self) -> str:
        """`family` if given, else `strategy_name`."""
        return self.family or self.strategy_name


class FailureAnalysisInput(_Frozen):
    """Everything a failure analyst may see: in-sample metrics, gate verdicts and history."""

    strategy_name: str
    strategy_code: str = ""
    research_findings: list[Finding] = Field(default_factory=list)
    favoured_families: list[str] = Field(default_factory=list)
    backtest_metrics: dict[str, float | None] = Field(default_factory=dict)
    quality_gate_results: QualityGateResults
    iteration_history: list[IterationRecord] = Field(default_factory=list)
    current_iteration: int = 0
    max_iterations: int = 5


class BugDetection(_Frozen):
    """Whether the analyst believes the code (not the idea) is at fault, and where."""

    has_bug: bool = False
    bug_locations: list[str] = Field(default_factory=list)


class FailureAnalysis(_Frozen):
    """The analyst's routing recommendation with its reasoning and concrete next steps."""

    recommendation: Recommendation
    reasoning: str
    specific_actions: list[str] = Field(default_factory=list)
    bug_detection: BugDetection = Field(default_factory=BugDetection)
    confidence: float = Field(ge=0.0, le=1.0)
    rule: str = ""


@runtime_checkable
class FailureAnalyst(Protocol):
    """Decides what to do after a variant failed the in-sample quality gate."""

    def analyze_failure(self, inp: FailureAnalysisInput) -> FailureAnalysis:
        """Classify the failure of `inp` (in-sample evidence only) into a recommendation."""
        ...


# --------------------------------------------------------------------------- trajectory
class TrajectoryStats(_Frozen):
    """Shape of the per-iteration best gate scores (see `trajectory.TrajectoryAnalyzer`)."""

    n: int
    slope: float
    slope_t: float | None
    mean_improvement: float
    sign_changes: int
    last_improvement: float | None
    volatility: float
    best: float | None
    iterations_since_best: int
    decline_run: int
    classification: Classification


class RecordsSummary(_Frozen):
    """What the trajectory advisor knows of the search besides the score sequence."""

    iterations: int = 0
    max_iterations: int | None = None
    best_score: float | None = None
    best_strategy: str | None = None
    families_tried: list[str] = Field(default_factory=list)


class TrajectoryAdvice(_Frozen):
    """Whether to keep refining, pivot to new research, or stop."""

    next_action: NextAction
    reasoning: str
    classification: Classification
    stats: TrajectoryStats


@runtime_checkable
class TrajectoryAdvisor(Protocol):
    """Turns trajectory statistics (in-sample gate scores) into CONTINUE / PIVOT / ABANDON."""

    def analyze_trajectory(
        self, records_summary: RecordsSummary, stats: TrajectoryStats
    ) -> TrajectoryAdvice:
        """Advise on the next step from the summary and the statistics."""
        ...
