"""Researchers of persistence: trend (autocorrelation, variance ratio, Hurst, drift) and
mean reversion (Dickey–Fuller half-life, reversal after stretched z-scores). In-sample only."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from alphaloop.agents import _stats as st
from alphaloop.agents._directive import REVERSION, TREND
from alphaloop.agents.protocols import FamilyWeight, Finding, ResearchReport

PERSISTENCE_MIN = 0.15
"""|persistence| above which the trend researcher votes for (or against) trend families."""


def _clip(x: float, lo: float = -1.0, hi: float = 1.0) -> float:
    """x clipped to [lo, hi]; NaN counts as no evidence (0)."""
    return 0.0 if math.isnan(x) else min(hi, max(lo, x))


def _vr_verdict(z: float) -> str:
    return "trending" if z > 1.96 else "mean-reverting" if z < -1.96 else "random walk"


class TrendResearcher:
    """Persistence of returns: autocorrelation, Lo–MacKinlay variance ratios, Hurst, drift."""

    name = "trend"

    def study(self, data: pd.DataFrame, directive: str, bars_per_year: float) -> ResearchReport:
        """Measure persistence in in-sample log returns; favour trend families when persistent."""
        r = st.log_returns(st.validated_close(data))
        n = len(r)
        band = 1.96 / math.sqrt(n)
        findings: list[Finding] = []
        acfs = {}
        for lag in (1, 5, 10, 20):
            acfs[lag] = rho = st.autocorr(r, lag)
            verdict = "significant" if abs(rho) > band else "inside the noise band"
            findings.append(
                Finding(
                    statement=f"lag-{lag} autocorrelation of log returns {rho:+.3f} "
                    f"(±{band:.3f} band): {verdict}",
                    statistic=f"acf_{lag}",
                    value=rho,
                    detail={"lag": lag, "band": band, "n": n},
                )
            )
        zs = []
        for q in (2, 5, 10):
            vr, z = st.variance_ratio(r, q)
            zs.append(z)
            findings.append(
                Finding(
                    statement=f"variance ratio VR({q}) = {vr:.3f}, z = {z:+.2f} ({_vr_verdict(z)})",
                    statistic=f"variance_ratio_{q}",
                    value=vr,
                    detail={"q": q, "z": z},
                )
            )
        h = st.hurst_aggvar(r)
        findings.append(
            Finding(
                statement=f"Hurst exponent (aggregated variance) H = {h:.3f}",
                statistic="hurst",
                value=h,
                detail={"method": "aggregated_variance"},
            )
        )
        mu, sd = float(r.mean()), float(r.std(ddof=1))
        drift_t = mu / (sd / math.sqrt(n)) if sd > 0 else 0.0
        findings.append(
            Finding(
                statement=f"annualised drift {mu * bars_per_year:+.2%}, t = {drift_t:+.2f}",
                statistic="drift_t",
                value=drift_t,
                detail={"annual_drift": mu * bars_per_year},
            )
        )
        finite_z = [z for z in zs if math.isfinite(z)]
        mean_z = float(np.mean(finite_z)) if finite_z else 0.0
        persistence = float(
            np.mean(
                [
                    _clip(mean_z / 4.0),
                    _clip((h - 0.5) / 0.15),
                    _clip(acfs[1] / (2 * band)),
                ]
            )
        )
        findings.append(
            Finding(
                statement=f"persistence score {persistence:+.2f} (mean of VR z/4, (H-0.5)/0.15, "
                "acf1/(2 band), each clipped to ±1)",
                statistic="persistence",
                value=persistence,
            )
        )
        votes: list[FamilyWeight] = []
        why = f"persistence {persistence:+.2f} (VR z mean {mean_z:+.2f}, H {h:.2f})"
        if persistence > PERSISTENCE_MIN:
            votes += [FamilyWeight(f, persistence, f"returns persist: {why}") for f in TREND]
        elif persistence < -PERSISTENCE_MIN:
            votes += [
                FamilyWeight(f, persistence / 2, f"returns anti-persist: {why}") for f in TREND
            ]
        if drift_t >= 2.0:
            reason = f"significant positive drift (t = {drift_t:+.2f})"
            votes += [
                FamilyWeight("momentum", 0.3, reason),
                FamilyWeight("buy_and_hold", 0.3, reason),
            ]
        return ResearchReport(researcher=self.name, findings=findings, favoured_families=votes)


class MeanReversionResearcher:
    """Stationarity of the log price (Dickey–Fuller) and reversal after stretched z-scores."""

    name = "mean_reversion"

    def __init__(self, window: int = 20, horizon: int = 5, z_entry: float = 2.0) -> None:
        """`window` bars for the rolling mean, `horizon` bars forward, |z| >= `z_entry` events."""
        self.window, self.horizon, self.z_entry = window, horizon, z_entry

    def study(self, data: pd.DataFrame, directive: str, bars_per_year: float) -> ResearchReport:
        """Fit AR(1) to in-sample log price; favour reversion families when half-life is short."""
        logp = np.log(st.validated_close(data))
        df = st.dickey_fuller(logp)
        phi, t, hl = df["phi"], df["t_stat"], df["half_life"]
        level = next((k for k, c in st.DF_CRITICAL.items() if t <= c), None)
        findings = [
            Finding(
                statement=f"AR(1) on log price: phi = {phi:.4f}, half-life {hl:.1f} bars",
                statistic="half_life",
                value=hl,
                detail={"phi": phi},
            ),
            Finding(
                statement=f"Dickey–Fuller t = {t:.2f} "
                f"({'stationary at ' + level if level else 'unit root not rejected'})",
                statistic="df_t_stat",
                value=t,
                detail={"critical": st.DF_CRITICAL},
            ),
        ]
        s = pd.Series(logp)
        z = ((s - s.rolling(self.window).mean()) / s.rolling(self.window).std()).to_numpy()
        fwd = np.full(len(logp), np.nan)
        fwd[: -self.horizon] = logp[self.horizon :] - logp[: -self.horizon]
        ok = np.isfinite(fwd)
        low, high = fwd[(z <= -self.z_entry) & ok], fwd[(z >= self.z_entry) & ok]
        spread_t = 0.0
        if len(low) >= 10 and len(high) >= 10:
            spread = float(low.mean() - high.mean())
            se = math.sqrt(low.var(ddof=1) / len(low) + high.var(ddof=1) / len(high))
            spread_t = spread / se if se > 0 else 0.0
            findings.append(
                Finding(
                    statement=f"{self.horizon}-bar return after z<=-{self.z_entry:g} minus after "
                    f"z>=+{self.z_entry:g}: {spread:+.4f} (Welch t {spread_t:+.2f})",
                    statistic="reversal_spread",
                    value=spread,
                    detail={"t": spread_t, "n_low": len(low), "n_high": len(high)},
                )
            )
        votes: list[FamilyWeight] = []
        if level in ("1%", "5%") and hl <= 60:
            w = 1.0 if hl <= 20 else 0.6
            votes += [
                FamilyWeight(f, w, f"log price mean-reverts: half-life {hl:.1f} bars, DF t {t:.2f}")
                for f in REVERSION
            ]
        elif level == "10%":
            votes += [FamilyWeight(f, 0.3, f"weak stationarity: DF t {t:.2f}") for f in REVERSION]
        if spread_t >= 2.0:
            votes += [
                FamilyWeight(f, 0.4, f"stretched moves reverse (Welch t {spread_t:+.2f})")
                for f in REVERSION
            ]
        elif spread_t <= -2.0:
            votes += [
                FamilyWeight(f, -0.3, f"stretched moves continue (Welch t {spread_t:+.2f})")
                for f in REVERSION
            ]
        if not votes:
            votes += [
                FamilyWeight(
                    f, -0.2, f"no reversion evidence (DF t {t:.2f}, half-life {hl:.0f} bars)"
                )
                for f in REVERSION
            ]
        return ResearchReport(researcher=self.name, findings=findings, favoured_families=votes)
