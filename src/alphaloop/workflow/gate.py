"""The quality gate: criteria, a pass/fail verdict with a continuous score, and the holdout split.

A gate is a set of inclusive bounds on backtest metrics, e.g. ``sharpe_ratio>=1.0`` and
``max_drawdown<=0.2``. :func:`evaluate` says whether a variant's metrics pass all of them and
gives a ``score`` that ranks variants: every pass outranks every fail, a near miss outranks a far
miss, and more margin ranks higher. An undefined metric (None) fails its criterion.

The evidence floor (``min_trades``) is judged beside the gate and no gate can remove it: a
variant needs at least ``min_trades`` trades and a profit factor computed with at least one
losing trade (see :func:`evidence_floor`); :func:`check_evidence_window` refuses a split whose
windows are too short to hold that many trades of a daily-bar strategy.

The Deflated Sharpe Ratio (the gate-only metric ``deflated_sharpe``) lives in
:mod:`alphaloop.workflow._dsr` and is re-exported here. See ``docs/quality-gate.md``.
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from alphaloop.errors import ConfigError
from alphaloop.workflow._dsr import (
    deflated_sharpe,
    expected_max_sharpe,
    per_bar_sharpe,
    probabilistic_sharpe,
)

__all__ = [
    "DAYS_PER_TRADE",
    "DEFAULT_CRITERIA",
    "DEFAULT_MIN_TRADES",
    "EVIDENCE_PREFIX",
    "METRIC_DIRECTIONS",
    "METRIC_SCALE_FLOORS",
    "MIN_PART_BARS",
    "Criterion",
    "CriterionOutcome",
    "GateResult",
    "QualityCriteria",
    "check_evidence_window",
    "check_min_trades",
    "deflated_sharpe",
    "evaluate",
    "evidence_floor",
    "expected_max_sharpe",
    "holdout_start",
    "holdout_with_warmup",
    "is_evidence_failure",
    "parse_criterion",
    "per_bar_sharpe",
    "probabilistic_sharpe",
    "split_dates",
]

Op = Literal[">=", "<="]

METRIC_DIRECTIONS: dict[str, Op] = {
    "total_return": ">=",
    "cagr": ">=",
    "annual_volatility": "<=",
    "sharpe_ratio": ">=",
    "sortino_ratio": ">=",
    "calmar_ratio": ">=",
    "max_drawdown": "<=",
    "max_drawdown_duration": "<=",
    "win_rate": ">=",
    "profit_factor": ">=",
    "num_trades": ">=",
    "avg_trade_return": ">=",
    "exposure": ">=",
    "turnover": "<=",
    "deflated_sharpe": ">=",
}
"""Every metric a gate may bound, with its natural direction: ``>=`` for "more is better"
(a lower bound), ``<=`` for "less is better" (an upper bound). The dict form of a gate
(``{"max_drawdown": 0.2}``) takes its direction from here."""

_RATIO, _FRACTION, _COUNT = 0.1, 0.01, 1.0
METRIC_SCALE_FLOORS: dict[str, float] = {
    "total_return": _FRACTION,
    "cagr": _FRACTION,
    "annual_volatility": _FRACTION,
    "sharpe_ratio": _RATIO,
    "sortino_ratio": _RATIO,
    "calmar_ratio": _RATIO,
    "max_drawdown": _FRACTION,
    "max_drawdown_duration": _COUNT,
    "win_rate": _FRACTION,
    "profit_factor": _RATIO,
    "num_trades": _COUNT,
    "avg_trade_return": 0.001,
    "exposure": _FRACTION,
    "turnover": _RATIO,
    "deflated_sharpe": _FRACTION,
}
"""Smallest scale a margin is divided by: ``scale = max(|threshold|, floor)``, so a threshold
of 0 does not blow margins up. Ratios 0.1, fractions 0.01, counts 1."""

_UNDEFINED_WHY: dict[str, str] = {  # why the engine reports None (see backtest.metrics)
    "sharpe_ratio": "no volatility: returns do not vary or fewer than 2 bars",
    "sortino_ratio": "no negative return to measure downside by",
    "calmar_ratio": "no drawdown",
    "annual_volatility": "fewer than 2 bars",
    "profit_factor": "no trades or no losing trade",
    "win_rate": "no trades",
    "avg_trade_return": "no trades",
    "deflated_sharpe": "too few returns or no volatility",
}

MAX_MARGIN = 2.0
"""Normalised margins are clipped to ``[-MAX_MARGIN, MAX_MARGIN]``."""

_MIN_FAIL_MARGIN = 1e-12  # a failing criterion's margin is at most -this, never -0.0
_OPS: tuple[Op, ...] = (">=", "<=")
_EXPR = re.compile(r"^\s*([A-Za-z_]\w*)\s*(>=|<=|=>|=<|==|!=|>|<|=)\s*(\S.*?)\s*$")


def _unknown_metric(metric: str) -> ConfigError:
    close = difflib.get_close_matches(metric, METRIC_DIRECTIONS, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    valid = ", ".join(METRIC_DIRECTIONS)
    return ConfigError(f"unknown gate metric '{metric}'{hint}; valid metrics: {valid}")


def _parse_threshold(text: str, where: str) -> float:
    raw = text.strip()
    percent = raw.endswith("%")
    try:
        value = float(raw[:-1] if percent else raw)
    except ValueError:
        raise ConfigError(
            f"gate criterion '{where}': threshold '{text}' is not a number (e.g. 0.2 or 20%)"
        ) from None
    return value / 100.0 if percent else value


@dataclass(frozen=True, slots=True)
class Criterion:
    """One inclusive bound: ``metric op threshold`` with ``op`` either ``>=`` or ``<=``."""

    metric: str
    op: Op
    threshold: float

    def __post_init__(self) -> None:
        if self.metric not in METRIC_DIRECTIONS:
            raise _unknown_metric(self.metric)
        if self.op not in _OPS:
            raise ConfigError(
                f"gate criterion on '{self.metric}': operator '{self.op}' is not supported; "
                "use '>=' or '<='"
            )
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, numbers.Real):
            raise ConfigError(
                f"gate criterion on '{self.metric}': threshold {self.threshold!r} is not a number"
            )
        if not math.isfinite(self.threshold):
            raise ConfigError(
                f"gate criterion on '{self.metric}': threshold must be finite, "
                f"got {self.threshold!r}"
            )
        object.__setattr__(self, "threshold", float(self.threshold))

    @property
    def expression(self) -> str:
        """The criterion as it would be typed, e.g. ``sharpe_ratio>=1.0``."""
        return f"{self.metric}{self.op}{self.threshold:g}"

    @property
    def natural(self) -> bool:
        """True when ``op`` is the metric's natural direction (see ``METRIC_DIRECTIONS``)."""
        return METRIC_DIRECTIONS[self.metric] == self.op

    def passes(self, value: float) -> bool:
        """Whether a defined ``value`` satisfies the (inclusive) bound."""
        return value >= self.threshold if self.op == ">=" else value <= self.threshold

    def margin(self, value: float | None) -> float:
        """Normalised margin in ``[-2, 2]``: positive passes, negative fails, None is -2.

        ``(value - threshold) / scale`` for ``>=`` (reversed for ``<=``), with
        ``scale = max(|threshold|, METRIC_SCALE_FLOORS[metric])``. A failing value's margin
        is strictly negative; a passing one's is >= 0.
        """
        if value is None:
            return -MAX_MARGIN
        diff = value - self.threshold if self.op == ">=" else self.threshold - value
        scale = max(abs(self.threshold), METRIC_SCALE_FLOORS[self.metric])
        m = max(-MAX_MARGIN, min(MAX_MARGIN, diff / scale))
        # Defensive: with scale floors <= 1 a miss cannot underflow to -0.0, but a failing
        # margin must stay strictly negative whatever the floors become.
        return m if self.passes(value) else min(m, -_MIN_FAIL_MARGIN)

    def __str__(self) -> str:
        return self.expression


def parse_criterion(expression: str) -> Criterion:
    """Parse ``"metric>=threshold"`` or ``"metric <= threshold"`` into a :class:`Criterion`.

    Only ``>=`` and ``<=`` are accepted (bounds are inclusive); ``>``, ``<``, ``=`` raise
    ConfigError rather than being silently widened. A threshold may end in ``%``
    (``max_drawdown<=20%`` is 0.2). A direction opposite to the metric's natural one is
    allowed (``num_trades<=500`` caps over-trading).
    """
    match = _EXPR.match(expression)
    if match is None:
        raise ConfigError(
            f"cannot parse gate criterion '{expression}'; write metric>=value or "
            "metric<=value, e.g. sharpe_ratio>=1.0"
        )
    metric, op, threshold = match.groups()
    if metric not in METRIC_DIRECTIONS:
        raise _unknown_metric(metric)
    if op not in _OPS:
        raise ConfigError(
            f"gate criterion '{expression.strip()}': operator '{op}' is not supported; "
            "use '>=' or '<=' (gate bounds are inclusive)"
        )
    return Criterion(metric, op, _parse_threshold(threshold, expression.strip()))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class QualityCriteria:
    """An immutable, non-empty set of criteria; at most one per (metric, op) pair.

    Two criteria on one metric with opposite ops form a band (``num_trades>=10`` and
    ``num_trades<=500``).
    """

    criteria: tuple[Criterion, ...]

    def __post_init__(self) -> None:
        crits = tuple(self.criteria)
        if not crits:
            raise ConfigError("the quality gate has no criteria; give at least one")
        seen: set[tuple[str, str]] = set()
        for c in crits:
            if not isinstance(c, Criterion):
                raise ConfigError(f"quality gate entry {c!r} is not a Criterion")
            if (c.metric, c.op) in seen:
                raise ConfigError(
                    f"gate criterion '{c.metric}{c.op}' is given twice; keep one threshold"
                )
            seen.add((c.metric, c.op))
        object.__setattr__(self, "criteria", crits)

    @classmethod
    def default(cls) -> QualityCriteria:
        """The default gate: ``sharpe_ratio>=1.0, max_drawdown<=0.2, win_rate>=0.5,
        num_trades>=10``."""
        return DEFAULT_CRITERIA

    @classmethod
    def from_expressions(cls, expressions: str | Iterable[str]) -> QualityCriteria:
        """From CLI expressions; each string may hold several separated by commas."""
        items = [expressions] if isinstance(expressions, str) else list(expressions)
        parts = [p for item in items for p in item.split(",") if p.strip()]
        return cls(tuple(parse_criterion(p) for p in parts))

    @classmethod
    def from_dict(cls, mapping: Mapping[str, float]) -> QualityCriteria:
        """From the workflow-state form ``{"sharpe_ratio": 1.0, "max_drawdown": 0.2}``.

        A bare metric key takes the metric's natural direction; a key ending in ``>=`` or
        ``<=`` (``"num_trades<="``) states it explicitly — that is how :meth:`to_dict` writes a
        criterion against the natural direction.
        """
        crits = []
        for key, threshold in mapping.items():
            name = str(key).strip()
            op: Op | None = None
            for candidate in _OPS:
                if name.endswith(candidate):
                    name, op = name[: -len(candidate)].strip(), candidate
            if name not in METRIC_DIRECTIONS:
                raise _unknown_metric(name)
            crits.append(Criterion(name, op or METRIC_DIRECTIONS[name], threshold))
        return cls(tuple(crits))

    @classmethod
    def coerce(
        cls, spec: QualityCriteria | Mapping[str, float] | str | Iterable[str] | None
    ) -> QualityCriteria:
        """Accept any supported form: an instance, a dict, expression(s), or None (default)."""
        if spec is None:
            return cls.default()
        if isinstance(spec, QualityCriteria):
            return spec
        if isinstance(spec, Mapping):
            return cls.from_dict(spec)
        return cls.from_expressions(spec)

    def to_dict(self) -> dict[str, float]:
        """The ``Dict[str, float]`` form; round-trips through :meth:`from_dict`."""
        return {(c.metric if c.natural else f"{c.metric}{c.op}"): c.threshold for c in self}

    def to_expressions(self) -> list[str]:
        """The criteria as CLI expressions, e.g. ``["sharpe_ratio>=1", ...]``."""
        return [c.expression for c in self]

    def merged(self, overrides: QualityCriteria) -> QualityCriteria:
        """A copy where ``overrides`` replace criteria with the same (metric, op); new ones
        are appended."""
        replace = {(c.metric, c.op): c for c in overrides}
        kept = [replace.pop((c.metric, c.op), c) for c in self]
        return QualityCriteria((*kept, *replace.values()))

    def __iter__(self) -> Iterator[Criterion]:
        return iter(self.criteria)

    def __len__(self) -> int:
        return len(self.criteria)

    def __str__(self) -> str:
        return ", ".join(self.to_expressions())


DEFAULT_CRITERIA = QualityCriteria(
    (
        Criterion("sharpe_ratio", ">=", 1.0),
        Criterion("max_drawdown", "<=", 0.20),
        Criterion("win_rate", ">=", 0.50),
        Criterion("num_trades", ">=", 10),
    )
)
"""The default gate (the design's three criteria plus a minimum of 10 trades)."""


@dataclass(frozen=True, slots=True)
class CriterionOutcome:
    """How one criterion fared: the value seen (None if undefined), pass, margin, reason."""

    criterion: Criterion
    value: float | None
    passed: bool
    margin: float
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """``{metric, value, op, threshold, margin, reason}`` (a fresh dict)."""
        c = self.criterion
        return {
            "metric": c.metric,
            "value": self.value,
            "op": c.op,
            "threshold": c.threshold,
            "margin": self.margin,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class GateResult:
    """The verdict. ``score`` is in ``[1, 3]`` when passed and in ``[-2, 0)`` when failed.

    ``outcomes`` are the gate's criteria; ``floor`` the evidence floor's checks (empty when
    ``evaluate`` was given no ``min_trades``). ``passed`` needs both.
    """

    passed: bool
    score: float
    outcomes: tuple[CriterionOutcome, ...]
    floor: tuple[CriterionOutcome, ...] = ()

    @property
    def gate_passed(self) -> bool:
        """Whether the gate's own criteria pass, whatever the evidence floor says."""
        return all(o.passed for o in self.outcomes)

    @property
    def floor_passed(self) -> bool:
        """Whether the evidence floor holds (vacuously true without one)."""
        return all(o.passed for o in self.floor)

    @property
    def failed_criteria(self) -> list[dict[str, Any]]:
        """The failing criteria as fresh dicts ``{metric, value, op, threshold, margin,
        reason}``, in criteria order, then the evidence floor's (their reason starts with
        :data:`EVIDENCE_PREFIX`)."""
        return [o.as_dict() for o in (*self.outcomes, *self.floor) if not o.passed]

    @property
    def margins(self) -> dict[str, float]:
        """Normalised margin per criterion, keyed by its expression (the evidence floor's
        by ``"evidence: <expression>"``)."""
        out = {o.criterion.expression: o.margin for o in self.outcomes}
        out.update({f"{EVIDENCE_PREFIX}{o.criterion.expression}": o.margin for o in self.floor})
        return out

    def summary(self) -> str:
        """One line: PASS/FAIL, the score, and the reasons of failing criteria."""
        head = f"{'PASS' if self.passed else 'FAIL'} (score {self.score:.3f})"
        fails = [o.reason for o in (*self.outcomes, *self.floor) if not o.passed]
        return head + (": " + "; ".join(fails) if fails else "")


_MISSING = object()


def _outcome(criterion: Criterion, raw: object) -> CriterionOutcome:
    metric = criterion.metric
    if raw is _MISSING:
        why = f"{metric} missing from metrics (not computed)"
        return CriterionOutcome(criterion, None, False, criterion.margin(None), why)
    if isinstance(raw, bool):
        raise TypeError(f"metric {metric} is a bool ({raw!r}), expected a number")
    value = None if raw is None else float(raw)  # type: ignore[arg-type]
    if value is None or math.isnan(value):
        why = f"{metric} undefined ({_UNDEFINED_WHY.get(metric, 'not computable')})"
        return CriterionOutcome(criterion, None, False, criterion.margin(None), why)
    passed = criterion.passes(value)
    bound = f"{criterion.op} {criterion.threshold:g}"
    reason = f"{metric} {value:.4g} {bound}" if passed else f"{metric} {value:.4g}, needs {bound}"
    return CriterionOutcome(criterion, value, passed, criterion.margin(value), reason)


def evaluate(
    metrics: Mapping[str, object],
    criteria: QualityCriteria | Mapping[str, float] | str | Iterable[str] | None = None,
    *,
    min_trades: int = 0,
) -> GateResult:
    """Judge ``metrics`` against ``criteria`` (default: :data:`DEFAULT_CRITERIA`) and, when
    ``min_trades`` >= 1, the evidence floor (:func:`evidence_floor`), which no gate removes.

    A metric that is None/NaN (undefined) or absent fails its criterion with margin -2.
    Score: all pass (floor included) -> ``1 + mean(gate margins)`` in [1, 3]; otherwise
    ``mean(min(margin, 0))`` over the gate's and the floor's checks, in [-2, 0). So every pass
    outranks every fail, and improving any one metric never lowers the score. Without a floor
    (``min_trades=0``, the default) the result is the gate's alone.
    """
    crit = QualityCriteria.coerce(criteria)
    outcomes = tuple(_outcome(c, metrics.get(c.metric, _MISSING)) for c in crit)
    floor = evidence_floor(metrics, min_trades)
    margins = [o.margin for o in outcomes]
    passed = all(o.passed for o in (*outcomes, *floor))
    if passed:
        score = 1.0 + sum(margins) / len(margins)
    else:
        every = [*margins, *(o.margin for o in floor)]
        score = sum(min(m, 0.0) for m in every) / len(every)
    return GateResult(passed=passed, score=score, outcomes=outcomes, floor=floor)


# --- the evidence floor ----------------------------------------------------------------------

DEFAULT_MIN_TRADES = 10
"""Trades a candidate needs in-sample and on the holdout (``--min-trades``)."""

MAX_MIN_TRADES = 10_000

EVIDENCE_PREFIX = "evidence: "
"""Every evidence-floor failure's reason starts with this (records keep reasons as text)."""

DAYS_PER_TRADE = 7
"""Calendar days a daily-bar strategy needs per trade, at least: a week (five trading days) to
enter, hold and leave. A window shorter than ``min_trades * DAYS_PER_TRADE`` days cannot hold
``min_trades`` trades of such a strategy (`check_evidence_window`)."""


def check_min_trades(min_trades: object) -> None:
    """`ConfigError` (one line) unless ``min_trades`` is a whole number from 1 to 10,000."""
    if (
        isinstance(min_trades, bool)
        or not isinstance(min_trades, numbers.Integral)
        or not 1 <= int(min_trades) <= MAX_MIN_TRADES
    ):
        raise ConfigError(
            f"--min-trades must be a whole number of trades from 1 to {MAX_MIN_TRADES:,}, got "
            f"{min_trades} (default {DEFAULT_MIN_TRADES}: fewer trades are no evidence)"
        )


def _defined(raw: object) -> float | None:
    """A metric value as a float; None when undefined (None, NaN, absent, not a number)."""
    if isinstance(raw, bool) or not isinstance(raw, numbers.Real):
        return None
    value = float(raw)
    return None if math.isnan(value) else value


def is_evidence_failure(reason: str) -> bool:
    """Whether a failed criterion's reason (as records keep it) is the evidence floor's."""
    return reason.startswith(EVIDENCE_PREFIX)


def evidence_floor(metrics: Mapping[str, object], min_trades: int) -> tuple[CriterionOutcome, ...]:
    """The evidence floor's two checks, or none when ``min_trades`` < 1:

    - ``num_trades >= min_trades``;
    - a defined profit factor: one computed with at least one losing trade (the engine's
      ``profit_factor`` is None with no trades or no losing trade). It is checked as
      ``profit_factor >= 0``, which every defined profit factor passes.

    Failing reasons start with :data:`EVIDENCE_PREFIX` and say what the floor needs.
    """
    if min_trades < 1:
        return ()
    trades = _defined(metrics.get("num_trades"))
    crit = Criterion("num_trades", ">=", min_trades)
    if trades is not None and crit.passes(trades):
        count = CriterionOutcome(
            crit, trades, True, crit.margin(trades),
            f"{EVIDENCE_PREFIX}num_trades {trades:g} >= {min_trades}",
        )
    else:
        seen = "undefined" if trades is None else f"{trades:g}"
        count = CriterionOutcome(
            crit, trades, False, crit.margin(trades),
            f"{EVIDENCE_PREFIX}num_trades {seen}, needs >= {min_trades} (--min-trades)",
        )
    pf = _defined(metrics.get("profit_factor"))
    pf_crit = Criterion("profit_factor", ">=", 0.0)
    if pf is not None and pf_crit.passes(pf):
        factor = CriterionOutcome(
            pf_crit, pf, True, pf_crit.margin(pf),
            f"{EVIDENCE_PREFIX}profit_factor {pf:.4g} (has a losing trade)",
        )
    else:
        why = "no trades" if not trades else "no losing trade"
        factor = CriterionOutcome(
            pf_crit, pf, False, pf_crit.margin(None),
            f"{EVIDENCE_PREFIX}profit_factor undefined ({why}); the floor needs a profit "
            "factor computed with at least one losing trade",
        )
    return count, factor


def check_evidence_window(index: pd.Index, k: int, min_trades: int) -> None:
    """`ConfigError` (one line) when the in-sample window (``index[:k]``) or the holdout
    (``index[k:]``) spans fewer than ``min_trades * DAYS_PER_TRADE`` calendar days: too short
    for ``min_trades`` trades of a daily-bar strategy, so no candidate could pass the evidence
    floor there. Measured in calendar time, so it means the same for any bar size."""
    if min_trades < 1 or not isinstance(index, pd.DatetimeIndex) or not 0 < k < len(index):
        return
    need = min_trades * DAYS_PER_TRADE
    for name, first, last in (
        ("in-sample window", index[0], index[k - 1]),
        ("holdout", index[k], index[-1]),
    ):
        days = (last - first).total_seconds() / 86_400
        if days < need:
            raise ConfigError(
                f"the {name} {first:%Y-%m-%d}..{last:%Y-%m-%d} spans {int(days)} days, too "
                f"short for {min_trades} trades of a daily-bar strategy (the evidence floor "
                f"needs {need} days, {DAYS_PER_TRADE} per trade); use a longer date range "
                "(--start/--end) or a lower --min-trades"
            )


# --- holdout split ---------------------------------------------------------------------------

MIN_PART_BARS = 30
"""Both the in-sample part and the holdout must have at least this many bars."""

_FRACTION_RANGE = (0.1, 0.95)


def holdout_start(n_bars: int, in_sample_fraction: float = 0.7) -> int:
    """Position of the first holdout bar: in-sample is ``[:k]``, holdout ``[k:]`` (no overlap).

    ``k = floor(n_bars * in_sample_fraction)``. Raises ConfigError when the fraction is outside
    [0.1, 0.95] or either part would have fewer than :data:`MIN_PART_BARS` bars.
    """
    lo, hi = _FRACTION_RANGE
    if (
        isinstance(in_sample_fraction, bool)
        or not isinstance(in_sample_fraction, numbers.Real)
        or not lo <= in_sample_fraction <= hi
    ):
        raise ConfigError(
            f"in_sample_fraction must be between {lo} and {hi}, got {in_sample_fraction!r}"
        )
    k = math.floor(n_bars * in_sample_fraction + 1e-9)
    if k < MIN_PART_BARS or n_bars - k < MIN_PART_BARS:
        raise ConfigError(
            f"cannot split {n_bars} bars at in_sample_fraction={in_sample_fraction}: in-sample "
            f"{k} bars, holdout {n_bars - k}; each needs at least {MIN_PART_BARS} — use a longer "
            "date range or another fraction"
        )
    return k


def split_dates(
    data: pd.DataFrame, in_sample_fraction: float = 0.7
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split bars once by position into ``(in_sample, holdout)``: earlier bars, then later."""
    k = holdout_start(len(data), in_sample_fraction)
    return data.iloc[:k], data.iloc[k:]


def holdout_with_warmup(
    data: pd.DataFrame, in_sample_fraction: float = 0.7, *, warmup: int = 0
) -> tuple[pd.DataFrame, pd.Timestamp]:
    """``(frame, first_holdout_timestamp)``: the holdout preceded by ``warmup`` in-sample bars.

    Backtest ``frame`` so indicators have history, then compute metrics on bars at or after
    ``first_holdout_timestamp`` only. Raises ConfigError when ``warmup`` is negative or longer
    than the in-sample part.
    """
    k = holdout_start(len(data), in_sample_fraction)
    if isinstance(warmup, bool) or not isinstance(warmup, numbers.Integral) or not 0 <= warmup <= k:
        raise ConfigError(
            f"warmup must be a whole number of bars between 0 and the in-sample length {k}, "
            f"got {warmup!r}"
        )
    return data.iloc[k - int(warmup) :], data.index[k]
