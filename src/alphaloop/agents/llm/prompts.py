"""What the roles send a language model, and the rules that keep it honest.

Honesty (issue 9). A prompt names no ticker, company or calendar date and carries nothing of
the holdout: the data is described by bar offsets, bars per year and in-sample statistics of
returns, never by a price level, so a model cannot recall what happened next. Three layers:

1. *By construction.* The builders take pydantic briefs holding only in-sample statistics,
   gate verdicts, strategy code and error text; never bars, dates or holdout metrics.
2. *Sanitising.* `Blind` knows the forbidden words (the ticker, its company names, the data
   file's name) and the in-sample bar dates. Builders drop every finding whose text holds a
   date or a forbidden word (`sanitise_findings`), and `Blind.scrub` rewrites any other text
   (an error naming a date becomes "bar 412"; a forbidden word becomes "the asset").
3. *Audit.* Every builder ends with `Blind.seal`, which scrubs and then audits each message
   (`audit_request`) and raises `HonestyError` if anything is left. The full-run test calls
   `audit_request` on every request a run sends.

The reply models (`HypothesisSet`, `AnalystReply`, `TrajectoryReply`) are here too: their JSON
schema is part of what is sent.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import PurePath
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from alphaloop.agents.llm._types import Message
from alphaloop.agents.protocols import (
    FAMILIES,
    FailureAnalysis,
    FailureAnalysisInput,
    Finding,
    GateCriterion,
    NextAction,
    Recommendation,
    RecordsSummary,
    SwarmResult,
    TrajectoryAdvice,
    TrajectoryStats,
)

__all__ = [
    "FIX_KINDS",
    "KNOWN_NAMES",
    "MAX_LINES",
    "MAX_PARAMETERS",
    "AnalystReply",
    "Blind",
    "BugReport",
    "DataBrief",
    "FindingBrief",
    "HonestyError",
    "Hypothesis",
    "HypothesisSet",
    "RankedBrief",
    "RefineBrief",
    "ResearchBrief",
    "TrajectoryReply",
    "WriteBrief",
    "audit_request",
    "failure_messages",
    "family_summaries",
    "find_dates",
    "fix_messages",
    "forbidden_terms",
    "refine_messages",
    "research_messages",
    "sanitise_findings",
    "trajectory_messages",
    "write_messages",
]

MAX_LINES = 200
"""Lines a generated strategy may have (gate 2; the writer is told)."""
MAX_PARAMETERS = 6
"""Parameters a generated strategy may declare (gate 2; the writer is told)."""

KNOWN_NAMES: dict[str, tuple[str, ...]] = {
    "AAPL": ("Apple",),
    "FB": ("Facebook", "Meta Platforms"),
    "GOOG": ("GOOGL", "Google", "Alphabet"),
    "IBM": ("International Business Machines",),
    "MSFT": ("Microsoft",),
}
"""Company names of the embedded sample's tickers: forbidden in prompts with the ticker."""


class HonestyError(ValueError):
    """A prompt would carry a ticker, a company name, a date or a holdout figure."""


# --------------------------------------------------------------------------- dates
_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
          r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_YEAR = r"(?:19|20)\d{2}"
DATE_PATTERNS: tuple[re.Pattern[str], ...] = tuple(re.compile(p, re.IGNORECASE) for p in (
    # 2008-09-15, 2008/09/15, 2008.09.15, 2008-09, 2008-09-15T00:00:00
    rf"(?<![\d.]){_YEAR}[-/.](?:0?[1-9]|1[0-2])(?:[-/.](?:0?[1-9]|[12]\d|3[01]))?(?![\d])",
    # 15/09/2008, 9-15-2008
    rf"(?<![\d.])\d{{1,2}}[-/.]\d{{1,2}}[-/.]{_YEAR}(?!\d)",
    # 20080915
    rf"(?<!\d){_YEAR}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?!\d)",
    # September 2008, Sep 15, 2008, Sept. '08
    rf"\b{_MONTH}\.?(?:\s+\d{{1,2}}(?:st|nd|rd|th)?,?)?\s+(?:{_YEAR}\b|'\d{{2}}\b)",
    # 15 September 2008
    rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH}\.?,?\s+{_YEAR}\b",
    # Q3 2008, 2008 Q3, FY2008
    rf"\bQ[1-4]\s*{_YEAR}\b|\b{_YEAR}\s*Q[1-4]\b|\bFY\s?{_YEAR}\b",
    # a year as a time: in 2008, since 1999, the 1990s, 2008's, 2007-2009
    rf"\b(?:in|during|since|until|till|from|through|before|after|of|year|early|mid|late|"
    rf"around|circa|by)\s+(?:the\s+)?{_YEAR}s?\b",
    rf"\b{_YEAR}(?:'?s)\b",
    rf"(?<![\d.]){_YEAR}\s*[-–]\s*{_YEAR}(?![\d.])",
))
"""What counts as a calendar date (case ignored). A bare four-digit number is not a date
(counts are written with a thousands separator: ``2,008 bars``)."""


def find_dates(text: str) -> list[str]:
    """Every date-like string in ``text`` (see `DATE_PATTERNS`), in order of appearance."""
    found = [(m.start(), m.group(0)) for p in DATE_PATTERNS for m in p.finditer(text)]
    return [s for _, s in sorted(found)]


# --------------------------------------------------------------------------- forbidden words
def forbidden_terms(ticker: str | None, data_path: str | None = None,
                    extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The words no prompt may hold: the ticker (and ``GOOGL`` for ``GOOG``, ``BRK.B`` as
    ``BRK``...), the company names `KNOWN_NAMES` knows for it, the data file's name without
    its suffix, and ``extra`` (names a user knows, holdout figures as printed)."""
    terms: list[str] = []
    if ticker:
        t = ticker.strip()
        terms += [t, *re.split(r"[.\-/=^]", t)[:1], *KNOWN_NAMES.get(t.upper(), ())]
    if data_path:
        terms.append(PurePath(data_path).stem)
    terms += [e for e in extra if e]
    out = []
    for term in terms:
        term = term.strip()
        if len(term) >= 2 and term.lower() not in {x.lower() for x in out}:
            out.append(term)
    return tuple(out)


def _term_pattern(term: str) -> re.Pattern[str]:
    """``term`` as a whole word: case ignored from 4 characters on; shorter terms (``FB``,
    ``GE``) only in the case given, so ``ge`` in prose or ``fb_`` in code do not count."""
    flags = re.IGNORECASE if len(term) >= 4 else 0
    return re.compile(rf"(?<![A-Za-z0-9]){re.escape(term)}(?![A-Za-z0-9])", flags)


def audit_request(messages: Iterable[Mapping[str, Any]], forbidden: Iterable[str] = ()
                  ) -> list[str]:
    """What in ``messages`` must not leave the machine: each ``forbidden`` word or figure
    (tickers, company names, holdout metrics as printed; whole words, see `_term_pattern`) and
    every date-like string (`find_dates`). One line per problem; empty when the request is
    clean."""
    patterns = [(t, _term_pattern(t)) for t in dict.fromkeys(forbidden) if t and t.strip()]
    problems: list[str] = []
    for i, m in enumerate(messages):
        text = str(m.get("content", ""))
        role = m.get("role", "?")
        for term, pattern in patterns:
            if pattern.search(text):
                problems.append(f"message {i} ({role}) holds {term!r}")
        for date in find_dates(text):
            problems.append(f"message {i} ({role}) holds the date-like {date!r}")
    return problems


def _asset(m: re.Match[str]) -> str:
    """``the asset`` in prose, ``asset`` inside a name or a path (``llm_asset_x``)."""
    text, i, j = m.string, m.start(), m.end()
    joined = (i > 0 and text[i - 1] in "_/\\.-") or (j < len(text) and text[j] in "_/\\-")
    return "asset" if joined else "the asset"


@dataclass(frozen=True)
class Blind:
    """What a prompt must not show, and how to say a date instead: ``forbidden`` words (see
    `forbidden_terms`) and ``index``, the in-sample bars' dates, by which a date in an error
    becomes a bar offset. ``Blind()`` forbids only dates."""

    forbidden: tuple[str, ...] = ()
    index: pd.DatetimeIndex | None = field(default=None, compare=False, repr=False)

    @classmethod
    def for_run(cls, ticker: str | None, in_sample_index: pd.DatetimeIndex | None = None, *,
                data_path: str | None = None, extra: Iterable[str] = ()) -> Blind:
        """The blind of one workflow: its ticker and data file, its in-sample dates."""
        return cls(forbidden_terms(ticker, data_path, extra), in_sample_index)

    def problems(self, text: str) -> list[str]:
        """What in ``text`` must not be sent (see `audit_request`)."""
        return [p.split(" holds ", 1)[1] for p in
                audit_request([{"role": "user", "content": text}], self.forbidden)]

    def clean(self, text: str) -> bool:
        return not self.problems(text)

    def _bar(self, date: str) -> str:
        if self.index is None or len(self.index) == 0:
            return "a bar"
        try:
            stamp = pd.Timestamp(date.replace("/", "-").replace(".", "-"))
        except (ValueError, TypeError):
            return "a bar"
        if stamp.tz is not None:
            stamp = stamp.tz_localize(None)
        pos = int(self.index.searchsorted(stamp, side="left"))
        return f"bar {pos:,}" if pos < len(self.index) else "a bar after the in-sample data"

    def scrub(self, text: str) -> str:
        """``text`` with each date said as a bar offset of the in-sample data (``bar 412``;
        ``a bar`` without an index or for an unreadable date) and each forbidden word replaced
        by ``the asset``."""
        for pattern in DATE_PATTERNS:
            text = pattern.sub(lambda m: self._bar(m.group(0)), text)
        for term in sorted(self.forbidden, key=len, reverse=True):
            text = _term_pattern(term).sub(_asset, text)
        return text

    def seal(self, messages: Sequence[Message]) -> list[Message]:
        """``messages`` scrubbed, then audited: `HonestyError` naming what is left, if
        anything (scrubbing leaves nothing that `audit_request` finds)."""
        out: list[Message] = [{"role": m["role"], "content": self.scrub(m["content"])}
                              for m in messages]
        problems = audit_request(out, self.forbidden)
        if problems:
            raise HonestyError(f"a prompt would leak: {'; '.join(problems[:3])}; fix the "
                               "prompt builder")
        return out


# --------------------------------------------------------------------------- briefs
class _Brief(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


_TIMEFRAME_WORDS = {"1h": "hourly", "4h": "4-hour", "1d": "daily", "1w": "weekly",
                    "1mo": "monthly"}


class DataBrief(_Brief):
    """The data, as a prompt may describe it: how many in-sample bars, of what size."""

    bars: int = Field(ge=1, description="In-sample bars.")
    bars_per_year: float = Field(gt=0, allow_inf_nan=False)
    timeframe: str = "1d"

    def describe(self) -> str:
        size = _TIMEFRAME_WORDS.get(self.timeframe, self.timeframe)
        return (f"The in-sample data: {self.bars:,} {size} bars (columns open, high, low, close, "
                f"volume), about {self.bars_per_year:,.0f} bars a year. Bars are counted from "
                "bar 0, the first in-sample bar.")


class FindingBrief(_Brief):
    """One in-sample finding as sent: who measured it, the statistic's name and value, and
    the statement."""

    researcher: str = ""
    statistic: str
    value: float | None = None
    statement: str

    def line(self) -> str:
        value = "" if self.value is None else f" (value {_num(self.value)})"
        return f"- [{self.statistic}] {self.statement}{value}"


def sanitise_findings(findings: Iterable[Finding | FindingBrief], blind: Blind, *,
                      researcher: str = "") -> tuple[list[FindingBrief], list[str]]:
    """``(kept, dropped)``: each finding as a `FindingBrief`, except those whose statement or
    statistic holds a date or a forbidden word: those are dropped, whole, and named in
    ``dropped`` with the reason. A finding's ``detail`` is never sent."""
    kept: list[FindingBrief] = []
    dropped: list[str] = []
    for f in findings:
        brief = f if isinstance(f, FindingBrief) else FindingBrief(
            researcher=researcher, statistic=f.statistic, statement=f.statement,
            value=f.value if math.isfinite(f.value) else None)
        problems = blind.problems(f"{brief.statistic} {brief.statement}")
        if problems:
            dropped.append(f"{brief.statistic}: holds {', '.join(problems)}")
        else:
            kept.append(brief)
    return kept, dropped


class RankedBrief(_Brief):
    family: str
    weight: float
    reasons: list[str] = Field(default_factory=list)


class ResearchBrief(_Brief):
    """What the researcher role is told: the in-sample findings of the offline researchers,
    their ranking of the library's families, their suggestions, the directive, and (on later
    rounds) what was tried. Build it with `from_swarm`."""

    data: DataBrief
    directive: str = ""
    findings: list[FindingBrief]
    ranked: list[RankedBrief] = Field(default_factory=list)
    suggestions: list[str] = Field(default_factory=list)
    tried: dict[str, float | None] = Field(
        default_factory=dict, description="Families tried so far: best in-sample gate score.")
    n: int = Field(default=3, ge=1, le=5, description="Hypotheses to ask for.")
    dropped: list[str] = Field(default_factory=list,
                               description="Findings left out (date or forbidden word).")

    @classmethod
    def from_swarm(cls, swarm: SwarmResult, data: DataBrief, blind: Blind, *,
                   directive: str = "", tried: Mapping[str, float | None] | None = None,
                   n: int = 3) -> ResearchBrief:
        """The brief of one research round, sanitised (`sanitise_findings`)."""
        findings: list[FindingBrief] = []
        dropped: list[str] = []
        for report in swarm.reports:
            kept, out = sanitise_findings(report.findings, blind, researcher=report.researcher)
            findings += kept
            dropped += out
        ranked = [RankedBrief(family=r.family, weight=r.weight,
                              reasons=[x for x in r.reasons if blind.clean(x)])
                  for r in swarm.ranked]
        return cls(data=data, directive=directive or swarm.directive.text, findings=findings,
                   ranked=ranked, suggestions=[s for s in swarm.suggestions if blind.clean(s)],
                   tried=dict(tried or {}), n=n, dropped=dropped)

    def statistics(self) -> list[str]:
        return [f.statistic for f in self.findings]


# --------------------------------------------------------------------------- replies
class _Reply(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


Family = Literal[(*FAMILIES, "new")]  # type: ignore[valid-type]


class Hypothesis(_Reply):
    """One idea a strategy could trade, and the in-sample evidence it rests on."""

    name: str = Field(description="Short snake_case name, e.g. weekday_drift.")
    hypothesis: str = Field(description="The pattern in returns, and why it could persist.")
    evidence: list[str] = Field(
        description="Statistic names (the words in brackets) of the findings it rests on.")
    family: Family = Field(  # type: ignore[valid-type]
        description="The library family it is closest to, or 'new'.")
    mechanism: str = Field(description="How a strategy would trade it, in one sentence.")


class HypothesisSet(_Reply):
    """The researcher's reply."""

    hypotheses: list[Hypothesis]


class AnalystReply(_Reply):
    """The failure analyst's reply."""

    recommendation: Recommendation
    reasoning: str = Field(description="Why, in two or three sentences, citing the numbers.")
    specific_actions: list[str] = Field(description="Concrete next steps, at most five.")
    confidence: float = Field(description="From 0 to 1.")


class TrajectoryReply(_Reply):
    """The trajectory analyst's reply."""

    next_action: NextAction
    reasoning: str = Field(description="Why, in one or two sentences, citing the scores.")


# --------------------------------------------------------------------------- text helpers
SYSTEM = (
    "You are an agent of alphaloop, a system that searches for systematic trading strategies "
    "and tests them honestly: ideas are tuned on in-sample bars and judged once on later bars "
    "nobody shows you. You are not told which asset or which period the data covers; do not "
    "guess, and do not use anything you may remember about markets, assets or events: reason "
    "only from the statistics given. Time is counted in bars; prices are never shown, only "
    "statistics of returns."
)

GATE_SCORE = ("gate score: a variant passing every criterion scores 1 to 3, a failing one -2 "
              "to 0 (nearer 0 is a nearer miss)")

STRATEGY_RULES = f"""\
A strategy is one Python module:
- A docstring; its first line summarises the strategy.
- PARAMETERS: one literal dict, assigned once, at most {MAX_PARAMETERS} entries: name ->
  {{"default": 20, "low": 5, "high": 100}} (an integer or float range; add "unit": "days" to an
  integer lookback written for daily bars, and it is scaled to the data's bars) or
  {{"default": True, "choices": [True, False]}}.
- def generate_positions(data, name=default, ...): one keyword per parameter, with its default.
  data is a pandas DataFrame of bars with a DatetimeIndex and float columns open, high, low,
  close, volume. Return a pandas Series on data.index (or a numpy array, one value per bar):
  the target position of every bar, finite and in [-1, 1] (1 long, -1 short, 0 flat). Make
  warm-up bars 0, never NaN.
- The position of bar t is decided at bar t's close and may use bars up to t only: no
  shift(-1), no centred windows, no statistic of the whole series (its mean, .iloc[-1]). A
  check re-runs the strategy on cut data and rejects any look-ahead.
- Imports: only numpy, pandas, math, statistics, talib, typing and
  "from alphaloop.backtest import indicators as ind" (sma, ema, rolling_std, returns,
  rolling_max, rolling_min, bars_per_year, rsi, macd, bbands, atr, donchian, crossover_side,
  latch; each takes arrays and returns a numpy array of the same length, NaN while warming
  up). Nothing else: no files, no network, no open/eval/exec/getattr/type, no class, no name
  or attribute starting with an underscore, no method named by a string (df.agg("...")).
- No calendar dates or years in the code. The index's weekday, month or hour may be used
  as a feature of each bar.
- At most {MAX_LINES} lines; vectorised numpy/pandas where possible."""

EXAMPLE = '''\
```python
"""Long above the n-bar mean, flat below it."""

import numpy as np
import pandas as pd

from alphaloop.backtest import indicators as ind

PARAMETERS = {
    "n": {"default": 30, "low": 5, "high": 200, "unit": "days"},
    "band": {"default": 0.0, "low": 0.0, "high": 0.05},
}


def generate_positions(data, n=30, band=0.0):
    close = data["close"].to_numpy()
    mean = ind.sma(close, n)
    pos = np.where(close > mean * (1 + band), 1.0, 0.0)  # NaN mean (warm-up): 0
    return pd.Series(pos, index=data.index)
```'''

CODE_REPLY = ("Reply with the complete module in one ```python block. Text around the block "
              "is ignored.")

ACTIONS = {
    "TUNE_PARAMETERS": "the idea nearly works: search its parameters again (a near miss)",
    "FIX_BUG": "the code is at fault (errors, no trades, undefined metrics, look-ahead): fix "
               "the code",
    "REFINE_ALGORITHM": "the idea half works: change the algorithm (its signal, filters or "
                        "exits), not only its parameters",
    "REFINE_RESEARCH": "the premise did not hold in-sample: go back to research for new "
                       "hypotheses",
    "ABANDON": "nothing promising is left within the limits: stop",
}

METRICS_SENT = ("sharpe_ratio", "sortino_ratio", "calmar_ratio", "total_return", "cagr",
                "annual_volatility", "max_drawdown", "max_drawdown_duration", "win_rate",
                "profit_factor", "num_trades", "avg_trade_return", "exposure", "turnover",
                "deflated_sharpe")
"""In-sample metrics a prompt may carry (all ratios, counts or returns; none is a price)."""


def _num(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return str(x)
    if x != 0 and float(x).is_integer() and abs(x) < 1e6:
        return f"{int(x):,}"
    return f"{x:.4g}"


def _metrics(metrics: Mapping[str, float | None]) -> str:
    items = [f"{k} {_num(metrics[k])}" for k in METRICS_SENT if k in metrics]
    return ", ".join(items) or "none"


def _criterion(c: GateCriterion) -> str:
    return f"{c.metric} {_num(c.value)} (needs {c.op} {_num(c.threshold)})"


def _fenced(code: str) -> str:
    return f"```python\n{code.rstrip()}\n```"


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@lru_cache(maxsize=1)
def family_summaries() -> dict[str, str]:
    """The first docstring line of each library family (read, not run)."""
    from alphaloop.backtest.strategy import library_names, library_source

    out = {}
    for name in library_names():
        doc = ast.get_docstring(ast.parse(library_source(name))) or ""
        out[name] = doc.strip().splitlines()[0] if doc.strip() else ""
    return out


def _conversation(system: str, user: str, blind: Blind) -> list[Message]:
    return blind.seal([{"role": "system", "content": f"{SYSTEM}\n\n{system}"},
                       {"role": "user", "content": user}])


# --------------------------------------------------------------------------- the roles
def research_messages(brief: ResearchBrief, blind: Blind) -> list[Message]:
    """The researcher's request: propose ``brief.n`` hypotheses (a `HypothesisSet`)."""
    summaries = family_summaries()
    parts = [brief.data.describe(),
             f"Research directive: {_one_line(brief.directive) or '(none)'}",
             "In-sample findings (statistic name in brackets):",
             *(f.line() for f in brief.findings)]
    if brief.ranked:
        parts += ["How the offline researchers weigh the library's families:",
                  *(f"- {r.family} {r.weight:+.2f}: {'; '.join(r.reasons) or 'no evidence'}"
                    for r in brief.ranked)]
    if brief.suggestions:
        parts += ["Their suggested refinements:", *(f"- {s}" for s in brief.suggestions)]
    parts += ["The library's families:",
              *(f"- {name}: {summaries.get(name, '')}" for name in FAMILIES)]
    if brief.tried:
        parts += [f"Already tried in this workflow, with the best in-sample gate score ("
                  f"{GATE_SCORE}):",
                  *(f"- {k}: {_num(v)}" for k, v in brief.tried.items())]
    parts.append(
        f"Propose {brief.n} distinct hypotheses a strategy could exploit on this data. For "
        "each: name (short snake_case); hypothesis (the pattern in returns and why it could "
        "persist); evidence (statistic names, in brackets above, that support it); family "
        "(the library family it is closest to, or \"new\" for a mechanism none captures); "
        "mechanism (how a strategy would trade it, one sentence). Prefer what the findings "
        "support; an idea the library already covers and that was tried is worth less than a "
        "new one.")
    return _conversation("You are the research agent.", "\n".join(parts), blind)


class WriteBrief(_Brief):
    """What the strategy writer is told for a NEW strategy."""

    data: DataBrief
    name: str
    hypothesis: Hypothesis
    evidence: list[FindingBrief] = Field(default_factory=list)


def write_messages(brief: WriteBrief, blind: Blind) -> list[Message]:
    """The writer's request for a new strategy implementing ``brief.hypothesis``."""
    h = brief.hypothesis
    cited = [f.line() for f in brief.evidence] or ["- (none cited)"]
    user = "\n".join([
        brief.data.describe(),
        f"Write a new strategy named {brief.name} implementing this hypothesis.",
        f"Hypothesis: {_one_line(h.hypothesis)}",
        f"Mechanism: {_one_line(h.mechanism)}",
        f"Closest library family: {h.family}",
        "Evidence (in-sample):", *cited,
        "", STRATEGY_RULES, "", "An example of the form:", EXAMPLE, "", CODE_REPLY])
    return _conversation("You are the strategy writer.", user, blind)


class RefineBrief(_Brief):
    """What the strategy writer is told to change an algorithm (REFINE_ALGORITHM)."""

    data: DataBrief
    name: str
    base_name: str
    base_code: str
    metrics: dict[str, float | None] = Field(default_factory=dict)
    failed: list[GateCriterion] = Field(default_factory=list)
    analysis: FailureAnalysis | None = None
    findings: list[FindingBrief] = Field(default_factory=list)


def refine_messages(brief: RefineBrief, blind: Blind) -> list[Message]:
    """The writer's request to change ``brief.base_code``'s algorithm given the analysis."""
    lines = [brief.data.describe(),
             f"The strategy {brief.base_name} below failed the quality gate in-sample.",
             f"In-sample metrics: {_metrics(brief.metrics)}",
             "Failed criteria: " + ("; ".join(_criterion(c) for c in brief.failed) or "none")]
    a = brief.analysis
    if a is not None:
        lines += [f"Failure analysis: {a.recommendation}: {_one_line(a.reasoning)}",
                  *(f"- {_one_line(s, 200)}" for s in a.specific_actions[:6])]
    if brief.findings:
        lines += ["In-sample findings:", *(f.line() for f in brief.findings[:12])]
    lines += ["Current code:", _fenced(brief.base_code), "",
              f"Write {brief.name}: change the algorithm (the signal it trades, its filters or "
              "its exits) to address the analysis; changing parameter values alone is not "
              "enough.", "", STRATEGY_RULES, "", CODE_REPLY]
    return _conversation("You are the strategy writer.", "\n".join(lines), blind)


FixKind = Literal["sandbox", "interface", "size", "duplicate", "exception", "invalid",
                  "lookahead", "no_trades"]
FIX_KINDS: frozenset[str] = frozenset(FixKind.__args__)  # type: ignore[attr-defined]


class BugReport(_Brief):
    """A fault of a strategy's code, as the bug fixer (FIX_BUG) is told it."""

    name: str
    code: str
    kind: FixKind
    message: str = Field(description="The exact error: the rule or exception and its line.")
    line: int | None = None


_FIX_HINTS = {
    "sandbox": "Rewrite it without what the rule forbids.",
    "interface": "Follow the interface: PARAMETERS one literal dict, generate_positions "
                 "taking each parameter as a keyword with its default.",
    "size": f"Make it shorter: at most {MAX_LINES} lines and {MAX_PARAMETERS} parameters; "
            "drop what matters least.",
    "duplicate": "It is the same algorithm as a strategy already tried (names, comments and "
                 "parameter ranges aside): change what it does.",
    "exception": "Fix the cause of the exception.",
    "invalid": "Return one finite position in [-1, 1] per bar, 0 during warm-up.",
    "lookahead": "Its positions changed when later bars were removed: a decision at some bar "
                 "used bars after it. Use only bars up to each bar (no shift(-1), no centred "
                 "or whole-series statistics).",
    "no_trades": "It never trades: its entry condition never holds; loosen it.",
}


def fix_messages(report: BugReport, blind: Blind) -> list[Message]:
    """The bug fixer's request: ``report.code`` and its exact error; the fixed module back."""
    lines = report.code.splitlines()
    where = ""
    if report.line is not None and 1 <= report.line <= len(lines):
        where = f"\nLine {report.line} is: {lines[report.line - 1].strip()}"
    user = "\n".join([
        f"The strategy {report.name} below was rejected ({report.kind}): "
        f"{_one_line(report.message, 600)}{where}",
        _FIX_HINTS[report.kind], "", _fenced(report.code), "",
        "Return the fixed module: keep its idea and interface, fix the fault.", "",
        STRATEGY_RULES, "", CODE_REPLY])
    return _conversation("You are the bug fixer.", user, blind)


def failure_messages(inp: FailureAnalysisInput, offline: FailureAnalysis, blind: Blind, *,
                     findings: Sequence[FindingBrief] = (), code_lines: int = 80
                     ) -> list[Message]:
    """The failure analyst's request (an `AnalystReply`): the latest in-sample verdict, the
    history by iteration, the offline analyst's view and the start of the code."""
    gate = inp.quality_gate_results
    by_iter: dict[int, list[str]] = {}
    for pos, r in enumerate(inp.iteration_history):
        key = r.iteration if r.iteration is not None else pos
        note = "error" if r.error else ("look-ahead" if r.lookahead else _num(r.gate_score))
        if r.holdout_failed:
            note += ", passed in-sample but failed on the holdout"
        by_iter.setdefault(key, []).append(f"{r.strategy_name} {note}")
    history = [f"- iteration {k}: {'; '.join(v[:8])}{' ...' if len(v) > 8 else ''}"
               for k, v in sorted(by_iter.items())[-8:]]
    code = inp.strategy_code.splitlines()
    shown = "\n".join(code[:code_lines]) + ("\n# ..." if len(code) > code_lines else "")
    lines = [
        f"Strategy iteration {inp.current_iteration} of {inp.max_iterations}.",
        f"Latest variant: {inp.strategy_name}; in-sample metrics: "
        f"{_metrics(inp.backtest_metrics)}",
        f"Quality gate: {'passed' if gate.passed else 'failed'} (score {_num(gate.score)}; "
        f"{GATE_SCORE})",
        "Failed criteria: " + ("; ".join(_criterion(c) for c in gate.failed_criteria)
                               or "none"),
        "History (each variant's gate score, by iteration):", *(history or ["- none"]),
        "Favoured families: " + (", ".join(inp.favoured_families) or "none"),
    ]
    if findings:
        lines += ["In-sample findings:", *(f.line() for f in findings[:12])]
    if shown.strip():
        lines += ["The latest strategy's code:", _fenced(shown)]
    if offline.bug_detection.bug_locations:
        lines += ["Signs of a bug:", *(f"- {_one_line(b, 200)}"
                                       for b in offline.bug_detection.bug_locations[:6])]
    lines += [
        f"A rule-based analyst recommends {offline.recommendation} ({_one_line(offline.reasoning)}"
        ").",
        "The actions:", *(f"- {k}: {v}" for k, v in ACTIONS.items()),
        "Recommend one action, with your reasoning and concrete next steps.",
    ]
    return _conversation("You are the failure-analysis agent.", "\n".join(lines), blind)


def trajectory_messages(summary: RecordsSummary, stats: TrajectoryStats,
                        offline: TrajectoryAdvice, blind: Blind, *,
                        scores: Sequence[float] | None = None) -> list[Message]:
    """The trajectory analyst's request (a `TrajectoryReply`): the best in-sample gate score of
    each iteration, the statistics of that sequence and the offline advisor's view."""
    seq = ", ".join(_num(s) for s in scores) if scores else "(not given)"
    lines = [
        f"Best in-sample gate score per iteration, oldest first: {seq} ({GATE_SCORE}).",
        f"Statistics: {stats.n} scored iterations, slope {_num(stats.slope)} per iteration "
        f"(t {_num(stats.slope_t)}), mean improvement {_num(stats.mean_improvement)}, "
        f"{stats.sign_changes} sign changes, volatility {_num(stats.volatility)}, best "
        f"{_num(stats.best)}, {stats.iterations_since_best} iterations since the best, "
        f"{stats.decline_run} declines in a row; classified {stats.classification}.",
        f"Iterations used: {summary.iterations} of "
        f"{summary.max_iterations if summary.max_iterations is not None else 'no limit'}; "
        f"families tried: {', '.join(summary.families_tried) or 'none'}.",
        f"A rule-based advisor says {offline.next_action} ({_one_line(offline.reasoning)}).",
        "Decide: CONTINUE (keep refining this line of strategies), PIVOT (go back to research "
        "for a new direction) or ABANDON (stop: further search mostly mines noise).",
    ]
    return _conversation("You are the trajectory-analysis agent.", "\n".join(lines), blind)
