"""Failed gate criteria: how far each missed, and a concrete action for it."""

from __future__ import annotations

import math
from collections.abc import Sequence

from alphaloop.agents.protocols import GateCriterion

NEAR_MISS_BAND = 0.25
"""A failed criterion is 'near' when it misses by at most this fraction of its threshold."""
SCALE_FLOORS = {
    "total_return": 0.01,
    "cagr": 0.01,
    "annual_volatility": 0.01,
    "sharpe_ratio": 0.1,
    "sortino_ratio": 0.1,
    "calmar_ratio": 0.1,
    "max_drawdown": 0.01,
    "max_drawdown_duration": 1.0,
    "win_rate": 0.01,
    "profit_factor": 0.1,
    "num_trades": 1.0,
    "avg_trade_return": 0.001,
    "exposure": 0.01,
    "turnover": 0.1,
    "deflated_sharpe": 0.01,
}
"""Without a gate margin, shortfall = gap / max(|threshold|, floor) (the gate's own floors)."""
COUNT_METRICS = ("num_trades", "max_drawdown_duration")
_VIOLATED = {">=": "<", ">": "<=", "<=": ">", "<": ">="}
HINTS = {
    "max_drawdown": "add a trend filter or volatility targeting",
    "win_rate": "widen the exit band or take profits sooner",
    "sharpe_ratio": "filter weak signals (trend and momentum must agree) or target volatility",
    "sortino_ratio": "cut downside: exit on trend reversal or add a stop",
    "calmar_ratio": "cut drawdowns: trend filter or volatility targeting",
    "total_return": "hold winners longer and check the cost drag of turnover",
    "annual_return": "hold winners longer and check the cost drag of turnover",
    "cagr": "hold winners longer and check the cost drag of turnover",
    "profit_factor": "let winners run and cut losers sooner (trailing exit)",
    "annual_volatility": "scale the position by target_vol / rolling volatility",
    "avg_trade_return": "trade less: require stronger signals before entering",
    "exposure": "stay invested longer: loosen the exit condition",
    "turnover": "lengthen lookbacks or add hysteresis to cut churn",
    "max_drawdown_duration": "exit on trend reversal so drawdowns do not linger",
    "deflated_sharpe": "fewer variants or a stronger edge: the Sharpe does not survive deflation",
}


def fmt(x: float | None, metric: str = "") -> str:
    """A number as the actions print it: counts as integers, the rest with two decimals."""
    if x is None or not math.isfinite(x):
        return str(x)
    return f"{x:.0f}" if metric in COUNT_METRICS else f"{x:.2f}"


def shortfall(c: GateCriterion) -> float:
    """Relative miss of a failed criterion: the gate's -margin when given, else the gap over
    max(|threshold|, floor); 0 if satisfied, inf if the value is missing or NaN."""
    if c.value is None or not math.isfinite(c.value):
        return math.inf
    if c.margin is not None:
        return max(0.0, -c.margin)
    gap = c.threshold - c.value if c.op in (">=", ">") else c.value - c.threshold
    return max(0.0, gap) / max(abs(c.threshold), SCALE_FLOORS.get(c.metric, 0.01))


def is_near_miss(criteria: Sequence[GateCriterion]) -> bool:
    """Every failed criterion misses by at most NEAR_MISS_BAND (vacuously true if none)."""
    return all(shortfall(c) <= NEAR_MISS_BAND for c in criteria)


def describe(c: GateCriterion) -> str:
    """A concrete action for one failed criterion, e.g. 'max_drawdown 0.34 > 0.20: add ...'."""
    head = f"{c.metric} {fmt(c.value, c.metric)} {_VIOLATED[c.op]} {fmt(c.threshold, c.metric)}"
    if c.metric == "num_trades":
        hint = (
            "shorten lookbacks or loosen entry thresholds"
            if c.op in (">=", ">")
            else "lengthen lookbacks or add hysteresis to cut churn"
        )
    else:
        hint = HINTS.get(c.metric, "adjust the parameters that drive this metric")
    return f"{head}: {hint}"
