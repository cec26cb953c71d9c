"""The central orchestrator: a thin driver of parts passed in.

It runs the design's loop — tool development, research swarm, strategy development, parallel
backtesting, quality gate, routing — until a strategy passes or the limits say stop. It owns no
algorithm of its own: the state store, task queue, executor, agents, gate criteria and tracker
are all given to it (`Parts`), so each can be replaced or tested alone.

Resuming. Every phase ends with ONE atomic state write (`StateManager.complete_step`) that
carries everything the phase decided: the next phase, the pending action, counter increments,
lessons, the best strategy, holdout looks, retired strategies. Nothing else in a phase writes the
state, so a run killed before that write replays the whole phase and one killed after it replays
none of it. Every other write inside a phase is idempotent when replayed: proposals are
deterministic for a seed and history, task and experiment ids are derived from the iteration,
the queue keeps tasks and results across crashes (`enqueue_batch(exist_ok=True)`), the tracker
keeps one record per task and one action per experiment, and the files a phase writes
(`tools.json`, `research_<n>.json`, `<exp>_proposals.json`) are rewritten with the same content
and written before the state names the phase that reads them (`research_<n>.json` and
`tools.json` are regenerated from the tracker, the queue and the tool-check cache if
missing). So a run killed anywhere and resumed gives the same result as an uninterrupted one
(`tests/test_crash_resume.py` kills a run after every commit to prove it).

Honesty. The bars are split once into an in-sample window and a holdout. Agents, routing and
tuning see in-sample results only. A variant that passes in-sample (and the look-ahead check)
becomes a candidate and is backtested once on the holdout; routing learns only "failed on
holdout". The evidence floor (`Parts.min_trades`, `gate.evidence_floor`) is part of every
verdict whatever the gate: a variant with fewer trades or no losing trade fails in-sample, so
it never spends a holdout look, and a holdout look that falls short of it is no success.
Strategy code runs only inside workers (`execution.task_runner.run_task`).
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from alphaloop.agents.development import (
    DevelopmentInput,
    OptunaDeveloper,
    PastResult,
    VariantProposal,
)
from alphaloop.agents.protocols import GateCriterion, IterationRecord, QualityGateResults
from alphaloop.agents.research import ResearchSwarm
from alphaloop.data import bars_per_year, load, slice_dates
from alphaloop.execution import BacktestTask, Executor, TaskQueue
from alphaloop.workflow._dsr import deflated_sharpe_from_moments
from alphaloop.workflow._tools import ToolDevelopment
from alphaloop.workflow.gate import (
    DEFAULT_MIN_TRADES,
    GateResult,
    QualityCriteria,
    check_evidence_window,
    evaluate,
    holdout_start,
    is_evidence_failure,
)
from alphaloop.workflow.routing import TIER, RoutingDecision, RoutingEngine
from alphaloop.workflow.significance import (
    DEFAULT_ALPHA,
    DEFAULT_MAX_HOLDOUT_LOOKS,
    HoldoutLook,
    holdout_looks,
)
from alphaloop.workflow.state import StateManager, atomic_write_text, workflow_dir
from alphaloop.workflow.tracker import ExperimentRecord, ExperimentTracker, code_hash

if TYPE_CHECKING:
    from alphaloop.workflow._llm_roles import LLMSetup

__all__ = ["RETIRE_AFTER", "Orchestrator", "Parts", "WorkflowResult", "limit_failure", "split_bars"]

log = logging.getLogger(__name__)

Event = Callable[[str, dict[str, Any]], None]

PROGRESS_SECONDS = 0.1
"""Least time between two ``"result"`` progress events while a batch runs."""

RETIRE_AFTER = 2
"""Failed attempts at the time or memory limit after which a strategy family is retired."""

_LIMITS = (
    (re.compile(r"timed out after (?P<limit>[^(]+?)\s*(?:\(|$)"), "timed out"),
    (
        re.compile(r"exceeded memory limit (?P<limit>[^(]+?)\s*(?:\(|$)"),
        "exceeded the memory limit",
    ),
    (re.compile(r"ran out of memory\b"), "ran out of memory"),
    # the same limits met inside a confined strategy process (alphaloop.execution._jail)
    (
        re.compile(
            r"StrategyProcessError: strategy '[^']*' exceeded the memory limit "
            r"(?P<limit>[^(]+?)\s*(?:\(|$)"
        ),
        "exceeded the memory limit",
    ),
    (re.compile(r"StrategyProcessError: strategy '[^']*' process was killed"), "was killed"),
    (
        re.compile(r"StrategyProcessError: strategy '[^']*' used up its CPU time limit"),
        "used up its CPU time",
    ),
)


def limit_failure(error: str | None) -> tuple[str, str | None] | None:
    """``(what, limit)`` if ``error`` is an executor's report of a task that hit the wall-time
    or memory limit (``"timed out after 3 s"`` -> ``("timed out", "3 s")``), else None.

    Only the executors' own messages count (they start the error); an exception raised by
    strategy code is reported as ``"<Type>: <message>"`` and never matches, whatever it says.
    """
    for pattern, what in _LIMITS:
        m = pattern.match(error or "")
        if m:
            return what, m.groupdict().get("limit")
    return None



LOOKS_PER_EXPERIMENT = 1
"""Holdout looks an experiment (one batch of variants) may take: its best candidate's."""


def _holdout_rank(r: ExperimentRecord) -> tuple[float, float, str]:
    """Sort key, best first: in-sample Sharpe, then gate score, then the variant (stable)."""
    return (*_rank_of(r.gate_score or 0.0, r.metrics.get("sharpe_ratio"))[1:], r.variant_id)


def _rank_of(score: float, sharpe: object) -> tuple[float, float, float]:
    """Sort key of a variant, best first: a pass (score >= 1) before any fail; among passes
    the higher in-sample Sharpe (what the holdout test will judge), then the score; among
    fails the score (how close it came)."""
    value = float(sharpe) if isinstance(sharpe, int | float) and math.isfinite(sharpe) else None
    if score >= 1.0:
        return (0.0, -(value if value is not None else -math.inf), -score)
    return (1.0, -score, 0.0)


def _best_rank(r: ExperimentRecord) -> tuple[float, float, float]:
    return _rank_of(r.gate_score or 0.0, r.metrics.get("sharpe_ratio"))


@dataclass
class Parts:
    """Everything the orchestrator drives, passed in by the caller."""

    state: StateManager
    tracker: ExperimentTracker
    queue: TaskQueue
    executor: Executor
    task_fn: Callable[[BacktestTask], Any]
    swarm: ResearchSwarm
    developer: OptunaDeveloper
    router: RoutingEngine
    criteria: QualityCriteria
    n_variants: int = 8
    commission: float = 0.001
    slippage_bps: float = 0.0
    borrow_bps: float = 0.0
    """Annual fee on short notional, basis points (``--borrow-bps``)."""
    rebalance: str = "change"
    """The engine's position model: units held ("change") or constant weight ("bar")."""
    unconfined_ok: bool = False
    """Where the kernel cannot confine strategy code, run it anyway (all code is alphaloop's
    own, or the user passed --unconfined); see `BacktestTask.unconfined_ok`."""
    alpha: float = DEFAULT_ALPHA
    """Significance level of the holdout test, over all looks (`workflow.significance`);
    1 switches the test off."""
    max_holdout_looks: int = DEFAULT_MAX_HOLDOUT_LOOKS
    """Holdout looks a workflow may take; once spent, it ends FAILED."""
    adjust: bool = True
    """Adjust a user file's OHLC by its 'Adj Close' (False: ``--no-adjust``)."""
    min_trades: int = DEFAULT_MIN_TRADES
    """The evidence floor (``--min-trades``): trades a variant needs in-sample and on the
    holdout, with a losing one among them, whatever the gate; 0 only for a workflow started
    before the floor existed (no floor)."""
    llm: LLMSetup | None = None
    """The language model (``--llm``); None: offline, as before."""


WorkflowResult = dict[str, Any]


def split_bars(
    ticker: str,
    timeframe: str,
    data_path: str | None,
    start: str | None,
    end: str | None,
    in_sample_fraction: float,
    adjust: bool = True,
    min_trades: int = 0,
) -> tuple[pd.DataFrame, int]:
    """The workflow's bars and the position of the first holdout bar (`DataError`/
    `ConfigError` for bad input, raised before anything is created; `ConfigError` too when
    a window is too short for ``min_trades`` trades, `gate.check_evidence_window`)."""
    bars = slice_dates(load(ticker, timeframe, data_path, adjust=adjust), start, end)
    k = holdout_start(len(bars), in_sample_fraction)
    check_evidence_window(bars.index, k, min_trades)
    return bars, k


class Orchestrator:
    """Drives one workflow to SUCCESS or FAILED; `run()` also resumes an interrupted one."""

    def __init__(self, parts: Parts, *, on_event: Event | None = None) -> None:
        self.p = parts
        self.on_event = on_event or (lambda kind, info: None)
        s = parts.state.state
        bars, k = split_bars(
            s.ticker,
            s.timeframe,
            s.data_path,
            s.start,
            s.end,
            s.in_sample_fraction,
            adjust=parts.adjust,
            min_trades=parts.min_trades,
        )
        self.bars_per_year = bars_per_year(s.timeframe, bars.index)
        self.in_sample = bars.iloc[:k]
        self.first_date = bars.index[0].isoformat()
        self.last_in_sample = bars.index[k - 1].isoformat()
        self.holdout_first = bars.index[k].isoformat()
        self.last_date = bars.index[-1].isoformat()
        self.dir = workflow_dir(parts.state.home, s.workflow_id)
        self.offline_developer = parts.developer
        self.tools = ToolDevelopment(self)
        self._started = False
        self.llm = None
        if parts.llm is not None:
            from alphaloop.workflow._llm_roles import LLMRoles

            self.llm = LLMRoles(self, parts.llm)

    def _complete(self, **changes: Any) -> None:
        """`StateManager.complete_step`, with the language model's counts when there is one
        (the budget is persisted at every step, so a resume continues the count)."""
        if self.llm is not None:
            changes["llm"] = self.llm.state()
        self.p.state.complete_step(**changes)

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> WorkflowResult:
        """Run (or resume) the workflow to its end and return the design's result."""
        st = self.p.state
        try:
            while st.state.status == "RUNNING":
                phase = st.state.current_phase
                if self.llm is not None:  # each exchange is kept with the step that asked
                    s = st.state
                    self.llm.store.step = (f"{phase} (research {s.research_iteration}, "
                                           f"strategy {s.strategy_iteration})")
                self.on_event("state", {"state": st.state})
                self.on_event("phase", {"phase": phase})
                if phase == "INITIALIZATION":
                    self._complete(current_phase="TOOL_DEVELOPMENT")
                elif phase == "TOOL_DEVELOPMENT":
                    self._tools()
                elif phase == "RESEARCH_SWARM":
                    self._start_workers()  # they start up while research runs
                    self._research()
                elif phase == "STRATEGY_DEVELOPMENT":
                    self._start_workers()
                    self._develop()
                elif phase == "BACKTESTING":
                    self._backtest()
                elif phase == "QUALITY_GATE":
                    self._gate_and_route()
                else:  # COMPLETED / FAILED with a RUNNING status: finish the bookkeeping
                    st.update(status="COMPLETED" if phase == "COMPLETED" else "FAILED")
        except Exception as exc:
            st.update(status="FAILED", failure_reason=f"{type(exc).__name__}: {exc}")
            raise
        return self.result()

    def _tools(self) -> None:
        """Check every available strategy in a worker: sandbox, compile, run, look-ahead
        (`_tools.ToolDevelopment`; a check made before on the same inputs comes from the
        home's cache)."""
        self.tools.run()

    def _usable(self) -> list[str]:
        return self.tools.usable()

    def _start_workers(self) -> None:
        """Start the executor's workers now, without waiting for them (`LocalPool.start`), so
        their start-up overlaps research and development instead of delaying the first
        backtest; a backend without ``start`` starts them when it first runs. Once."""
        if self._started:
            return
        self._started = True
        start = getattr(self.p.executor, "start", None)
        if callable(start):
            start(self.p.task_fn)

    def _research(self) -> None:
        n = self.p.state.state.research_iteration
        self._write_json(f"research_{n}.json", self._make_research(n))
        lessons = self.llm.lessons() if self.llm is not None else []
        self._complete(current_phase="STRATEGY_DEVELOPMENT", lessons=lessons)

    def _research_of(self, n: int) -> dict[str, Any]:
        """``research_<n>.json``; regenerated (same content) if it is missing."""
        try:
            research: dict[str, Any] = self._read_json(f"research_{n}.json")
        except FileNotFoundError:
            log.warning("%s missing; regenerating it", self.dir / f"research_{n}.json")
            research = self._make_research(n)
            self._write_json(f"research_{n}.json", research)
            if self.llm is not None:  # replayed from the store; its lessons were written
                self.llm.forget()
        return research

    def _make_research(self, n: int) -> dict[str, Any]:
        """Research round ``n``: a function of the in-sample bars, the directive, the usable
        tools and the records of earlier rounds only, so it can be made again at any time."""
        s = self.p.state.state
        swarm = self.p.swarm.run(self.in_sample, s.research_directive, self.bars_per_year)
        earlier = {
            e.experiment_id for e in self.p.tracker.experiments() if e.research_iteration < n
        }
        tried = {
            r.strategy_name.split("+")[0] for r in self._history() if r.experiment_id in earlier
        }
        usable = self._usable()
        # The first round follows the evidence (positive weights only); a new round, sent back
        # because that evidence did not pay, also considers the families it ranked lower.
        positive = n == 0
        ranked = [
            r.family
            for r in swarm.ranked
            if r.family in usable
            and (r.weight > 0 or not positive)
            and r.family not in swarm.directive.excluded_families
        ]
        # Strategies the user supplied come first; they were given for a reason.
        ranked = [n for n in usable if n not in {r.family for r in swarm.ranked}] + ranked
        ranked = ranked or usable[:1]
        # A new research round puts families already explored behind fresh ones.
        ranked = [f for f in ranked if f not in tried] + [f for f in ranked if f in tried]
        out = {
            "families": ranked,
            "directive": swarm.directive.model_dump(),
            "findings": [f.model_dump() for f in swarm.findings],
            "reports": [r.model_dump(mode="json") for r in swarm.reports],
        }
        if self.llm is not None:
            best: dict[str, float | None] = {}
            for r in self._history():
                if r.experiment_id in earlier:
                    fam, score = r.strategy_name.split("+")[0], r.gate_score
                    if score is not None and (best.get(fam) is None or score > best[fam]):
                        best[fam] = score
                    best.setdefault(fam, None)
            out.update(self.llm.research(swarm, s.research_directive, best))
        return out

    def _develop(self) -> None:
        s = self.p.state.state
        research = self._research_of(s.research_iteration)
        action = s.pending_action or "INITIAL"
        retired = s.retired_strategies
        # a retired strategy is out of the developer's sight: not favoured, not in the history
        # it tunes or refines from, not among the variants to fix
        history = [
            r
            for r in self._history()
            if not self._is_retired(r.strategy_name, r.strategy_code, retired)
        ]
        past = [self._past(r) for r in history]
        last = f"{s.current_experiment_id}/"
        failing = [
            p
            for p in past
            if p.variant_id.startswith(last) and (p.error or p.lookahead or p.num_trades == 0)
        ]
        directive = research["directive"]
        inp = dict(
            families=[f for f in research["families"] if f not in retired],
            history=past,
            n_variants=self.p.n_variants,
            long_only=directive.get("long_only", False),
            low_drawdown=directive.get("low_drawdown", False),
            seed=s.seed or 0,
            # lookbacks declared in days are proposed in bars of this data, at most a third
            # of the in-sample bars (`agents.development.fit_to_bars`)
            bars_per_year=bars_per_year(s.timeframe, self.in_sample.index),
            in_sample_bars=len(self.in_sample),
        )
        proposals: list[VariantProposal] = []
        exp_id: str | None = None
        lessons: list[str] = []
        written = 0
        if self.llm is not None:
            exp_id = self.p.tracker.start_experiment(
                research_iteration=s.research_iteration,
                strategy_iteration=s.strategy_iteration,
                description=f"{action}: {self.p.n_variants} variants, new strategies from "
                f"{self.llm.spec} first",
            )
            mine = f"{exp_id}/"
            written, lessons = self.llm.develop(
                exp_id, research, DevelopmentInput(
                    action=action, failing=failing[-self.p.n_variants :],
                    **{**inp, "history": [p for p in past
                                          if not p.variant_id.startswith(mine)]}),
            )
            # the history now holds the smoke runs: the fill does not repeat them
            inp["history"] = [
                self._past(r) for r in self._history()
                if not self._is_retired(r.strategy_name, r.strategy_code, retired)
            ]
        if action == "FIX_BUG" and self.p.n_variants - written > 0:
            inp["n_variants"] = self.p.n_variants - written
            proposals = self.developer.propose(
                DevelopmentInput(action="FIX_BUG", failing=failing[-self.p.n_variants :], **inp)
            )
        if len(proposals) + written < self.p.n_variants:
            fill = "TUNE_PARAMETERS" if action == "FIX_BUG" else action
            inp["n_variants"] = self.p.n_variants - written - len(proposals)
            proposals += self.developer.propose(DevelopmentInput(action=fill, **inp))
        proposals = [
            p for p in proposals if not self._is_retired(p.strategy_name, p.strategy_code, retired)
        ]
        if exp_id is None:
            exp_id = self.p.tracker.start_experiment(
                research_iteration=s.research_iteration,
                strategy_iteration=s.strategy_iteration,
                description=f"{action}: {len(proposals)} variants",
            )
        self._write_json(f"{exp_id}_proposals.json", [p.model_dump() for p in proposals])
        tasks = [self._task(exp_id, f"v{i:02d}", p) for i, p in enumerate(proposals)]
        # one strategy's variants side by side in the queue, so a worker holding several runs
        # them as one grid call (`execution._together`)
        order = {code: i for i, code in enumerate(dict.fromkeys(t.strategy_code for t in tasks))}
        queued = sorted(tasks, key=lambda t: order[t.strategy_code])
        self.p.queue.enqueue_batch(queued, exist_ok=True)
        self._complete(
            current_phase="BACKTESTING",
            current_experiment_id=exp_id,
            active_variants=[t.task_id for t in tasks],
            lessons=lessons,
        )

    def _task(self, exp_id: str, vid: str, p: VariantProposal, *, holdout: bool = False):
        s = self.p.state.state
        return BacktestTask(
            task_id=f"{exp_id}_{vid}" + ("_holdout" if holdout else ""),
            experiment_id=exp_id,
            variant_id=vid,
            strategy_code=p.strategy_code,
            strategy_parameters=p.parameters,
            strategy_name=p.strategy_name,
            ticker=s.ticker,
            timeframe=s.timeframe,
            data_path=s.data_path,
            adjust=self.p.adjust,
            start=self.first_date,
            end=self.last_date if holdout else self.last_in_sample,
            eval_start=self.holdout_first if holdout else None,
            check_lookahead=not holdout,
            commission=self.p.commission,
            slippage_bps=self.p.slippage_bps,
            borrow_bps=self.p.borrow_bps,
            rebalance=self.p.rebalance,
            unconfined_ok=self.p.unconfined_ok,
        )

    def _drain(self) -> None:
        # counting the queue's states reads every task row, so progress goes out at most
        # every PROGRESS_SECONDS (and once at the end), not once per result
        last = -math.inf

        def progress(task_id: str | None, result: dict[str, Any] | None) -> None:
            nonlocal last
            now = time.monotonic()
            if task_id is None or now - last >= PROGRESS_SECONDS:
                last = now
                self.on_event("result", {"task_id": task_id, "stats": self.p.queue.get_stats()})

        summary = self.p.executor.run(self.p.queue, self.p.task_fn, on_result=progress)
        progress(None, None)
        if summary.interrupted:  # state stays RUNNING at this phase: `alphaloop resume` goes on
            raise KeyboardInterrupt(f"interrupted by signal {summary.signal}")

    def _backtest(self) -> None:
        s = self.p.state.state
        exp_id = s.current_experiment_id
        assert exp_id is not None
        self._drain()
        proposals = [VariantProposal(**d) for d in self._read_json(f"{exp_id}_proposals.json")]
        # earlier experiments' records plus this batch's results: the same list whether or not
        # some of this batch's records were logged before a crash
        tried = self._trials(exclude=exp_id) + self._smoke_trials(exp_id) + [
            float(m["sharpe_ratio"])
            for i in range(len(proposals))
            if (res := self.p.queue.get_result(f"{exp_id}_v{i:02d}")) is not None
            and (m := res["metrics"]).get("sharpe_ratio") is not None
        ]
        # the batch's records in one group commit (docs/workflow.md, "Group commits")
        self.p.tracker.log_records(
            self._record(exp_id, f"v{i:02d}", f"{exp_id}_v{i:02d}", prop, "in_sample", tried)
            for i, prop in enumerate(proposals)
            if self.p.tracker.record_for_task(f"{exp_id}_v{i:02d}") is None
        )
        self._complete(
            current_phase="QUALITY_GATE",
            variants_tried=len(self._history()),
        )

    def _gate_and_route(self) -> None:
        st = self.p.state
        s = st.state
        exp_id = s.current_experiment_id
        assert exp_id is not None
        records = self.p.tracker.records(exp_id)
        candidates = [r for r in records if r.gate_passed]
        holdout = self._holdout(exp_id, candidates)
        history = [self._view(r, holdout) for r in self._history() if r.experiment_id != exp_id]
        # Best last: the design analyses the latest record; make it the most informative one.
        ordered = sorted(records, key=lambda r: (r.gate_score is not None, r.gate_score or 0.0))
        views = [self._view(r, holdout) for r in ordered]
        latest = views[-1] if views else None
        gate = QualityGateResults(
            passed=bool(latest and latest.gate_passed),
            score=latest.gate_score if latest else None,
            failed_criteria=latest.failed_criteria if latest else [],
        )
        research = self._research_of(s.research_iteration)
        decision = self.p.router.determine_next_action(
            views,
            gate,
            history=history,
            favoured_families=research["families"],
            strategy_code=ordered[-1].strategy_code if ordered else "",
            record_lesson=False,  # written below, in the same write as the transition
        )
        decision = self._settle(decision, holdout, ordered)
        # idempotent: one action per experiment, and a replay decides the same one
        self.p.tracker.set_action(
            exp_id, decision.action, {"reason": decision.reason, **decision.details}
        )
        self.on_event("decision", {"action": decision.action, "reason": decision.reason})
        retired, retire_lessons = self._retire(
            (
                (r.strategy_name, r.strategy_code, r.task_id)
                for r in self.p.tracker.records(exp_id, sample=None)
                if r.error
            ),
            s.retired_strategies,
        )
        changes: dict[str, Any] = {
            # counted from the records, in the routing write: a replay cannot lose or add a look
            "holdout_looks": len(holdout),
            "retired_strategies": retired,
            **self._best_changes(records),
        }
        lessons = [decision.lesson] if decision.lesson else []
        if self.llm is not None:
            lessons += self.llm.lessons()
        self._apply(decision, ordered, changes, lessons + retire_lessons)

    def _apply(
        self,
        decision: RoutingDecision,
        ordered: Sequence[ExperimentRecord],
        changes: dict[str, Any],
        lessons: list[str],
    ) -> None:
        """Carry out a routing decision: ONE atomic state write with the next phase, the
        pending action, the counter increment, the lessons and ``changes`` (best strategy,
        holdout looks, retired strategies)."""
        action = decision.action
        if action == "SUCCESS":
            assert decision.best_index is not None
            best = ordered[decision.best_index]
            changes["best_strategy"] = {**self._strategy_dict(best), "gate_score": best.gate_score}
            changes["best_metrics"] = dict(best.metrics)
            self._complete(
                current_phase="COMPLETED", status="COMPLETED", lessons=lessons, **changes
            )
        elif action == "ABANDON":
            self._complete(
                current_phase="FAILED",
                status="FAILED",
                failure_reason=decision.reason,
                lessons=lessons,
                **changes,
            )
        elif action == "REFINE_RESEARCH":
            self._complete(
                advance="research",
                current_phase="RESEARCH_SWARM",
                pending_action=action,
                lessons=lessons,
                **changes,
            )
        else:
            self._complete(
                advance="strategy",
                current_phase="STRATEGY_DEVELOPMENT",
                pending_action=action,
                lessons=lessons,
                **changes,
            )

    # -- retiring strategies that hit a resource limit --------------------------------------
    def _retire(
        self, failed: Iterable[tuple[str, str, str]], retired: dict[str, str]
    ) -> tuple[dict[str, str], list[str]]:
        """``retired`` plus every family among ``failed`` (``(strategy name, code, task id)``
        of failed tasks) whose task failed ``RETIRE_AFTER`` times at the time or memory limit,
        and one lesson per newly retired family."""
        out = dict(retired)
        lessons: list[str] = []
        for name, code, task_id in failed:
            family = name.split("+")[0]
            if family in out:
                continue
            hits = [
                hit
                for a in self.p.queue.attempts(task_id)
                if a.outcome == "failed" and (hit := limit_failure(a.error)) is not None
            ]
            if len(hits) < RETIRE_AFTER:
                continue
            what, limit = hits[-1]
            out[family] = code_hash(code)
            where = "" if name == family else f" ({name})"
            bound = f" (limit {limit})" if limit else ""
            lessons.append(
                f"retired {family}{where}: {what} twice{bound}; no more variants of it are "
                "proposed in this workflow"
            )
        return out, lessons

    @staticmethod
    def _is_retired(name: str, code: str, retired: dict[str, str]) -> bool:
        return name.split("+")[0] in retired or (
            bool(retired) and code_hash(code) in retired.values()
        )

    # -- holdout ----------------------------------------------------------------------------
    def _holdout(self, exp_id: str, candidates: list[ExperimentRecord]) -> dict[str, HoldoutLook]:
        """Run the experiment's best in-sample candidate once on the holdout, if looks are left
        (`Parts.max_holdout_looks`); {variant key: its look, judged} for every holdout look of
        the workflow. Writes no state: the looks are counted from the records in the routing
        write.

        One look per experiment (`LOOKS_PER_EXPERIMENT`), not one per candidate: every look
        raises the bar for all later ones (Bonferroni, ``1 - alpha / K``), and a batch's
        passers are mostly neighbours of its best. The best is the highest in-sample Sharpe
        ratio (the statistic the holdout test judges), then the gate score: the gate score
        averages margins, so a variant far over ``num_trades>=10`` would outrank a better one.
        The others stay unlooked, which routing reads as not passed."""
        done = {self._key(r): r for r in self.p.tracker.records(sample="holdout")}
        looked_here = sum(1 for r in done.values() if r.experiment_id == exp_id)
        todo = [c for c in candidates if self._key(c) not in done]
        left = max(0, min(self.p.max_holdout_looks - len(done),
                          LOOKS_PER_EXPERIMENT - looked_here))
        todo = sorted(todo, key=_holdout_rank)[:left]
        if todo:
            props = {c.task_id: self._proposal(c) for c in todo}
            tasks = [self._task(exp_id, c.variant_id, props[c.task_id], holdout=True) for c in todo]
            self.p.queue.enqueue_batch(tasks, exist_ok=True)
            self._drain()
            self.p.tracker.log_records(
                self._record(exp_id, c.variant_id, t.task_id, props[c.task_id], "holdout", [])
                for c, t in zip(todo, tasks, strict=True)
            )
        return {look.variant: look for look in self.looks()}

    def looks(self) -> list[HoldoutLook]:
        """Every holdout look so far, in order, each judged at its own K."""
        return holdout_looks(
            self.p.tracker.records(sample="holdout"), self.p.alpha, self.p.min_trades
        )

    def _settle(
        self,
        decision: RoutingDecision,
        holdout: dict[str, HoldoutLook],
        ordered: Sequence[ExperimentRecord],
    ) -> RoutingDecision:
        """``decision`` with the holdout's verdict in its words; ABANDON instead once every
        holdout look is used without a success: the holdout is spent, and looking again
        would be no test at all."""
        cap = self.p.max_holdout_looks
        if decision.action == "SUCCESS":
            assert decision.best_index is not None
            look = holdout[self._key(ordered[decision.best_index])]
            return self._decided("SUCCESS", f"{decision.reason}; {look.explain()}", decision)
        if len(holdout) < cap:
            return decision
        near = [h for h in holdout.values() if h.gate_passed]
        why = f"; the closest: {near[-1].explain()}" if near else ""
        reason = (
            f"the holdout is spent: {len(holdout)} of {cap} looks used "
            f"(--max-holdout-looks) without a significant pass{why}"
        )
        return self._decided("ABANDON", reason, decision)

    def _decided(self, action: str, reason: str, was: RoutingDecision) -> RoutingDecision:
        s = self.p.state.state
        lesson = (
            f"[research {s.research_iteration}, strategy {s.strategy_iteration}] "
            f"{action} ({TIER[action]}): {reason}"
        )
        details = dict(was.details)
        if action != was.action:
            details["overrides"] = was.action
        return was.model_copy(
            update={"action": action, "reason": reason, "lesson": lesson, "details": details}
        )

    @staticmethod
    def _key(r: ExperimentRecord) -> str:
        return f"{r.experiment_id}/{r.variant_id}"

    # -- records ----------------------------------------------------------------------------
    def _record(
        self,
        exp_id: str,
        vid: str,
        task_id: str,
        prop: VariantProposal,
        sample: str,
        trials: list[float],
    ) -> ExperimentRecord:
        s = self.p.state.state
        result = self.p.queue.get_result(task_id)
        attempts = self.p.queue.attempts(task_id)
        error = None if result is not None else (self.p.queue.get_error(task_id) or "failed")
        metrics: dict[str, Any] = dict(result["metrics"]) if result else {}
        lookahead = bool(result and result.get("lookahead"))
        if result is not None:
            metrics["deflated_sharpe"] = self._dsr(result, trials)
        gate: GateResult | None = (
            evaluate(metrics, self.p.criteria, min_trades=self.p.min_trades) if result else None
        )
        failed = [f"{c['reason']}" for c in gate.failed_criteria] if gate else []
        if lookahead:
            failed.insert(
                0,
                f"look-ahead: positions change when future bars are removed "
                f"(cuts {', '.join(result['lookahead'][:3])})",
            )
        return ExperimentRecord(
            workflow_id=s.workflow_id,
            experiment_id=exp_id,
            variant_id=vid,
            task_id=task_id,
            parent_variant_id=prop.parent_variant_id,
            strategy_name=prop.strategy_name,
            strategy_code=prop.strategy_code,
            strategy_description=prop.description,
            parameters=prop.parameters,
            metrics=metrics,
            gate_passed=bool(gate and gate.passed and not lookahead and not error),
            gate_score=gate.score if gate else None,
            failed_criteria=tuple(failed),
            parameter_changes=prop.parameter_changes,
            attempts=max(1, len(attempts)),
            started_at=attempts[0].started_at if attempts else None,
            finished_at=attempts[-1].finished_at if attempts else None,
            error=error,
            sample=sample,
            ticker=s.ticker,
            timeframe=s.timeframe,
            start=self.first_date,
            end=self.last_date if sample == "holdout" else self.last_in_sample,
            data_path=s.data_path,
            data_fingerprint=(result or {}).get("data_fingerprint"),
            eval_start=self.holdout_first if sample == "holdout" else None,
            commission=self.p.commission,
            slippage_bps=self.p.slippage_bps,
            borrow_bps=self.p.borrow_bps,
            rebalance=self.p.rebalance,
        )

    def _dsr(self, result: dict[str, Any], trials: list[float]) -> float | None:
        """Deflated Sharpe of one result against `trials` (annualised Sharpe ratios of every
        variant backtested so far, this one included; empty = no selection, i.e. the PSR)."""
        if not result.get("moments"):
            return None
        sharpe, t, skew, kurt = result["moments"]
        per_bar = [x / math.sqrt(self.bars_per_year) for x in trials] or [sharpe]
        var = float(np.var(per_bar, ddof=1)) if len(per_bar) > 1 else 0.0
        try:
            return deflated_sharpe_from_moments(sharpe, int(t), skew, kurt, len(per_bar), var)
        except ValueError:
            return None

    @property
    def developer(self) -> OptunaDeveloper:
        """Who proposes variants: the strategy writer with --llm (its ``propose`` is the
        offline developer's, over the strategies it wrote too), else the offline one."""
        return self.llm.writer if self.llm is not None else self.p.developer  # type: ignore[return-value]

    def _smoke_trials(self, exp_id: str) -> list[float]:
        """Annualised Sharpe of experiment ``exp_id``'s smoke runs of written strategies
        (variants ``g<k>``; none offline): trials like any other variant."""
        out = []
        for r in self.p.tracker.records(exp_id):
            if r.variant_id.startswith("g") and r.metrics:
                v = r.metrics.get("sharpe_ratio")
                out.append(float(v) if v is not None and math.isfinite(v) else 0.0)
        return out

    def _history(self) -> list[ExperimentRecord]:
        return self.p.tracker.records(sample="in_sample")

    def _trials(self, exclude: str | None = None) -> list[float]:
        """Annualised in-sample Sharpe of every variant backtested so far (for the DSR), but
        those of experiment ``exclude``. A variant whose Sharpe is undefined (it never traded,
        or its returns never varied) is a trial all the same, with a Sharpe of 0; one whose
        backtest failed measured nothing and is not."""
        out = []
        for r in self._history():
            if r.experiment_id == exclude or not r.metrics:
                continue
            v = r.metrics.get("sharpe_ratio")
            out.append(float(v) if v is not None and math.isfinite(v) else 0.0)
        return out

    def _view(self, r: ExperimentRecord, holdout: dict[str, HoldoutLook]) -> IterationRecord:
        """What agents and routing may see of a record: in-sample facts, holdout as a bool
        (passed: the gate held on it and it is significant)."""
        look = holdout.get(self._key(r))
        held = None if look is None else look.passed
        lookahead = self._peeks(r)
        return IterationRecord(
            strategy_name=r.strategy_name,
            family=r.strategy_name.split("+")[0],
            iteration=self._iteration_of(r.experiment_id),
            parameters=dict(r.parameters),
            metrics={k: v for k, v in r.metrics.items()},
            gate_passed=bool(r.gate_passed and held),
            gate_score=r.gate_score,
            failed_criteria=self._criteria_of(r),
            error=r.error,
            lookahead=lookahead,
            holdout_failed=held is False,
        )

    @staticmethod
    def _peeks(r: ExperimentRecord) -> bool:
        """Whether the record's positions failed the look-ahead check."""
        return any(f.startswith("look-ahead") for f in r.failed_criteria)

    def _criteria_of(self, r: ExperimentRecord) -> list[GateCriterion]:
        if r.error:
            return []
        gate = evaluate(dict(r.metrics), self.p.criteria, min_trades=self.p.min_trades)
        return [
            GateCriterion(
                metric=c["metric"], value=c["value"], op=c["op"], threshold=c["threshold"]
            )
            for c in gate.failed_criteria
        ]

    def _iteration_of(self, exp_id: str) -> int:
        return int(exp_id.rsplit("_", 1)[-1])

    def _past(self, r: ExperimentRecord) -> PastResult:
        trades = r.metrics.get("num_trades")
        return PastResult(
            variant_id=f"{r.experiment_id}/{r.variant_id}",
            strategy_name=r.strategy_name,
            strategy_code=r.strategy_code,
            parameters=dict(r.parameters),
            gate_score=r.gate_score,
            error=r.error,
            num_trades=None if trades is None else int(trades),
            lookahead=self._peeks(r),
        )

    @staticmethod
    def _proposal(r: ExperimentRecord) -> VariantProposal:
        return VariantProposal(
            strategy_name=r.strategy_name,
            strategy_code=r.strategy_code,
            parameters=dict(r.parameters),
            description=r.strategy_description,
            parent_variant_id=r.parent_variant_id,
        )

    @staticmethod
    def _strategy_dict(r: ExperimentRecord) -> dict[str, Any]:
        return {
            "name": r.strategy_name,
            "code": r.strategy_code,
            "parameters": dict(r.parameters),
            "description": r.strategy_description,
            "experiment_id": r.experiment_id,
            "variant_id": r.variant_id,
        }

    def _best_changes(self, records: list[ExperimentRecord]) -> dict[str, Any]:
        """``best_strategy``/``best_metrics`` if this experiment beat the best in-sample variant
        so far (the result's fallback), else nothing; written with the routing decision."""
        s = self.p.state.state
        scored = [r for r in records if r.gate_score is not None and not self._peeks(r)]
        if not scored:
            return {}
        best = min(scored, key=_best_rank)
        old = s.best_strategy or {}
        if old.get("gate_score") is None:
            better = True
        else:
            was = _rank_of(float(old["gate_score"]), (s.best_metrics or {}).get("sharpe_ratio"))
            better = _best_rank(best) < was
        if better:
            return {
                "best_strategy": {**self._strategy_dict(best), "gate_score": best.gate_score},
                "best_metrics": dict(best.metrics),
            }
        return {}

    # -- result -----------------------------------------------------------------------------
    def result(self) -> WorkflowResult:
        """The design's result plus holdout metrics, deflated Sharpe and variants tried."""
        s = self.p.state.state
        best = s.best_strategy or {}
        holdout, dsr, look, failed = None, None, None, []
        trials = self._trials()
        looks = self.looks()
        if best:
            key = f"{best.get('experiment_id')}_{best.get('variant_id')}"
            record = self.p.tracker.record_for_task(key)
            failed = list(record.failed_criteria) if record is not None else []
            for r in self.p.tracker.records(sample="holdout"):
                if r.task_id == f"{key}_holdout":
                    holdout = dict(r.metrics)
            variant = f"{best.get('experiment_id')}/{best.get('variant_id')}"
            look = next((h for h in looks if h.variant == variant), None)
            result = self.p.queue.get_result(key)
            if result is not None:  # deflated by every variant tried in the whole workflow
                dsr = self._dsr(result, trials)
        out: WorkflowResult = {
            "status": "SUCCESS" if s.status == "COMPLETED" else "FAILED",
            "workflow_id": s.workflow_id,
            "best_strategy": best.get("code"),
            "best_strategy_name": best.get("name"),
            "best_parameters": best.get("parameters"),
            "best_metrics": s.best_metrics,
            "holdout_metrics": holdout,
            # the best variant's holdout look: PSR, the threshold it faced and K (None if the
            # best in-sample variant never reached the holdout)
            "holdout_significance": None if look is None else look.to_dict(),
            "in_sample_deflated_sharpe": dsr,
            "in_sample_trials": len(trials),
            "alpha": self.p.alpha,
            "max_holdout_looks": self.p.max_holdout_looks,
            "min_trades": self.p.min_trades,
            "costs": {
                "commission": self.p.commission,
                "slippage_bps": self.p.slippage_bps,
                "borrow_bps": self.p.borrow_bps,
                "rebalance": self.p.rebalance,
            },
            # why the best in-sample variant failed in-sample (empty when it passed)
            "best_failed_criteria": failed,
            # variants that passed the gate but not the evidence floor: in-sample (they never
            # reached the holdout) and holdout looks
            "floor_blocked": {
                "in_sample": sum(1 for r in self._history() if self._floor_only(r)),
                "holdout": sum(1 for h in looks if h.verdict == "failed the evidence floor"),
            },
            "holdout_looks_detail": [h.to_dict() for h in looks],
            "total_iterations": s.total_iterations,
            "variants_tried": s.variants_tried,
            "holdout_looks": s.holdout_looks,
            "lessons_learned": list(s.lessons_learned),
            "in_sample": [self.first_date[:10], self.last_in_sample[:10]],
            "holdout": [self.holdout_first[:10], self.last_date[:10]],
        }
        if self.llm is not None:
            out["llm"] = self.llm.summary()
        if s.status != "COMPLETED":
            out["reason"] = s.failure_reason
        # in words, when significance or the evidence floor is what failed on the holdout: the
        # look that came closest
        unproven = [h for h in looks if h.verdict == "not significant"]
        short = [h for h in looks if h.verdict == "failed the evidence floor"]
        if (unproven or short) and s.status != "COMPLETED":
            closest = (
                max(unproven, key=lambda h: h.psr or 0.0)
                if unproven
                else max(short, key=lambda h: h.trades or 0)
            )
            out["holdout_note"] = f"{closest.strategy_name} {closest.explain()}"
            out["holdout_note_look"] = closest.look
        return out

    @staticmethod
    def _floor_only(r: ExperimentRecord) -> bool:
        """Whether the evidence floor is all that failed for ``r`` (it passed the gate)."""
        return (
            not r.error
            and bool(r.failed_criteria)
            and all(is_evidence_failure(f) for f in r.failed_criteria)
        )

    # -- files ------------------------------------------------------------------------------
    def _write_json(self, name: str, obj: Any) -> None:
        atomic_write_text(self.dir / name, json.dumps(obj, indent=1, default=str))

    def _read_json(self, name: str) -> Any:
        return json.loads((self.dir / name).read_text())


def home_path(home: str | Path | None) -> Path:
    """The run's home folder (see `alphaloop.execution.resolve_home`)."""
    from alphaloop.execution import resolve_home

    return resolve_home(None if home is None else str(home))
