"""alphaloop's own time per language-model step, the model's latency excluded (run by hand; not
a test).

    python benchmarks/bench_llm.py [--repeat 40] [--smoke 9] [--http 30] [--only roles|smoke|http]

Issue 9's target: at most 50 ms of alphaloop's own overhead per LLM step (prompt building,
parsing, gates), plus the smoke backtest.

1. Per role step, with a model that answers at once: an in-process scripted `ChatModel`
   (zero latency; its replies are built before the clock starts, the writer's and the
   fixer's a real 34-line strategy whose body changes each repeat, so no cache sees it
   twice). The model is guarded as in ``run --llm`` (`agents.llm.guard`: the budget, then
   record/replay in a SQLite ``llm.db`` on this disk, a new record key every repeat: the
   seed changes) and every request is sealed by the run's `Blind`. The inputs are real:
   the in-sample 70% of the embedded GOOG bars, the offline research swarm's findings on
   them, and a history of 4 iterations x 8 library variants backtested for real (in
   process) and judged by the default gate. Steps, alternated within each repeat:

   - researcher: the research brief from the swarm, then ``hypothesize`` (JSON, validated);
   - writer: ``StrategyWriter.write`` for TUNE_PARAMETERS with one new strategy: prompt,
     reply parsed, gates 1-3 (sandbox's static check, size, normalised-hash duplicate), the
     proposal fitted to the bars;
   - bug fixer: ``StrategyWriter.resubmit`` of that candidate after a gate-5 (look-ahead)
     rejection: the fault scrubbed to bar offsets, the fix asked, gates 1-3 again;
   - failure analyst: ``analyze_failure`` (the offline analyst runs inside it, as in a run);
   - trajectory analyst: ``analyze_trajectory`` with the best score per iteration.

   Each is printed with the first (cold) call, median and p90 of the repeats, and beside it
   the offline agent the step replaces, measured in the same repeats (the researcher's: the
   offline hypothesizer; the writer's: the offline developer's proposals for the same
   input; the analysts': the rule-based ones), and the same step without the record store.
2. The smoke backtest (gate 4, with gate 5's look-ahead check): one written strategy's task,
   built as ``Orchestrator._task`` builds it (the in-sample window, ``check_lookahead``,
   confined: a model's code is never trusted), through the real execution path as
   ``LLMRoles._smoke`` (`workflow._llm_roles`) runs it: enqueued in a `TaskQueue`, run by a
   `LocalPool` that is already up (the run's), the result read back and judged by
   ``codegate.task_verdict``. Each repeat is new code, so a new confined strategy process.
   The pool's cold start (its first task) is printed separately. Not included: writing the
   tracker's record (one SQLite row).
3. One step through the real ``openai`` client (`OpenAIChat`) against the scripted loopback
   server of the tests (tests/_llm_server.py, 127.0.0.1, answers at once): the same steps
   with the in-process model, alternated; the difference is the HTTP round trip: the SDK
   and httpx, and the loopback server's own work (a Python thread parsing the request and
   sending the reply). A real endpoint adds its network and the model's time on top.

The machine, versions and the load average (at the start, per section and at the end) are
printed: on a shared machine absolute times move with the load; compare steps within a run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from _common import loadavg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the loopback server (_llm_server.py)

import pandas as pd  # noqa: E402

from alphaloop.agents.development import (  # noqa: E402
    DevelopmentInput,
    OptunaDeveloper,
    PastResult,
    VariantProposal,
    fit_to_bars,
)
from alphaloop.agents.failure import RuleBasedFailureAnalyst  # noqa: E402
from alphaloop.agents.llm import Budget, ChatReply, ExchangeStore, guard  # noqa: E402
from alphaloop.agents.llm._types import Message  # noqa: E402
from alphaloop.agents.llm.codegate import task_verdict  # noqa: E402
from alphaloop.agents.llm.prompts import Blind, DataBrief, ResearchBrief  # noqa: E402
from alphaloop.agents.llm.roles import (  # noqa: E402
    LLMFailureAnalyst,
    LLMResearcher,
    LLMTrajectoryAnalyzer,
    OfflineHypothesizer,
    StrategyWriter,
    WriterContext,
)
from alphaloop.agents.protocols import (  # noqa: E402
    FailureAnalysisInput,
    GateCriterion,
    IterationRecord,
    QualityGateResults,
    RecordsSummary,
)
from alphaloop.agents.research import ResearchSwarm  # noqa: E402
from alphaloop.agents.trajectory import (  # noqa: E402
    RuleBasedTrajectoryAdvisor,
    TrajectoryAnalyzer,
    best_scores_per_iteration,
)
from alphaloop.backtest.strategy import from_source, library_names, load_strategy  # noqa: E402
from alphaloop.data._timeframes import bars_per_year  # noqa: E402
from alphaloop.execution import BacktestTask, LocalPool, TaskQueue  # noqa: E402
from alphaloop.execution.task_runner import run_task, run_task_in_process  # noqa: E402
from alphaloop.workflow.gate import DEFAULT_MIN_TRADES, QualityCriteria, evaluate  # noqa: E402
from alphaloop.workflow.orchestrator import split_bars  # noqa: E402

TICKER = "GOOG"
DIRECTIVE = "a GOOG strategy with a Sharpe ratio above 1"
ITERATIONS = 4
VARIANTS = 8
MAX_MS = 50.0
"""Issue 9's target for alphaloop's own time per step."""

STRATEGY = '''\
"""Volatility-scaled trend, flat into the last weekday bar: a written strategy."""

import numpy as np
import pandas as pd

from alphaloop.backtest import indicators as ind

PARAMETERS = {{
    "lookback": {{"default": 60, "low": 20, "high": 200, "unit": "days"}},
    "vol_window": {{"default": 20, "low": 10, "high": 60, "unit": "days"}},
    "threshold": {{"default": 0.0, "low": 0.0, "high": 0.05}},
    "target_vol": {{"default": 0.15, "low": 0.05, "high": 0.4}},
    "skip_last_day": {{"default": True, "choices": [True, False]}},
}}


def generate_positions(data, lookback=60, vol_window=20, threshold=0.0, target_vol=0.15,
                       skip_last_day=True):
    close = data["close"].to_numpy()
    # the trend: the return over the lookback, known at bar t's close
    trend = ind.returns(close, lookback)
    signal = np.where(trend > threshold, 1.0, np.where(trend < -threshold, -1.0, 0.0))
    # the size: scaled to a target volatility over the last vol_window bars
    rets = ind.returns(close)
    vol = ind.rolling_std(rets, vol_window) * np.sqrt(ind.bars_per_year(data.index))
    scale = np.clip(np.nan_to_num(target_vol / vol, nan=0.0, posinf=0.0), 0.0, 1.0)
    pos = signal * scale
    if skip_last_day:
        day = np.asarray(data.index.dayofweek)
        pos = np.where(day == 4, 0.0, pos)
    # warm-up: flat until both windows are full
    warm = max(lookback, vol_window) + {extra}
    pos[:warm] = 0.0
    return pd.Series(np.clip(np.nan_to_num(pos), -1.0, 1.0), index=data.index)
'''


def version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def ms(x: float) -> str:
    return f"{x * 1e3:7.2f}"


def p90(xs: Sequence[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(0.9 * (len(s) - 1)))]


# --------------------------------------------------------------------------- the model
class Instant:
    """A scripted `ChatModel` with no latency: by role (the system message names it), a
    reply prepared before the clock starts; the writer's and the fixer's code differ every
    call (``extra``)."""

    spec = "bench:instant"

    def __init__(self, replies: dict[str, str]) -> None:
        self.replies = replies
        self.calls = 0

    def complete(self, messages: Sequence[Message], *, schema: dict[str, Any] | None = None,
                 max_tokens: int = 1024, seed: int | None = None) -> ChatReply:
        self.calls += 1
        return ChatReply(text=reply_for(self.replies, messages, self.calls), prompt_tokens=900,
                         completion_tokens=300, spec=self.spec)


def reply_for(replies: dict[str, str], messages: Sequence[Any], n: int) -> str:
    system = messages[0]["content"]
    for marker, text in replies.items():
        if marker in system:
            return text.replace("@EXTRA@", str(n)) if "@EXTRA@" in text else text
    raise AssertionError(f"an unexpected request: {system[-80:]!r}")


def code_reply(intro: str) -> str:
    return f"{intro}\n\n```python\n{STRATEGY.format(extra='@EXTRA@')}```\n\nIt trades the trend."


# --------------------------------------------------------------------------- the setting
class Setting:
    """The in-sample research the steps work on (built once, untimed)."""

    def __init__(self) -> None:
        t0 = time.perf_counter()
        bars, k = split_bars(TICKER, "1d", None, None, None, 0.7, min_trades=DEFAULT_MIN_TRADES)
        self.bars, self.k = bars, k
        self.in_sample = bars.iloc[:k]
        self.bpy = bars_per_year("1d", bars.index)
        self.first_date = bars.index[0].isoformat()
        self.last_in_sample = bars.index[k - 1].isoformat()
        self.blind = Blind.for_run(TICKER, self.in_sample.index)
        self.data = DataBrief(bars=len(self.in_sample), bars_per_year=self.bpy, timeframe="1d")
        s0 = time.perf_counter()
        self.swarm = ResearchSwarm().run(self.in_sample, DIRECTIVE, self.bpy)
        self.swarm_s = time.perf_counter() - s0
        self.families = [r.family for r in self.swarm.ranked if r.weight > 0] or [
            r.family for r in self.swarm.ranked[:3]]
        self.strategies = {n: load_strategy(n) for n in library_names()}
        self.criteria = QualityCriteria.default()
        self.past: list[PastResult] = []
        self.records: list[IterationRecord] = []
        self.codes: dict[str, str] = {}
        b0 = time.perf_counter()
        self._history()
        self.backtest_s = time.perf_counter() - b0
        self.setup_s = time.perf_counter() - t0

    def inp(self, action: str, **kw: Any) -> DevelopmentInput:
        return DevelopmentInput(
            action=action, families=self.families, history=self.past, n_variants=VARIANTS,  # type: ignore[arg-type]
            seed=0, bars_per_year=self.bpy, in_sample_bars=len(self.in_sample), **kw)

    def _history(self) -> None:
        dev = OptunaDeveloper(self.strategies)
        for it in range(ITERATIONS):
            action = "INITIAL" if it == 0 else "TUNE_PARAMETERS"
            for v, p in enumerate(dev.propose(self.inp(action))):
                self._backtest(it, v, p)

    def _backtest(self, it: int, v: int, p: VariantProposal) -> None:
        task = BacktestTask(task_id=f"h{it}_{v}", experiment_id=f"exp_{it}", variant_id=f"v{v}",
                            strategy_code=p.strategy_code, strategy_parameters=p.parameters,
                            strategy_name=p.strategy_name, ticker=TICKER,
                            start=self.first_date, end=self.last_in_sample)
        metrics = run_task_in_process(task)["metrics"]  # the library's code: trusted
        gate = evaluate(metrics, self.criteria, min_trades=DEFAULT_MIN_TRADES)
        failed = [GateCriterion(metric=c["metric"], value=c["value"], op=c["op"],
                                threshold=c["threshold"]) for c in gate.failed_criteria]
        self.codes[p.strategy_name] = p.strategy_code
        self.past.append(PastResult(
            variant_id=f"exp_{it}/v{v:02d}", strategy_name=p.strategy_name,
            strategy_code=p.strategy_code, parameters=p.parameters, gate_score=gate.score,
            num_trades=metrics.get("num_trades")))
        self.records.append(IterationRecord(
            strategy_name=p.strategy_name, family=p.strategy_name.split("+")[0], iteration=it,
            parameters=p.parameters, metrics=metrics, gate_passed=gate.passed,
            gate_score=gate.score, failed_criteria=failed))


def replies_for(st: Setting) -> dict[str, str]:
    brief = ResearchBrief.from_swarm(st.swarm, st.data, st.blind, directive=DIRECTIVE)
    stats = brief.statistics()
    hypotheses = {"hypotheses": [
        {"name": "vol_scaled_trend", "family": "momentum",
         "hypothesis": "the drift persists over months; scaling by recent volatility keeps "
                       "the drawdown within the gate",
         "evidence": stats[:2], "mechanism": "long above the lookback return threshold, short "
                                              "below it, sized to a target volatility"},
        {"name": "calm_breakout", "family": "donchian_breakout",
         "hypothesis": "breakouts follow calm stretches", "evidence": stats[-1:],
         "mechanism": "enter on a channel break after low volatility"},
    ]}
    return {
        "You are the research agent.": json.dumps(hypotheses),
        "You are the strategy writer.": code_reply("Here is the strategy."),
        "You are the bug fixer.": code_reply("Fixed: every decision uses bars up to t."),
        "You are the failure-analysis agent.": json.dumps({
            "recommendation": "REFINE_ALGORITHM",
            "reasoning": "the best variant's Sharpe ratio is half the threshold and its "
                         "drawdown exceeds the limit in every iteration: tuning did not move "
                         "it, the signal needs a volatility filter",
            "specific_actions": ["scale positions by recent volatility",
                                 "stay flat when the trend is weak"], "confidence": 0.6}),
        "You are the trajectory-analysis agent.": json.dumps({
            "next_action": "CONTINUE", "reasoning": "the best score still rises by 0.1 an "
                                                     "iteration; keep refining"}),
    }


class Roles:
    """The five roles over one guarded model, and the inputs of each step."""

    def __init__(self, st: Setting, model: Any, store: ExchangeStore | None) -> None:
        self.st, self.model, self.store = st, model, store
        budget = Budget(max_calls=10**9, max_tokens=10**12)
        guarded = guard(model, budget=budget, store=store)
        common: dict[str, Any] = {"blind": st.blind, "store": store, "seed": 0}
        self.researcher = LLMResearcher(guarded, **common)
        self.writer = StrategyWriter(guarded, OptunaDeveloper(st.strategies), **common)
        self.failure = LLMFailureAnalyst(guarded, RuleBasedFailureAnalyst(), **common)
        self.trajectory = LLMTrajectoryAnalyzer(guarded, RuleBasedTrajectoryAdvisor(), **common)
        self.seed = 0
        self.tried: dict[str, float | None] = {}
        for p in st.past:
            fam = p.strategy_name.split("+")[0]
            if p.gate_score is not None:
                self.tried[fam] = max(self.tried.get(fam, -9.0), p.gate_score)
        self.hypotheses = OfflineHypothesizer().hypothesize(self.brief())
        self.candidate: Any = None
        latest = st.records[-1]
        gate = evaluate(dict(latest.metrics), st.criteria, min_trades=DEFAULT_MIN_TRADES)
        self.failure_input = FailureAnalysisInput(
            strategy_name=latest.strategy_name, strategy_code=st.codes[latest.strategy_name],
            research_findings=list(st.swarm.findings), favoured_families=st.families,
            backtest_metrics=latest.metrics,
            quality_gate_results=QualityGateResults(
                passed=gate.passed, score=gate.score, failed_criteria=latest.failed_criteria),
            iteration_history=st.records, current_iteration=ITERATIONS - 1, max_iterations=5)
        self.scores = best_scores_per_iteration(st.records)
        self.stats = TrajectoryAnalyzer(self.scores).analyze_trajectory()
        self.summary = RecordsSummary(
            iterations=ITERATIONS, max_iterations=15, best_score=self.stats.best,
            families_tried=sorted({r.family or r.strategy_name for r in st.records}))

    def next_seed(self) -> None:
        """A new record key for every exchange from now on (no replay)."""
        self.seed += 1
        for role in (self.researcher, self.writer, self.writer.fixer, self.failure,
                     self.trajectory):
            role.seed = self.seed
        if self.store is not None:
            self.store.step = f"STRATEGY_DEVELOPMENT (research 0, strategy {self.seed})"

    def brief(self) -> ResearchBrief:
        return ResearchBrief.from_swarm(self.st.swarm, self.st.data, self.st.blind,
                                        directive=DIRECTIVE, tried=self.tried)

    # -- the steps (each returns nothing; asserts the model's answer was taken) --------------
    def research(self) -> None:
        hs = self.researcher.hypothesize(self.brief())
        [o] = self.researcher.take_outcomes()
        assert o.source == "model" and not o.fallback, o
        self.hypotheses = hs

    def write(self) -> None:
        ctx = WriterContext(data=self.st.data, hypotheses=self.hypotheses,
                            findings=self.brief().findings, new=1)
        [c] = self.writer.write(self.st.inp("TUNE_PARAMETERS"), ctx)
        [o] = self.writer.take_outcomes()
        assert o.source == "model" and not o.rejected, o
        self.candidate = c

    def fix(self) -> None:
        c = self.candidate
        idx = self.st.in_sample.index
        cuts = [d.isoformat() for d in idx[[len(idx) // 3, len(idx) // 2, 2 * len(idx) // 3]]]
        verdict = task_verdict(c.name, {"metrics": {"num_trades": 41}, "lookahead": cuts},
                               code_hash=c.code_hash)
        fixed = self.writer.resubmit(c, verdict, self.st.inp("TUNE_PARAMETERS"))
        out = self.writer.take_outcomes()  # the fixer's step, then the writer's verdict
        assert fixed is not None and [o.source for o in out] == ["model", "model"], out

    def analyse_failure(self) -> None:
        a = self.failure.analyze_failure(self.failure_input)
        [o] = self.failure.take_outcomes()
        assert a.rule == "llm" and o.source == "model", o

    def analyse_trajectory(self) -> None:
        self.trajectory.analyze_trajectory(self.summary, self.stats, scores=self.scores)
        [o] = self.trajectory.take_outcomes()
        assert o.source == "model", o

    # -- what the offline agents do in their place -------------------------------------------
    def offline_research(self) -> None:
        OfflineHypothesizer().hypothesize(self.brief())

    def offline_write(self) -> None:
        self.writer.propose(self.st.inp("TUNE_PARAMETERS"))

    def offline_failure(self) -> None:
        self.failure.fallback.analyze_failure(self.failure_input)

    def offline_trajectory(self) -> None:
        self.trajectory.fallback.analyze_trajectory(self.summary, self.stats)


STEPS = ("researcher", "writer (gates 1-3)", "bug fixer (gates 1-3)", "failure analyst",
         "trajectory analyst")


def step_fns(r: Roles) -> dict[str, Callable[[], None]]:
    return dict(zip(STEPS, (r.research, r.write, r.fix, r.analyse_failure,
                            r.analyse_trajectory), strict=True))


def offline_fns(r: Roles) -> dict[str, Callable[[], None] | None]:
    return dict(zip(STEPS, (r.offline_research, r.offline_write, None, r.offline_failure,
                            r.offline_trajectory), strict=True))


def clock(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- 1. role steps
def roles(st: Setting, repeat: int, tmp: Path) -> None:
    replies = replies_for(st)
    with ExchangeStore(tmp / "llm.db") as store:
        stored = Roles(st, Instant(replies), store)
        bare = Roles(st, Instant(replies), None)
        runs = {"stored": stored, "bare": bare}
        first = {name: clock(fn) for name, fn in step_fns(stored).items()}
        for fn in step_fns(bare).values():  # warm the store-less one too
            fn()
        times: dict[str, dict[str, list[float]]] = {k: {s: [] for s in STEPS}
                                                    for k in ("stored", "bare", "offline")}
        for rep in range(repeat):
            order = ["stored", "bare"] if rep % 2 == 0 else ["bare", "stored"]
            for kind in order:
                r = runs[kind]
                r.next_seed()
                for name, fn in step_fns(r).items():
                    times[kind][name].append(clock(fn))
            for name, fn in offline_fns(stored).items():
                if fn is not None:
                    times["offline"][name].append(clock(fn))
        exchanges = len(store.exchanges())
    print(f"\n1. per role step, a model that answers at once, {repeat} repeats "
          f"(load {loadavg()})")
    print(f"   {exchanges} exchanges recorded; every step answered by the model, no fallback, "
          "no replay")
    print(f"   {'step':<24}{'first':>9}{'median':>9}{'p90':>9}   {'no store':>9}"
          f"   {'offline agent alone':>20}")
    worst = 0.0
    for name in STEPS:
        t = times["stored"][name]
        med, hi = statistics.median(t), p90(t)
        worst = max(worst, hi)
        off = times["offline"][name]
        offline = f"{ms(statistics.median(off))} ms" if off else "      (none)"
        print(f"   {name:<24}{ms(first[name])}  {ms(med)}  {ms(hi)}   "
              f"{ms(statistics.median(times['bare'][name]))}   {offline:>20}")
    print("   (ms; first: the step's first call in this process; median/p90 over the repeats; "
          "no store: the same step without llm.db)")
    verdict = "meets" if worst <= MAX_MS / 1e3 else "misses"
    print(f"   slowest p90 {worst * 1e3:.2f} ms: {verdict} the {MAX_MS:.0f} ms target")


# --------------------------------------------------------------------------- 2. smoke backtest
def smoke(st: Setting, repeat: int, tmp: Path) -> None:
    """Gate 4 (and 5) as the orchestrator runs it (see the module docstring)."""

    def task(i: int) -> BacktestTask:
        # the candidate's proposal: its declared defaults, lookbacks fitted to the bars
        name = "llm_vol_scaled_trend"
        fitted = fit_to_bars(from_source(STRATEGY.format(extra=1000 + i), name), st.bpy,
                             len(st.in_sample))
        return BacktestTask(
            task_id=f"exp_9_g{i:02d}", experiment_id="exp_9", variant_id=f"g{i:02d}",
            strategy_code=fitted.source, strategy_parameters=fitted.defaults(),
            strategy_name=name,
            ticker=TICKER, timeframe="1d", data_path=None, adjust=True, start=st.first_date,
            end=st.last_in_sample, eval_start=None, check_lookahead=True, commission=0.001,
            slippage_bps=0.0, borrow_bps=0.0, rebalance="bar", unconfined_ok=False)

    def once(pool: LocalPool, queue: TaskQueue, i: int) -> tuple[float, Any]:
        t = task(i)
        t0 = time.perf_counter()
        queue.enqueue_batch([t], exist_ok=True)
        pool.run(queue, run_task)
        result = queue.get_result(t.task_id)
        error = None if result is not None else (queue.get_error(t.task_id) or "failed")
        verdict = task_verdict(t.strategy_name, result, error)
        return time.perf_counter() - t0, verdict

    times = []
    with LocalPool() as pool:
        queue = TaskQueue(tmp / "queue.db")
        cold, v = once(pool, queue, 0)
        if not v.passed:
            print(f"\n2. smoke backtest: {v.outcome()}")
            return
        for i in range(1, repeat + 1):
            dt, v = once(pool, queue, i)
            assert v.passed, v.outcome()
            times.append(dt)
        queue.close()
        workers = pool.max_workers
    print(f"\n2. smoke backtest (gate 4 + gate 5's look-ahead check), one written strategy, "
          f"confined, {len(st.in_sample):,} in-sample bars, LocalPool({workers}), {repeat} "
          f"repeats (load {loadavg()})")
    print(f"   first task (the pool's cold start: workers import and warm up) {ms(cold)} ms")
    print(f"   a new strategy on the running pool: median {ms(statistics.median(times))} ms, "
          f"p90 {ms(p90(times))} ms")


# --------------------------------------------------------------------------- 3. HTTP
def http(st: Setting, repeat: int) -> None:
    try:
        import openai  # noqa: F401
    except ImportError:
        print("\n3. through the real openai client: skipped, openai is not installed "
              "(pip install -e '.[llm]')")
        return
    from _llm_server import LLMServer, openai_ok
    from alphaloop.agents.llm import OpenAIChat, RetryPolicy

    for name in ("OPENAI_BASE_URL", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy",
                 "https_proxy", "all_proxy"):
        os.environ.pop(name, None)  # a loopback call: no proxy (as the tests isolate it)
    replies = replies_for(st)
    picked = ("writer (gates 1-3)", "failure analyst")
    calls = [0]

    def answer(request: Any) -> Any:
        calls[0] += 1
        text = reply_for(replies, request.body["messages"], calls[0])
        return openai_ok(text, prompt_tokens=900, completion_tokens=300)

    with LLMServer() as server:
        server._default = answer  # type: ignore[method-assign]
        client = OpenAIChat("scripted", base_url=server.openai_url, api_key="unused",
                            timeout=30.0, retry=RetryPolicy(base_delay=0.01, max_delay=0.05))
        # no record store on either side: its fsync would bury the round trip in its noise
        runs = {"http": Roles(st, client, None), "local": Roles(st, Instant(replies), None)}
        for r in runs.values():  # the first call of each: the connection, caches
            r.next_seed()
            fns = step_fns(r)
            fns["researcher"]()
            for name in picked:
                fns[name]()
        times: dict[str, dict[str, list[float]]] = {k: {s: [] for s in picked} for k in runs}
        for rep in range(repeat):
            for kind in (["http", "local"] if rep % 2 == 0 else ["local", "http"]):
                r = runs[kind]
                r.next_seed()
                fns = step_fns(r)
                for name in picked:
                    times[kind][name].append(clock(fns[name]))
        modes = {json.loads(req.raw).get("response_format", {}).get("type", "text")
                 for req in server.requests}
    print(f"\n3. through the real openai client ({version('openai')}) against the loopback "
          f"server of the tests on 127.0.0.1 (INCLUDES that server's own work), no record "
          f"store, {repeat} repeats (load {loadavg()}); request formats {sorted(modes)}")
    print(f"   {'step':<24}{'http median':>12}{'p90':>9}{'in-process':>12}{'round trip':>12}")
    for name in picked:
        h, loc = times["http"][name], times["local"][name]
        paired = statistics.median(a - b for a, b in zip(h, loc, strict=True))
        print(f"   {name:<24}{ms(statistics.median(h))}    {ms(p90(h))}  "
              f"{ms(statistics.median(loc))}     {ms(paired)}")
    print("   (ms; round trip: median over repeats of (http - in-process), the same step)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=40, help="repeats of each role step")
    ap.add_argument("--smoke", type=int, default=9, help="smoke backtests on the running pool")
    ap.add_argument("--http", type=int, default=30, help="repeats through the openai client")
    ap.add_argument("--only", choices=("roles", "smoke", "http"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "?")
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, "
          f"{cpu}, {os.cpu_count()} CPUs, load {loadavg()}")
    print(f"# python {sys.version.split()[0]}, alphaloop {version('alphaloop')}, pydantic "
          f"{version('pydantic')}, optuna {version('optuna')}, numpy {version('numpy')}, "
          f"pandas {pd.__version__}, openai {version('openai')}")
    st = Setting()
    print(f"# GOOG in-sample {len(st.in_sample):,} of {len(st.bars):,} bars; the research swarm "
          f"{st.swarm_s * 1e3:.0f} ms ({len(st.swarm.findings)} findings); history "
          f"{len(st.past)} variants ({ITERATIONS} iterations x {VARIANTS}) backtested in "
          f"{st.backtest_s:.1f} s; setup {st.setup_s:.1f} s (untimed)")
    with tempfile.TemporaryDirectory(prefix="bench_llm_") as d:
        tmp = Path(d)
        if args.only in (None, "roles"):
            roles(st, args.repeat, tmp)
        if args.only in (None, "smoke"):
            smoke(st, args.smoke, tmp)
        if args.only in (None, "http"):
            http(st, args.http)
    print(f"\n# done in {time.perf_counter() - t0:.0f} s, load {loadavg()}")


if __name__ == "__main__":
    main()
