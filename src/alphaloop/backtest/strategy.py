"""Strategies: source code defining ``generate_positions`` and ``PARAMETERS``.

A strategy is Python source (a library file, a user's file, or code an LLM wrote) that defines

- ``generate_positions(data: pd.DataFrame, **params) -> pd.Series``: the target position per
  bar, in [-1, 1], decided at that bar's close, on ``data.index``. A numpy array of one value per
  bar is accepted too (it is taken to be aligned with ``data``). Warm-up bars should be 0.
- ``PARAMETERS``: one literal dict, parameter name -> plain dict (see `_params`), e.g.
  ``{"fast": {"default": 10, "low": 2, "high": 100}}``.
- a module docstring: the strategy's description (first line: the summary).
- optionally ``generate_positions_batch(data, **params) -> ndarray``: the same rule for many
  parameter sets at once — each parameter a numpy array of k values, the result of shape
  ``(bars, k)``, column j what ``generate_positions`` returns for set j. A grid
  (`alphaloop.backtest.grid`) calls it once per chunk of sets instead of the simple
  interface once per set.

A task flows down through this package, one module per job:

1. `_source` reads the source without running it: the static sandbox check, ``PARAMETERS``
   (`ast.literal_eval`), the docstring and the signature. `from_source` / `load_strategy` give
   a `Strategy` built that way — the orchestrator, agents and CLI never execute strategy code.
2. `_params` holds the parameter spaces and parses values against them (`resolve_params`).
3. `_positions` compiles the module and computes validated positions — only in a
   kernel-confined process (`alphaloop.execution`), for the library's own files, or inside
   `executing_in_process()`.
4. `lookahead` re-runs the strategy on cut data to find look-ahead bias.

Then `engine` turns positions into metrics, from prices the strategy never held.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alphaloop.backtest._constraints import Constraint
from alphaloop.backtest._params import (
    Choice,
    FloatRange,
    IntRange,
    ParamSpec,
    did_you_mean,
    parse_assignments,
    parse_parameters,
    scale_lookbacks,
)
from alphaloop.backtest._positions import executing_in_process, run_positions
from alphaloop.backtest._source import (
    inspect_source,
    library_names,
    library_source,
    with_parameters,
)
from alphaloop.backtest.lookahead import lookahead_check
from alphaloop.errors import ConfigError, StrategyError

__all__ = [
    "Choice",
    "FloatRange",
    "IntRange",
    "ParamSpec",
    "Strategy",
    "declared_parameters",
    "executing_in_process",
    "from_source",
    "library_names",
    "library_source",
    "load_strategy",
    "lookahead_check",
    "parse_assignments",
    "parse_parameters",
    "scale_lookbacks",
    "with_parameters",
]


@dataclass(frozen=True)
class Strategy:
    """A strategy read from its source (nothing executed). Immutable; build it with
    `from_source` / `load_strategy`."""

    name: str
    source: str = field(repr=False, compare=False)
    description: str = field(repr=False, compare=False)
    parameters: Mapping[str, IntRange | FloatRange | Choice] = field(repr=False, compare=False)
    code_hash: str

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as its source: the receiver reads it again.
        return (from_source, (self.source, self.name))

    @property
    def is_library(self) -> bool:
        """Whether this is one of the library's own files, unchanged (trusted like alphaloop)."""
        from alphaloop.backtest._source import library_hashes

        return self.code_hash in library_hashes()

    @property
    def summary(self) -> str:
        """First line of the description."""
        return self.description.strip().splitlines()[0] if self.description.strip() else ""

    def defaults(self) -> dict[str, Any]:
        """Each parameter's default value."""
        return {name: spec.default for name, spec in self.parameters.items()}

    @property
    def constraints(self) -> tuple[Constraint, ...]:
        """The source's ``CONSTRAINTS`` between parameters, parsed (`_constraints`)."""
        return inspect_source(self.source, self.name).constraints

    def check_constraints(self, params: Mapping[str, Any]) -> None:
        """`ConfigError` naming the first of `constraints` that ``params`` (resolved, e.g. by
        `resolve_params`) violates."""
        for c in self.constraints:
            if not c.holds(params):
                shown = ", ".join(f"{n}={params[n]!r}" for n in c.names)
                raise ConfigError(
                    f"strategy {self.name!r} parameters {shown} violate its constraint "
                    f"{c.text!r}; choose values that satisfy it"
                )

    def resolve_params(self, overrides: Mapping[str, object] | None = None) -> dict[str, Any]:
        """Defaults updated by ``overrides``, each parsed to its declared type and checked.

        Values may be typed or CLI strings (``"20"``, ``"false"``). Unknown names and
        out-of-range or unparsable values raise `ConfigError` naming the parameter and the fix.
        """
        params = self.defaults()
        for name, value in (overrides or {}).items():
            spec = self.parameters.get(name)
            if spec is None:
                known = ", ".join(self.parameters) or "none"
                raise ConfigError(
                    f"strategy {self.name!r} has no parameter {name!r}; "
                    f"{did_you_mean(name, self.parameters)}parameters: {known}"
                )
            try:
                params[name] = spec.parse(value)
            except ValueError as exc:
                raise ConfigError(
                    f"strategy {self.name!r} parameter {name!r}: {exc} ({spec.describe()})"
                ) from None
        return params

    def positions(self, data: pd.DataFrame, params: Mapping[str, Any] | None = None) -> np.ndarray:
        """Validated target positions (float64, one per bar) of this strategy on ``data``.

        Runs the strategy's code, so only where `_positions` allows it (a confined process,
        library code, or inside `executing_in_process()`; `RuntimeError` elsewhere).
        ``params`` should come from `resolve_params` (missing names take their defaults; values
        are not re-checked here, so a grid pays for that once). Raises `StrategyError` if the
        code raises (naming the line), or returns the wrong type, length or index, NaN, or a
        value outside [-1, 1] (naming the first bad date).
        """
        kwargs = self.defaults() if params is None else params
        if len(kwargs) != len(self.parameters) or any(k not in kwargs for k in self.parameters):
            kwargs = {**self.defaults(), **kwargs}
        return run_positions(self.source, self.name, data, kwargs)


def from_source(source: str, name: str) -> Strategy:
    """Read a strategy from its source code, without running it (cached per process).

    Raises `StrategyError` naming the rule and line if the static check refuses the code, or
    it lacks a literal ``PARAMETERS`` or a ``generate_positions`` that accepts them.
    """
    info = inspect_source(source, name)
    return Strategy(
        name=name,
        source=source,
        description=info.description,
        parameters=info.parameters,
        code_hash=info.code_hash,
    )


def declared_parameters(strategy: Strategy) -> dict[str, Any]:
    """The ``PARAMETERS`` literal exactly as the source declares it."""
    return dict(inspect_source(strategy.source, strategy.name).raw_parameters)


def _looks_like_path(text: str) -> bool:
    return text.endswith(".py") or "/" in text or "\\" in text or text.startswith(".")


def read_strategy_file(path: str | Path) -> str:
    """The text of a strategy file (`StrategyError` if it is missing or unreadable)."""
    p = Path(path).expanduser()
    if not p.is_file():
        names = library_names()
        raise StrategyError(
            f"strategy file {str(p)!r} not found; {did_you_mean(p.stem, names)}"
            f"library strategies: {', '.join(names)}"
        )
    try:
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StrategyError(f"cannot read strategy file {str(p)!r}: {exc}") from None


def load_strategy(name_or_path: str | Path) -> Strategy:
    """A library strategy by name, or the strategy in a ``.py`` file (named by its stem)."""
    if isinstance(name_or_path, Path) or _looks_like_path(str(name_or_path)):
        return from_source(read_strategy_file(name_or_path), Path(name_or_path).stem)
    return from_source(library_source(str(name_or_path)), str(name_or_path))
