"""The five roles: a fake ChatModel (scripted replies, every request recorded and audited for
honesty) for their logic, re-asks and fallbacks; then each structured role, and the writer,
through the real openai client against the loopback server."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from _llm_server import LLMServer, isolate, openai_chat, openai_ok
from alphaloop.agents import (
    FailureAnalysisInput,
    FailureAnalyst,
    IterationRecord,
    QualityGateResults,
    RecordsSummary,
    Researcher,
    RuleBasedFailureAnalyst,
    TrajectoryAdvisor,
    TrajectoryAnalyzer,
)
from alphaloop.agents.development import DevelopmentInput, OptunaDeveloper, PastResult
from alphaloop.agents.llm import (
    Budget,
    ChatReply,
    ExchangeStore,
    LLMUnavailable,
    guard,
)
from alphaloop.agents.llm._types import check_messages
from alphaloop.agents.llm.codegate import normalized_hash, task_verdict
from alphaloop.agents.llm.prompts import (
    Blind,
    DataBrief,
    FindingBrief,
    Hypothesis,
    RankedBrief,
    ResearchBrief,
    audit_request,
)
from alphaloop.agents.llm.roles import (
    BugFixer,
    LLMFailureAnalyst,
    LLMResearcher,
    LLMTrajectoryAnalyzer,
    OfflineHypothesizer,
    RoleOutcome,
    StrategyWriter,
    WriterContext,
)
from alphaloop.agents.protocols import FailureAnalysis
from alphaloop.backtest import _positions, sandbox
from alphaloop.backtest.strategy import library_names, library_source, load_strategy
from alphaloop.data import load

BLIND = Blind.for_run("GOOG", pd.date_range("2004-08-19", periods=1500, freq="B"))
DATA = DataBrief(bars=1500, bars_per_year=252.0)
FINDINGS = [
    FindingBrief(researcher="trend", statistic="drift_t", value=1.75,
                 statement="annualised drift +26.7%, t = +1.75"),
    FindingBrief(researcher="volatility", statistic="arch_lm", value=38.4,
                 statement="ARCH-LM(5) = 38.4, p = 3.2e-07"),
    FindingBrief(researcher="calendar", statistic="weekday_spread", value=0.002,
                 statement="returns after the first weekday exceed the rest by 0.2% (t 3.1)"),
]
BRIEF = ResearchBrief(
    data=DATA, directive="a GOOG strategy that survived 2008", findings=FINDINGS,
    ranked=[RankedBrief(family="momentum", weight=0.3, reasons=["trend +0.30: drift t 1.75"]),
            RankedBrief(family="sma_crossover", weight=0.2,
                        reasons=["volatility +0.20: clustering"]),
            RankedBrief(family="rsi_reversion", weight=-0.2, reasons=[])])
HYPOTHESES = {"hypotheses": [
    {"name": "Weekday Drift", "hypothesis": "returns after the first weekday are higher",
     "evidence": ["[weekday_spread]"], "family": "new",
     "mechanism": "long over the first weekday, flat otherwise"},
    {"name": "calm_trend", "hypothesis": "drift persists when volatility is calm",
     "evidence": ["drift_t", "arch_lm"], "family": "momentum",
     "mechanism": "momentum scaled down when volatility clusters"}]}

WEEKDAY = '''"""Long on one weekday, flat otherwise."""

import numpy as np
import pandas as pd

PARAMETERS = {
    "day": {"default": 0, "low": 0, "high": 4},
    "scale": {"default": 1.0, "low": 0.5, "high": 1.0},
}


def generate_positions(data, day=0, scale=1.0):
    weekday = data.index.dayofweek.to_numpy()
    pos = np.where(weekday == day, scale, 0.0)
    return pd.Series(pos, index=data.index)
'''


def fenced(code: str, before: str = "Here it is.", after: str = "It trades Mondays.") -> str:
    return f"{before}\n\n```python\n{code}```\n\n{after}"


class FakeChat:
    """A scripted ChatModel: each request is recorded, audited against ``forbidden`` and
    answered with the next scripted reply (text, a ChatReply, an exception to raise, or a
    callable of the messages)."""

    spec = "fake:scripted"

    def __init__(self, *script: Any, forbidden: Sequence[str] = BLIND.forbidden) -> None:
        self.script: deque[Any] = deque(script)
        self.requests: list[dict[str, Any]] = []
        self.forbidden = tuple(forbidden)

    def complete(self, messages: Sequence[Any], *, schema: dict[str, Any] | None = None,
                 max_tokens: int = 1024, seed: int | None = None) -> ChatReply:
        msgs = check_messages(messages)
        self.requests.append({"messages": msgs, "schema": schema, "seed": seed})
        assert audit_request(msgs, self.forbidden) == [], audit_request(msgs, self.forbidden)
        if not self.script:
            raise AssertionError("an unexpected request")
        item = self.script.popleft()
        if isinstance(item, BaseException):
            raise item
        if callable(item):
            item = item(msgs)
        if isinstance(item, ChatReply):
            return item
        return ChatReply(text=item, prompt_tokens=50, completion_tokens=20, spec=self.spec)

    def last(self, role: str = "user") -> str:
        return [m for m in self.requests[-1]["messages"] if m["role"] == role][-1]["content"]


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)
    monkeypatch.delenv("ALPHALOOP_PY_SANDBOX", raising=False)


@pytest.fixture
def nothing_runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("strategy code was executed")

    for module, name in ((sandbox, "exec_source"), (_positions, "run_positions")):
        monkeypatch.setattr(module, name, refuse)
    yield


@pytest.fixture(scope="module")
def offline_dev() -> OptunaDeveloper:
    return OptunaDeveloper({n: load_strategy(n) for n in library_names()})


def outcome(role: Any) -> RoleOutcome:
    out = role.take_outcomes()
    assert len(out) == 1, out
    return out[0]


# --------------------------------------------------------------------------- researcher
def test_researcher_valid_reply() -> None:
    model = FakeChat(json.dumps(HYPOTHESES))
    r = LLMResearcher(model, blind=BLIND, seed=7)
    hs = r.hypothesize(BRIEF)
    assert [h.name for h in hs] == ["weekday_drift", "calm_trend"]
    assert hs[0].evidence == ["weekday_spread"] and hs[0].family == "new"
    o = outcome(r)
    assert (o.source, o.fallback, o.calls) == ("model", False, 1) and o.lesson() is None
    req = model.requests[0]
    assert req["schema"]["title"] == "HypothesisSet" and req["seed"] == 7
    text = model.last()
    assert "[weekday_spread]" in text and "the asset" in text and "Propose 3" in text


def test_researcher_invalid_json_then_valid() -> None:
    model = FakeChat("Sure! {hypotheses: [oops", json.dumps(HYPOTHESES))
    r = LLMResearcher(model, blind=BLIND)
    assert len(r.hypothesize(BRIEF)) == 2
    assert outcome(r).calls == 2
    retry = model.requests[1]["messages"]
    assert retry[-2] == {"role": "assistant", "content": "Sure! {hypotheses: [oops"}
    assert "not valid JSON" in retry[-1]["content"]


def test_researcher_invalid_three_times_falls_back() -> None:
    unknown = {"hypotheses": [{**HYPOTHESES["hypotheses"][0], "evidence": ["moon_phase"]}]}
    model = FakeChat("no json", json.dumps({"hypotheses": "x"}), json.dumps(unknown))
    r = LLMResearcher(model, blind=BLIND)
    hs = r.hypothesize(BRIEF)
    assert len(model.requests) == 3  # the first ask and 2 re-asks
    assert "Input should be a valid list" in model.last()  # the exact error of reply 2
    assert hs == OfflineHypothesizer().hypothesize(BRIEF)
    assert [h.family for h in hs] == ["momentum", "sma_crossover"]
    assert hs[0].evidence == ["drift_t"]
    o = outcome(r)
    assert (o.source, o.fallback, o.kind, o.calls) == ("offline", True, "invalid_reply", 3)
    assert "'moon_phase' is not one" in o.reason
    lesson = o.lesson()
    assert lesson is not None and "researcher" in lesson and "invalid_reply" in lesson


def test_researcher_budget_spent_falls_back() -> None:
    fake = FakeChat()
    budget = Budget(max_calls=0)
    r = LLMResearcher(guard(fake, budget=budget), blind=BLIND)
    assert r.hypothesize(BRIEF) == OfflineHypothesizer().hypothesize(BRIEF)
    o = outcome(r)
    assert (o.fallback, o.kind, o.calls) == (True, "budget", 0) and "--llm-max-calls" in o.reason
    assert fake.requests == [] and budget.refused == 1


def test_researcher_unavailable_falls_back() -> None:
    r = LLMResearcher(FakeChat(LLMUnavailable("down", kind="timeout")), blind=BLIND)
    assert r.hypothesize(BRIEF)
    assert outcome(r).kind == "timeout"


def test_researcher_in_the_swarm() -> None:
    bars = load("GOOG").iloc[:600]
    r = LLMResearcher(FakeChat(lambda msgs: json.dumps({"hypotheses": [
        {"name": "vol_scaled", "hypothesis": "h", "evidence": ["arch_lm"], "family": "momentum",
         "mechanism": "m"}]})), blind=Blind.for_run("GOOG", bars.index))
    assert isinstance(r, Researcher)
    report = r.study(bars, "GOOG, low drawdown", 252.0)
    assert report.researcher == "llm" and report.findings == []
    assert [(v.family, v.weight) for v in report.favoured_families] == [("momentum", 0.3)]
    assert report.suggestions == ["vol_scaled: h"]


# --------------------------------------------------------------------------- writer
def ctx(**kw: Any) -> WriterContext:
    hyps = [Hypothesis.model_validate(h) for h in HYPOTHESES["hypotheses"]]
    hyps = [h.model_copy(update={"name": h.name.lower().replace(" ", "_")}) for h in hyps]
    return WriterContext(data=DATA, hypotheses=hyps, findings=FINDINGS, **kw)


def inp(action: str = "INITIAL", **kw: Any) -> DevelopmentInput:
    return DevelopmentInput(action=action, families=["sma_crossover", "momentum"],  # type: ignore[arg-type]
                            n_variants=4, seed=1, **kw)


def test_writer_accepts_code_with_prose_around_it(offline_dev: OptunaDeveloper,
                                                   nothing_runs: None) -> None:
    model = FakeChat(fenced(WEEKDAY, before="I think Mondays matter. ```python is what "
                                            "you want:", after="Note: `day` is 0 = Monday."))
    w = StrategyWriter(model, offline_dev, blind=BLIND)
    [c] = w.write(inp(), ctx())
    assert (c.name, c.origin, c.parent) == ("llm_weekday_drift", "new", "weekday_drift")
    assert c.code == WEEKDAY and c.code_hash == normalized_hash(WEEKDAY)
    assert c.proposal.strategy_name == "llm_weekday_drift"
    assert c.proposal.parameters == {"day": 0, "scale": 1.0}
    assert "written by fake:scripted" in c.proposal.description
    assert [v.passed for v in c.verdicts] == [True]
    o = outcome(w)
    assert (o.role, o.source, o.calls, o.rejected) == ("writer", "model", 1, [])
    prompt = model.last()
    assert "llm_weekday_drift" in prompt and "[weekday_spread]" in prompt
    assert "at most 6 entries" in prompt and "At most 200 lines" in prompt
    assert "llm_weekday_drift" not in w.available()  # joins only after gates 4 and 5
    assert model.requests[0]["schema"] is None


HOSTILE = {
    "imports os": "import os\nos.system('touch {marker}')\n",
    "opens a file": "open({marker!r}, 'w').write('x')\n",
    "calls __import__": "__import__('os').system('touch {marker}')\n",
}


@pytest.mark.parametrize("what", sorted(HOSTILE))
def test_writer_rejects_hostile_code_and_runs_nothing(
        what: str, tmp_path: Path, offline_dev: OptunaDeveloper, nothing_runs: None) -> None:
    marker = tmp_path / "ran"
    bad = WEEKDAY.replace("PARAMETERS =", HOSTILE[what].format(marker=str(marker))
                          + "PARAMETERS =")
    model = FakeChat(fenced(bad), fenced(bad))
    w = StrategyWriter(model, offline_dev, blind=BLIND)
    assert w.write(inp(), ctx(new=1)) == []
    assert len(model.requests) == 2  # written, then sent back once as a FIX_BUG
    fix_prompt = model.last()
    assert "rejected (sandbox)" in fix_prompt and "line " in fix_prompt
    fixer, writer = w.take_outcomes()  # the fixer's step ends first
    assert writer.role == "writer" and writer.fallback and writer.kind == "gate"
    assert "rejected at gate 1 (sandbox)" in writer.reason
    assert len(writer.rejected) == 2 and (fixer.role, fixer.source) == ("fixer", "model")
    assert not marker.exists()


@pytest.mark.parametrize("fault", ["lines", "parameters"])
def test_writer_rejects_oversized_code(fault: str, offline_dev: OptunaDeveloper) -> None:
    if fault == "lines":
        big = WEEKDAY + "\n".join(f"# note {i}" for i in range(200))
    else:
        names = [f"p{i}" for i in range(5)]
        params = "".join(f'    "{n}": {{"default": 1, "low": 0, "high": 3}},\n' for n in names)
        big = (WEEKDAY.replace('PARAMETERS = {\n', 'PARAMETERS = {\n' + params)
               .replace("scale=1.0):", "scale=1.0, " + ", ".join(f"{n}=1" for n in names) + "):"))
    model = FakeChat(fenced(big), fenced(WEEKDAY))
    w = StrategyWriter(model, offline_dev, blind=BLIND)
    [c] = w.write(inp(), ctx(new=1))
    first = c.verdicts[0]
    assert (first.passed, first.gate) == (False, "size")
    assert ("the limit is 200" if fault == "lines" else "7 parameters") in first.reason
    assert "rejected (size)" in model.last() and c.code == WEEKDAY
    fixer, writer = w.take_outcomes()
    assert writer.rejected == [first.outcome()] and fixer.role == "fixer"


def test_writer_rejects_a_duplicate(offline_dev: OptunaDeveloper) -> None:
    sma = library_source("sma_crossover")
    renamed = ("# my own idea\n" + sma.replace("fast", "quick").replace("slow", "lazy")
               .replace("allow_short", "shorts_ok"))
    model = FakeChat(fenced(renamed), fenced(renamed.replace("quick", "quicker")))
    w = StrategyWriter(model, offline_dev, blind=BLIND)
    assert w.write(inp(), ctx(new=1)) == []
    assert "rejected (duplicate)" in model.last()
    o = w.take_outcomes()[-1]
    assert o.kind == "gate" and "gate 3 (duplicate)" in o.reason


def test_writer_asks_again_for_a_missing_block_then_falls_back(
        offline_dev: OptunaDeveloper) -> None:
    cut = ChatReply(text="```python\nimport numpy as np\n", finish_reason="length",
                    spec="fake:scripted")
    model = FakeChat("I would trade Mondays.", cut, "```python\nx = 1\n```")
    w = StrategyWriter(model, offline_dev, blind=BLIND)
    assert w.write(inp(), ctx(new=1)) == []
    assert "cut off at 3000 tokens" in model.requests[2]["messages"][-1]["content"]
    o = outcome(w)
    assert (o.fallback, o.kind, o.calls) == (True, "invalid_reply", 3)
    assert "defines no generate_positions" in o.reason


def test_writer_budget_spent_falls_back(offline_dev: OptunaDeveloper) -> None:
    w = StrategyWriter(guard(FakeChat(), budget=Budget(max_tokens=100)), offline_dev,
                       blind=BLIND)
    assert w.write(inp(), ctx(new=1)) == []
    assert outcome(w).kind == "budget"
    # the offline developer fills the batch
    assert len(w.propose(inp())) == 4


def test_writer_refines_the_best_algorithm(offline_dev: OptunaDeveloper) -> None:
    sma = offline_dev.default_proposal("sma_crossover")
    history = [PastResult(variant_id="e1/v00", strategy_name="sma_crossover",
                          strategy_code=sma.strategy_code, parameters=sma.parameters,
                          gate_score=-0.3, num_trades=20)]
    analysis = FailureAnalysis(recommendation="REFINE_ALGORITHM", reasoning="far miss twice",
                               specific_actions=["add a volatility filter"], confidence=0.6)
    base = IterationRecord(strategy_name="sma_crossover", metrics={"sharpe_ratio": 0.31},
                           failed_criteria=["sharpe_ratio>=1.0"])
    refined = sma.strategy_code.replace("pos = ind.crossover_side",
                                        "pos = 0.5 * ind.crossover_side")
    model = FakeChat(fenced(refined))
    w = StrategyWriter(model, offline_dev, blind=BLIND)
    [c] = w.write(inp("REFINE_ALGORITHM", history=history), ctx(analysis=analysis, base=base))
    assert (c.name, c.origin, c.parent) == ("llm_sma_crossover_r1", "refine", "sma_crossover")
    prompt = model.last()
    assert "sharpe_ratio 0.31 (needs >= 1)" in prompt and "add a volatility filter" in prompt
    assert "crossover_side" in prompt and "change the algorithm" in prompt


def test_writer_fixes_a_failing_strategy(offline_dev: OptunaDeveloper) -> None:
    broken = WEEKDAY.replace("weekday == day", "weekday == days")
    fail = PastResult(variant_id="e2/v01", strategy_name="llm_weekday_drift",
                      strategy_code=broken, parameters={"day": 0, "scale": 1.0},
                      error="StrategyError: strategy 'llm_weekday_drift' line 14: NameError: "
                            "name 'days' is not defined")
    lib = offline_dev.default_proposal("macd")
    lib_fail = PastResult(variant_id="e2/v02", strategy_name="macd",
                          strategy_code=lib.strategy_code, parameters={}, error="boom")
    model = FakeChat(fenced(WEEKDAY))
    w = StrategyWriter(model, offline_dev, blind=BLIND)
    [c] = w.write(inp("FIX_BUG", failing=[fail, lib_fail], history=[fail]), ctx())
    assert (c.name, c.origin, c.parent) == ("llm_weekday_drift_f1", "fix", "e2/v01")
    assert c.proposal.parent_variant_id == "e2/v01"
    prompt = model.last()
    assert "NameError" in prompt and "Line 14 is: pos = np.where(weekday == days" in prompt
    assert outcome(w).role == "fixer" and w.fixer.outcomes == []
    assert len(model.requests) == 1  # the library strategy gets the offline fix


def test_smoke_rejection_resubmitted_and_the_strategy_joins(offline_dev: OptunaDeveloper
                                                            ) -> None:
    peek = WEEKDAY.replace("weekday == day", "np.roll(weekday, -1) == day")
    model = FakeChat(fenced(peek), fenced(WEEKDAY))
    w = StrategyWriter(model, offline_dev, blind=BLIND)
    [c] = w.write(inp(), ctx(new=1))
    verdict = task_verdict(c.name, {"metrics": {"num_trades": 80},
                                    "lookahead": ["2005-03-01", "2005-06-01"]},
                           code_hash=c.code_hash)
    fixed = w.resubmit(c, verdict, inp())
    assert fixed is not None and fixed.name == "llm_weekday_drift_f1"
    prompt = model.last()
    assert "rejected (lookahead)" in prompt and "bar " in prompt and "2005" not in prompt
    assert [v.gate for v in fixed.verdicts] == [None, "lookahead", None]
    w.join(fixed)
    assert "llm_weekday_drift_f1" in w.available()
    history = [PastResult(variant_id="e1/v00", strategy_name=fixed.name,
                          strategy_code=fixed.proposal.strategy_code,
                          parameters=fixed.proposal.parameters, gate_score=0.5, num_trades=80)]
    tuned = w.propose(inp("TUNE_PARAMETERS", history=history))
    mine = [p for p in tuned if p.strategy_name == fixed.name]
    assert mine and all(p.parameters != {"day": 0, "scale": 1.0} for p in mine)
    assert all(0 <= p.parameters["day"] <= 4 for p in mine)
    # a resumed workflow learns its written strategies back from the history
    again = StrategyWriter(FakeChat(), offline_dev, blind=BLIND)
    assert again.propose(inp("TUNE_PARAMETERS", history=history)) == tuned
    assert fixed.name in again.joined


def test_writer_without_hypotheses_says_so(offline_dev: OptunaDeveloper) -> None:
    w = StrategyWriter(FakeChat(), offline_dev, blind=BLIND)
    assert w.write(inp(), WriterContext(data=DATA)) == []
    assert outcome(w).kind == "no_hypothesis"


def test_bug_fixer_falls_back_to_none() -> None:
    from alphaloop.agents.llm.prompts import BugReport

    f = BugFixer(FakeChat(LLMUnavailable("down", kind="server")), blind=BLIND)
    assert f.fix(BugReport(name="x", code=WEEKDAY, kind="exception", message="boom")) is None
    assert outcome(f).kind == "server"


# --------------------------------------------------------------------------- analysts
def failure_input(iteration: int = 1, max_iterations: int = 5) -> FailureAnalysisInput:
    rec = IterationRecord(strategy_name="sma_crossover", iteration=iteration,
                          metrics={"sharpe_ratio": 0.5, "max_drawdown": 0.25,
                                   "num_trades": 30},
                          gate_score=-0.3, failed_criteria=["sharpe_ratio>=1.0"])
    return FailureAnalysisInput(
        strategy_name="sma_crossover", strategy_code=library_source("sma_crossover"),
        backtest_metrics=rec.metrics,
        quality_gate_results=QualityGateResults(passed=False, score=-0.3,
                                                failed_criteria=rec.failed_criteria),
        iteration_history=[rec], current_iteration=iteration, max_iterations=max_iterations)


ANALYSIS = {"recommendation": "REFINE_ALGORITHM", "reasoning": "Sharpe 0.5 is far from 1.",
            "specific_actions": ["add a volatility filter"], "confidence": 1.4}


def test_failure_analyst_valid_reply() -> None:
    model = FakeChat(json.dumps(ANALYSIS))
    a = LLMFailureAnalyst(model, blind=BLIND)
    assert isinstance(a, FailureAnalyst)
    out = a.analyze_failure(failure_input())
    offline = RuleBasedFailureAnalyst().analyze_failure(failure_input())
    assert (out.recommendation, out.rule, out.confidence) == ("REFINE_ALGORITHM", "llm", 1.0)
    assert out.reasoning == "model: Sharpe 0.5 is far from 1."
    assert out.bug_detection == offline.bug_detection
    assert f"A rule-based analyst recommends {offline.recommendation}" in model.last()
    assert model.requests[0]["schema"]["title"] == "AnalystReply"
    assert outcome(a).source == "model"


def test_failure_analyst_falls_back_and_spends_nothing_on_a_decided_step() -> None:
    bad = json.dumps({**ANALYSIS, "recommendation": "PANIC"})
    a = LLMFailureAnalyst(FakeChat(bad, bad, bad), blind=BLIND)
    out = a.analyze_failure(failure_input())
    assert out == RuleBasedFailureAnalyst().analyze_failure(failure_input())
    assert outcome(a).kind == "invalid_reply"
    done = LLMFailureAnalyst(FakeChat(), blind=BLIND)
    out = done.analyze_failure(failure_input(iteration=5, max_iterations=5))
    assert out.rule == "R0" and outcome(done).source == "rule"


def trajectory(scores: list[float]) -> tuple[RecordsSummary, Any]:
    stats = TrajectoryAnalyzer(scores).analyze_trajectory()
    return RecordsSummary(iterations=len(scores), max_iterations=15,
                          best_score=max(scores)), stats


def test_trajectory_analyst() -> None:
    summary, stats = trajectory([-0.9, -0.8, -0.85, -0.86, -0.9])
    model = FakeChat(json.dumps({"next_action": "PIVOT", "reasoning": "stuck near -0.8"}))
    t = LLMTrajectoryAnalyzer(model, blind=BLIND)
    assert isinstance(t, TrajectoryAdvisor)
    advice = t.analyze_trajectory(summary, stats, scores=[-0.9, -0.8, -0.85, -0.86, -0.9])
    assert (advice.next_action, advice.reasoning) == ("PIVOT", "model: stuck near -0.8")
    assert advice.stats == stats and advice.classification == stats.classification
    assert "-0.9, -0.8, -0.85, -0.86, -0.9" in model.last()
    assert outcome(t).calls == 1
    few = LLMTrajectoryAnalyzer(FakeChat(), blind=BLIND)
    s2, st2 = trajectory([-0.9, -0.8])
    assert few.analyze_trajectory(s2, st2).next_action == "CONTINUE"
    assert outcome(few).source == "rule"
    spent = LLMTrajectoryAnalyzer(guard(FakeChat(), budget=Budget(max_calls=0)), blind=BLIND)
    offline = spent.fallback.analyze_trajectory(summary, stats)
    assert spent.analyze_trajectory(summary, stats) == offline
    assert outcome(spent).kind == "budget"


# --------------------------------------------------------------------------- the real client
@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


def sent(server: LLMServer, i: int = -1) -> dict[str, Any]:
    return server.requests[i].body


def test_researcher_through_the_openai_client(server: LLMServer) -> None:
    server.push(openai_ok("```json\n{not json\n```"), openai_ok(json.dumps(HYPOTHESES)))
    r = LLMResearcher(openai_chat(server), blind=BLIND, seed=3)
    assert [h.name for h in r.hypothesize(BRIEF)] == ["weekday_drift", "calm_trend"]
    assert len(server.requests) == 2 and outcome(r).calls == 2
    body = sent(server, 0)
    assert body["response_format"]["type"] == "json_schema" and body["seed"] == 3
    assert body["response_format"]["json_schema"]["name"] == "HypothesisSet"
    for req in server.requests:
        assert audit_request(req.body["messages"], BLIND.forbidden) == []


def test_analysts_through_the_openai_client(server: LLMServer) -> None:
    server.push(openai_ok(json.dumps(ANALYSIS)),
                openai_ok(json.dumps({"next_action": "CONTINUE", "reasoning": "rising"})))
    model = openai_chat(server)
    a = LLMFailureAnalyst(model, blind=BLIND)
    assert a.analyze_failure(failure_input()).recommendation == "REFINE_ALGORITHM"
    summary, stats = trajectory([-0.9, -0.7, -0.5])
    t = LLMTrajectoryAnalyzer(model, blind=BLIND)
    assert t.analyze_trajectory(summary, stats).next_action == "CONTINUE"
    assert [sent(server, i)["response_format"]["json_schema"]["name"] for i in (0, 1)] == [
        "AnalystReply", "TrajectoryReply"]


def test_writer_through_the_openai_client_recorded_and_replayed(
        server: LLMServer, tmp_path: Path, offline_dev: OptunaDeveloper) -> None:
    server.push(openai_ok(fenced(WEEKDAY), completion_tokens=300))
    with ExchangeStore(tmp_path / "llm.db") as store:
        budget = Budget(max_calls=5)
        w = StrategyWriter(guard(openai_chat(server), budget=budget, store=store),
                           offline_dev, blind=BLIND, store=store, seed=1)
        [c] = w.write(inp(), ctx(new=1))
        assert "response_format" not in sent(server)
        [ex] = store.exchanges()
        assert ex.outcome == "gates passed" and budget.calls == 1 and c.key == ex.key
        store.set_outcome(c.key, "rejected at gate 4 (smoke): ...")  # the orchestrator's part
        assert store.exchanges()[0].outcome.startswith("rejected at gate 4")
        # a resumed run asks the same question: answered from the record, nothing sent
        again = StrategyWriter(guard(openai_chat(server), budget=Budget(max_calls=5),
                                     store=store), offline_dev, blind=BLIND, store=store, seed=1)
        [c2] = again.write(inp(), ctx(new=1))
        assert c2 == c and len(server.requests) == 1
        assert outcome(again).replayed == 1


def test_budget_through_the_openai_client(server: LLMServer) -> None:
    server.push(openai_ok(json.dumps(ANALYSIS)))
    model = guard(openai_chat(server), budget=Budget(max_calls=1))
    a = LLMFailureAnalyst(model, blind=BLIND)
    assert a.analyze_failure(failure_input()).rule == "llm"
    assert a.analyze_failure(failure_input()).rule != "llm"
    first, second = a.take_outcomes()
    assert (first.fallback, second.fallback, second.kind) == (False, True, "budget")
    assert len(server.requests) == 1

