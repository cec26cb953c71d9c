"""Researchers of risk and breakouts: volatility clustering, regimes and drawdowns; whether
new N-bar highs continue. In-sample only."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from alphaloop.agents import _stats as st
from alphaloop.agents.protocols import FamilyWeight, Finding, ResearchReport


class VolatilityResearcher:
    """Volatility clustering (ARCH-LM), regimes of rolling volatility and drawdown profile."""

    name = "volatility"

    def __init__(self, window: int = 20, high_multiple: float = 1.5) -> None:
        """Rolling `window` bars; 'high-vol' means vol above `high_multiple` x its median."""
        self.window, self.high_multiple = window, high_multiple

    def study(self, data: pd.DataFrame, directive: str, bars_per_year: float) -> ResearchReport:
        """Measure in-sample clustering, regimes and buy-and-hold drawdowns."""
        close = st.validated_close(data)
        r = st.log_returns(close)
        band = 1.96 / math.sqrt(len(r))
        sq1, ab1 = st.autocorr(r**2, 1), st.autocorr(np.abs(r), 1)
        lm, p = st.arch_lm(r, 5)
        vol = pd.Series(r).rolling(self.window).std().dropna().to_numpy() * math.sqrt(bars_per_year)
        med = float(np.median(vol))
        high_share = float((vol > self.high_multiple * med).mean())
        current_pct = float((vol <= vol[-1]).mean())
        dd = st.drawdown_profile(close)
        findings = [
            Finding(
                statement=f"lag-1 autocorrelation of squared returns {sq1:+.3f}, of |returns| "
                f"{ab1:+.3f} (±{band:.3f} band)",
                statistic="acf_sq_1",
                value=sq1,
                detail={"acf_abs_1": ab1, "band": band},
            ),
            Finding(
                statement=f"ARCH-LM(5) = {lm:.1f}, p = {p:.3g}",
                statistic="arch_lm",
                value=lm,
                detail={"p_value": p, "lags": 5},
            ),
            Finding(
                statement=f"{self.window}-bar vol: median {med:.1%}, quartiles "
                f"{np.quantile(vol, 0.25):.1%}/{np.quantile(vol, 0.75):.1%}; "
                f"{high_share:.0%} of bars above {self.high_multiple:g}x median",
                statistic="high_vol_share",
                value=high_share,
                detail={"median_vol": med, "current_percentile": current_pct},
            ),
            Finding(
                statement=f"buy-and-hold max drawdown {dd['max_drawdown']:.1%}, "
                f"{dd['time_under_water']:.0%} of bars under water, longest "
                f"{dd['longest_drawdown_bars']:.0f} bars",
                statistic="max_drawdown",
                value=dd["max_drawdown"],
                detail=dd,
            ),
        ]
        votes: list[FamilyWeight] = []
        suggestions: list[str] = []
        if p < 0.01 or ab1 > 2 * band:  # |r| resists the outliers that swamp r^2
            suggestions.append(
                f"volatility targeting: scale position by target_vol / "
                f"{self.window}-bar vol (ARCH-LM p = {p:.2g}, acf |r| {ab1:+.3f})"
            )
        if high_share > 0.15:
            suggestions.append(
                f"regime filter: stand aside when {self.window}-bar vol > "
                f"{self.high_multiple:g}x median ({high_share:.0%} of bars)"
            )
        if dd["max_drawdown"] > 0.25:
            why = f"buy-and-hold max drawdown {dd['max_drawdown']:.0%}"
            votes += [
                FamilyWeight("buy_and_hold", -0.5, why),
                FamilyWeight("sma_crossover", 0.2, f"{why}: a trend filter can sit out"),
                FamilyWeight("donchian_breakout", 0.2, f"{why}: exits on channel lows"),
            ]
            suggestions.append(f"drawdown control: trend filter or stop ({why})")
        return ResearchReport(
            researcher=self.name,
            findings=findings,
            favoured_families=votes,
            suggestions=suggestions,
        )


class BreakoutResearcher:
    """Do new N-bar highs continue? Forward hit rate after breakouts vs all bars."""

    name = "breakout"

    def __init__(self, lookbacks: Sequence[int] = (20, 55), horizon: int = 10) -> None:
        """Breakouts above the prior `lookbacks` closes, judged `horizon` bars later."""
        self.lookbacks, self.horizon = tuple(lookbacks), horizon

    def study(self, data: pd.DataFrame, directive: str, bars_per_year: float) -> ResearchReport:
        """Compare forward returns after in-sample breakouts with the unconditional ones."""
        close = st.validated_close(data)
        findings: list[Finding] = []
        votes: list[FamilyWeight] = []
        for n in self.lookbacks:
            b = st.breakout_edge(close, n, self.horizon)
            if b["events"] < 20:
                continue
            excess = b["hit_rate"] - b["hit_rate_all"]
            p0 = b["hit_rate_all"]
            z = excess / math.sqrt(p0 * (1 - p0) / b["events"]) if 0 < p0 < 1 else 0.0
            findings.append(
                Finding(
                    statement=f"after {b['events']:.0f} new {n}-bar highs the {self.horizon}-bar "
                    f"hit rate is {b['hit_rate']:.1%} vs {p0:.1%} unconditional (z {z:+.2f}, "
                    "overlapping events: optimistic)",
                    statistic=f"breakout_excess_hit_{n}",
                    value=excess,
                    detail={**b, "z": z},
                )
            )
            if excess > 0.03 and z >= 2 and b["mean_after"] > b["mean_all"]:
                votes.append(
                    FamilyWeight(
                        "donchian_breakout",
                        0.4,
                        f"{n}-bar breakouts continue (+{excess:.1%} hit rate)",
                    )
                )
            elif excess < -0.03 and z <= -2 and b["mean_after"] < b["mean_all"]:
                votes.append(
                    FamilyWeight(
                        "donchian_breakout", -0.3, f"{n}-bar breakouts fade ({excess:.1%} hit rate)"
                    )
                )
        return ResearchReport(researcher=self.name, findings=findings, favoured_families=votes)
