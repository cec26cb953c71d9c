"""A strategy the model writes joins its family, Optuna tunes it in later TUNE_PARAMETERS
iterations, and a resumed workflow gets it back (issue 9: "a written strategy joins its
family, so later TUNE_PARAMETERS iterations tune it with Optuna").

Driven through the library objects the orchestrator uses, none of them replaced: a
`StrategyWriter` over the offline `OptunaDeveloper`, its model a scripted `ChatModel` guarded
as in ``run --llm`` (budget, record store); every variant backtested by the real engine on a
synthetic series with a weekday effect (in process: confinement is tested elsewhere, and the
code here is the test's own), the smoke run with the look-ahead check, judged by
`codegate.task_verdict` and the default gate with its evidence floor, and its history handed
back as the orchestrator's ``_past`` builds it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alphaloop.agents.development import (
    DevelopmentInput,
    OptunaDeveloper,
    PastResult,
    VariantProposal,
)
from alphaloop.agents.llm import Budget, ChatReply, ExchangeStore, guard
from alphaloop.agents.llm._types import check_messages
from alphaloop.agents.llm.codegate import task_verdict
from alphaloop.agents.llm.prompts import (
    Blind,
    DataBrief,
    FindingBrief,
    Hypothesis,
    audit_request,
)
from alphaloop.agents.llm.roles import StrategyWriter, WriterContext
from alphaloop.backtest.strategy import from_source, library_names, load_strategy
from alphaloop.data import synthetic
from alphaloop.data._timeframes import bars_per_year
from alphaloop.execution import BacktestTask
from alphaloop.execution.task_runner import run_task_in_process
from alphaloop.workflow.gate import DEFAULT_MIN_TRADES, QualityCriteria, evaluate
from alphaloop.workflow.orchestrator import split_bars

TICKER = "WKTUNE"
NAME = "llm_weekday_drift"

WEEKDAY = '''\
"""Long into the first weekday bar, optionally short into the last: a weekday drift."""

import numpy as np
import pandas as pd

PARAMETERS = {
    "day": {"default": 4, "low": 0, "high": 4},
    "size": {"default": 1.0, "low": 0.25, "high": 1.0},
    "short_side": {"default": False, "choices": [True, False]},
}


def generate_positions(data, day=4, size=1.0, short_side=False):
    # decided at bar t's close, held during bar t+1: long after a bar on weekday `day`
    weekday = np.asarray(data.index.day_of_week)
    pos = np.where(weekday == day, size, 0.0)
    if short_side:
        pos = np.where(weekday == (day + 3) % 5, -size, pos)
    return pd.Series(pos, index=data.index)
'''


class Scripted:
    """A scripted `ChatModel`: each request is audited for honesty and answered with the next
    reply; with no reply left, a request fails the test (a resumed writer must not ask)."""

    spec = "scripted:tuning"

    def __init__(self, forbidden: Sequence[str], *replies: str) -> None:
        self.forbidden = tuple(forbidden)
        self.replies = list(replies)
        self.asked: list[list[dict[str, str]]] = []

    def complete(self, messages: Sequence[Any], *, schema: dict[str, Any] | None = None,
                 max_tokens: int = 1024, seed: int | None = None) -> ChatReply:
        msgs = check_messages(messages)
        assert audit_request(msgs, self.forbidden) == []
        self.asked.append(list(msgs))  # type: ignore[arg-type]
        assert self.replies, "an unexpected request"
        return ChatReply(text=self.replies.pop(0), prompt_tokens=400, completion_tokens=200,
                         spec=self.spec)


class Run:
    """One workflow's data and bookkeeping: the in-sample window of a weekday-effect series,
    the backtests, and the history (`PastResult` s, as the orchestrator gives its developer)."""

    def __init__(self, tmp: Path) -> None:
        bars = synthetic.weekday_effect(1200, seed=5, weekday_means={0: 0.005, 4: -0.005})
        self.path = str(synthetic.write_csv(bars, tmp / "data" / f"{TICKER}.csv"))
        full, k = split_bars(TICKER, "1d", self.path, None, None, 0.7)
        self.in_sample = full.iloc[:k]
        self.first, self.last = full.index[0].isoformat(), full.index[k - 1].isoformat()
        self.bpy = bars_per_year("1d", full.index)
        self.history: list[PastResult] = []
        self.blind = Blind.for_run(TICKER, self.in_sample.index, data_path=self.path)

    def inp(self, action: str, families: Sequence[str] = ("sma_crossover", "momentum"),
            n: int = 4) -> DevelopmentInput:
        return DevelopmentInput(action=action, families=list(families),  # type: ignore[arg-type]
                                history=list(self.history), n_variants=n, seed=1,
                                bars_per_year=self.bpy, in_sample_bars=len(self.in_sample))

    def backtest(self, exp: str, vid: str, p: VariantProposal) -> dict[str, Any]:
        """The variant's in-sample task as `Orchestrator._task` builds it, run by the engine,
        judged by the default gate and floor, and added to the history."""
        task = BacktestTask(
            task_id=f"{exp}_{vid}", experiment_id=exp, variant_id=vid,
            strategy_code=p.strategy_code, strategy_parameters=p.parameters,
            strategy_name=p.strategy_name, ticker=TICKER, data_path=self.path,
            start=self.first, end=self.last, check_lookahead=True)
        result = run_task_in_process(task)
        metrics = result["metrics"]
        gate = evaluate(metrics, QualityCriteria.default(), min_trades=DEFAULT_MIN_TRADES)
        trades = metrics.get("num_trades")
        self.history.append(PastResult(
            variant_id=f"{exp}/{vid}", strategy_name=p.strategy_name,
            strategy_code=p.strategy_code, parameters=dict(p.parameters),
            gate_score=gate.score, num_trades=None if trades is None else int(trades),
            lookahead=bool(result["lookahead"])))
        return result

    def batch(self, exp: str, proposals: Sequence[VariantProposal]) -> None:
        for i, p in enumerate(proposals):
            self.backtest(exp, f"v{i:02d}", p)


def _library() -> OptunaDeveloper:
    return OptunaDeveloper({n: load_strategy(n) for n in library_names()})


def _context(run: Run) -> WriterContext:
    hypothesis = Hypothesis(
        name="weekday_drift", family="new",
        hypothesis="returns depend on the day of the week: the first weekday bar rises",
        evidence=["weekday_spread"],
        mechanism="hold long during the first weekday bar, flat otherwise")
    finding = FindingBrief(researcher="calendar", statistic="weekday_spread", value=0.004,
                           statement="the first weekday's mean return exceeds the rest's")
    return WriterContext(data=DataBrief(bars=len(run.in_sample), bars_per_year=run.bpy),
                         hypotheses=[hypothesis], findings=[finding], new=1)


def _key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def test_a_written_strategy_joins_is_tuned_by_optuna_and_rejoins_on_resume(
        tmp_path: Path) -> None:
    run = Run(tmp_path)
    model = Scripted(run.blind.forbidden, f"Here it is.\n\n```python\n{WEEKDAY}```\n")
    budget = Budget(max_calls=10)
    with ExchangeStore(tmp_path / "llm.db") as store:
        writer = StrategyWriter(guard(model, budget=budget, store=store), _library(),
                                blind=run.blind, store=store, seed=1)

        # iteration 0 (INITIAL): the model writes the strategy; gates 1-3 pass
        [c] = writer.write(run.inp("INITIAL"), _context(run))
        assert (c.name, c.origin) == (NAME, "new") and len(model.asked) == 1
        assert NAME not in writer.available() and writer.joined == {}
        declared = {"day": 4, "size": 1.0, "short_side": False}
        assert c.proposal.parameters == declared

        # gates 4-5: its smoke run (experiment 0, variant g00), with the look-ahead check
        result = run.backtest("exp_0", "g00", c.proposal)
        verdict = task_verdict(c.name, result, code_hash=c.code_hash)
        assert verdict.passed, verdict.outcome()
        writer.join(c)
        assert NAME in writer.available() and writer.joined == {NAME: c.proposal.strategy_code}
        # the rest of the batch: the offline developer's proposals, the smoke run known
        initial = writer.propose(run.inp("INITIAL"))
        assert initial and all(p.strategy_name != NAME for p in initial)
        run.batch("exp_0", initial)
        smoke = run.history[0]
        assert smoke.strategy_name == NAME and (smoke.num_trades or 0) >= DEFAULT_MIN_TRADES
        assert smoke.gate_score == max(r.gate_score or -9.0 for r in run.history), \
            "the weekday effect: the written strategy should be the best so far"

    # iterations 1 and 2 (TUNE_PARAMETERS): Optuna tunes the written strategy, told every
    # result of it so far; no point is proposed twice
    tuned: list[list[VariantProposal]] = []
    for it in (1, 2):
        proposals = writer.propose(run.inp("TUNE_PARAMETERS"))
        mine = [p for p in proposals if p.strategy_name == NAME]
        told = sum(r.strategy_name == NAME for r in run.history)
        assert len(mine) >= 2, [p.strategy_name for p in proposals]
        tried = {_key(r.parameters) for r in run.history if r.strategy_name == NAME}
        for p in mine:
            assert p.strategy_code == c.proposal.strategy_code  # the written code, unchanged
            assert f"TPE proposal, told {told} results" in p.description
            assert set(p.parameters) == set(declared)
            assert p.parameters["day"] in range(5) and 0.25 <= p.parameters["size"] <= 1.0
            assert p.parameters["short_side"] in (True, False)
            assert _key(p.parameters) not in tried
        assert len({_key(p.parameters) for p in mine}) == len(mine)
        tuned.append(proposals)
        run.batch(f"exp_{it}", proposals)
    assert sum(r.strategy_name == NAME for r in run.history) >= 5
    assert len(model.asked) == 1 and budget.calls == 1  # tuning asks no model

    # a resumed workflow: a new writer (a new process) learns the written strategy back from
    # the history alone, and proposes exactly what the first one does; no model is asked
    resumed_model = Scripted(run.blind.forbidden)
    with ExchangeStore(tmp_path / "llm.db") as store:
        again = StrategyWriter(guard(resumed_model, budget=Budget(max_calls=10), store=store),
                               _library(), blind=run.blind, store=store, seed=1)
        assert NAME not in again.available()
        nxt = again.propose(run.inp("TUNE_PARAMETERS"))
        assert again.joined == {NAME: c.proposal.strategy_code}
        assert nxt == writer.propose(run.inp("TUNE_PARAMETERS"))
        assert [p for p in nxt if p.strategy_name == NAME]
        assert resumed_model.asked == []
    # and what the first writer proposed before the "crash" is proposed again from the same
    # history (the orchestrator's replay of an interrupted phase)
    cut = run.history[: len(run.history) - len(tuned[-1])]
    replayed = StrategyWriter(Scripted(run.blind.forbidden), _library(), blind=run.blind)
    inp = run.inp("TUNE_PARAMETERS").model_copy(update={"history": cut})
    assert replayed.propose(inp) == tuned[-1]


def test_a_written_strategy_with_no_trades_does_not_join(tmp_path: Path) -> None:
    """`learn` joins only a written strategy that ran cleanly with trades: one whose smoke
    run made no trade (rejected at gate 4) stays out of the tuned families."""
    run = Run(tmp_path)
    never = WEEKDAY.replace('"default": 4, "low": 0, "high": 4', '"default": 5, "low": 5, '
                            '"high": 6').replace("day=4", "day=5")
    w = StrategyWriter(Scripted(run.blind.forbidden, f"```python\n{never}```"), _library(),
                       blind=run.blind)
    [c] = w.write(run.inp("INITIAL"), _context(run))
    result = run.backtest("exp_0", "g00", c.proposal)
    verdict = task_verdict(c.name, result, code_hash=c.code_hash)
    assert not verdict.passed and verdict.kind == "no_trades"
    w2 = StrategyWriter(Scripted(run.blind.forbidden), _library(), blind=run.blind)
    w2.learn(run.history)
    assert NAME not in w2.available()


def test_tuning_after_a_written_strategy_that_made_no_trade(tmp_path: Path) -> None:
    run = Run(tmp_path)
    never = WEEKDAY.replace('"default": 4, "low": 0, "high": 4', '"default": 5, "low": 5, '
                            '"high": 6').replace("day=4", "day=5")
    fitted = from_source(never, NAME)
    run.history.append(PastResult(
        variant_id="exp_0/g00", strategy_name=NAME, strategy_code=fitted.source,
        parameters=fitted.defaults(), gate_score=-1.33, num_trades=0))
    w = StrategyWriter(Scripted(run.blind.forbidden), _library(), blind=run.blind)
    proposals = w.propose(run.inp("TUNE_PARAMETERS"))
    assert all(p.strategy_name != NAME for p in proposals)

