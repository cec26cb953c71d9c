"""Strategy source, read without running it.

The orchestrator, the agents and the CLI need a strategy's description, parameter space and
code hash. They get them from the text alone:

- the static sandbox check (`sandbox.check_source`: a named rule and line, nothing executed);
- ``PARAMETERS``, read with `ast.literal_eval` from its one top-level assignment (a literal of
  numbers, strings, booleans, lists and dicts; anything computed is refused with a line);
- the module docstring (the description);
- ``generate_positions``'s signature, checked against ``PARAMETERS`` from the syntax tree;
- ``CONSTRAINTS`` (optional): a list of string literals, taken node by node from the syntax
  tree (never evaluated) and parsed by `_constraints`' own small grammar.

Nothing here executes strategy code. The module body runs only where `_positions` allows it:
in a kernel-confined process (`alphaloop.execution`), or for the library's own files.
"""

from __future__ import annotations

import ast
import hashlib
import pprint
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from alphaloop.backtest._constraints import Constraint, parse_constraints
from alphaloop.backtest._params import Choice, FloatRange, IntRange, did_you_mean, parse_parameters
from alphaloop.errors import StrategyError

__all__ = [
    "SourceInfo",
    "code_hash",
    "inspect_source",
    "library_names",
    "library_source",
    "with_constraints",
    "with_parameters",
]

_LIBRARY_PACKAGE = "alphaloop.backtest.strategies"
_EXAMPLE = "{'fast': {'default': 10, 'low': 2, 'high': 100}}"
_CONSTRAINTS_EXAMPLE = "CONSTRAINTS = ['fast < slow']"


@dataclass(frozen=True)
class SourceInfo:
    """What the source says about itself, read without running it."""

    description: str
    raw_parameters: Any
    parameters: Mapping[str, IntRange | FloatRange | Choice]
    code_hash: str
    constraints: tuple[Constraint, ...] = ()


def code_hash(source: str) -> str:
    """The short hash that names a strategy's code (12 hex digits of SHA-256)."""
    return hashlib.sha256(source.encode()).hexdigest()[:12]


def _where(name: str, node: ast.AST | None) -> str:
    line = getattr(node, "lineno", None)
    return f"strategy {name!r} line {line}" if line else f"strategy {name!r}"


def _parse(source: str, name: str) -> ast.Module:
    from alphaloop.backtest import sandbox

    sandbox.check_source(source, name)  # rule + line; a no-op when the Python checks are off
    try:
        return ast.parse(source, filename=sandbox.strategy_filename(name))
    except (SyntaxError, ValueError) as exc:  # only reached with the Python checks off
        line = getattr(exc, "lineno", None)
        where = f"strategy {name!r} line {line}" if line else f"strategy {name!r}"
        raise StrategyError(f"{where}: syntax error: {getattr(exc, 'msg', exc)}") from None
    except (RecursionError, MemoryError):
        raise StrategyError(f"strategy {name!r}: source is nested too deeply to read") from None


def _assigned_names(stmt: ast.stmt) -> list[tuple[str, ast.AST]]:
    """Top-level names bound by ``stmt`` (with the node that binds them)."""
    targets: list[ast.AST] = []
    if isinstance(stmt, ast.Assign):
        targets = list(stmt.targets)
    elif isinstance(stmt, ast.AnnAssign | ast.AugAssign):
        targets = [stmt.target]
    elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [(stmt.name, stmt)]
    elif isinstance(stmt, ast.Import | ast.ImportFrom):
        return [((a.asname or a.name).split(".")[0], stmt) for a in stmt.names]
    out: list[tuple[str, ast.AST]] = []
    for t in targets:
        for node in ast.walk(t):
            if isinstance(node, ast.Name):
                out.append((node.id, stmt))
    return out


def _parameters(tree: ast.Module, name: str) -> tuple[Any, ast.AST | None]:
    binds = [
        (stmt, node)
        for stmt in tree.body
        for bound, node in _assigned_names(stmt)
        if bound == "PARAMETERS"
    ]
    if not binds:
        raise StrategyError(
            f"strategy {name!r} defines no PARAMETERS; add PARAMETERS = {{}} (or declare its "
            f"parameters, e.g. {_EXAMPLE})"
        )
    if len(binds) > 1:
        raise StrategyError(
            f"{_where(name, binds[1][0])}: PARAMETERS is assigned {len(binds)} times; assign "
            "it once, as one literal dict"
        )
    stmt = binds[0][0]
    value = getattr(stmt, "value", None)
    simple = (
        isinstance(stmt, ast.Assign)
        and len(stmt.targets) == 1
        and isinstance(stmt.targets[0], ast.Name)
    ) or (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name))
    if not simple or value is None:
        raise StrategyError(
            f"{_where(name, stmt)}: assign PARAMETERS on its own, as one literal dict, e.g. "
            f"PARAMETERS = {_EXAMPLE}"
        )
    try:
        raw = ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise StrategyError(
            f"{_where(name, stmt)}: PARAMETERS must be a literal (numbers, strings, True/False, "
            f"lists and dicts; no names, calls or comprehensions), e.g. {_EXAMPLE}"
        ) from None
    return raw, stmt


def _constraints(tree: ast.Module, name: str) -> list[str]:
    """The ``CONSTRAINTS`` strings, read from the syntax tree (nothing evaluated): absent is
    none; otherwise one plain assignment of a list (or tuple) of string literals."""
    binds = [
        stmt
        for stmt in tree.body
        for bound, _ in _assigned_names(stmt)
        if bound == "CONSTRAINTS"
    ]
    if not binds:
        return []
    if len(binds) > 1:
        raise StrategyError(
            f"{_where(name, binds[1])}: CONSTRAINTS is assigned {len(binds)} times; assign it "
            f"once, as one list of strings, e.g. {_CONSTRAINTS_EXAMPLE}"
        )
    stmt = binds[0]
    simple = (
        isinstance(stmt, ast.Assign)
        and len(stmt.targets) == 1
        and isinstance(stmt.targets[0], ast.Name)
    ) or (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name))
    value = getattr(stmt, "value", None)
    if (
        not simple
        or not isinstance(value, ast.List | ast.Tuple)
        or not all(isinstance(e, ast.Constant) and type(e.value) is str for e in value.elts)
    ):
        raise StrategyError(
            f"{_where(name, stmt)}: CONSTRAINTS must be one list of string literals, e.g. "
            f"{_CONSTRAINTS_EXAMPLE}"
        )
    return [e.value for e in value.elts]  # type: ignore[attr-defined]


def _generate_def(tree: ast.Module, name: str) -> ast.FunctionDef:
    found: ast.AST | None = None
    for stmt in tree.body:
        for bound, node in _assigned_names(stmt):
            if bound == "generate_positions":
                found = node
    if found is None:
        raise StrategyError(
            f"strategy {name!r} defines no generate_positions; add "
            "def generate_positions(data, **params) -> pd.Series"
        )
    if not isinstance(found, ast.FunctionDef):
        raise StrategyError(
            f"{_where(name, found)}: generate_positions must be a plain function: "
            "def generate_positions(data, **params)"
        )
    return found


def check_signature_ast(fn: ast.FunctionDef, specs: Mapping[str, Any], name: str) -> None:
    """``generate_positions`` takes the data first and accepts every declared parameter."""
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    if not positional:
        raise StrategyError(
            f"strategy {name!r}: generate_positions must take the data as its first argument: "
            "def generate_positions(data, **params)"
        )
    if a.kwarg is not None:
        return
    rest = positional[1:]
    accepted = {p.arg for p in rest} | {p.arg for p in a.kwonlyargs}
    for pname in specs:
        if pname not in accepted:
            raise StrategyError(
                f"strategy {name!r}: PARAMETERS declares {pname!r} but generate_positions does "
                f"not accept it; add {pname}=... to its signature"
            )
    first_default = len(positional) - len(a.defaults)
    no_default = [p.arg for i, p in enumerate(positional) if i >= 1 and i < first_default]
    no_default += [p.arg for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is None]
    for pname in no_default:
        if pname not in specs:
            raise StrategyError(
                f"strategy {name!r}: generate_positions argument {pname!r} has no default and "
                "is not in PARAMETERS; declare it or give it a default"
            )


@lru_cache(maxsize=256)
def inspect_source(source: str, name: str) -> SourceInfo:
    """Read ``source`` without running it (cached). `StrategyError` names the rule and line."""
    if not isinstance(source, str):
        raise StrategyError(f"strategy {name!r}: source must be text, got {type(source).__name__}")
    tree = _parse(source, name)
    raw, _ = _parameters(tree, name)
    specs = parse_parameters(raw, name)
    check_signature_ast(_generate_def(tree, name), specs, name)
    constraints = parse_constraints(_constraints(tree, name), specs, name)
    return SourceInfo(
        description=ast.get_docstring(tree, clean=True) or "",
        raw_parameters=raw,
        parameters=MappingProxyType(specs),
        code_hash=code_hash(source),
        constraints=constraints,
    )


def with_parameters(source: str, name: str, raw: dict[str, Any]) -> str:
    """``source`` with its ``PARAMETERS`` literal replaced by ``raw`` (written as a literal),
    so generated code keeps the one-literal form (`StrategyError` if the source has none)."""
    _, stmt = _parameters(_parse(source, name), name)
    assert stmt is not None
    return _replace(source, stmt, "PARAMETERS = " + pprint.pformat(raw, width=88,
                                                                   sort_dicts=False))


def with_constraints(source: str, name: str, texts: list[str]) -> str:
    """``source`` with its ``CONSTRAINTS`` list replaced by ``texts`` (unchanged if it
    declares none)."""
    tree = _parse(source, name)
    _constraints(tree, name)  # one plain assignment, or none
    stmt = next((s for s in tree.body for bound, _ in _assigned_names(s)
                 if bound == "CONSTRAINTS"), None)
    return source if stmt is None else _replace(source, stmt, f"CONSTRAINTS = {texts!r}")


def _replace(source: str, stmt: ast.stmt, text: str) -> str:
    """``source`` with the statement ``stmt`` replaced by ``text``."""
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def at(lineno: int, col: int) -> int:
        # ast columns are UTF-8 byte offsets
        return offsets[lineno - 1] + len(lines[lineno - 1].encode()[:col].decode())

    start = at(stmt.lineno, stmt.col_offset)
    end = at(stmt.end_lineno or stmt.lineno, stmt.end_col_offset or 0)
    return source[:start] + text + source[end:]


def library_names() -> list[str]:
    """Names of the strategies shipped in ``alphaloop/backtest/strategies/``, sorted."""
    return list(_library_names())


@lru_cache(maxsize=1)
def _library_names() -> tuple[str, ...]:
    # read once per process: the installed package does not change under a running process
    # (a campaign's orchestrator asked ~400 times, each a directory listing)
    root = resources.files(_LIBRARY_PACKAGE)
    return tuple(sorted(
        entry.name[:-3]
        for entry in root.iterdir()
        if entry.name.endswith(".py") and not entry.name.startswith("_")
    ))


def library_source(name: str) -> str:
    """Source text of library strategy ``name`` (`StrategyError` if there is none)."""
    names = _library_names()
    if name not in names:
        raise StrategyError(
            f"unknown strategy {name!r}; {did_you_mean(name, list(names))}"
            f"library strategies: {', '.join(names)} (or pass a path to a .py file)"
        )
    return _library_text(name)


@lru_cache(maxsize=64)
def _library_text(name: str) -> str:
    return resources.files(_LIBRARY_PACKAGE).joinpath(f"{name}.py").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def library_hashes() -> frozenset[str]:
    """Code hashes of the library's own files: code shipped with alphaloop, trusted like it."""
    return frozenset(code_hash(library_source(n)) for n in library_names())
