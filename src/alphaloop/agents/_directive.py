"""Parse a free-text research directive into a `Directive` (keyword table in docs/agents.md)."""

from __future__ import annotations

import re

from alphaloop.agents.protocols import FAMILIES, Directive

TREND = ("sma_crossover", "ema_crossover", "macd", "momentum", "donchian_breakout")
REVERSION = ("rsi_reversion", "bollinger_reversion")

STYLE_KEYWORDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # (regex, style, families) -- first match of each keyword adds the style and families.
    (r"trend[- ]?follow\w*|trend\w*", "trend", TREND),
    (r"momentum", "momentum", ("momentum", "macd")),
    (
        r"mean[- ]?revert\w*|mean[- ]?reversion|revers\w*|contrarian|oversold|overbought",
        "mean_reversion",
        REVERSION,
    ),
    (r"breakouts?|channel|donchian", "breakout", ("donchian_breakout",)),
    (r"moving[- ]averages?|crossovers?", "crossover", ("sma_crossover", "ema_crossover")),
    (r"\brsi\b", "mean_reversion", ("rsi_reversion",)),
    (r"bollinger", "mean_reversion", ("bollinger_reversion",)),
    (r"\bmacd\b", "momentum", ("macd",)),
    (r"buy[- ]and[- ]hold|passive", "passive", ("buy_and_hold",)),
)
LONG_ONLY = r"long[- ]only|no[- ]short\w*|without[- ]short\w*|never[- ]short"
LOW_DRAWDOWN = (
    r"low[- ]drawdowns?|small(er)?[- ]drawdowns?|limit\w*[- ]drawdowns?|drawdown|"
    r"capital[- ]preservation|conservative|low[- ]risk|low[- ]vol\w*|defensive"
)
NEGATION = r"\b(?:no|not|avoid|without|except|never)\s+(?:\w+\s+)?$"
"""A style keyword preceded (within one word) by one of these is excluded instead."""


def parse_directive(text: str) -> Directive:
    """Read styles, families, long-only and low-drawdown wishes from a directive's keywords.

    "long only" / "no shorting" set `long_only` and are not read as a negation. A style
    keyword right after "no", "not", "avoid", "without", "except" or "never" (one word may
    sit between, as in "avoid mean reversion") excludes its families instead of preferring them.
    Family names written out ("sma_crossover", "sma crossover", "buy and hold") select that
    family only, so "sma crossover" does not also bring in ema_crossover.
    """
    low = (text or "").lower()
    long_only = re.search(LONG_ONLY, low) is not None
    scrubbed = re.sub(LONG_ONLY, " ", low)
    low_dd = re.search(LOW_DRAWDOWN, scrubbed) is not None
    styles: list[str] = []
    preferred: list[str] = []
    excluded: list[str] = []
    named = [(r"\b" + f.replace("_", "[ _-]") + r"\b", None, (f,)) for f in FAMILIES if "_" in f]
    for pattern, style, families in [*named, *STYLE_KEYWORDS]:
        for match in re.finditer(pattern, scrubbed):
            negated = re.search(NEGATION, scrubbed[: match.start()]) is not None
            target = excluded if negated else preferred
            target.extend(f for f in families if f not in target)
            if style and not negated and style not in styles:
                styles.append(style)
        if style is None:  # a family named outright is not also read as a style keyword
            scrubbed = re.sub(pattern, " ", scrubbed)
    preferred = [f for f in preferred if f not in excluded]
    return Directive(
        text=text or "",
        preferred_styles=styles,
        preferred_families=preferred,
        excluded_families=excluded,
        long_only=long_only,
        low_drawdown=low_dd,
    )
