"""Plain numpy statistics behind the offline researchers (formulas in docs/agents.md).

Every function takes a 1-D float array and returns plain numbers, so each can be checked
against an independent computation. None of them looks at anything but the array it is given.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from alphaloop.errors import DataError

MIN_BARS = 100
"""Fewest in-sample bars a researcher will study."""
DF_CRITICAL = {"1%": -3.43, "5%": -2.86, "10%": -2.57}
"""Dickey–Fuller critical values, regression with a constant, large sample (MacKinnon)."""


def validated_close(data: pd.DataFrame) -> np.ndarray:
    """The close column as a float array, after checking the frame can be studied."""
    if not isinstance(data, pd.DataFrame) or "close" not in data.columns:
        raise DataError("research data must be a DataFrame with a 'close' column; pass OHLCV bars")
    if not isinstance(data.index, pd.DatetimeIndex):
        raise DataError("research data needs a DatetimeIndex; load bars with alphaloop.data.load")
    close = data["close"].to_numpy(dtype=float)
    if len(close) < MIN_BARS:
        raise DataError(f"research needs at least {MIN_BARS} in-sample bars, got {len(close)}")
    if not np.all(np.isfinite(close)) or np.any(close <= 0):
        raise DataError("research data has non-positive or missing closes; clean the bars first")
    return close


def log_returns(close: np.ndarray) -> np.ndarray:
    """r_t = ln(P_t / P_{t-1})."""
    return np.diff(np.log(np.asarray(close, dtype=float)))


def autocorr(x: np.ndarray, lag: int) -> float:
    """Pearson correlation of x_t with x_{t-lag} over the overlap (pandas `Series.autocorr`)."""
    x = np.asarray(x, dtype=float)
    if lag <= 0 or lag >= len(x) - 2:
        return float("nan")
    a, b = x[lag:], x[:-lag]
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b / den) if den > 0 else float("nan")


def variance_ratio(r: np.ndarray, q: int) -> tuple[float, float]:
    """Lo–MacKinlay (1988) VR(q) with overlapping q-sums and bias corrections, and its z-stat.

    VR = sigma_c^2 / sigma_a^2 where sigma_a^2 = sum(r - mu)^2 / (T - 1) and
    sigma_c^2 = sum_t (r_t + ... + r_{t-q+1} - q mu)^2 / m, m = q (T - q + 1)(1 - q / T).
    z = (VR - 1) / sqrt(2 (2q - 1)(q - 1) / (3 q T)) under homoskedastic iid increments.
    """
    r = np.asarray(r, dtype=float)
    t = len(r)
    if q < 2 or t <= q + 1:
        return float("nan"), float("nan")
    mu = r.mean()
    var_a = float(((r - mu) ** 2).sum() / (t - 1))
    csum = np.concatenate(([0.0], np.cumsum(r)))
    sums = csum[q:] - csum[:-q]
    m = q * (t - q + 1) * (1 - q / t)
    var_c = float(((sums - q * mu) ** 2).sum() / m)
    if var_a <= 0:
        return float("nan"), float("nan")
    vr = var_c / var_a
    z = (vr - 1) / math.sqrt(2 * (2 * q - 1) * (q - 1) / (3 * q * t))
    return vr, z


def hurst_aggvar(r: np.ndarray, min_block: int = 2, n_sizes: int = 10) -> float:
    """Hurst exponent by the aggregated-variance method.

    For block sizes m on a log grid from `min_block` to T/10, average the returns within
    non-overlapping blocks; Var(block mean) ~ m^(2H - 2), so H = 1 + slope / 2 of
    log Var against log m. H ~ 0.5 for iid increments, > 0.5 persistent, < 0.5 anti-persistent.
    """
    r = np.asarray(r, dtype=float)
    t = len(r)
    max_block = t // 10
    if max_block <= min_block:
        return float("nan")
    sizes = np.unique(np.geomspace(min_block, max_block, n_sizes).astype(int))
    xs, ys = [], []
    for m in sizes:
        k = t // m
        means = r[: k * m].reshape(k, m).mean(axis=1)
        v = means.var(ddof=1)
        if v > 0:
            xs.append(math.log(m))
            ys.append(math.log(v))
    if len(xs) < 3:
        return float("nan")
    slope = float(np.polyfit(xs, ys, 1)[0])
    return 1.0 + slope / 2.0


def ols(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Least squares of y on [1, x...]: (coefficients, standard errors, R^2)."""
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float).reshape(len(y), -1)
    design = np.column_stack([np.ones(len(y)), x])
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ beta
    dof = len(y) - design.shape[1]
    s2 = float(resid @ resid) / dof if dof > 0 else float("nan")
    cov = s2 * np.linalg.pinv(design.T @ design)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    tss = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float(resid @ resid) / tss if tss > 0 else 0.0
    return beta, se, r2


def dickey_fuller(y: np.ndarray) -> dict[str, float]:
    """Dickey–Fuller regression with a constant: dy_t = a + b y_{t-1} + e_t.

    Returns phi = 1 + b, the t-stat of b (compare with `DF_CRITICAL`) and the half-life
    -ln 2 / ln(phi) in bars (inf when phi >= 1, nan when phi <= 0).
    """
    y = np.asarray(y, dtype=float)
    beta, se, _ = ols(np.diff(y), y[:-1])
    b = float(beta[1])
    phi = 1.0 + b
    t_stat = b / float(se[1]) if se[1] > 0 else float("nan")
    return {"phi": phi, "t_stat": t_stat, "half_life": half_life(phi)}


def half_life(phi: float) -> float:
    """-ln 2 / ln(phi): bars for a deviation to halve under AR(1) with coefficient phi."""
    if phi >= 1.0:
        return float("inf")
    if phi <= 0.0:
        return float("nan")
    return -math.log(2.0) / math.log(phi)


def arch_lm(r: np.ndarray, lags: int = 5) -> tuple[float, float]:
    """Engle's ARCH-LM test: regress e_t^2 on its `lags` lags; LM = n R^2 ~ chi2(lags).

    Returns (LM, p-value); e_t are demeaned returns.
    """
    e2 = (np.asarray(r, dtype=float) - np.mean(r)) ** 2
    n = len(e2) - lags
    if n <= lags + 2:
        return float("nan"), float("nan")
    x = np.column_stack([e2[lags - k - 1 : len(e2) - k - 1] for k in range(lags)])
    _, _, r2 = ols(e2[lags:], x)
    lm = n * r2
    return lm, chi2_sf(lm, lags)


def chi2_sf(x: float, k: int) -> float:
    """Survival function of chi-square with integer k degrees of freedom (closed form)."""
    if x <= 0:
        return 1.0
    if k % 2 == 0:
        term, total = 1.0, 1.0
        for i in range(1, k // 2):
            term *= (x / 2) / i
            total += term
        return math.exp(-x / 2) * total
    total = math.erfc(math.sqrt(x / 2))
    term = math.sqrt(2 * x / math.pi) * math.exp(-x / 2)
    for i in range(1, (k + 1) // 2):
        total += term
        term *= x / (2 * i + 1)
    return min(1.0, total)


def drawdown_profile(close: np.ndarray) -> dict[str, float]:
    """Buy-and-hold drawdowns: max depth, mean depth, share of bars under water, longest spell."""
    p = np.asarray(close, dtype=float)
    peak = np.maximum.accumulate(p)
    dd = 1.0 - p / peak
    under = dd > 0
    longest = run = 0
    for u in under:
        run = run + 1 if u else 0
        longest = max(longest, run)
    return {
        "max_drawdown": float(dd.max()),
        "mean_drawdown": float(dd.mean()),
        "time_under_water": float(under.mean()),
        "longest_drawdown_bars": float(longest),
    }


def breakout_edge(close: np.ndarray, lookback: int, horizon: int) -> dict[str, float]:
    """Forward `horizon`-bar log returns after a close above the prior `lookback` closes' max.

    Returns events, hit rate (share > 0) and mean after breakouts, and the same for all bars.
    """
    logp = np.log(np.asarray(close, dtype=float))
    n = len(logp)
    fwd = np.full(n, np.nan)
    fwd[: n - horizon] = logp[horizon:] - logp[: n - horizon]
    prior_max = np.full(n, np.nan)
    for i in range(lookback, n):
        prior_max[i] = logp[i - lookback : i].max()
    event = (logp > prior_max) & ~np.isnan(fwd)
    valid = ~np.isnan(fwd)
    after, allr = fwd[event], fwd[valid]
    return {
        "events": float(event.sum()),
        "hit_rate": float((after > 0).mean()) if len(after) else float("nan"),
        "mean_after": float(after.mean()) if len(after) else float("nan"),
        "hit_rate_all": float((allr > 0).mean()) if len(allr) else float("nan"),
        "mean_all": float(allr.mean()) if len(allr) else float("nan"),
    }
