"""What ``alphaloop run`` and ``resume`` print: the live panel (or, when stderr is not a
terminal, one plain progress line per phase and per routing decision) and the summary at the
end. Every code (phase, action, rule, tier) is said in the words of `workflow.explain`; the
``--json`` result keeps the codes."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from alphaloop.errors import clean_message
from alphaloop.workflow.explain import (
    DEFLATED_SHARPE_HOLDOUT,
    DEFLATED_SHARPE_IN_SAMPLE,
    GATE_SCORE_DEFINITION,
    failure_sentence,
    plain_decision,
    plain_lesson,
    plain_phase,
    plain_reason,
)

_LOOP_PHASES = ("RESEARCH_SWARM", "STRATEGY_DEVELOPMENT", "BACKTESTING", "QUALITY_GATE")
_QUEUE_WORDS = {"queued": "waiting", "in_progress": "running", "completed": "done",
                "failed": "failed"}


def safe(text: object) -> str:
    """Text that came from a file (names, errors, lessons) with its terminal control
    characters escaped, so printing it cannot drive the terminal."""
    return clean_message(text, limit=None)


class Display:
    """The run's progress, fed by the workflow's events (``on_event``).

    As a rich renderable (``__rich__``) it is drawn anew at each refresh of a ``Live``, so the
    elapsed time moves even while no event comes. With ``lines`` it prints one plain line per
    phase and per routing decision to ``console`` instead (stderr is not a terminal)."""

    def __init__(self, console: Console, workers: int, *, lines: bool = False) -> None:
        self.console, self.workers, self.lines = console, workers, lines
        self.phase = "INITIALIZATION"
        self.stats: dict[str, int] = {}
        self.decisions: list[str] = []
        self.started = time.monotonic()
        self.state: Any = None
        self.final: str | None = None  # the status line of the last frame

    def __call__(self, kind: str, info: dict[str, Any]) -> None:
        if kind == "phase":
            self.phase = info["phase"]
            self._line(plain_phase(self.phase) + self._where())
        elif kind == "result":
            self.stats = info["stats"]
        elif kind == "decision":
            words = safe(plain_decision(info))
            self.decisions = [*self.decisions[-3:], words]
            self._line(f"decided: {words}")
        elif kind == "state":
            self.state = info["state"]

    def finish(self, state: Any, status: str) -> None:
        """The last frame: the workflow's final state and status."""
        if state is not None:
            self.state, self.phase = state, state.current_phase
        self.final = status
        self._line(status)

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self.started:.1f} s"

    def _where(self) -> str:
        s = self.state
        if s is None or self.phase not in _LOOP_PHASES:
            return ""
        return f" (research {s.research_iteration}, strategy {s.strategy_iteration})"

    def _line(self, text: str) -> None:
        if self.lines:
            self.console.print(f"[{self._elapsed()}] {text}", markup=False, highlight=False,
                               soft_wrap=True)

    def __rich__(self) -> Panel:
        s, st = self.state, self.stats
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        table.add_row("now", plain_phase(self.phase) + self._where())
        scored = False
        if s is not None:
            table.add_row(
                "iterations",
                f"research {s.research_iteration} of {s.max_research_iterations}, strategy "
                f"{s.strategy_iteration} of {s.max_strategy_iterations}, total "
                f"{s.total_iterations} of {s.max_total_iterations}",
            )
            table.add_row("variants tried", str(s.variants_tried))
            best = (s.best_strategy or {}).get("gate_score")
            if best is not None:
                scored = True
                name = escape(safe((s.best_strategy or {}).get("name")))
                table.add_row("best gate score", f"{best:.3f} ({name})")
        if st:
            busy = min(self.workers, st.get("in_progress", 0))
            table.add_row("queue", ", ".join(f"{v} {_QUEUE_WORDS.get(k, k)}"
                                             for k, v in st.items()))
            table.add_row("workers", f"{busy} of {self.workers} busy")
        table.add_row("elapsed", self._elapsed())
        rows: list[Any] = [table, *(f"[dim]{escape(d)}[/dim]" for d in self.decisions)]
        if scored:
            rows.append(f"[dim]{escape(GATE_SCORE_DEFINITION)}[/dim]")
        title = "alphaloop run" + (f": {escape(self.final)}" if self.final else "")
        return Panel(Group(*rows), title=title)


def final_status(result: dict[str, Any]) -> str:
    """The status line of a finished workflow, in words."""
    if result["status"] == "SUCCESS":
        return f"SUCCESS: {safe(result.get('best_strategy_name'))} passed the gate and the holdout"
    return f"FAILED: no strategy passed; {safe(plain_reason(result.get('reason') or ''))}"


def _criteria_of(result: dict[str, Any], home: str) -> dict[str, float] | None:
    """The workflow's gate, from its state (None if it cannot be read)."""
    from alphaloop.workflow.state import StateManager

    with contextlib.suppress(Exception):
        return dict(StateManager.load(result["workflow_id"], home).state.quality_criteria)
    return None


def _gate_column(criteria: dict[str, float]) -> dict[str, str]:
    from alphaloop.workflow.gate import QualityCriteria

    out: dict[str, str] = {}
    for c in QualityCriteria.coerce(criteria):
        out[c.metric] = f"{out[c.metric]}, " if c.metric in out else ""
        out[c.metric] += f"{c.op} {c.threshold:g}"
    return out


def summary(console: Console, result: dict[str, Any], home: str,
            criteria: dict[str, float] | None = None) -> None:
    """The end of a run, for a reader new to alphaloop: the verdict and why, the best
    strategy's numbers, the two deflated Sharpe figures labelled, the search, the lessons."""
    plain = {"markup": False, "highlight": False, "soft_wrap": True}  # the terminal wraps
    ok = result["status"] == "SUCCESS"
    criteria = criteria if criteria is not None else _criteria_of(result, home)
    wid = safe(result["workflow_id"])
    head, _, rest = final_status(result).partition(": ")
    console.print(f"[bold {'green' if ok else 'red'}]{head}[/] {escape(wid)}: {escape(rest)}",
                  soft_wrap=True)
    out = result.get("holdout_metrics")
    if result.get("best_strategy_name"):
        params = ", ".join(f"{k}={v}" for k, v in (result["best_parameters"] or {}).items())
        console.print(f"best strategy: {safe(result['best_strategy_name'])}({safe(params)})",
                      **plain)
        if not ok and result.get("best_failed_criteria"):
            why = failure_sentence(result["best_failed_criteria"], criteria=criteria)
            console.print(f"why it failed in-sample: {safe(why)}", **plain)
        gate = _gate_column(criteria) if criteria else {}
        columns = ["metric", *(["gate"] if gate else []),
                   "in-sample " + " .. ".join(result["in_sample"])]
        if out:  # no empty column when the best never reached the holdout
            columns.append("holdout " + " .. ".join(result["holdout"]))
        table = Table(*columns)
        ins = result["best_metrics"] or {}
        for key in ins:
            if key == "deflated_sharpe":  # in words below: in-sample DSR, holdout PSR
                continue
            row = [key, *([gate.get(key, "")] if gate else []), _fmt(ins.get(key))]
            table.add_row(*row, *([_fmt(out.get(key))] if out else []))
        console.print(table)
    if not out:
        span = " .. ".join(result["holdout"])
        if not result.get("holdout_looks"):
            console.print(f"holdout {span}: not looked at; a variant is tested on it only "
                          "once it passes the gate in-sample", **plain)
        elif result.get("best_strategy_name"):
            console.print(f"holdout {span}: the best in-sample variant never reached it "
                          f"({result['holdout_looks']} other look(s) did)", **plain)
    look = result.get("holdout_significance")
    if look:
        console.print(f"holdout: {safe(_look_line(look))}", **plain)
    # the note is about the look that came closest: said unless it is the best's, said above
    if result.get("holdout_note") and (not look or look["look"] != result.get("holdout_note_look")):
        console.print(f"holdout: {safe(result['holdout_note'])}", **plain)
    floor = _floor_line(result)
    if floor and not ok:
        console.print(floor, **plain)
    dsr = result.get("in_sample_deflated_sharpe")
    console.print(
        f"{DEFLATED_SHARPE_IN_SAMPLE.label}: {'n/a' if dsr is None else f'{dsr:.3f}'} over "
        f"{result.get('in_sample_trials', 0)} trials, {DEFLATED_SHARPE_IN_SAMPLE.definition}",
        **plain)
    if look or result.get("holdout_looks_detail"):
        console.print(str(DEFLATED_SHARPE_HOLDOUT), **plain)
    console.print(
        f"searched: {result['variants_tried']} variants, iterations {result['total_iterations']}"
        f"; holdout looks {result['holdout_looks']} of "
        f"{result.get('max_holdout_looks', '?')} (alpha {result.get('alpha', '?')}); evidence "
        f"floor {result.get('min_trades', '?')} trades with a losing one (--min-trades)", **plain)
    costs = result.get("costs")
    if costs:
        model = {"change": "units held", "bar": "constant weight"}.get(
            costs.get("rebalance"), costs.get("rebalance"))
        console.print(
            f"costs: commission {costs.get('commission')} per side, slippage "
            f"{costs.get('slippage_bps')} bps, borrow {costs.get('borrow_bps')} bps a year; "
            f"positions: {model}", **plain)
    if result.get("llm"):
        console.print(llm_line(result["llm"]), **plain)
    console.print("lessons:")
    for lesson in result["lessons_learned"]:
        console.print(f"  - {safe(plain_lesson(lesson))}", **plain)
    console.print(
        f"records: {home}/workflows/{wid}/ and {home}/experiments/  (alphaloop show {wid})",
        **plain)


def llm_line(llm: dict[str, Any]) -> str:
    """The result's ``llm`` object in one line."""
    return (f"language model: {safe(llm.get('provider'))}:{safe(llm.get('model'))}, "
            f"{llm.get('calls', 0)} calls ({llm.get('replayed_calls', 0)} replayed), "
            f"{llm.get('prompt_tokens', 0):,} prompt + {llm.get('completion_tokens', 0):,} "
            f"completion tokens, {llm.get('fallbacks', 0)} fallbacks to the offline agents, "
            f"{llm.get('rejected_strategies', 0)} written strategies rejected")


def _floor_line(result: dict[str, Any]) -> str | None:
    """How many variants passed the gate but not the evidence floor, in words (None if
    none did)."""
    blocked = result.get("floor_blocked") or {}
    n_in, n_out = blocked.get("in_sample", 0), blocked.get("holdout", 0)
    if not n_in and not n_out:
        return None
    n = result.get("min_trades")
    parts = []
    if n_in:
        parts.append(f"{n_in} variant{'s' if n_in != 1 else ''} passed the gate in-sample "
                     "but not the floor, so never reached the holdout")
    if n_out:
        parts.append(f"{n_out} holdout look{'s' if n_out != 1 else ''} passed the gate "
                     "but not the floor")
    return (f"evidence floor (--min-trades {n}: at least {n} trades and a losing one, "
            f"in-sample and on the holdout): " + "; ".join(parts))


def _look_line(look: dict[str, Any]) -> str:
    """A holdout look in words, from its JSON form (`HoldoutLook.to_dict`)."""
    psr = "n/a" if look.get("psr") is None else f"{look['psr']:.3f}"
    head = {"passed": "significant", "not significant": "NOT significant",
            "failed the gate": "failed the gate"}.get(look["verdict"], look["verdict"])
    if not look["threshold"]:
        head = f"{look['verdict']} (significance test off: --alpha 1)"
    if look["verdict"] == "failed the evidence floor":
        trades = look.get("trades")
        head = (f"passed the gate, but failed the evidence floor ({trades} trades; needs "
                f"{look.get('min_trades')} with a losing one, --min-trades)")
    sharpe = "n/a" if look.get("sharpe") is None else f"{look['sharpe']:.2f}"
    span = "" if look.get("years") is None else f" over {look['years']:.1f} years"
    return (f"{head}: look {look['look']}, Sharpe {sharpe}{span}, "
            f"{DEFLATED_SHARPE_HOLDOUT.label} {psr} "
            f"(needs {look['threshold']:.3f} = 1 - alpha/{look['look']})")


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    return str(v) if isinstance(v, int) else f"{v:.4f}"
