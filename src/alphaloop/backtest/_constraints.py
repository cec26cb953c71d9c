"""Constraints between parameters: what a strategy's ``CONSTRAINTS`` declares.

``CONSTRAINTS = ["fast < slow", "lower < exit_level < upper", "2 * fast <= slow"]`` — each a
comparison (chained comparisons allowed) between arithmetic expressions of the strategy's
numeric parameters and numbers. The text is parsed here with a grammar of our own, never
evaluated as Python:

    constraint := expr (cmp expr)+          cmp    := "<" | "<=" | ">" | ">="
    expr       := term (("+" | "-") term)*  term   := factor (("*" | "/") factor)*
    factor     := NUMBER | NAME | "-" factor | "(" expr ")"

NAME is a parameter declared in ``PARAMETERS`` with numeric values (an int or float range, or
choices of numbers). Anything else — a call, an attribute, ``==``, ``and``, a string — is refused
with one line naming the strategy and the constraint (`StrategyError`). A point satisfies a
constraint when every comparison holds with finite sides (a division by zero never does).

`parse_constraints` reads the list; `Constraint.holds` judges one point and `Constraint.mask`
many at once (numpy arrays of values, as a sampler draws candidates).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from alphaloop.errors import StrategyError

__all__ = ["Constraint", "parse_constraint", "parse_constraints", "violated"]

MAX_CONSTRAINTS = 32
MAX_LENGTH = 200
MAX_DEPTH = 8
"""Bounds on what a strategy may declare: the text is hostile until parsed."""

_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op><=|>=|<|>|[-+*/()]))"
)
_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
}
_CMP: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
Node = tuple[Any, ...]
"""("num", value) | ("var", name) | ("neg", node) | (op, left, right)"""


class _Bad(ValueError):
    pass


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None:
            at = len(text) - len(text[pos:].lstrip())
            raise _Bad(
                f"unexpected {text[at]!r} at column {at + 1}; a constraint uses parameter "
                "names, numbers, + - * / ( ) and < <= > >="
            )
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.t = tokens
        self.i = 0
        self.names: list[str] = []

    def peek(self) -> str | None:
        return self.t[self.i][1] if self.i < len(self.t) else None

    def take(self) -> tuple[str, str]:
        if self.i >= len(self.t):
            raise _Bad("ends too early: an operand is missing")
        tok = self.t[self.i]
        self.i += 1
        return tok

    def expr(self, depth: int) -> Node:
        node = self.term(depth)
        while self.peek() in ("+", "-"):
            op = self.take()[1]
            node = (op, node, self.term(depth))
        return node

    def term(self, depth: int) -> Node:
        node = self.factor(depth)
        while self.peek() in ("*", "/"):
            op = self.take()[1]
            node = (op, node, self.factor(depth))
        return node

    def factor(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise _Bad(f"nested more than {MAX_DEPTH} deep")
        kind, text = self.take()
        if kind == "num":
            value = float(text)
            if not np.isfinite(value):
                raise _Bad(f"number {text} is not finite")
            return ("num", value)
        if kind == "name":
            self.names.append(text)
            return ("var", text)
        if text == "-":
            return ("neg", self.factor(depth + 1))
        if text == "(":
            node = self.expr(depth + 1)
            if self.peek() != ")":
                raise _Bad("a '(' is not closed")
            self.take()
            return node
        raise _Bad(f"expected a name, a number or '(' where {text!r} stands")


def _compile(text: str) -> tuple[tuple[Node, ...], tuple[str, ...], tuple[str, ...]]:
    """(operands, comparison operators, names) of ``text``; `_Bad` says what is wrong."""
    p = _Parser(_tokens(text))
    if not p.t:
        raise _Bad("is empty")
    operands = [p.expr(0)]
    ops: list[str] = []
    while p.peek() in _CMP:
        ops.append(p.take()[1])
        operands.append(p.expr(0))
    if p.i < len(p.t):
        if p.t[p.i][1] in ("and", "or"):
            raise _Bad(f"unexpected {p.t[p.i][1]!r}; write each condition as its own string")
        raise _Bad(f"unexpected {p.t[p.i][1]!r}; expected + - * / or < <= > >=")
    if not ops:
        raise _Bad("compares nothing; write e.g. 'fast < slow'")
    return tuple(operands), tuple(ops), tuple(dict.fromkeys(p.names))


def _value(node: Node, values: Mapping[str, Any]) -> Any:
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind == "var":
        return values[node[1]]
    if kind == "neg":
        return -_value(node[1], values)
    return _ARITH[kind](_value(node[1], values), _value(node[2], values))


@dataclass(frozen=True)
class Constraint:
    """One parsed constraint: its text, the parameters it reads, and a judge of points."""

    text: str
    names: tuple[str, ...]
    operands: tuple[Node, ...]
    ops: tuple[str, ...]

    def mask(self, values: Mapping[str, Any]) -> np.ndarray:
        """Which points satisfy it: ``values`` maps each name in `names` to an array (or a
        number) of equal length; a comparison with a non-finite side fails."""
        arrays = {n: np.asarray(values[n], dtype=float) for n in self.names}
        with np.errstate(all="ignore"):
            sides = [np.asarray(_value(o, arrays), dtype=float) for o in self.operands]
            ok = np.ones(np.broadcast(*sides).shape, dtype=bool)
            for op, left, right in zip(self.ops, sides, sides[1:], strict=False):
                ok &= np.isfinite(left) & np.isfinite(right) & _CMP[op](left, right)
        return ok

    def holds(self, params: Mapping[str, Any]) -> bool:
        """Whether one point (parameter name -> value) satisfies it."""
        return bool(self.mask(params))


def _numeric(spec: Any) -> bool:
    choices = getattr(spec, "choices", None)
    if choices is None:
        return True  # an int or float range
    return all(isinstance(c, int | float) and not isinstance(c, bool) for c in choices)


def parse_constraint(text: str, specs: Mapping[str, Any], strategy: str) -> Constraint:
    """Parse one constraint over the parameters ``specs`` declares (`StrategyError`, one line
    naming the strategy and the constraint, if it is malformed or names an unknown or
    non-numeric parameter)."""
    from alphaloop.backtest._params import did_you_mean

    where = f"strategy {strategy!r} constraint {text[:MAX_LENGTH]!r}"
    if len(text) > MAX_LENGTH:
        raise StrategyError(f"{where}...: longer than {MAX_LENGTH} characters")
    try:
        operands, ops, names = _compile(text)
    except _Bad as exc:
        raise StrategyError(f"{where}: {exc}") from None
    for name in names:
        if name not in specs:
            known = ", ".join(specs) or "none"
            raise StrategyError(
                f"{where}: unknown parameter {name!r}; {did_you_mean(name, specs)}"
                f"parameters: {known}"
            )
        if not _numeric(specs[name]):
            raise StrategyError(
                f"{where}: parameter {name!r} is not a number ({specs[name].describe()}); "
                "constraints compare numeric parameters only"
            )
    return Constraint(text=text, names=names, operands=operands, ops=ops)


def parse_constraints(
    raw: Sequence[str], specs: Mapping[str, Any], strategy: str
) -> tuple[Constraint, ...]:
    """Parse a ``CONSTRAINTS`` list (strings) over ``specs`` (`StrategyError` on the first
    bad one), and check the declared defaults satisfy every constraint."""
    if len(raw) > MAX_CONSTRAINTS:
        raise StrategyError(
            f"strategy {strategy!r}: {len(raw)} CONSTRAINTS, at most {MAX_CONSTRAINTS}"
        )
    out = tuple(parse_constraint(text, specs, strategy) for text in raw)
    defaults = {n: s.default for n, s in specs.items()}
    for c in out:
        if not c.holds(defaults):
            shown = ", ".join(f"{n}={defaults[n]!r}" for n in c.names)
            raise StrategyError(
                f"strategy {strategy!r} constraint {c.text!r}: the declared defaults "
                f"({shown}) violate it; change a default or the constraint"
            )
    return out


def violated(constraints: Sequence[Constraint], params: Mapping[str, Any]) -> list[str]:
    """Texts of the constraints ``params`` violates."""
    return [c.text for c in constraints if not c.holds(params)]
