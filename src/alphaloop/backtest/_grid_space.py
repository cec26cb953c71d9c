"""The parameter sets of a grid: axes from ``name=spec`` items, their product, a filter.

- `parse_axes(strategy, ["fast=2:100", "slow=3:100:1", "allow_short=true,false"])`: each
  item is ``name=low:high`` (every integer from low to high, both included), ``name=low:high
  :step`` (floats need the step), ``name=a,b,c`` (listed values) or ``name=value``. Values are
  parsed and checked against the strategy's ``PARAMETERS`` (`ConfigError` naming the item).
- `combinations(strategy, axes, where)`: every combination (parameters not given take their
  default), filtered by ``where`` and by the strategy's own ``CONSTRAINTS`` if it declares any;
  one numpy array per parameter.
- ``where`` is a small expression language parsed here, never evaluated as Python::

      where      := condition (("," | "and") condition)*
      condition  := expr (cmp expr)+          cmp    := "<" | "<=" | ">" | ">=" | "==" | "!="
      expr       := term (("+" | "-") term)*  term   := factor (("*" | "/") factor)*
      factor     := NUMBER | NAME | "-" factor | "(" expr ")"

  NAME is one of the strategy's parameters (True/False count as 1/0).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from alphaloop.errors import ConfigError

__all__ = ["MAX_COMBINATIONS", "combinations", "parse_axes", "where_mask"]

MAX_COMBINATIONS = 2_000_000
"""Most parameter sets one grid may hold (beyond it the grid is a typo, not a plan)."""
_MAX_WHERE = 500

_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op><=|>=|==|!=|<|>|[-+*/(),]))"
)
_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
}
_CMP: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
}


# -- axes -----------------------------------------------------------------------------------
def _number(text: str, item: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"-p {item}: {text!r} is not a number; write e.g. -p fast=2:100 "
                          "or -p k=0.5:3:0.5") from None
    if not math.isfinite(value):
        raise ConfigError(f"-p {item}: {text!r} is not a finite number")
    return value


def _range(item: str, text: str, spec: Any) -> list[Any]:
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ConfigError(f"-p {item}: a range is low:high or low:high:step, e.g. fast=2:100")
    kind = getattr(spec, "kind", None)
    if kind not in ("int", "float"):
        raise ConfigError(f"-p {item}: this parameter takes listed values, not a range; "
                          "write e.g. allow_short=true,false")
    low, high = _number(parts[0], item), _number(parts[1], item)
    if len(parts) == 3:
        step = _number(parts[2], item)
    elif kind == "int":
        step = 1.0
    else:
        raise ConfigError(f"-p {item}: a float range needs a step, e.g. {item}:0.1")
    if not step > 0:
        raise ConfigError(f"-p {item}: the step must be > 0")
    if high < low:
        raise ConfigError(f"-p {item}: low {parts[0]} is above high {parts[1]}")
    count = math.floor((high - low) / step + 1e-9) + 1
    if count > MAX_COMBINATIONS:
        raise ConfigError(f"-p {item}: {count:,} values; at most {MAX_COMBINATIONS:,}")
    if kind == "int":
        if low != int(low) or step != int(step):
            raise ConfigError(f"-p {item}: this parameter is an integer; use whole numbers")
        return list(range(int(low), int(high) + 1, int(step)))
    return [float(f"{low + i * step:.12g}") for i in range(count)]


def parse_axes(strategy: Any, items: Sequence[str]) -> dict[str, list[Any]]:
    """The values of each parameter named in ``items`` (see the module docstring), each parsed
    and checked by `Strategy.resolve_params`; `ConfigError` naming the item at fault."""
    axes: dict[str, list[Any]] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name, text = name.strip(), text.strip()
        if not sep or not name or not text:
            raise ConfigError(f"-p {item!r} is not name=values; write e.g. -p fast=2:100, "
                              "-p slow=50,100,200 or -p allow_short=false")
        if name in axes:
            raise ConfigError(f"-p {name} is given twice; give each parameter once")
        strategy.resolve_params({name: None} if name not in strategy.parameters else {})
        spec = strategy.parameters[name]
        raw: list[Any] = _range(item, text, spec) if ":" in text else [
            v.strip() for v in text.split(",")]
        if any(v == "" for v in raw):
            raise ConfigError(f"-p {item}: an empty value; write e.g. {name}=10,20,30")
        values = [strategy.resolve_params({name: v})[name] for v in raw]
        axes[name] = list(dict.fromkeys(values))  # a value listed twice is one set
    return axes


# -- where ----------------------------------------------------------------------------------
Node = tuple[Any, ...]


class _Parser:
    def __init__(self, text: str, names: Sequence[str]) -> None:
        self.text, self.names = text, set(names)
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while text[pos:].strip():
            m = _TOKEN.match(text, pos)
            if m is None:
                at = len(text) - len(text[pos:].lstrip())
                self.fail(f"unexpected {text[at]!r} at column {at + 1}")
            kind = m.lastgroup or ""
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0

    def fail(self, why: str) -> None:
        raise ConfigError(f"--where {self.text!r}: {why}; write e.g. --where 'fast < slow' "
                          "(parameter names, numbers, + - * /, comparisons, 'and')")

    def peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        if self.i >= len(self.tokens):
            self.fail("it ends too early")
        self.i += 1
        return self.tokens[self.i - 1]

    def conditions(self) -> list[Node]:
        out = [self.condition()]
        while self.peek() in (",", "and"):
            self.take()
            out.append(self.condition())
        if self.peek() is not None:
            self.fail(f"unexpected {self.peek()!r}")
        return out

    def condition(self) -> Node:
        sides = [self.expr(0)]
        ops = []
        while self.peek() in _CMP:
            ops.append(self.take()[1])
            sides.append(self.expr(0))
        if not ops:
            self.fail("each condition needs a comparison such as fast < slow")
        return ("cmp", tuple(ops), tuple(sides))

    def expr(self, depth: int) -> Node:
        node = self.term(depth)
        while self.peek() in ("+", "-"):
            node = (self.take()[1], node, self.term(depth))
        return node

    def term(self, depth: int) -> Node:
        node = self.factor(depth)
        while self.peek() in ("*", "/"):
            node = (self.take()[1], node, self.factor(depth))
        return node

    def factor(self, depth: int) -> Node:
        if depth > 16:
            self.fail("it nests too deeply")
        kind, text = self.take()
        if kind == "num":
            return ("num", float(text))
        if kind == "name" and text not in ("and",):
            if text not in self.names:
                known = ", ".join(sorted(self.names))
                self.fail(f"{text!r} is not a numeric parameter of the strategy ({known})")
            return ("var", text)
        if text == "-":
            return ("neg", self.factor(depth + 1))
        if text == "(":
            node = self.expr(depth + 1)
            if self.take()[1] != ")":
                self.fail("a '(' is not closed")
            return node
        self.fail(f"unexpected {text!r}")
        raise AssertionError  # pragma: no cover - fail raises


def _value(node: Node, cols: Mapping[str, np.ndarray]) -> Any:
    op = node[0]
    if op == "num":
        return node[1]
    if op == "var":
        return cols[node[1]]
    if op == "neg":
        return -_value(node[1], cols)
    return _ARITH[op](_value(node[1], cols), _value(node[2], cols))


def where_mask(text: str, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Which sets of ``columns`` satisfy ``text`` (see the module docstring); a comparison
    with a non-finite side (a division by zero) never holds."""
    if len(text) > _MAX_WHERE:
        raise ConfigError(f"--where is {len(text)} characters; at most {_MAX_WHERE}")
    numeric = {name: col.astype(np.float64) for name, col in columns.items()
               if col.dtype.kind in "biuf"}
    k = len(next(iter(columns.values()))) if columns else 0
    mask = np.ones(k, dtype=bool)
    with np.errstate(all="ignore"):
        for _, ops, sides in _Parser(text, list(numeric)).conditions():
            values = [np.broadcast_to(np.asarray(_value(s, numeric), dtype=np.float64), (k,))
                      for s in sides]
            for v in values:
                mask &= np.isfinite(v)
            for op, left, right in zip(ops, values, values[1:], strict=False):
                mask &= _CMP[op](left, right)
    return mask


# -- the grid -------------------------------------------------------------------------------
def combinations(
    strategy: Any, axes: Mapping[str, Sequence[Any]], where: str | None = None
) -> dict[str, np.ndarray]:
    """Every combination of ``axes`` (other parameters at their default), filtered by
    ``where`` and the strategy's ``CONSTRAINTS``: one array per declared parameter."""
    from alphaloop.backtest.grid import _array

    sizes = [len(values) for values in axes.values()]
    total = math.prod(sizes)
    if total > MAX_COMBINATIONS:
        raise ConfigError(f"the grid has {total:,} combinations, more than {MAX_COMBINATIONS:,}; "
                          "narrow the ranges or give them a step (fast=2:100:2)")
    index = np.unravel_index(np.arange(total), sizes) if sizes else ()
    defaults = strategy.defaults()
    columns: dict[str, np.ndarray] = {}
    for name, spec in strategy.parameters.items():
        if name in axes:
            values = _array(list(axes[name]), spec)
            columns[name] = values[index[list(axes).index(name)]]
        else:
            columns[name] = _array([defaults[name]] * total, spec)
    mask = np.ones(total, dtype=bool)
    if where is not None and where.strip():
        mask &= where_mask(where, columns)
    for constraint in getattr(strategy, "constraints", ()):
        mask &= np.asarray(constraint.mask(columns), dtype=bool)
    return {name: col[mask] for name, col in columns.items()}
