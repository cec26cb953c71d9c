"""The gates generated strategy code passes before it may be queued, in this order:

1. ``sandbox``: the sandbox's static check (`alphaloop.backtest.sandbox.check_source`: a named
   rule and its line), plus one rule of its own for written code: no calendar date (a date
   string, or a year compared with ``.year``): a model that writes "short in 2008" is
   recalling the future, not finding an edge.
2. ``size``: at most `MAX_LINES` lines and `MAX_PARAMETERS` parameters, ``PARAMETERS`` read
   statically (`alphaloop.backtest._source.inspect_source`: a literal, parsed, checked against
   the signature).
3. ``duplicate``: not a near-duplicate of a strategy already tried: `normalized_hash` ignores
   comments, docstrings, layout, names, parameter ranges and defaults.
4. ``smoke``: a backtest on the in-sample bars, in a worker.
5. ``lookahead``: the look-ahead check of that backtest.

Gates 1 to 3 are here (`check_static`); nothing is executed, the code is only parsed. Gates 4
and 5 need the execution layer, which agents do not import: the orchestrator runs them and
turns the task's outcome into the same `GateVerdict` with `task_verdict`. A rejection from any
gate goes back to the model once as a FIX_BUG with its reason (`send_back`), and is recorded
either way (`GateVerdict.outcome`).
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from alphaloop.agents.llm.prompts import (
    DATE_PATTERNS,
    FIX_KINDS,
    MAX_LINES,
    MAX_PARAMETERS,
    BugReport,
)
from alphaloop.backtest import sandbox
from alphaloop.backtest._source import inspect_source
from alphaloop.errors import StrategyError

__all__ = [
    "GATES",
    "MAX_LINES",
    "MAX_PARAMETERS",
    "Gate",
    "GateVerdict",
    "Resubmission",
    "bug_report",
    "check_static",
    "normalized_hash",
    "send_back",
    "task_verdict",
]

Gate = Literal["sandbox", "size", "duplicate", "smoke", "lookahead"]
GATES: tuple[Gate, ...] = ("sandbox", "size", "duplicate", "smoke", "lookahead")
"""The gates, in the order they are applied (gate n is ``GATES[n - 1]``)."""

RAN: frozenset[str] = frozenset({"smoke", "lookahead"})
"""Gates at which the code has run (in a worker)."""

_LINE = re.compile(r"\bline (\d+)\b")


class GateVerdict(BaseModel):
    """What the gates said of one piece of code: passed, or the gate that rejected it, why
    (one line) and where. The same for all five gates."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    passed: bool
    gate: Gate | None = None
    """The gate that rejected the code (None when it passed)."""
    reason: str = ""
    line: int | None = None
    kind: str = ""
    """The fault for the bug fixer (`prompts.BugReport.kind`): sandbox, interface, size,
    duplicate, exception, invalid, lookahead, no_trades."""
    code_hash: str | None = None
    """`normalized_hash` of the code, once gate 3 computed it."""
    lines: int | None = None
    parameters: int | None = None

    @property
    def number(self) -> int | None:
        """The rejecting gate's number, 1 to 5."""
        return None if self.gate is None else GATES.index(self.gate) + 1

    def outcome(self) -> str:
        """The verdict in one line, for the exchange record and the lessons:
        ``gates passed`` or ``rejected at gate 2 (size): ...``."""
        if self.passed:
            return "gates passed"
        return f"rejected at gate {self.number} ({self.gate}): {self.reason}"


def _rejected(name: str, gate: Gate, reason: str, kind: str, **extra: Any) -> GateVerdict:
    reason = " ".join(reason.split())
    line = extra.pop("line", None)
    if line is None and (m := _LINE.search(reason)):
        line = int(m.group(1))
    return GateVerdict(name=name, passed=False, gate=gate, reason=reason, kind=kind, line=line,
                       **extra)


# --------------------------------------------------------------------------- gate 1
def _calendar(tree: ast.AST) -> tuple[int, str] | None:
    """The first calendar date the code holds: a date string, or a year (1900..2100) compared
    with something read through ``.year``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for pattern in DATE_PATTERNS:
                m = pattern.search(node.value)
                if m:
                    return node.lineno, f"the string {m.group(0)!r} is a calendar date"
        if isinstance(node, ast.Compare):
            parts = [node.left, *node.comparators]
            years = [n for p in parts for n in ast.walk(p) if isinstance(n, ast.Constant)
                     and type(n.value) is int and 1900 <= n.value <= 2100]
            reads = any(isinstance(n, ast.Attribute) and n.attr == "year"
                        for p in parts for n in ast.walk(p))
            if years and reads:
                return node.lineno, f"it compares .year with {years[0].value}"
    return None


def _sandbox(code: str, name: str) -> GateVerdict | None:
    try:
        sandbox.check_source(code, name)
    except StrategyError as exc:
        return _rejected(name, "sandbox", str(exc), "sandbox")
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:  # checks off
        return _rejected(name, "sandbox", f"strategy {name!r}: syntax error: {exc}", "sandbox")
    found = _calendar(tree)
    if found is not None:
        line, what = found
        return _rejected(name, "sandbox", f"strategy {name!r} line {line}: calendar date: "
                         f"{what}; use bar offsets or the index's weekday/month/hour, never "
                         "a date or a year", "sandbox", line=line)
    return None


# --------------------------------------------------------------------------- gate 2
def _size(code: str, name: str, max_lines: int, max_parameters: int
          ) -> tuple[GateVerdict | None, int, int | None]:
    lines = len(code.rstrip().splitlines())
    if lines > max_lines:
        return (_rejected(name, "size", f"strategy {name!r} has {lines} lines; the limit is "
                          f"{max_lines}: make it shorter", "size", lines=lines), lines, None)
    try:
        info = inspect_source(code, name)
    except StrategyError as exc:
        return _rejected(name, "size", str(exc), "interface", lines=lines), lines, None
    n = len(info.parameters)
    if n > max_parameters:
        return (_rejected(name, "size", f"strategy {name!r} declares {n} parameters "
                          f"({', '.join(info.parameters)}); the limit is {max_parameters}: "
                          "fix the least important ones", "size", lines=lines, parameters=n),
                lines, n)
    return None, lines, n


# --------------------------------------------------------------------------- gate 3
def _is_docstring(stmt: ast.stmt) -> bool:
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str))


def _parameter_names(tree: ast.Module) -> list[str]:
    for stmt in tree.body:
        if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name) and stmt.targets[0].id == "PARAMETERS"
                and isinstance(stmt.value, ast.Dict)):
            return [k.value for k in stmt.value.keys
                    if isinstance(k, ast.Constant) and isinstance(k.value, str)]
    return []


class _Canonical(ast.NodeTransformer):
    """Renames every name the module binds (variables, arguments, functions, import aliases,
    and parameter names in strings) to ``v0, v1, ...`` in order of first appearance; names it
    does not bind (builtins), attributes and keywords of calls stay."""

    KEEP = frozenset({"generate_positions", "PARAMETERS"})

    def __init__(self, bound: set[str], params: set[str]) -> None:
        self.bound, self.params = bound - self.KEEP, params
        self.names: dict[str, str] = {}

    def _canon(self, name: str) -> str:
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self.bound:
            node.id = self._canon(node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.annotation = None
        if node.arg in self.bound:
            node.arg = self._canon(node.arg)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        if node.name in self.bound:
            node.name = self._canon(node.name)
        node.returns = None
        node.body = [s for s in node.body if not _is_docstring(s)] or [ast.Pass()]
        self.generic_visit(node)
        return node

    def visit_alias(self, node: ast.alias) -> ast.AST:
        local = node.asname or node.name.split(".")[0]
        if local in self.bound and (node.asname or "." not in node.name):
            node.asname = self._canon(local)
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if isinstance(node.value, str) and node.value in self.params:
            node.value = self._canon(node.value)
        elif isinstance(node.value, str):  # a constraint, "fast < slow": the names within
            node.value = _WORD.sub(
                lambda m: self._canon(m[0]) if m[0] in self.params else m[0], node.value)
        return node


_WORD = re.compile(r"[A-Za-z_]\w*")


def _bound_names(tree: ast.AST) -> set[str]:
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.alias):
            bound.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound


@lru_cache(maxsize=1024)
def normalized_hash(code: str) -> str:
    """A hash of what ``code`` does (16 hex digits): the same for two strategies that differ
    only in comments, docstrings, layout, the names of variables, functions, parameters and
    import aliases, the order of top-level imports, or their parameters' ranges and defaults.
    Code that does not parse hashes as its text."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return hashlib.sha256(code.encode()).hexdigest()[:16]
    params = _parameter_names(tree)
    body = [s for s in tree.body if not _is_docstring(s)
            and not (isinstance(s, ast.ImportFrom) and s.module == "__future__")]
    imports = sorted((s for s in body if isinstance(s, ast.Import | ast.ImportFrom)),
                     key=lambda s: ast.dump(s))
    rest: list[ast.stmt] = []
    for stmt in body:  # a fresh tree: changed in place
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            continue
        targets = stmt.targets if isinstance(stmt, ast.Assign) else []
        if any(isinstance(t, ast.Name) and t.id == "PARAMETERS" for t in targets):
            assert isinstance(stmt, ast.Assign)
            stmt.value = ast.List([ast.Constant(p) for p in params], ast.Load())
        if isinstance(stmt, ast.FunctionDef) and stmt.name == "generate_positions":
            stmt.args.defaults = []
            stmt.args.kw_defaults = [None] * len(stmt.args.kwonlyargs)
        rest.append(stmt)
    module = ast.Module(body=[*imports, *rest], type_ignores=[])
    canonical = _Canonical(_bound_names(module), set(params))
    module = canonical.visit(module)
    text = ast.dump(module, annotate_fields=False, include_attributes=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def hashes_of(codes: Iterable[str]) -> set[str]:
    """`normalized_hash` of each distinct code (the set `check_static` compares with)."""
    return {normalized_hash(c) for c in dict.fromkeys(codes)}


# --------------------------------------------------------------------------- gates 1-3
def check_static(code: str, name: str, seen: Collection[str] = frozenset(), *,
                 max_lines: int = MAX_LINES, max_parameters: int = MAX_PARAMETERS
                 ) -> GateVerdict:
    """Gates 1 to 3 on ``code`` (named ``name``), in order; the first rejection is the
    verdict. ``seen`` holds the `normalized_hash` of every strategy already tried (see
    `hashes_of`). Parses, never executes."""
    rejected = _sandbox(code, name)
    if rejected is not None:
        return rejected
    rejected, lines, n = _size(code, name, max_lines, max_parameters)
    if rejected is not None:
        return rejected
    digest = normalized_hash(code)
    if digest in seen:
        return _rejected(name, "duplicate", f"strategy {name!r} is a near-duplicate of a "
                         "strategy already tried (same code but for names, comments and "
                         "parameter ranges): change the algorithm", "duplicate",
                         code_hash=digest, lines=lines, parameters=n)
    return GateVerdict(name=name, passed=True, code_hash=digest, lines=lines, parameters=n)


# --------------------------------------------------------------------------- gates 4-5
def task_verdict(name: str, result: Mapping[str, Any] | None, error: str | None = None, *,
                 code_hash: str | None = None) -> GateVerdict:
    """Gates 4 and 5 from the smoke backtest's outcome, as the execution layer reports it:
    ``result`` (the task's result dict, with ``lookahead``: the cut dates whose positions
    differ) or ``error`` (the task's error text). Rejected at ``smoke`` when the task failed,
    at ``lookahead`` when a cut differed; passed otherwise. The reason may hold dates: a
    prompt builder turns them into bar offsets (`prompts.Blind.scrub`)."""
    if result is None:
        text = " ".join((error or "the smoke backtest failed").split())
        kind = "invalid" if "generate_positions returned" in text else "exception"
        return _rejected(name, "smoke", f"the smoke backtest on the in-sample bars failed: "
                         f"{text}", kind, code_hash=code_hash)
    cuts = list(result.get("lookahead") or [])
    if cuts:
        shown = ", ".join(str(c)[:10] for c in cuts[:3])
        return _rejected(name, "lookahead", f"strategy {name!r} has look-ahead bias: its "
                         f"positions change when the bars after {shown} are removed "
                         f"({len(cuts)} cut(s) differ)", "lookahead", code_hash=code_hash)
    trades = (result.get("metrics") or {}).get("num_trades")
    if trades is not None and trades == 0:
        return _rejected(name, "smoke", f"strategy {name!r} made no trade on the in-sample "
                         "bars with its defaults", "no_trades", code_hash=code_hash)
    return GateVerdict(name=name, passed=True, code_hash=code_hash)


# --------------------------------------------------------------------------- send back
def bug_report(code: str, verdict: GateVerdict) -> BugReport:
    """The FIX_BUG request for a rejected ``verdict``: the code, the gate's exact reason and
    its line."""
    kind = verdict.kind if verdict.kind in FIX_KINDS else "exception"
    return BugReport(name=verdict.name, code=code, kind=kind,  # type: ignore[arg-type]
                     message=verdict.reason, line=verdict.line)


class Resubmission(BaseModel):
    """What became of a rejection sent back once: the fixed code (None if the model gave
    none) and its verdict from gates 1 to 3 (None then too)."""

    model_config = ConfigDict(frozen=True)

    first: GateVerdict
    code: str | None = None
    verdict: GateVerdict | None = None

    @property
    def passed(self) -> bool:
        return self.code is not None and self.verdict is not None and self.verdict.passed


def send_back(fix: Callable[[BugReport], str | None], code: str, verdict: GateVerdict, *,
              seen: Collection[str] = frozenset(), name: str | None = None) -> Resubmission:
    """Send a rejection back to the model once, as a FIX_BUG with the reason: ``fix`` (e.g.
    `roles.StrategyWriter.fix`) gets `bug_report` and returns the fixed code or None; the fixed
    code goes through gates 1 to 3 again (as ``name``, if given: a fixed strategy is a new
    strategy). Code rejected at gate 4 or 5 ran and failed, so it counts as seen: "fixing" it
    by renaming fails gate 3. Gates 4 and 5 of the fixed code are the caller's (run it
    again)."""
    if verdict.passed:
        raise ValueError(f"strategy {verdict.name!r} passed its gates; nothing to send back")
    fixed = fix(bug_report(code, verdict))
    if fixed is None:
        return Resubmission(first=verdict)
    # code that ran and failed (gates 4, 5) was tried: the same algorithm again is no fix;
    # code refused before running (gates 1 to 3) may come back the same bar its fault
    tried = {verdict.code_hash or normalized_hash(code)} if verdict.gate in RAN else set()
    again = check_static(fixed, name or verdict.name, {*seen, *tried})
    return Resubmission(first=verdict, code=fixed, verdict=again)


def lesson(verdicts: Sequence[GateVerdict]) -> str:
    """One line for the workflow's lessons: what the gates rejected."""
    return "; ".join(f"{v.name} {v.outcome()}" for v in verdicts if not v.passed)
