"""Honesty of what the roles send: built from real in-sample research on the embedded GOOG
data, no prompt names the ticker or the company, holds a date or a price level; the audit
finds what it must; the sanitiser drops findings that would leak and the scrubber says dates
as bar offsets."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pandas as pd
import pytest

from alphaloop.agents import (
    FailureAnalysisInput,
    Finding,
    IterationRecord,
    QualityGateResults,
    RecordsSummary,
    ResearchSwarm,
    RuleBasedFailureAnalyst,
    RuleBasedTrajectoryAdvisor,
    TrajectoryAnalyzer,
)
from alphaloop.agents.llm.prompts import (
    Blind,
    BugReport,
    DataBrief,
    HonestyError,
    Hypothesis,
    RefineBrief,
    ResearchBrief,
    WriteBrief,
    audit_request,
    failure_messages,
    find_dates,
    fix_messages,
    forbidden_terms,
    refine_messages,
    research_messages,
    sanitise_findings,
    trajectory_messages,
    write_messages,
)
from alphaloop.backtest.strategy import library_source
from alphaloop.data import load

DATE = re.compile(r"(19|20)\d\d-\d\d-\d\d")
MONTH_YEAR = re.compile(
    r"\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+(\d{1,2},?\s+)?"
    r"(19|20)\d\d\b", re.IGNORECASE)
NUMBER = re.compile(r"(?<![\w.])\d+\.\d{2,}")


@pytest.fixture(scope="module")
def goog() -> tuple[pd.DataFrame, Blind]:
    bars = load("GOOG")
    in_sample = bars.iloc[: int(len(bars) * 0.7)]
    return in_sample, Blind.for_run("GOOG", in_sample.index)


@pytest.fixture(scope="module")
def every_prompt(goog: tuple[pd.DataFrame, Blind]) -> list[list[dict[str, str]]]:
    """One request of each role, from real in-sample research on GOOG, with a directive and
    an error text that name the ticker, the company and dates."""
    bars, blind = goog
    swarm = ResearchSwarm().run(bars, "a robust GOOG strategy, low drawdown", 252.0)
    data = DataBrief(bars=len(bars), bars_per_year=252.0, timeframe="1d")
    brief = ResearchBrief.from_swarm(swarm, data, blind,
                                     directive="beat Google's 2008-09 crash, as in Sep 2008")
    h = Hypothesis(name="calm_drift", hypothesis="drift persists in calm regimes",
                   evidence=["drift_t", "arch_lm"], family="new",
                   mechanism="long while 20-bar vol is below its median")
    code = library_source("sma_crossover")
    record = IterationRecord(strategy_name="sma_crossover", iteration=1,
                             metrics={"sharpe_ratio": 0.4, "max_drawdown": 0.3,
                                      "num_trades": 12},
                             gate_score=-0.4, failed_criteria=["sharpe_ratio>=1.0"])
    gate = QualityGateResults(passed=False, score=-0.4, failed_criteria=record.failed_criteria)
    fa_in = FailureAnalysisInput(
        strategy_name="sma_crossover", strategy_code=code, research_findings=swarm.findings,
        favoured_families=swarm.top(), backtest_metrics=record.metrics,
        quality_gate_results=gate, iteration_history=[record], current_iteration=1)
    offline = RuleBasedFailureAnalyst().analyze_failure(fa_in)
    scores = [-0.9, -0.6, -0.5, -0.55]
    stats = TrajectoryAnalyzer(scores).analyze_trajectory()
    summary = RecordsSummary(iterations=4, max_iterations=15, best_score=-0.5,
                             families_tried=["sma_crossover", "macd"])
    advice = RuleBasedTrajectoryAdvisor().analyze_trajectory(summary, stats)
    findings = brief.findings
    return [
        research_messages(brief, blind),
        write_messages(WriteBrief(data=data, name="llm_calm_drift", hypothesis=h,
                                  evidence=findings[:3]), blind),
        refine_messages(RefineBrief(data=data, name="llm_sma_r1", base_name="sma_crossover",
                                    base_code=code, metrics=record.metrics,
                                    failed=gate.failed_criteria, analysis=offline,
                                    findings=findings), blind),
        fix_messages(BugReport(name="llm_goog_x", code=code, kind="invalid", line=None,
                               message="strategy 'llm_goog_x': generate_positions returned "
                                       "NaN at 2005-08-11 (first of 3) in /data/GOOG.csv"),
                     blind),
        failure_messages(fa_in, offline, blind, findings=findings),
        trajectory_messages(summary, stats, advice, blind, scores=scores),
    ]


def price_levels(bars: pd.DataFrame) -> set[str]:
    values = bars[["open", "high", "low", "close"]].to_numpy().ravel()
    return {f"{v:.2f}" for v in values} | {f"{v:.3f}" for v in values}


def texts(prompts: list[list[dict[str, str]]]) -> Iterator[str]:
    for messages in prompts:
        for m in messages:
            yield m["content"]


def test_prompts_name_no_ticker_company_date_or_price(
        goog: tuple[pd.DataFrame, Blind], every_prompt: list[list[dict[str, str]]]) -> None:
    _, blind = goog
    levels = price_levels(load("GOOG"))
    assert len(every_prompt) == 6
    for text in texts(every_prompt):
        low = text.lower()
        assert "goog" not in low and "google" not in low and "alphabet" not in low
        assert not DATE.search(text), DATE.search(text)
        assert not MONTH_YEAR.search(text), MONTH_YEAR.search(text)
        assert not find_dates(text)
        for number in NUMBER.findall(text):
            assert number not in levels, f"price level {number} in a prompt"
    for messages in every_prompt:
        assert audit_request(messages, blind.forbidden) == []
    joined = "\n".join(texts(every_prompt))
    assert "bar 1" in joined  # the NaN date became a bar offset (2005-08-11: bar 1xx)
    assert "1,503 daily bars" in joined and "252 bars a year" in joined


def test_the_data_is_described_by_bars_not_dates(every_prompt: list[list[dict[str, str]]]
                                                 ) -> None:
    research = every_prompt[0][1]["content"]
    assert "[drift_t]" in research and "Dickey" in research
    assert "the asset" in research  # "Google's" in the directive, scrubbed
    system = every_prompt[0][0]["content"]
    assert "not told which asset or which period" in system


def test_audit_finds_tickers_dates_and_holdout_figures() -> None:
    forbidden = [*forbidden_terms("GOOG"), "1.87", "0.412"]
    clean = [{"role": "user", "content": "2,008 bars; t = +1.75; Sharpe 0.41; the 200-bar mean"}]
    assert audit_request(clean, forbidden) == []
    for leak in ("GOOG fell", "googl", "Google", "Alphabet Inc", "on 2008-09-15",
                 "15/09/2008", "September 2008", "Sep 15, 2008", "in 2008", "the 1990s",
                 "Q3 2008", "holdout Sharpe 1.87", "20080915", "2007-2009"):
        found = audit_request([{"role": "user", "content": f"x {leak} y"}], forbidden)
        assert found, leak
    assert audit_request([{"role": "system", "content": "ok"},
                          {"role": "user", "content": "GOOG"}], ["GOOG"]) == [
        "message 1 (user) holds 'GOOG'"]
    # short tickers match only in their own case, as whole words
    assert audit_request([{"role": "user", "content": "fb_signal, Ge, FBX"}], ["FB", "GE"]) == []
    assert audit_request([{"role": "user", "content": "long FB"}], ["FB"])


def test_forbidden_terms() -> None:
    assert forbidden_terms("GOOG") == ("GOOG", "GOOGL", "Google", "Alphabet")
    assert forbidden_terms("BRK.B", "/x/brk_b.csv") == ("BRK.B", "BRK", "brk_b")
    assert forbidden_terms(None) == ()


def test_sanitiser_drops_findings_that_would_leak(goog: tuple[pd.DataFrame, Blind]) -> None:
    _, blind = goog
    findings = [Finding(statement="drift +12% a year", statistic="drift", value=0.12),
                Finding(statement="GOOG fell after 2008-09-15", statistic="crash", value=-0.5),
                Finding(statement="vol peaked in October 2008", statistic="vol_peak", value=0.9),
                Finding(statement="calm", statistic="google_beta", value=1.0)]
    kept, dropped = sanitise_findings(findings, blind, researcher="r")
    assert [f.statistic for f in kept] == ["drift"] and kept[0].researcher == "r"
    assert len(dropped) == 3 and dropped[0].startswith("crash: holds")


def test_scrub_says_dates_as_bar_offsets(goog: tuple[pd.DataFrame, Blind]) -> None:
    bars, blind = goog
    third = bars.index[300].date().isoformat()
    assert blind.scrub(f"NaN at {third} (first of 2)") == "NaN at bar 300 (first of 2)"
    assert blind.scrub("since 2099-01-01") == "since a bar after the in-sample data"
    assert Blind().scrub("cut at 2006-05-01, GOOG") == "cut at a bar, GOOG"
    assert blind.scrub("GOOG and Google's GOOGL") == "the asset and the asset's the asset"
    sealed = blind.seal([{"role": "user", "content": "GOOG on 2006-05-01 in 2006"}])
    assert audit_request(sealed, blind.forbidden) == []


def test_seal_refuses_what_it_cannot_scrub(monkeypatch: pytest.MonkeyPatch) -> None:
    blind = Blind(("GOOG",))
    monkeypatch.setattr(Blind, "scrub", lambda self, text: text)
    with pytest.raises(HonestyError, match="'GOOG'"):
        blind.seal([{"role": "user", "content": "GOOG"}])


def test_research_brief_leaves_out_findings_that_leak(goog: tuple[pd.DataFrame, Blind]) -> None:
    from alphaloop.agents import ResearchReport, SwarmResult
    from alphaloop.agents.protocols import Directive

    _, blind = goog
    report = ResearchReport(researcher="events", findings=[
        Finding(statement="drawdown 65%", statistic="max_drawdown", value=0.65),
        Finding(statement="worst day 2008-09-29", statistic="worst_day", value=-0.12)],
        suggestions=["avoid GOOG earnings", "target volatility"])
    swarm = SwarmResult(directive=Directive(text="x"), ranked=[], reports=[report])
    brief = ResearchBrief.from_swarm(swarm, DataBrief(bars=100, bars_per_year=252.0), blind)
    assert brief.statistics() == ["max_drawdown"] and brief.findings[0].researcher == "events"
    assert brief.dropped == ["worst_day: holds the date-like '2008-09-29'"]
    assert brief.suggestions == ["target volatility"]
    assert audit_request(research_messages(brief, blind), blind.forbidden) == []
