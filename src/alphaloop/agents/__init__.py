"""alphaloop.agents: research swarm, failure analysis and trajectory analysis.

Small `typing.Protocol` interfaces (`Researcher`, `FailureAnalyst`, `TrajectoryAdvisor`) with
pydantic inputs and outputs, and deterministic offline providers behind them. The agents see
in-sample data and in-sample metrics only; of a holdout they learn just "failed on holdout".
This package never imports `alphaloop.workflow`, which drives it.
"""

from alphaloop.agents._criteria import describe, is_near_miss, shortfall
from alphaloop.agents._directive import parse_directive
from alphaloop.agents.failure import RuleBasedFailureAnalyst
from alphaloop.agents.protocols import (
    FAMILIES,
    BugDetection,
    Directive,
    FailureAnalysis,
    FailureAnalysisInput,
    FailureAnalyst,
    FamilyWeight,
    Finding,
    GateCriterion,
    IterationRecord,
    QualityGateResults,
    RankedFamily,
    RecordsSummary,
    Researcher,
    ResearchReport,
    SwarmResult,
    TrajectoryAdvice,
    TrajectoryAdvisor,
    TrajectoryStats,
)
from alphaloop.agents.research import (
    BreakoutResearcher,
    MeanReversionResearcher,
    ResearchSwarm,
    TrendResearcher,
    VolatilityResearcher,
    default_researchers,
)
from alphaloop.agents.trajectory import (
    RuleBasedTrajectoryAdvisor,
    TrajectoryAnalyzer,
    best_scores_per_iteration,
)

__all__ = [
    "FAMILIES",
    "BreakoutResearcher",
    "BugDetection",
    "Directive",
    "FailureAnalysis",
    "FailureAnalysisInput",
    "FailureAnalyst",
    "FamilyWeight",
    "Finding",
    "GateCriterion",
    "IterationRecord",
    "MeanReversionResearcher",
    "QualityGateResults",
    "RankedFamily",
    "RecordsSummary",
    "ResearchReport",
    "ResearchSwarm",
    "Researcher",
    "RuleBasedFailureAnalyst",
    "RuleBasedTrajectoryAdvisor",
    "SwarmResult",
    "TrajectoryAdvice",
    "TrajectoryAdvisor",
    "TrajectoryAnalyzer",
    "TrajectoryStats",
    "TrendResearcher",
    "VolatilityResearcher",
    "best_scores_per_iteration",
    "default_researchers",
    "describe",
    "is_near_miss",
    "parse_directive",
    "shortfall",
]
