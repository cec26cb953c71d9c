"""Refinements: the algorithm changes the offline developer writes into a strategy's source,
and the fitting of a strategy's lookbacks to the data's bar size.

Refinements are real code: the base strategy's source with a wrapper appended that
post-processes its positions using data up to each bar only, so the result passes the same
sandbox and look-ahead checks as any other strategy. `fit_to_bars` scales the parameters
declared ``"unit": "days"`` to bars of the workflow's data (`alphaloop.agents.development`).
"""

from __future__ import annotations

import ast
import hashlib
import math
from typing import Any

from alphaloop.agents._tuning import nearest_feasible
from alphaloop.backtest._source import with_constraints
from alphaloop.backtest.strategy import (
    Strategy,
    declared_parameters,
    from_source,
    scale_lookbacks,
    with_parameters,
)
from alphaloop.errors import StrategyError

__all__ = ["FIXES", "REFINEMENTS", "VOL_TARGET_DAYS", "clashes", "fit_to_bars", "refine"]


_WRAPPER = """

# --- alphaloop refinement: {name}{fixed_note} ---
import numpy as _np_{tag}
import pandas as _pd_{tag}
{imports}
_base_generate_positions_{tag} = generate_positions


def generate_positions(data, {signature}**params):
{pre}    pos = _pd_{tag}.Series(_base_generate_positions_{tag}(data, **params), index=data.index)
    pos = pos.to_numpy(dtype=float)
    close = data["close"]
{body}
    pos = _np_{tag}.clip(_np_{tag}.where(_np_{tag}.isnan(pos), 0.0, pos), -1.0, 1.0)
    return _pd_{tag}.Series(pos, index=data.index)
"""

# The bodies work on ``pos`` as a numpy array (the rolling windows stay pandas'): each pandas
# step on a Series costs ~0.1 ms, and the look-ahead check runs a refined strategy on ~20 cuts
# of the data; the arithmetic is the same, so are the positions.
REFINEMENTS: dict[str, dict[str, str]] = {
    "trend_filter": {
        "params": '"trend_window": {"default": 200, "low": 50, "high": 250, "unit": "days"}',
        "signature": "trend_window=200, ",
        "body": (
            "    trend = close.rolling(trend_window, min_periods=trend_window).mean().to_numpy()\n"
            "    price = close.to_numpy()\n"
            "    keep = ((pos > 0) & (price > trend)) | ((pos < 0) & (price < trend))\n"
            "    pos = _np_{tag}.where(keep, pos, 0.0)"
        ),
    },
    "volatility_filter": {
        "params": '"filter_window": {"default": 20, "low": 10, "high": 60, "unit": "days"}, '
        '"vol_quantile": {"default": 0.8, "low": 0.5, "high": 0.95}',
        "signature": "filter_window=20, vol_quantile=0.8, ",
        "body": (
            "    vol = close.pct_change().rolling(filter_window).std()\n"
            "    limit = vol.expanding(min_periods=filter_window * 5).quantile(vol_quantile)\n"
            "    pos = _np_{tag}.where(~(vol.to_numpy() > limit.to_numpy()), pos, 0.0)"
        ),
    },
    "long_only": {
        "params": "",
        "signature": "",
        "body": "    pos = _np_{tag}.where(pos < 0.0, 0.0, pos)",
    },
    "vol_target": {
        "params": '"target_vol": {"default": 0.15, "low": 0.05, "high": 0.4}',
        "signature": "target_vol=0.15, ",
        # annualised with the data's own bars per year; the realised volatility is measured
        # over 20 days of bars ({vol_bars}: 20 on daily bars, about 124 on FX 4-hour bars)
        "imports": "from alphaloop.backtest import indicators as _ind_{tag}\n",
        "body": (
            "    annualise = _ind_{tag}.bars_per_year(data.index) ** 0.5\n"
            "    realised = close.pct_change().rolling({vol_bars}).std() * annualise\n"
            "    scale = (target_vol / realised).to_numpy()\n"
            "    pos = pos * _np_{tag}.where(scale > 1.0, 1.0, scale)"
        ),
    },
}
"""Each refinement's ``params`` (added to the base's PARAMETERS; no name a base declares),
``signature`` (those parameters as the wrapper takes them), optional ``imports`` and the
``body`` that post-processes ``pos``; ``{tag}`` and ``{vol_bars}`` are filled in by `refine`."""

VOL_TARGET_DAYS = 20
"""Days of one-bar returns the vol_target refinement measures realised volatility over."""


FIXES: dict[str, dict[str, Any]] = {
    "long_only": {"allow_short": False, "long_only": True},
    "vol_target": {"vol_target": 0.0, "vol_window": 20},
}
"""Base parameters a refinement decides: they leave the search space and are fixed in the
call, so no variant says ``allow_short=True`` while the refinement forbids shorts, or has the
base (momentum) target a volatility the refinement then targets again (its ``vol_window``
then does nothing: fixed too, not searched). Only names the base declares are fixed."""


def clashes(base: Strategy, refinement: str) -> list[str]:
    """Parameters `refinement` would add that `base` already declares (and does not give up to
    the refinement): such a name would mean two things, so `refine` refuses the pair. So are
    parameters it would fix (`FIXES`) that one of the base's ``CONSTRAINTS`` names."""
    added = ast.literal_eval("{" + REFINEMENTS[refinement]["params"] + "}")
    fixed = FIXES.get(refinement, {})
    # a parameter the refinement fixes leaves the space: no constraint may still name it
    constrained = {n for c in base.constraints for n in c.names if n in fixed}
    return sorted(
        {k for k in added if k in base.parameters and k not in fixed} | constrained
    )


def refine(base: Strategy, refinement: str, bars_per_day: float = 1.0) -> Strategy:
    """`base` with `refinement` written into its source, loaded through the sandbox. Base
    parameters the refinement decides (`FIXES`) are dropped from PARAMETERS and fixed in the
    call; the refinement's header comment records which. ``bars_per_day`` sets the bars of
    the windows the refinement's code fixes (vol_target's `VOL_TARGET_DAYS`); its parameters
    declared in days are scaled by `scale_lookbacks` like any others. `ValueError` if the
    refinement would add a parameter the base declares (`clashes`)."""
    spec = REFINEMENTS[refinement]
    clash = clashes(base, refinement)
    if clash:
        raise ValueError(
            f"refinement {refinement!r} adds parameters {base.name!r} declares: {clash}"
        )
    tag = hashlib.sha256(f"{base.name}{refinement}".encode()).hexdigest()[:6]
    name = f"{base.name}+{refinement}"
    # PARAMETERS stays one literal (strategy code is read, never run, outside a confined
    # process): the base's literal gains the refinement's parameters
    raw = dict(declared_parameters(base))
    fixed = {k: v for k, v in FIXES.get(refinement, {}).items() if k in raw}
    for key in fixed:
        del raw[key]
    raw.update(ast.literal_eval("{" + spec["params"] + "}"))
    source = with_parameters(base.source, name, raw)
    note = ", ".join(f"{k}={v!r}" for k, v in fixed.items())
    fill = {"tag": tag, "vol_bars": max(2, math.floor(VOL_TARGET_DAYS * bars_per_day + 0.5))}
    source += _WRAPPER.format(
        name=refinement,
        tag=tag,
        fixed_note=f" (fixes {note})" if fixed else "",
        pre=f"    params.update({fixed!r})\n" if fixed else "",
        signature=spec["signature"],
        imports=spec.get("imports", "").format(**fill),
        body=spec["body"].format(**fill),
    )
    return from_source(source, name)


def fit_to_bars(strategy: Strategy, bars_per_year: float, in_sample_bars: int | None) -> Strategy:
    """`strategy` with its parameters declared in days scaled to bars of data with
    ``bars_per_year`` bars a year (bars_per_year / 252 bars a day) and capped at a third of
    ``in_sample_bars`` (`scale_lookbacks`); the same object when that changes nothing (daily
    data long enough for every declared range). The scaled space is written into the code's
    PARAMETERS literal, and its last line says by what factor and cap."""
    bars_per_day = bars_per_year / 252.0
    cap = None if in_sample_bars is None else max(1, in_sample_bars // 3)
    specs = scale_lookbacks(strategy.parameters, bars_per_day, cap)
    changed = [n for n, spec in specs.items() if spec is not strategy.parameters[n]]
    if not changed:
        return strategy
    raw = dict(declared_parameters(strategy))
    for n in changed:
        raw[n] = specs[n].to_dict()
    source = strategy.source
    note = _scaling_note(bars_per_year, cap)
    # scaling keeps fast < slow; a constraint it broke gets the nearest default that meets it,
    # and where nothing can (fast and slow squeezed to one value) the constraints go, as the
    # rules stay flat on such points anyway
    try:
        moved = nearest_feasible(specs, strategy.constraints, strategy.name)
    except StrategyError:
        moved = {}
        source = with_constraints(source, strategy.name, [])
        note += f"; no point meets CONSTRAINTS {[c.text for c in strategy.constraints]}"
    for n, value in moved.items():
        raw[n] = {**raw[n], "default": value}
    source = with_parameters(source, strategy.name, raw)
    source += f"\n# --- alphaloop: {note} ---\n"
    return from_source(source, strategy.name)


def _scaling_note(bars_per_year: float, cap: int | None) -> str:
    """What `fit_to_bars` did, in words, e.g. ``lookbacks in days x6.19 (1560 bars a year),
    at most 1040 bars``."""
    note = f"lookbacks in days x{bars_per_year / 252.0:.3g} ({bars_per_year:.0f} bars a year)"
    return note + (f", at most {cap} bars" if cap is not None else "")
