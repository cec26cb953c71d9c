"""The researcher: hypotheses from the in-sample statistics the offline researchers compute.

`LLMResearcher.hypothesize` turns a `ResearchBrief` (findings, the ranking of the library's
families, suggestions, what was tried; nothing else) into structured `Hypothesis` es, each
citing the statistics it rests on; `OfflineHypothesizer` is its deterministic fallback. For
the swarm, `LLMResearcher.study` is the `Researcher` protocol: it measures the bars with the
offline researchers, asks for hypotheses, and reports them as votes and suggestions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd

from alphaloop.agents.llm._replay import ExchangeStore
from alphaloop.agents.llm._types import ChatModel
from alphaloop.agents.llm.prompts import (
    Blind,
    DataBrief,
    Hypothesis,
    HypothesisSet,
    ResearchBrief,
    family_summaries,
    research_messages,
)
from alphaloop.agents.llm.roles._base import FALLBACK_ERRORS, ReplyInvalid, Role, Tally
from alphaloop.agents.protocols import (
    FAMILIES,
    FamilyWeight,
    Researcher,
    ResearchReport,
)
from alphaloop.agents.research import ResearchSwarm, default_researchers

__all__ = ["HYPOTHESIS_WEIGHT", "LLMResearcher", "OfflineHypothesizer", "slug"]

HYPOTHESIS_WEIGHT = 0.3
"""The vote `LLMResearcher.study` gives the library family a hypothesis names."""


def slug(text: str, limit: int = 24) -> str:
    """``text`` as a short snake_case name (``[a-z0-9_]``, starting with a letter)."""
    s = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    s = re.sub(r"^[^a-z]+", "", s)[:limit].rstrip("_")
    return s or "idea"


class OfflineHypothesizer:
    """The researcher's offline fallback: one hypothesis per library family the offline
    researchers favour (positive weight, best first; the best three if none is positive),
    citing the findings of the researchers that voted for it. Deterministic."""

    def hypothesize(self, brief: ResearchBrief) -> list[Hypothesis]:
        ranked = [r for r in brief.ranked if r.family in FAMILIES and r.family != "buy_and_hold"]
        chosen = [r for r in ranked if r.weight > 0][: brief.n] or ranked[: brief.n]
        summaries = family_summaries()
        out = []
        for r in chosen:
            voters = {reason.split(" ", 1)[0] for reason in r.reasons}
            evidence = [f.statistic for f in brief.findings if f.researcher in voters]
            why = "; ".join(r.reasons) or "the offline ranking"
            out.append(Hypothesis(
                name=r.family, family=r.family,  # type: ignore[arg-type]
                hypothesis=f"{r.family} fits the in-sample evidence: {why}",
                evidence=evidence[:6], mechanism=summaries.get(r.family, r.family)))
        return out


class LLMResearcher(Role):
    """The research agent, backed by a model, ``fallback`` (`OfflineHypothesizer`) offline.

    A reply is a `HypothesisSet` of 1 to ``brief.n + 2`` hypotheses with distinct snake_case
    names, each citing at least one statistic of the brief's findings and only those (the
    model is asked again, with the exact error, otherwise)."""

    role = "researcher"

    def __init__(self, model: ChatModel, fallback: OfflineHypothesizer | None = None, *,
                 researchers: Sequence[Researcher] | None = None, timeframe: str = "1d",
                 max_tokens: int = 1500, blind: Blind | None = None,
                 store: ExchangeStore | None = None, seed: int | None = None,
                 retries: int = 2) -> None:
        super().__init__(model, blind=blind, store=store, seed=seed, retries=retries)
        self.fallback = fallback or OfflineHypothesizer()
        self.researchers = list(researchers) if researchers is not None else None
        self.timeframe = timeframe
        self.max_tokens = max_tokens
        self.name = "llm"

    def hypothesize(self, brief: ResearchBrief) -> list[Hypothesis]:
        """Hypotheses for ``brief`` from the model; the offline ones if it fails (the step's
        `RoleOutcome` says which)."""
        tally = Tally()
        try:
            messages = research_messages(brief, self.blind)
            reply = self.ask_json(messages, HypothesisSet, tally,
                                  check=lambda r: _check(r, brief), max_tokens=self.max_tokens)
        except FALLBACK_ERRORS as exc:
            self._note("offline", tally, error=exc)
            return self.fallback.hypothesize(brief)
        self._note("model", tally)
        known = {s.lower(): s for s in brief.statistics()}
        return [h.model_copy(update={
            "name": slug(h.name),
            "evidence": [known.get(_stat(e), e.strip()) for e in h.evidence]})
            for h in reply.hypotheses]

    def study(self, data: pd.DataFrame, directive: str, bars_per_year: float) -> ResearchReport:
        """The `Researcher` protocol: the offline researchers measure the in-sample ``data``;
        the model's hypotheses come back as ``suggestions`` and as a vote of
        `HYPOTHESIS_WEIGHT` for each library family one names. No findings of its own (the
        offline researchers report theirs). On a fallback the report is empty: the offline
        researchers' votes are already in the swarm."""
        researchers = self.researchers if self.researchers is not None else default_researchers()
        swarm = ResearchSwarm(researchers).run(data, directive, bars_per_year)
        brief = ResearchBrief.from_swarm(
            swarm, DataBrief(bars=len(data), bars_per_year=bars_per_year,
                             timeframe=self.timeframe), self.blind, directive=directive)
        hypotheses = self.hypothesize(brief)
        if self.outcomes and self.outcomes[-1].fallback:
            return ResearchReport(researcher=self.name, findings=[])
        votes = [FamilyWeight(h.family, HYPOTHESIS_WEIGHT, f"hypothesis {h.name}")
                 for h in hypotheses if h.family in FAMILIES]
        return ResearchReport(researcher=self.name, findings=[], favoured_families=votes,
                              suggestions=[f"{h.name}: {h.hypothesis}" for h in hypotheses])


def _stat(evidence: str) -> str:
    return evidence.strip().strip("[]").strip().lower()


def _check(reply: HypothesisSet, brief: ResearchBrief) -> None:
    """Raise `ReplyInvalid` naming what is wrong with ``reply`` for ``brief``."""
    hs = reply.hypotheses
    if not 1 <= len(hs) <= brief.n + 2:
        raise ReplyInvalid(f"give {brief.n} hypotheses, got {len(hs)}")
    names = [slug(h.name) for h in hs]
    if len(set(names)) != len(names):
        raise ReplyInvalid(f"hypothesis names must differ, got {', '.join(names)}")
    known = {s.lower(): s for s in brief.statistics()}
    for h in hs:
        if not h.hypothesis.strip() or not h.mechanism.strip():
            raise ReplyInvalid(f"hypothesis {h.name!r}: hypothesis and mechanism must not be "
                               "empty")
        if not known:
            continue
        unknown = [e for e in h.evidence if _stat(e) not in known]
        if unknown or not h.evidence:
            raise ReplyInvalid(
                f"hypothesis {h.name!r}: evidence must name statistics of the findings (the "
                f"words in brackets); {', '.join(map(repr, unknown)) or 'none given'} is not "
                f"one. Use some of: {', '.join(known.values())}")
