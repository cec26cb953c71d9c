"""The parameter sets of a grid: axes from ``name=spec`` items, their product, a filter.

- `parse_axes(strategy, ["fast=2:100", "slow=3:100:1", "allow_short=true,false"])`: each
  item is ``name=low:high`` (every integer from low to high, both included), ``name=low:high
  :step`` (floats need the step), ``name=a,b,c`` (listed values) or ``name=value``. Values are
  parsed and checked against the strategy's ``PARAMETERS`` (`ConfigError` naming the item).
- `combinations(strategy, axes, where)`: every combination (parameters not given take their
  default), filtered by ``where`` and by the strategy's own ``CONSTRAINTS`` if it declares any;
  one numpy array per parameter.
- ``where`` is conditions separated by "," or "and", each in the grammar of a strategy's
  ``CONSTRAINTS`` (`alphaloop.backtest._constraints`: numeric parameter names, numbers,
  ``+ - * / ( )``, ``< <= > >=``, chains such as ``2 <= fast < slow``), parsed there and never
  evaluated as Python.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from alphaloop.errors import ConfigError

__all__ = ["MAX_COMBINATIONS", "combinations", "parse_axes", "where_constraints", "where_mask"]

MAX_COMBINATIONS = 2_000_000
"""Most parameter sets one grid may hold (beyond it the grid is a typo, not a plan)."""
_MAX_WHERE = 500


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
_AND = re.compile(r",|\band\b")


def where_constraints(text: str, strategy: Any) -> list[Any]:
    """``--where`` as constraints of `alphaloop.backtest._constraints` (the grammar a
    strategy's ``CONSTRAINTS`` use), one per condition; `ConfigError` naming the fault."""
    from alphaloop.backtest._constraints import parse_constraint
    from alphaloop.errors import StrategyError

    if len(text) > _MAX_WHERE:
        raise ConfigError(f"--where is {len(text)} characters; at most {_MAX_WHERE}")
    out = []
    for part in _AND.split(text):
        try:
            out.append(parse_constraint(part.strip(), strategy.parameters, strategy.name))
        except StrategyError as exc:
            detail = exc.args[0].split(": ", 1)[-1]
            raise ConfigError(f"--where {part.strip()!r}: {detail} (e.g. --where "
                              "'fast < slow, 2*fast <= slow')") from None
    return out


def where_mask(text: str, strategy: Any, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Which sets of ``columns`` satisfy every condition of ``text``; a comparison with a
    non-finite side (a division by zero) never holds."""
    k = len(next(iter(columns.values()))) if columns else 0
    mask = np.ones(k, dtype=bool)
    for constraint in where_constraints(text, strategy):
        mask &= np.broadcast_to(constraint.mask(columns), (k,))
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
        mask &= where_mask(where, strategy, columns)
    for constraint in strategy.constraints:
        mask &= np.broadcast_to(constraint.mask(columns), (total,))
    return {name: col[mask] for name, col in columns.items()}
