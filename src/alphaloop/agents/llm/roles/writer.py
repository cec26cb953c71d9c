"""The strategy writer and the bug fixer: new strategy code from a model, gated.

`StrategyWriter` is a `StrategyDeveloper` (`alphaloop.agents.development`): its ``propose`` is
the offline `OptunaDeveloper`'s (its fallback), over the library's and user's strategies plus
every strategy a model wrote that passed its gates (they *join their family*: TUNE_PARAMETERS
tunes them with Optuna like any other). Its ``write`` asks the model for code, by action:

- INITIAL, TUNE_PARAMETERS, REFINE_RESEARCH: a NEW strategy implementing a hypothesis;
- REFINE_ALGORITHM: the best strategy so far with its algorithm changed, given the failure
  analysis;
- FIX_BUG: each failing written or user strategy (an error or look-ahead) fixed by the
  `BugFixer`, given its code and exact error (NEW when there is none to fix).

Written code passes gates 1 to 3 (`codegate.check_static`) before it becomes a `Candidate`; a
rejection goes back once as a FIX_BUG (`codegate.send_back`). Gates 4 and 5 (smoke backtest,
look-ahead) are the orchestrator's: it runs ``candidate.proposal`` in a worker, sends a
rejection back with `StrategyWriter.resubmit`, and calls `StrategyWriter.join` on a pass.
A written strategy is named ``llm_<name>`` (``_r<k>`` refined, ``_f<k>`` fixed), never
twice: a strategy name always means one code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from alphaloop.agents.development import (
    DevelopmentInput,
    OptunaDeveloper,
    PastResult,
    VariantProposal,
    fit_to_bars,
)
from alphaloop.agents.llm._replay import ExchangeStore
from alphaloop.agents.llm._types import ChatModel, Message
from alphaloop.agents.llm.codegate import (
    GateVerdict,
    check_static,
    normalized_hash,
    send_back,
)
from alphaloop.agents.llm.prompts import (
    Blind,
    BugReport,
    DataBrief,
    FindingBrief,
    Hypothesis,
    RefineBrief,
    WriteBrief,
    fix_messages,
    refine_messages,
    write_messages,
)
from alphaloop.agents.llm.roles._base import FALLBACK_ERRORS, Role, Tally
from alphaloop.agents.llm.roles.research import slug
from alphaloop.agents.protocols import FailureAnalysis, IterationRecord
from alphaloop.backtest.strategy import Strategy, from_source, library_names

__all__ = ["PREFIX", "BugFixer", "Candidate", "StrategyWriter", "WriterContext"]

PREFIX = "llm_"
"""Names of written strategies start with it."""

_LINE = re.compile(r"\bline (\d+)\b")
_RULE = re.compile(r"line \d+: (forbidden|dunder|private|file I/O|string dispatch|format "
                   r"attribute|syntax error|calendar date)")
_SUFFIX = re.compile(r"(_[rf]\d+)+$")
_FIXED = re.compile(r"(_f\d+)+$")


class WriterContext(BaseModel):
    """What the writer knows besides the `DevelopmentInput`: the data (as a prompt may
    describe it), the research round's hypotheses and sanitised findings, and for
    REFINE_ALGORITHM the failure analysis and the record to refine."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: DataBrief
    hypotheses: list[Hypothesis] = Field(default_factory=list)
    findings: list[FindingBrief] = Field(default_factory=list)
    analysis: FailureAnalysis | None = None
    base: IterationRecord | None = Field(
        default=None, description="The record to refine (default: the best in the history).")
    errors: dict[str, str] = Field(
        default_factory=dict, description="variant id -> its exact error, for FIX_BUG (default: "
        "the history's error text; give the look-ahead finding here).")
    new: int = Field(default=1, ge=0, le=4, description="New strategies per phase.")


class Candidate(BaseModel):
    """Written code that passed gates 1 to 3, and the proposal that runs it: ``proposal``
    (its declared defaults, lookbacks fitted to the data's bars) is what gates 4 and 5 test
    and what joins the queue."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    origin: Literal["new", "refine", "fix"]
    code: str
    proposal: VariantProposal
    code_hash: str
    parent: str | None = None
    """The hypothesis (new), the base strategy (refine) or the failing variant (fix)."""
    hypothesis: Hypothesis | None = None
    verdicts: list[GateVerdict] = Field(default_factory=list)
    """Every verdict on the way: rejections, then the pass."""
    key: str | None = None
    """The record key of the reply that gave this code (``ExchangeStore.set_outcome`` it
    with the verdict of gates 4 and 5)."""


class BugFixer(Role):
    """The bug fixer (FIX_BUG): the failing code and its exact error in, fixed code out
    (`fix`, the ``fix`` of `codegate.send_back`). Its offline counterpart cannot write code:
    `fix` gives None and the step's outcome says why; the `OptunaDeveloper`'s FIX_BUG (the
    declared defaults) then takes the variant."""

    role = "fixer"

    def __init__(self, model: ChatModel, *, blind: Blind | None = None,
                 store: ExchangeStore | None = None, seed: int | None = None,
                 retries: int = 2, max_tokens: int = 3000) -> None:
        super().__init__(model, blind=blind, store=store, seed=seed, retries=retries)
        self.max_tokens = max_tokens
        self.last_key: str | None = None
        """The record key of the last fix's reply (for the gates' verdict on it)."""

    def fix(self, report: BugReport) -> str | None:
        """The fixed module for ``report``, or None if the model gave none."""
        tally = Tally()
        self.last_key = None
        try:
            code, self.last_key = self.ask_code(fix_messages(report, self.blind), tally,
                                                max_tokens=self.max_tokens)
        except FALLBACK_ERRORS as exc:
            self._note("offline", tally, error=exc)
            return None
        self._note("model", tally)
        return code


class StrategyWriter(Role):
    """The strategy writer, a `StrategyDeveloper` over ``fallback`` (`OptunaDeveloper`).
    See the module docstring. ``max_fixes``: failing strategies sent to the fixer per FIX_BUG
    phase (the rest get the offline fix). Its `take_outcomes` includes its fixer's steps."""

    role = "writer"

    def __init__(self, model: ChatModel, fallback: OptunaDeveloper, *,
                 fixer: BugFixer | None = None, blind: Blind | None = None,
                 store: ExchangeStore | None = None, seed: int | None = None,
                 retries: int = 2, max_tokens: int = 3000, max_fixes: int = 1) -> None:
        super().__init__(model, blind=blind, store=store, seed=seed, retries=retries)
        self.fixer = fixer or BugFixer(model, blind=self.blind, store=store, seed=seed,
                                       retries=retries, max_tokens=max_tokens)
        self.fixer.outcomes = self.outcomes  # one list: `take_outcomes` gives both, in order
        self.max_tokens = max_tokens
        self.max_fixes = max_fixes
        self._base: dict[str, Strategy] = {n: fallback.strategy(n) for n in fallback.available()}
        self._joined: dict[str, Strategy] = {}
        self._developer: OptunaDeveloper | None = fallback
        self._hashes: dict[str, str] = {}

    # -- the StrategyDeveloper protocol ------------------------------------------------------
    def _dev(self) -> OptunaDeveloper:
        if self._developer is None:
            self._developer = OptunaDeveloper({**self._base, **self._joined})
        return self._developer

    def available(self) -> list[str]:
        """The base strategies and the written ones that joined."""
        return sorted({*self._base, *self._joined})

    def default_proposal(self, name: str) -> VariantProposal:
        return self._dev().default_proposal(name)

    def strategy(self, name: str, bars_per_year: float = 252.0,
                 in_sample_bars: int | None = None) -> Strategy:
        return self._dev().strategy(name, bars_per_year, in_sample_bars)

    def propose(self, inp: DevelopmentInput) -> list[VariantProposal]:
        """The offline developer's proposals for ``inp`` (`OptunaDeveloper.propose`), over the
        base strategies and every written one that joined (learned from ``inp.history``)."""
        self.learn(inp.history)
        return self._dev().propose(inp)

    # -- families ----------------------------------------------------------------------------
    @property
    def joined(self) -> dict[str, str]:
        """Written strategies that joined: name -> code."""
        return {n: s.source for n, s in self._joined.items()}

    def join(self, candidate: Candidate) -> None:
        """``candidate`` passed gates 4 and 5: it joins its family, so Optuna tunes it."""
        self._add(candidate.name, candidate.proposal.strategy_code)

    def learn(self, history: Sequence[PastResult]) -> None:
        """Join every written strategy the history shows ran cleanly (no error, no look-ahead,
        some trades): how a resumed workflow gets its families back."""
        for r in history:
            if (r.strategy_name.startswith(PREFIX) and "+" not in r.strategy_name
                    and r.strategy_name not in self._joined and not r.error
                    and not r.lookahead and r.num_trades != 0):
                self._add(r.strategy_name, r.strategy_code)

    def _add(self, name: str, code: str) -> None:
        self._joined[name] = from_source(code, name)
        self._developer = None

    # -- writing -----------------------------------------------------------------------------
    def write(self, inp: DevelopmentInput, ctx: WriterContext) -> list[Candidate]:
        """Code from the model for ``inp.action`` (see the module docstring), each piece past
        gates 1 to 3; empty when the model gave none that passed (each step's `RoleOutcome`,
        on this writer and its fixer, says why)."""
        self.learn(inp.history)
        seen = self._seen(inp.history)
        taken = self._taken(inp.history)
        if inp.action == "FIX_BUG":
            fixed = self._fixes(inp, ctx, seen, taken)
            if fixed is not None:
                return fixed
        if inp.action == "REFINE_ALGORITHM":
            refined = self._refine(inp, ctx, seen, taken)
            if refined is not None:
                return refined
        return self._new(inp, ctx, seen, taken)

    def resubmit(self, candidate: Candidate, verdict: GateVerdict, inp: DevelopmentInput
                 ) -> Candidate | None:
        """Send ``candidate``'s rejection at gate 4 or 5 (``verdict``, from
        `codegate.task_verdict`) back to the model once, as a FIX_BUG with the reason. The
        fixed code, past gates 1 to 3 again, is a new candidate (named ``<name>_f<k>``) for
        the caller to test at gates 4 and 5; None if there is none."""
        seen = self._seen(inp.history) | {candidate.code_hash}
        name = _fix_name(candidate.name, self._taken(inp.history) | {candidate.name})
        tally = Tally()
        sub = send_back(self.fixer.fix, candidate.proposal.strategy_code, verdict, seen=seen,
                        name=name)
        verdicts = [*candidate.verdicts, verdict]
        if sub.verdict is not None:
            self._mark(self.fixer.last_key, sub.verdict.outcome())
            verdicts.append(sub.verdict)
        rejected = [v.outcome() for v in verdicts if not v.passed]
        if not sub.passed:
            why = (sub.verdict or verdict).outcome()
            self._note("offline", tally, kind="gate", reason=why, rejected=rejected)
            return None
        assert sub.code is not None and sub.verdict is not None
        self._note("model", tally, rejected=rejected)
        return self._candidate("fix", name, sub.code, sub.verdict, inp, verdicts,
                               parent=candidate.name, hypothesis=candidate.hypothesis,
                               key=self.fixer.last_key)

    def _new(self, inp: DevelopmentInput, ctx: WriterContext, seen: set[str],
             taken: set[str]) -> list[Candidate]:
        if ctx.new and not ctx.hypotheses:
            self._note("offline", kind="no_hypothesis", reason="the research round gave no "
                       "hypothesis to implement")
            return []
        out = []
        for h in _pick(ctx.hypotheses, taken, ctx.new):
            stem = slug(h.name)
            if not self.blind.clean(stem.replace("_", " ")):
                stem = "idea"
            name = _fresh(f"{PREFIX}{stem}", taken)
            cited = {e.strip().strip("[]").strip().lower() for e in h.evidence}
            evidence = [f for f in ctx.findings if f.statistic.lower() in cited]
            brief = WriteBrief(data=ctx.data, name=name, hypothesis=h, evidence=evidence)
            c = self._attempt(self, "new", name, lambda b=brief: write_messages(b, self.blind),
                              inp, seen, parent=h.name, hypothesis=h)
            if c is not None:
                out.append(c)
                seen.add(c.code_hash)
        return out

    def _refine(self, inp: DevelopmentInput, ctx: WriterContext, seen: set[str],
                taken: set[str]) -> list[Candidate] | None:
        base = ctx.base
        scored = [r for r in inp.history if r.gate_score is not None and not r.lookahead
                  and not r.error]
        if base is not None:
            name = base.strategy_name
        elif scored:
            name = max(scored, key=lambda r: r.gate_score or 0.0).strategy_name
        else:
            return None
        codes = [r.strategy_code for r in inp.history if r.strategy_name == name]
        if not codes:
            return None
        stem = _SUFFIX.sub("", name.split("+")[0].removeprefix(PREFIX))
        new = _numbered(f"{PREFIX}{slug(stem, 20)}_r", taken)
        brief = RefineBrief(
            data=ctx.data, name=new, base_name=name, base_code=codes[-1],
            metrics=dict(base.metrics) if base is not None else {},
            failed=list(base.failed_criteria) if base is not None else [],
            analysis=ctx.analysis, findings=ctx.findings)
        c = self._attempt(self, "refine", new, lambda: refine_messages(brief, self.blind), inp,
                          seen, parent=name)
        return [c] if c is not None else []

    def _fixes(self, inp: DevelopmentInput, ctx: WriterContext, seen: set[str],
               taken: set[str]) -> list[Candidate] | None:
        library = set(library_names())
        todo: dict[str, PastResult] = {}
        for p in inp.failing:
            if ((p.error or p.lookahead) and p.strategy_name.split("+")[0] not in library
                    and p.strategy_code not in todo):
                todo[p.strategy_code] = p
        if not todo:
            return None
        out = []
        for p in list(todo.values())[: self.max_fixes]:
            detail = ctx.errors.get(p.variant_id) or p.error or (
                f"strategy {p.strategy_name!r} has look-ahead bias: its positions change when "
                "later bars are removed")
            report = _report(p, detail)
            name = _fix_name(p.strategy_name.split("+")[0], taken)
            c = self._attempt(self.fixer, "fix", name,
                              lambda r=report: fix_messages(r, self.blind), inp, seen,
                              parent=p.variant_id)
            if c is not None:
                out.append(c)
                seen.add(c.code_hash)
        return out

    def _attempt(self, agent: Role, origin: Literal["new", "refine", "fix"], name: str,
                 build: Callable[[], list[Message]], inp: DevelopmentInput, seen: set[str], *,
                 parent: str | None = None, hypothesis: Hypothesis | None = None
                 ) -> Candidate | None:
        """One piece of code: asked of ``agent``, through gates 1 to 3, a rejection sent
        back once; the step's outcome noted on ``agent``."""
        tally = Tally()
        try:
            code, key = agent.ask_code(build(), tally, max_tokens=self.max_tokens)
        except FALLBACK_ERRORS as exc:
            agent._note("offline", tally, error=exc)
            return None
        verdict = check_static(code, name, seen)
        self._mark(key, verdict.outcome())
        verdicts = [verdict]
        if not verdict.passed:
            sub = send_back(self.fixer.fix, code, verdict, seen=seen, name=name)
            if sub.verdict is not None:
                self._mark(self.fixer.last_key, sub.verdict.outcome())
                verdicts.append(sub.verdict)
            if not sub.passed:
                agent._note("offline", tally, kind="gate",
                            reason=(sub.verdict or verdict).outcome(),
                            rejected=[v.outcome() for v in verdicts if not v.passed])
                return None
            assert sub.code is not None and sub.verdict is not None
            code, verdict, key = sub.code, sub.verdict, self.fixer.last_key
        agent._note("model", tally, rejected=[v.outcome() for v in verdicts if not v.passed])
        return self._candidate(origin, name, code, verdict, inp, verdicts, parent=parent,
                               hypothesis=hypothesis, key=key)

    def _candidate(self, origin: Literal["new", "refine", "fix"], name: str, code: str,
                   verdict: GateVerdict, inp: DevelopmentInput, verdicts: list[GateVerdict], *,
                   parent: str | None, hypothesis: Hypothesis | None,
                   key: str | None = None) -> Candidate:
        fitted = fit_to_bars(from_source(code, name), inp.bars_per_year, inp.in_sample_bars)
        what = {"new": f"from hypothesis {parent}", "refine": f"refining {parent}",
                "fix": f"fixing {parent}"}[origin]
        proposal = VariantProposal(
            strategy_name=name, strategy_code=fitted.source, parameters=fitted.defaults(),
            description=f"{fitted.summary or name} (written by {self.model.spec}, {what}; "
                        "declared defaults)",
            parent_variant_id=parent if origin == "fix" else None)
        return Candidate(name=name, origin=origin, code=code, proposal=proposal,
                         code_hash=verdict.code_hash or normalized_hash(code), parent=parent,
                         hypothesis=hypothesis, verdicts=verdicts, key=key)

    # -- bookkeeping ---------------------------------------------------------------------------
    def _hash(self, code: str) -> str:
        if code not in self._hashes:
            self._hashes[code] = normalized_hash(code)
        return self._hashes[code]

    def _seen(self, history: Sequence[PastResult]) -> set[str]:
        """Normalised hashes of every strategy tried or known: what gate 3 compares with."""
        codes = [s.source for s in (*self._base.values(), *self._joined.values())]
        codes += [r.strategy_code for r in history]
        return {self._hash(c) for c in dict.fromkeys(codes)}

    def _taken(self, history: Sequence[PastResult]) -> set[str]:
        return ({*self._base, *self._joined, *library_names()}
                | {r.strategy_name.split("+")[0] for r in history})


def _fresh(name: str, taken: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``... : the first not in ``taken`` (which gains it)."""
    out, k = name, 2
    while out in taken:
        out, k = f"{name}_{k}", k + 1
    taken.add(out)
    return out


def _numbered(stem: str, taken: set[str]) -> str:
    """``stem1``, ``stem2``... : the first not in ``taken`` (which gains it)."""
    k = 1
    while f"{stem}{k}" in taken:
        k += 1
    taken.add(f"{stem}{k}")
    return f"{stem}{k}"


def _fix_name(name: str, taken: set[str]) -> str:
    """The name of a fix of ``name``: ``llm_x_f1`` for ``llm_x`` (``llm_x_f2`` for a fix of
    ``llm_x_f1``, ``llm_x_r1_f1`` for one of ``llm_x_r1``; ``llm_mine_f1`` for a user's
    ``mine``)."""
    stem = _FIXED.sub("", name) if name.startswith(PREFIX) else f"{PREFIX}{slug(name, 20)}"
    return _numbered(f"{stem}_f", taken)


def _pick(hypotheses: Sequence[Hypothesis], taken: set[str], n: int) -> list[Hypothesis]:
    """The first ``n`` hypotheses no written strategy is named after yet; when all are,
    the next ones in turn (deterministic: the names taken decide)."""
    def used(h: Hypothesis) -> bool:
        stem = f"{PREFIX}{slug(h.name)}"
        return any(t == stem or t.startswith(f"{stem}_") for t in taken)

    fresh = [h for h in hypotheses if not used(h)]
    if len(fresh) >= n or not hypotheses:
        return fresh[:n]
    written = sum(t.startswith(PREFIX) for t in taken)
    rest = [hypotheses[(written + i) % len(hypotheses)] for i in range(n - len(fresh))]
    return [*fresh, *rest]


def _report(p: PastResult, detail: str) -> BugReport:
    """The exact fault of a failing variant, for the fixer."""
    text = " ".join(detail.split())
    if p.lookahead and not p.error:
        kind = "lookahead"
    elif "generate_positions returned" in text:
        kind = "invalid"
    elif _RULE.search(text):
        kind = "sandbox"
    else:
        kind = "exception"
    m = _LINE.search(text)
    return BugReport(name=p.strategy_name, code=p.strategy_code, kind=kind,  # type: ignore[arg-type]
                     message=text, line=int(m.group(1)) if m else None)
