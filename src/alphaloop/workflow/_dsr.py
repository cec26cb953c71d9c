"""Probabilistic and Deflated Sharpe Ratios (Bailey & López de Prado).

References:
    Bailey, D. H. and López de Prado, M. (2012), "The Sharpe Ratio Efficient Frontier",
    Journal of Risk 15(2) — the Probabilistic Sharpe Ratio (PSR).
    Bailey, D. H. and López de Prado, M. (2014), "The Deflated Sharpe Ratio: Correcting for
    Selection Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio Management
    40(5) — the Deflated Sharpe Ratio (DSR).

Units: every Sharpe ratio here is **per bar and not annualised** (mean / standard deviation of
per-bar returns, no risk-free rate). An annualised Sharpe ratio ``S`` at ``b`` bars per year is
``S / sqrt(b)`` per bar (:func:`per_bar_sharpe`); a variance of annualised Sharpe ratios is
divided by ``b``.

Estimators: the Sharpe ratio uses the sample standard deviation (``ddof=1``); skewness and
kurtosis are the plain (biased) moment ratios ``m3 / m2**1.5`` and ``m4 / m2**2`` — kurtosis is
*not* excess kurtosis (a normal distribution has 3). Only the standard library's normal
distribution is used, so scipy is not a runtime dependency.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

from alphaloop.backtest.metrics import return_moments

__all__ = [
    "EULER_GAMMA",
    "deflated_sharpe",
    "deflated_sharpe_from_moments",
    "expected_max_sharpe",
    "per_bar_sharpe",
    "probabilistic_sharpe",
    "probabilistic_sharpe_from_moments",
    "return_moments",
]

EULER_GAMMA = 0.5772156649015329
"""The Euler–Mascheroni constant γ."""

_NORMAL = NormalDist()


def per_bar_sharpe(annualised_sharpe: float, bars_per_year: float) -> float:
    """Convert an annualised Sharpe ratio to per-bar units: ``S / sqrt(bars_per_year)``."""
    if not bars_per_year > 0:
        raise ValueError(f"bars_per_year must be positive, got {bars_per_year!r}")
    return float(annualised_sharpe) / math.sqrt(bars_per_year)


def probabilistic_sharpe_from_moments(
    sharpe: float, t: int, skewness: float, kurtosis: float, benchmark_sharpe: float = 0.0
) -> float:
    """PSR: the probability that the true per-bar Sharpe ratio exceeds ``benchmark_sharpe``.

    ``PSR = Φ((SR - SR*) · sqrt(T - 1) / sqrt(1 - γ3·SR + (γ4 - 1)/4 · SR²))`` with ``γ3`` the
    skewness and ``γ4`` the (non-excess) kurtosis of the returns.

    Raises:
        ValueError: ``t < 2``, or moments no distribution can have (``γ4 < 1 + γ3²``, which is
            what makes the denominator positive).
    """
    if t < 2:
        raise ValueError(f"PSR needs at least 2 returns, got T={t}")
    if kurtosis < 1.0 + skewness**2 - 1e-9:
        raise ValueError(
            f"impossible moments: kurtosis {kurtosis} < 1 + skewness² = {1.0 + skewness**2}"
        )
    variance_term = 1.0 - skewness * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if variance_term <= 0.0:  # only reachable at the boundary γ4 == 1 + γ3² (two-point laws)
        variance_term = np.finfo(np.float64).tiny
    z = (sharpe - benchmark_sharpe) * math.sqrt(t - 1) / math.sqrt(variance_term)
    return _NORMAL.cdf(z)


def probabilistic_sharpe(returns: np.ndarray, benchmark_sharpe: float = 0.0) -> float | None:
    """PSR of per-bar ``returns`` against a per-bar ``benchmark_sharpe``; None when undefined."""
    moments = return_moments(returns)
    if moments is None:
        return None
    sharpe, t, skewness, kurtosis = moments
    return probabilistic_sharpe_from_moments(sharpe, t, skewness, kurtosis, benchmark_sharpe)


def expected_max_sharpe(n_trials: int, trials_variance: float) -> float:
    """SR0: the expected maximum of ``n_trials`` Sharpe ratios whose true value is zero.

    ``SR0 = sqrt(V) · ((1 - γ) Φ⁻¹(1 - 1/N) + γ Φ⁻¹(1 - 1/(N e)))`` with γ Euler–Mascheroni,
    ``N = n_trials`` and ``V = trials_variance`` (variance of the trials' per-bar Sharpe
    ratios). One trial, or trials that all scored the same, give ``SR0 = 0``.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    if not trials_variance >= 0.0:
        raise ValueError(f"trials_variance must be non-negative, got {trials_variance!r}")
    if n_trials == 1 or trials_variance == 0.0:
        return 0.0
    n = float(n_trials)
    z = (1.0 - EULER_GAMMA) * _NORMAL.inv_cdf(1.0 - 1.0 / n) + EULER_GAMMA * _NORMAL.inv_cdf(
        1.0 - 1.0 / (n * math.e)
    )
    return math.sqrt(trials_variance) * z


def deflated_sharpe_from_moments(
    sharpe: float,
    t: int,
    skewness: float,
    kurtosis: float,
    n_trials: int,
    trials_variance: float,
) -> float:
    """DSR from summary numbers: ``PSR(SR0)`` with ``SR0 = expected_max_sharpe(N, V)``.

    All Sharpe figures per bar (see the module docstring for converting annualised ones).
    """
    sr0 = expected_max_sharpe(n_trials, trials_variance)
    return probabilistic_sharpe_from_moments(sharpe, t, skewness, kurtosis, sr0)


def deflated_sharpe(
    returns: np.ndarray,
    sharpe_ratios_tried: Sequence[float | None],
    *,
    n_trials: int | None = None,
    bars_per_year: float | None = None,
) -> float | None:
    """Deflated Sharpe Ratio of the selected variant: P(true SR > best expected by luck).

    Args:
        returns: the winner's per-bar returns (the series its metrics were computed on).
        sharpe_ratios_tried: Sharpe ratio of every variant actually backtested, the winner
            included — per bar unless ``bars_per_year`` is given. None or non-finite entries
            (undefined Sharpe) count as trials but are left out of the variance.
        n_trials: override N, e.g. with an estimate of the number of *independent* trials;
            default ``len(sharpe_ratios_tried)``.
        bars_per_year: when given, ``sharpe_ratios_tried`` are annualised at this many bars
            per year and are converted to per bar (``S / sqrt(bars_per_year)``).

    Returns:
        A probability in [0, 1], or None when the winner's Sharpe ratio is undefined (fewer
        than 3 returns or zero volatility).

    Raises:
        ValueError: no trials given (the winner itself is a trial), or ``n_trials < 1``.
    """
    if len(sharpe_ratios_tried) == 0:
        raise ValueError("sharpe_ratios_tried is empty; it must include the winner itself")
    n = len(sharpe_ratios_tried) if n_trials is None else int(n_trials)
    if n < 1:
        raise ValueError(f"n_trials must be at least 1, got {n}")
    finite = np.array(
        [float(s) for s in sharpe_ratios_tried if s is not None and math.isfinite(s)],
        dtype=np.float64,
    )
    if bars_per_year is not None:
        finite = finite * per_bar_sharpe(1.0, bars_per_year)
    variance = float(np.var(finite, ddof=1)) if finite.size >= 2 else 0.0
    moments = return_moments(returns)
    if moments is None:
        return None
    sharpe, t, skewness, kurtosis = moments
    return deflated_sharpe_from_moments(sharpe, t, skewness, kurtosis, n, variance)
