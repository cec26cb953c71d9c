"""Holdout significance: every look at the holdout is a statistical test, corrected for all looks.

A holdout that is looked at again and again stops being a holdout. Given an in-sample winner,
a Sharpe ratio above 0.5 over 3.5 holdout years happens by chance about 17% of the time for a
strategy with no edge at all; at 29 looks a "pass" is close to certain. So a holdout look
passes only if

1. the gate passes on the holdout, and so does the evidence floor (``--min-trades``: enough
   trades and a losing one among them, `gate.evidence_floor`), and
2. the holdout is *significant*: the probabilistic Sharpe ratio of the holdout returns against
   a true Sharpe of 0 (``PSR``; Bailey & López de Prado 2012, with the returns' skewness and
   kurtosis) is at least ``1 - alpha / K``, where ``K`` is the number of holdout looks in the
   workflow so far, this one included (Bonferroni: the chance that any of the K looks passes
   by luck is at most ``alpha``).

``alpha`` is the workflow's ``--alpha`` (default 0.05); ``alpha >= 1`` switches the test off
(unsafe: noise then passes a loose gate; see ``docs/quality-gate.md``). ``K`` counts the looks
in the order they were recorded, so a replayed or resumed workflow gives each look the same
``K``; the number of looks is capped by ``--max-holdout-looks``.

The PSR of a holdout record is its ``deflated_sharpe`` metric: the holdout is evaluated with no
selection among trials (one trial, ``SR0 = 0``), where the deflated Sharpe ratio *is* the PSR
against 0 (`alphaloop.workflow._dsr`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

__all__ = [
    "ALPHA_OFF_WARNING",
    "DEFAULT_ALPHA",
    "DEFAULT_MAX_HOLDOUT_LOOKS",
    "HoldoutLook",
    "check_settings",
    "holdout_looks",
    "threshold",
]

DEFAULT_ALPHA = 0.05
DEFAULT_MAX_HOLDOUT_LOOKS = 10
ALPHA_OFF_WARNING = (
    "warning: --alpha 1: the holdout significance test is off; a loose gate then passes noise "
    "(see docs/quality-gate.md)"
)


def check_settings(alpha: float, max_looks: int) -> None:
    """`ConfigError` (one line, naming the option and the fix) for values no test can use."""
    from alphaloop.errors import ConfigError

    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0.0 < alpha <= 1.0:
        raise ConfigError(
            f"--alpha must be a probability above 0 and at most 1, got {alpha} (default "
            f"{DEFAULT_ALPHA}; 1 switches the holdout significance test off)"
        )
    if isinstance(max_looks, bool) or not isinstance(max_looks, int) or not 1 <= max_looks <= 1000:
        raise ConfigError(
            f"--max-holdout-looks must be a count from 1 to 1000, got {max_looks} (default "
            f"{DEFAULT_MAX_HOLDOUT_LOOKS})"
        )


def threshold(alpha: float, look: int) -> float:
    """The PSR a holdout must reach at look ``look`` (1-based): ``1 - alpha / look``; 0 when
    the test is off (``alpha >= 1``)."""
    if look < 1:
        raise ValueError(f"looks are counted from 1, got {look}")
    return 0.0 if alpha >= 1.0 else 1.0 - alpha / look


@dataclass(frozen=True)
class HoldoutLook:
    """One look at the holdout and its verdict."""

    variant: str  # "experiment_id/variant_id"
    strategy_name: str
    look: int  # K: this look's number in the workflow, from 1
    sharpe: float | None  # annualised Sharpe ratio on the holdout
    years: float | None  # length of the holdout
    psr: float | None  # P(true Sharpe > 0 | holdout returns); None if undefined
    threshold: float  # what the PSR had to reach: 1 - alpha / look
    gate_passed: bool  # the gate passed on the holdout
    significant: bool  # psr >= threshold (always True with the test off)
    trades: int | None = None  # trades on the holdout
    evidence_passed: bool = True  # the evidence floor held on the holdout (--min-trades)
    min_trades: int = 0  # the floor's trade count (0: no floor)

    @property
    def passed(self) -> bool:
        """The holdout verdict: the gate and the evidence floor held on it, and it is
        significant."""
        return self.gate_passed and self.evidence_passed and self.significant

    @property
    def verdict(self) -> str:
        """``passed``, ``failed the gate``, ``failed the evidence floor`` or ``not
        significant`` (the first that applies)."""
        if not self.gate_passed:
            return "failed the gate"
        if not self.evidence_passed:
            return "failed the evidence floor"
        return "passed" if self.significant else "not significant"

    def explain(self) -> str:
        """One sentence a user can read, e.g. for a look that is not significant: "passed the
        gate on the holdout, but a Sharpe of 0.51 over 3.6 years is what noise does about 1
        time in 6, and this was look 29 (PSR 0.830, needs 0.998)"; for one with too few
        trades: "passed the gate on the holdout, but with 3 trades; the evidence floor needs
        10 (--min-trades; look 2)"."""
        psr = "n/a" if self.psr is None else f"{self.psr:.3f}"
        odds = f"PSR {psr}, needs {self.threshold:.3f}"
        if not self.gate_passed:
            return f"failed the gate on the holdout (look {self.look})"
        if not self.evidence_passed:
            return f"passed the gate on the holdout, but {self._evidence_words()}"
        if self.significant:
            if self.threshold == 0.0:
                return f"passed the gate on the holdout (look {self.look}; significance test off)"
            return f"passed the gate on the holdout and is significant at look {self.look} ({odds})"
        sharpe = "n/a" if self.sharpe is None else f"{self.sharpe:.2f}"
        span = "" if self.years is None else f" over {self.years:.1f} years"
        return (
            f"passed the gate on the holdout, but a Sharpe of {sharpe}{span} is what noise "
            f"does {_chance(self.psr)}, and this was look {self.look} ({odds})"
        )

    def _evidence_words(self) -> str:
        need = f"{self.min_trades}" if self.min_trades else "more"
        if self.trades is None or not self.min_trades or self.trades < self.min_trades:
            count = "no trades" if not self.trades else _trades(self.trades)
            return (
                f"with {count}; the evidence floor needs {need} (--min-trades; look "
                f"{self.look})"
            )
        return (
            f"with no losing trade among its {_trades(self.trades)} there is no profit "
            f"factor; the evidence floor needs one (look {self.look})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


def _trades(n: int) -> str:
    return f"{n} trade" if n == 1 else f"{n} trades"


def _chance(psr: float | None) -> str:
    """How often a strategy with no edge does at least this well: ``1 - PSR``, in words."""
    if psr is None:
        return "at any time (its Sharpe ratio is undefined)"
    p = 1.0 - psr
    if p >= 0.5:
        return "more often than not"
    if p < 0.001:
        return "less than 1 time in 1,000"
    return f"about 1 time in {round(1.0 / p):,}"


def _years(first: Any, last: Any) -> float | None:
    try:
        days = (pd.Timestamp(last) - pd.Timestamp(first)).days
    except (TypeError, ValueError):
        return None
    return round(days / 365.25, 2) if days > 0 else None


def holdout_looks(
    records: Iterable[Any], alpha: float, min_trades: int = 0
) -> list[HoldoutLook]:
    """Every holdout look of a workflow, in the order the looks were recorded (``records``:
    the tracker's holdout records, in write order), each judged at its own ``K``.

    A record's ``gate_passed`` is its whole verdict; the evidence floor's failures are the
    ones among its ``failed_criteria`` that start with ``evidence: `` (`gate.EVIDENCE_PREFIX`),
    so a look whose only failures are those passed the gate and failed the floor.
    ``min_trades`` (the workflow's ``--min-trades``) is for the words only."""
    from alphaloop.workflow.gate import is_evidence_failure

    out = []
    for k, r in enumerate(records, start=1):
        psr = r.metrics.get("deflated_sharpe")
        need = threshold(alpha, k)
        significant = alpha >= 1.0 or (psr is not None and psr >= need)
        failed = [str(f) for f in (getattr(r, "failed_criteria", None) or ())]
        floor = [f for f in failed if is_evidence_failure(f)]
        trades = r.metrics.get("num_trades")
        out.append(
            HoldoutLook(
                variant=f"{r.experiment_id}/{r.variant_id}",
                strategy_name=r.strategy_name,
                look=k,
                sharpe=r.metrics.get("sharpe_ratio"),
                years=_years(r.eval_start, r.end),
                psr=psr,
                threshold=need,
                gate_passed=bool(r.gate_passed) or (bool(floor) and len(floor) == len(failed)),
                significant=significant,
                trades=None if trades is None else int(trades),
                evidence_passed=not floor,
                min_trades=min_trades,
            )
        )
    return out
