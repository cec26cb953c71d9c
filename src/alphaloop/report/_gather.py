"""Everything the report shows, read from the home (never written) into one value, `Report`.

The workflow comes from `alphaloop.workflow.document` (the tracker opened read-only); the
best candidate's curves from `_replay` (its code run again, confined). Rows of the variants
table are compact lists (`ROW_FIELDS`), so 10,000 variants fit in the page's size budget.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alphaloop.report._replay import Curves, Replay, replay
from alphaloop.workflow.explain import plain_criterion

__all__ = ["ROW_FIELDS", "Experiment", "GateRow", "Report", "gather"]

ROW_FIELDS = ("experiment", "variant", "strategy", "parameters", "gate_score", "verdict",
              "sharpe_ratio", "total_return", "max_drawdown", "win_rate", "num_trades",
              "holdout", "failed")
"""The columns of a variants row: ``experiment`` indexes `Report.experiments`, ``strategy``
indexes `Report.strategies`; ``verdict`` is 1 passed, 0 failed, -1 the backtest failed."""


@dataclass(frozen=True)
class GateRow:
    """One criterion of the gate (or of the evidence floor) for the best candidate."""

    name: str  # the expression, e.g. "sharpe_ratio>=1"
    metric: str
    op: str
    threshold: float
    in_sample: float | None
    in_sample_passed: bool
    holdout: float | None  # None: not run, or undefined there
    holdout_passed: bool | None  # None: the holdout was not run
    floor: bool = False  # a check of the evidence floor (--min-trades), not of the gate

    def margin(self, value: float | None) -> float | None:
        """How far ``value`` is on the passing side of the threshold (negative: a miss)."""
        if value is None:
            return None
        return value - self.threshold if self.op == ">=" else self.threshold - value


@dataclass(frozen=True)
class Experiment:
    """One experiment (a strategy iteration) and how it ended."""

    experiment_id: str
    seq: int
    research_iteration: int
    strategy_iteration: int
    description: str
    action: str | None  # the routing action (TUNE_PARAMETERS, ...); None: not decided yet
    reason: str  # the routing engine's reason (rule codes kept; shown in words)
    details: Mapping[str, Any]  # the decision's details (the analyst's rule among them)
    n_variants: int
    best_score: float | None  # its best in-sample gate score
    best_label: str  # its best variant, "v03 donchian_breakout(period=20, ...)"
    best_failed: tuple[str, ...]  # what that variant failed in-sample


@dataclass(frozen=True)
class Report:
    """The whole report's content; `_page.render` turns it into HTML."""

    workflow_id: str
    ticker: str
    timeframe: str
    status: str  # SUCCESS, FAILED, RUNNING, PAUSED
    phase: str
    reason: str | None
    directive: str
    created: str
    updated: str
    settings: Mapping[str, Any]
    in_sample_range: tuple[str, str] | None
    holdout_range: tuple[str, str] | None
    best: Mapping[str, Any] | None  # name, parameters, code, gate_score, description, ids
    in_sample_metrics: Mapping[str, Any] | None
    holdout_metrics: Mapping[str, Any] | None
    look: Mapping[str, Any] | None  # the best candidate's holdout look (`HoldoutLook.to_dict`)
    looks: Sequence[Mapping[str, Any]]  # every holdout look of the workflow
    gate_rows: Sequence[GateRow]
    failed: Sequence[str]  # what the best candidate failed in-sample
    deflated_in_sample: float | None  # over every trial of the workflow
    deflated_at_gate: float | None  # as recorded when the candidate was gated
    trials: int
    variants_tried: int
    holdout_looks: int
    data_fingerprint: str | None
    holdout_fingerprint: str | None
    commands: Mapping[str, str | None]
    experiments: Sequence[Experiment]
    strategies: Sequence[str]
    rows: Sequence[Sequence[Any]]
    lessons: Sequence[str]
    llm: Mapping[str, Any] | None
    curves: Curves | None = None
    curves_note: str | None = None


def _status(state: Any, home: str | None) -> str:
    """SUCCESS, FAILED, RUNNING, PAUSED, or INTERRUPTED: RUNNING, but its process is gone."""
    from alphaloop.execution import resolve_home
    from alphaloop.workflow.liveness import effective_status
    from alphaloop.workflow.state import workflow_dir

    if state.status == "COMPLETED":
        return "SUCCESS"
    folder = workflow_dir(resolve_home(home, create=False), state.workflow_id)
    return effective_status(state.status, folder)


def _gate_rows(settings: Mapping[str, Any], ins: Mapping[str, Any] | None,
               out: Mapping[str, Any] | None) -> list[GateRow]:
    from alphaloop.workflow.gate import evaluate

    if ins is None:
        return []
    criteria = list(settings.get("criteria") or [])
    min_trades = int(settings.get("min_trades") or 0)
    g_in = evaluate(ins, criteria or None, min_trades=min_trades)
    g_out = None if out is None else evaluate(out, criteria or None, min_trades=min_trades)
    rows = []
    pairs_in = [*((o, False) for o in g_in.outcomes), *((o, True) for o in g_in.floor)]
    pairs_out = [] if g_out is None else [*g_out.outcomes, *g_out.floor]
    for i, (o, floor) in enumerate(pairs_in):
        h = pairs_out[i] if pairs_out else None
        c = o.criterion
        rows.append(GateRow(
            name=c.expression, metric=c.metric, op=c.op, threshold=c.threshold,
            in_sample=o.value, in_sample_passed=o.passed,
            holdout=None if h is None else h.value,
            holdout_passed=None if h is None else h.passed, floor=floor))
    return rows


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _round(value: Any) -> float | int | None:
    v = _number(value)
    if v is None:
        return None
    if isinstance(value, int):
        return int(value)
    return float(f"{v:.4g}")


def _params_text(params: Mapping[str, Any]) -> str:
    """``fast=20, k=0.2085`` (floats to 4 significant digits: for reading, not re-running)."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items())


def _tree(w: Mapping[str, Any], looks: Mapping[str, Any]
          ) -> tuple[list[Experiment], list[str], list[list[Any]]]:
    """Experiments, strategy names and the variants rows of the tracker's tree."""
    experiments: list[Experiment] = []
    strategies: dict[str, int] = {}
    rows: list[list[Any]] = []
    for node in w["tree"]:
        e = node.experiment
        best = None
        for v in node.variants:
            ins = next((r for r in v.records if r.sample == "in_sample"), None)
            out = next((r for r in v.records if r.sample == "holdout"), None)
            if ins is None:
                continue
            look = looks.get(f"{e.experiment_id}/{v.variant_id}")
            held = ""
            if out is not None and look is not None:
                held = look.verdict
            elif out is not None:
                held = "run"
            index = strategies.setdefault(ins.strategy_name, len(strategies))
            verdict = -1 if ins.error else 1 if ins.gate_passed else 0
            failed = [ins.error] if ins.error else [plain_criterion(f)
                                                     for f in ins.failed_criteria]
            m = ins.metrics
            rows.append([len(experiments), v.variant_id, index, _params_text(ins.parameters),
                         _round(ins.gate_score), verdict, _round(m.get("sharpe_ratio")),
                         _round(m.get("total_return")), _round(m.get("max_drawdown")),
                         _round(m.get("win_rate")), _round(m.get("num_trades")), held,
                         "; ".join(str(f) for f in failed)])
            if ins.gate_score is not None and (best is None or ins.gate_score > best.gate_score):
                best = ins
        details = e.action_details or {}
        experiments.append(Experiment(
            experiment_id=e.experiment_id, seq=e.seq, research_iteration=e.research_iteration,
            strategy_iteration=e.strategy_iteration, description=e.description,
            action=e.action, reason=str(details.get("reason") or ""), details=dict(details),
            n_variants=len(node.variants),
            best_score=None if best is None else best.gate_score,
            best_label="" if best is None else
            f"{best.variant_id} {best.strategy_name}({_params_text(best.parameters)})",
            best_failed=() if best is None else tuple(best.failed_criteria)))
    return experiments, list(strategies), rows


def _trials(w: Mapping[str, Any]) -> list[float]:
    """Annualised in-sample Sharpe of every variant the workflow measured (the orchestrator's
    trials for the deflated Sharpe: an undefined one counts as 0, a failed backtest not)."""
    out = []
    for node in w["tree"]:
        for v in node.variants:
            for r in v.records:
                if r.sample == "in_sample" and r.metrics:
                    out.append(_number(r.metrics.get("sharpe_ratio")) or 0.0)
    return out


def _deflated(moments: Sequence[float] | None, trials: list[float], bars_per_year: float
              ) -> float | None:
    """The deflated Sharpe of the best candidate's in-sample returns over ``trials``, as the
    workflow's result gives it (`Orchestrator.result`)."""
    from alphaloop.workflow._dsr import deflated_sharpe_from_moments

    if not moments:
        return None
    sharpe, t, skew, kurt = moments
    per_bar = [x / math.sqrt(bars_per_year) for x in trials] or [sharpe]
    mean = sum(per_bar) / len(per_bar)
    var = (sum((x - mean) ** 2 for x in per_bar) / (len(per_bar) - 1)
           if len(per_bar) > 1 else 0.0)
    try:
        return deflated_sharpe_from_moments(sharpe, int(t), skew, kurt, len(per_bar), var)
    except ValueError:
        return None


def _llm(state: Any) -> dict[str, Any] | None:
    kept = state.llm
    if not kept:
        return None
    provider, _, model = str(kept.get("spec", "")).partition(":")
    budget = kept.get("budget") or {}
    return {"provider": provider, "model": model, "budget": dict(budget),
            "fallbacks": kept.get("fallbacks", 0),
            "rejected_strategies": kept.get("rejected_strategies", 0)}


def gather(workflow_id: str, home: str | None, host: Any) -> Report:
    """The report of ``workflow_id`` in ``home``; ``host`` (`_replay.start_host`) runs the
    best candidate again. `ConfigError`/`HomeError` for an unknown workflow or home."""
    from alphaloop.workflow.document import bar_date, read_workflow, reproduce_commands, winner

    w = read_workflow(workflow_id, home)
    s, settings = w["state"], w["settings"]
    win = winner(w)
    looks = {h.variant: h for h in w["looks"]}
    experiments, strategies, rows = _tree(w, looks)
    ins = out = look = None
    best = None
    if win is not None:
        best, ins, out, look = win["best"], win["in_sample"], win["holdout"], win["look"]
    adjust = bool(settings.get("adjust", True))
    result: Replay = Replay(None, None if ins is not None else "no candidate was measured")
    if ins is not None and not ins.error:
        result = replay(host, ins, out, adjust, s.end)
    curves = result.curves
    trials = _trials(w)
    deflated = None
    if ins is not None and curves is not None:
        deflated = _deflated(curves.in_sample_moments, trials, curves.bars_per_year)
    name = str((best or {}).get("name") or "strategy").replace("+", "_")
    commands: dict[str, str | None] = {}
    if ins is not None:
        commands = dict(reproduce_commands(f"{name}.py", ins, out, adjust))
    any_range = ins or next((r for n in w["tree"] for v in n.variants for r in v.records
                             if r.sample == "in_sample"), None)
    return Report(
        workflow_id=s.workflow_id, ticker=s.ticker, timeframe=s.timeframe, status=_status(s, home),
        phase=s.current_phase, reason=s.failure_reason, directive=s.research_directive,
        created=s.created_at.isoformat(timespec="seconds"),
        updated=s.updated_at.isoformat(timespec="seconds"), settings=dict(settings),
        in_sample_range=None if any_range is None else (
            str(bar_date(any_range.start)), str(bar_date(any_range.end))),
        holdout_range=None if out is None else (str(bar_date(out.eval_start)),
                                                str(bar_date(out.end))),
        best=best, in_sample_metrics=None if ins is None else dict(ins.metrics),
        holdout_metrics=None if out is None else dict(out.metrics),
        look=None if look is None else look.to_dict(),
        looks=[h.to_dict() for h in w["looks"]],
        gate_rows=_gate_rows(settings, None if ins is None else ins.metrics,
                             None if out is None else out.metrics),
        failed=() if ins is None else tuple(ins.failed_criteria),
        deflated_in_sample=deflated,
        deflated_at_gate=None if ins is None else _number(ins.metrics.get("deflated_sharpe")),
        trials=len(trials), variants_tried=s.variants_tried, holdout_looks=s.holdout_looks,
        data_fingerprint=None if ins is None else ins.data_fingerprint,
        holdout_fingerprint=None if out is None else out.data_fingerprint,
        commands=commands, experiments=experiments, strategies=strategies, rows=rows,
        lessons=list(s.lessons_learned), llm=_llm(s), curves=curves,
        curves_note=result.note)
