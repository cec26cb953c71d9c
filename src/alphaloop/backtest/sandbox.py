"""Check and execute strategy source with an import allow-list and restricted builtins.

Strategy source (written by people or by LLMs) is a Python module defining
``generate_positions(data, **params)`` and ``PARAMETERS``. This module stops *careless or
confused* code -- code that reads files, shells out, imports networking or pokes at
interpreter internals -- with a clear one-line :class:`~alphaloop.errors.StrategyError`.
It is **not** a security boundary against a determined attacker (see ``docs/sandbox.md``):
untrusted code must also run in a worker process with resource limits.

Contract
--------
- :func:`check_source` parses the source and walks the AST; it raises ``StrategyError``
  ``"strategy 'NAME' line N: RULE: detail"`` for the first violation, and returns ``None``
  otherwise. It never executes anything.
- :func:`exec_source` checks, rewrites every attribute read ``obj.attr`` into a guarded call
  (which refuses to hand out modules outside the allow-list, the dangerous builtins, and
  objects from file/process/import modules), compiles with filename ``<strategy NAME>``, and
  executes the module body in a fresh namespace whose ``__builtins__`` is
  :func:`safe_builtins` (with an ``__import__`` that admits only :data:`ALLOWED_MODULES`).
  It returns that namespace. Any exception from the module body becomes a ``StrategyError``
  naming the line in the strategy source.
- :func:`strategy_error_from_exception` turns an exception raised later, inside functions
  defined by the strategy, into a ``StrategyError`` naming the deepest strategy line.

The module body runs in the calling process: a body that loops forever or allocates without
bound is stopped only by the worker's wall timeout and memory limit (``alphaloop.execution``).
"""

from __future__ import annotations

import ast
import builtins
import functools
import linecache
import logging
import re
import string
import types
from collections.abc import Callable, Iterator
from typing import Any

from alphaloop.errors import StrategyError

__all__ = [
    "ALLOWED_MODULES",
    "MAX_SOURCE_CHARS",
    "check_source",
    "exec_source",
    "safe_builtins",
    "strategy_error_from_exception",
    "strategy_filename",
]

ALLOWED_MODULES: frozenset[str] = frozenset(
    {
        "numpy",
        "pandas",
        "math",
        "statistics",
        "talib",
        "alphaloop.backtest.indicators",
        "__future__",
        "typing",
    }
)
"""Modules (and their public submodules) strategy code may import."""

MAX_SOURCE_CHARS = 200_000
"""Longer sources are refused before parsing (strategies are a few hundred lines at most)."""

_ALLOWED_TEXT = ", ".join(sorted(ALLOWED_MODULES - {"__future__"}))

# Modules that get a specific reason when imported (everything else off the allow-list gets
# the generic one). Keyed by top-level name.
_FILE_PROCESS = "gives file/process access"
_NETWORK = "gives network access"
_INTERNALS = "exposes interpreter internals"
_DENIED_IMPORT_REASONS: dict[str, str] = {
    **dict.fromkeys(
        [
            "os",
            "posix",
            "nt",
            "sys",
            "subprocess",
            "pty",
            "shutil",
            "pathlib",
            "io",
            "tempfile",
            "glob",
            "fnmatch",
            "fileinput",
            "pickle",
            "shelve",
            "dbm",
            "marshal",
            "sqlite3",
            "zipfile",
            "tarfile",
            "gzip",
            "bz2",
            "lzma",
            "mmap",
            "csv",
            "codecs",
            "linecache",
            "tokenize",
            "multiprocessing",
            "threading",
            "_thread",
            "concurrent",
            "asyncio",
            "signal",
            "resource",
            "platform",
            "webbrowser",
            "pydoc",
            "runpy",
            "pyarrow",
            "h5py",
            "joblib",
        ],
        _FILE_PROCESS,
    ),
    **dict.fromkeys(
        [
            "socket",
            "ssl",
            "select",
            "selectors",
            "urllib",
            "http",
            "ftplib",
            "smtplib",
            "requests",
            "httpx",
            "aiohttp",
            "xmlrpc",
            "email",
        ],
        _NETWORK,
    ),
    **dict.fromkeys(
        [
            "ctypes",
            "cffi",
            "importlib",
            "builtins",
            "gc",
            "inspect",
            "code",
            "codeop",
            "types",
            "operator",
            "functools",
            "traceback",
            "dis",
            "weakref",
            "copyreg",
            "numba",
        ],
        _INTERNALS,
    ),
    "alphaloop": "is alphaloop's own code (only alphaloop.backtest.indicators is for strategies)",
}

# Names whose use (as a free name, not one the strategy binds itself) is refused.
_FORBIDDEN_NAMES: dict[str, str] = {
    **dict.fromkeys(("open", "input"), "reads files or the terminal"),
    **dict.fromkeys(
        ("exec", "eval", "compile", "__import__", "breakpoint"), "runs code the check cannot see"
    ),
    **dict.fromkeys(
        ("getattr", "setattr", "delattr", "hasattr"),
        "reaches attributes by string, around the dunder rule; use plain attribute access",
    ),
    **dict.fromkeys(
        ("globals", "locals", "vars", "memoryview", "type", "super"),
        "exposes interpreter internals",
    ),
    **dict.fromkeys(
        ("exit", "quit", "help", "copyright", "credits", "license"), "is interactive-only"
    ),
}

# Dunder names a strategy may read.
_ALLOWED_DUNDER_NAMES = frozenset({"__name__", "__doc__"})

# pandas/numpy file I/O and other entry points, refused as attribute and imported names.
_IO = "is file I/O; strategies get their data as the `data` argument"
_FORBIDDEN_ATTRS: dict[str, str] = {
    **dict.fromkeys(
        [
            "load",
            "loads",
            "loadtxt",
            "save",
            "savez",
            "savez_compressed",
            "savetxt",
            "genfromtxt",
            "fromfile",
            "fromregex",
            "tofile",
            "memmap",
            "dump",
            "dumps",
            "DataSource",
            "HDFStore",
            "ExcelFile",
            "ExcelWriter",
            "npyio",
            "ctypeslib",
            "environ",
            "getenv",
            "putenv",
            "system",
            "popen",
            "Popen",
            "unlink",
            "rmtree",
            "listdir",
            "scandir",
            "chdir",
            "makedirs",
            "mkdir",
            "rmdir",
            "fork",
            "kill",
            "check_output",
            "check_call",
            "savefig",
        ],
        _IO,
    ),
    **dict.fromkeys(
        ("f2py", "distutils", "testing", "plot", "plotting"),
        "is a build/test/plotting tool strategies do not need",
    ),
    **dict.fromkeys(
        ("eval", "query", "get_type_hints", "ForwardRef", "evaluate_forward_ref"),
        "evaluates code from a string, which the check cannot see",
    ),
    **dict.fromkeys(
        [
            "gi_frame",
            "gi_code",
            "gi_yieldfrom",
            "cr_frame",
            "cr_code",
            "cr_await",
            "ag_frame",
            "ag_code",
            "f_back",
            "f_globals",
            "f_locals",
            "f_builtins",
            "f_code",
            "tb_frame",
            "tb_next",
            "co_code",
            "co_consts",
            "mro",
        ],
        "exposes interpreter internals (frames, code, class hierarchy)",
    ),
    **{
        name: f"names module '{name}', which {reason}"
        for name, reason in _DENIED_IMPORT_REASONS.items()
        if name
        not in {
            "types",
            "code",
            "csv",
            "email",
            "select",
            "alphaloop",
            "functools",
            "traceback",
            "platform",
            "concurrent",
            "fnmatch",
            "dis",
            "signal",
        }
    },
}

# In-memory `to_*` conversions; every other `to_*` (to_csv, to_pickle, to_parquet, to_sql,
# to_json, to_string, to_excel, ...) can write a file and is refused, as is every `read_*`.
_ALLOWED_TO = frozenset(
    {
        "to_numpy",
        "to_list",
        "to_dict",
        "to_frame",
        "to_series",
        "to_datetime",
        "to_numeric",
        "to_timedelta",
        "to_period",
        "to_timestamp",
        "to_offset",
        "to_records",
        "to_flat_index",
        "to_pydatetime",
        "to_datetime64",
        "to_pytimedelta",
        "to_timedelta64",
    }
)
_IO_PREFIXES = ("read_", "to_", "open_", "write_")

# Module name components refused on import and on modules reached through attributes.
_DENIED_COMPONENTS = frozenset(
    {
        "io",
        "npyio",
        "format",
        "f2py",
        "distutils",
        "testing",
        "ctypeslib",
        "computation",
        "plotting",
    }
)

_DUNDER_RE = re.compile(r"^__\w+__$")
_DUNDER_IN_TEXT_RE = re.compile(r"__[A-Za-z]\w*__")
_GUARD_NAME = "__alphaloop_getattr__"


# ---------------------------------------------------------------------------------------------
# Shared rules
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _attr_violation(attr: str) -> str | None:
    """The reason attribute (or imported) name ``attr`` is refused, or None."""
    if _DUNDER_RE.match(attr):
        return f"dunder attribute: '{attr}' reaches interpreter internals"
    if attr.startswith("_"):
        return f"private attribute: '{attr}' is internal; use the public API"
    if attr in _FORBIDDEN_ATTRS:
        return f"forbidden attribute: '{attr}' {_FORBIDDEN_ATTRS[attr]}"
    if attr.startswith(_IO_PREFIXES) and attr not in _ALLOWED_TO:
        return (
            f"file I/O: '{attr}' {_IO} (in-memory to_* allowed: to_numpy, to_list, to_dict, "
            "to_frame, to_datetime, to_numeric, ...)"
        )
    return None


def _family_allowed(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in ALLOWED_MODULES)


def _import_violation(module: str) -> str | None:
    """The reason importing dotted ``module`` is refused, or None."""
    root = module.split(".")[0]
    if not _family_allowed(module):
        reason = _DENIED_IMPORT_REASONS.get(root)
        why = f"module '{module}' {reason}" if reason else f"module '{module}' is not allowed"
        return f"forbidden import: {why}; strategies may import only: {_ALLOWED_TEXT}"
    for part in module.split(".")[1:]:
        if part.startswith("_") or part in _DENIED_COMPONENTS:
            return (
                f"forbidden import: submodule '{module}' is internal or does file I/O; "
                f"strategies may import only: {_ALLOWED_TEXT}"
            )
    return None


def _from_import_violation(module: str, names: list[str]) -> str | None:
    """Check ``from module import names``: every name must be an allowed attribute, and if
    ``module`` is only a parent of an allowed module (``alphaloop.backtest``), the names must
    complete it to allowed modules (``from alphaloop.backtest import indicators``)."""
    if not _family_allowed(module):
        children = [f"{module}.{n}" for n in names]
        if children and all(c in ALLOWED_MODULES for c in children):
            return None
        if not any(m.startswith(module + ".") for m in ALLOWED_MODULES):
            return _import_violation(module)  # from subprocess import run
        return _import_violation(next((c for c in children if not _family_allowed(c)), module))
    if (v := _import_violation(module)) is not None:
        return v
    for n in names:
        if (v := _attr_violation(n)) is not None:
            return v
    return None


# ---------------------------------------------------------------------------------------------
# Static check
# ---------------------------------------------------------------------------------------------


def _fail(name: str, line: int | None, message: str) -> StrategyError:
    where = f" line {line}" if line else ""
    return StrategyError(f"strategy '{name}'{where}: {message}")


def _docstring_nodes(tree: ast.AST) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                ids.add(id(body[0].value))
    return ids


def _bound_names(tree: ast.AST) -> set[str]:
    """Every name the source binds anywhere (a simplification of Python's scopes, used only so
    that ``open = data["open"]`` does not trip the forbidden-name rule)."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            bound.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound


def _identifiers(node: ast.AST) -> Iterator[str]:
    """Identifiers a node binds or declares (other than Name/Attribute, handled apart)."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        yield node.name
    elif isinstance(node, ast.arg):
        yield node.arg
    elif isinstance(node, ast.alias) and node.asname:
        yield node.asname
    elif isinstance(node, ast.ExceptHandler) and node.name:
        yield node.name
    elif isinstance(node, ast.Global | ast.Nonlocal):
        yield from node.names
    elif isinstance(node, ast.keyword) and node.arg:
        yield node.arg


def _format_fields(text: str) -> Iterator[str]:
    try:
        for _, field, _, _ in string.Formatter().parse(text):
            if field:
                yield field
    except ValueError:
        return


_FORBIDDEN_STATEMENTS: tuple[tuple[type, str], ...] = (
    (ast.ClassDef, "class definitions are not allowed; write functions"),
    (ast.Match, "match statements are not allowed; use if/elif"),
    (ast.AsyncFunctionDef, "async code is not allowed"),
    (ast.AsyncFor, "async code is not allowed"),
    (ast.AsyncWith, "async code is not allowed"),
    (ast.Await, "async code is not allowed"),
)


def _violations(tree: ast.Module) -> Iterator[tuple[int | None, int, str]]:
    docstrings = _docstring_nodes(tree)
    bound = _bound_names(tree)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", None)
        end = getattr(node, "end_col_offset", None) or 0
        for kind, message in _FORBIDDEN_STATEMENTS:
            if isinstance(node, kind):
                yield line, end, f"forbidden statement: {message}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if (v := _import_violation(alias.name)) is not None:
                    yield line, end, v
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                yield line, end, "forbidden import: relative imports are not allowed"
                continue
            names = [a.name for a in node.names]
            if "*" in names:
                message = f"'from {node.module} import *' hides what is used; name the imports"
                yield line, end, f"forbidden import: {message}"
                continue
            if (v := _from_import_violation(node.module or "", names)) is not None:
                yield line, end, v
        elif isinstance(node, ast.Name):
            if (
                node.id in _FORBIDDEN_NAMES
                and isinstance(node.ctx, ast.Load)
                and (node.id not in bound or node.id.startswith("__"))
            ):
                yield line, end, f"forbidden name: '{node.id}' {_FORBIDDEN_NAMES[node.id]}"
            elif _DUNDER_RE.match(node.id) and not (
                node.id in _ALLOWED_DUNDER_NAMES and isinstance(node.ctx, ast.Load)
            ):
                yield line, end, f"dunder name: '{node.id}' reaches interpreter internals"
        elif isinstance(node, ast.Attribute):
            if (v := _attr_violation(node.attr)) is not None:
                yield line, end, v
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings and node.value != "__main__":
                m = _DUNDER_IN_TEXT_RE.search(node.value)
                if m:
                    yield (
                        line,
                        end,
                        (
                            f"dunder string: '{m.group()}' in a string can reach interpreter "
                            "internals by name"
                        ),
                    )
        elif isinstance(node, ast.Call):
            func = node.func
            if (
                isinstance(func, ast.Attribute)
                and func.attr in ("format", "format_map")
                and isinstance(func.value, ast.Constant)
                and isinstance(func.value.value, str)
            ):
                for field in _format_fields(func.value.value):
                    if "." in field or "[" in field:
                        yield (
                            line,
                            end,
                            (
                                f"format attribute: '{{{field}}}' reads attributes by name; "
                                "use an f-string"
                            ),
                        )
        for ident in _identifiers(node):
            if _DUNDER_RE.match(ident):
                yield line, end, f"dunder name: '{ident}' reaches interpreter internals"


def check_source(source: str, name: str) -> None:
    """Refuse strategy ``source`` that breaks a sandbox rule; never executes it.

    Raises ``StrategyError("strategy 'NAME' line N: RULE: detail")`` for the first violation
    in source order, including syntax errors. Returns None when the source passes.
    """
    _parse_and_check(source, name)


def _parse_and_check(source: str, name: str) -> ast.Module:
    if not isinstance(source, str):
        raise _fail(name, None, f"source must be text, got {type(source).__name__}")
    if len(source) > MAX_SOURCE_CHARS:
        raise _fail(
            name, None, f"source is {len(source):,} characters; the limit is {MAX_SOURCE_CHARS:,}"
        )
    try:
        tree = ast.parse(source, filename=strategy_filename(name))
    except SyntaxError as exc:
        msg = (exc.msg or "invalid syntax").replace("\n", " ")
        raise _fail(name, exc.lineno, f"syntax error: {msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise _fail(name, None, f"syntax error: {type(exc).__name__}: {exc}") from None
    try:
        # Source order: by line, then by where the offending token ends.
        found = sorted(_violations(tree), key=lambda v: (v[0] or 0, v[1]))
    except RecursionError:
        raise _fail(name, None, "source is nested too deeply to check") from None
    if found:
        line, _, message = found[0]
        raise _fail(name, line, message)
    try:  # the compiler finds what the parser does not ('return' outside function, ...)
        compile(tree, strategy_filename(name), "exec", dont_inherit=True)
    except SyntaxError as exc:
        msg = (exc.msg or "invalid syntax").replace("\n", " ")
        raise _fail(name, exc.lineno, f"syntax error: {msg}") from None
    return tree


# ---------------------------------------------------------------------------------------------
# Runtime guards
# ---------------------------------------------------------------------------------------------

_DANGEROUS_BUILTINS = tuple(
    getattr(builtins, n)
    for n in (
        "open",
        "exec",
        "eval",
        "compile",
        "__import__",
        "globals",
        "locals",
        "vars",
        "getattr",
        "setattr",
        "delattr",
        "hasattr",
        "breakpoint",
        "input",
        "memoryview",
        "type",
        "super",
        "__build_class__",
    )
)
_DANGEROUS_IDS = frozenset(id(f) for f in _DANGEROUS_BUILTINS)

# Objects defined in these modules (functions, classes, instances) are never handed out: every
# module a strategy may not import, except those whose objects libraries legitimately return
# (builtins, functools, types, ...), plus the private C modules behind the denied ones.
_VALUES_FROM_DENIED_IMPORTS_ALLOWED = frozenset(
    {
        "aiohttp",
        "alphaloop",
        "builtins",
        "csv",
        "dis",
        "email",
        "fileinput",
        "fnmatch",
        "functools",
        "h5py",
        "httpx",
        "joblib",
        "requests",
        "traceback",
        "types",
        "weakref",
        "xmlrpc",
    }
)
_PRIVATE_DENIED_MODULES = frozenset(
    {
        "_codecs",
        "_ctypes",
        "_frozen_importlib",
        "_frozen_importlib_external",
        "_imp",
        "_io",
        "_multiprocessing",
        "_operator",
        "_pickle",
        "_posixsubprocess",
        "_socket",
        "_sqlite3",
        "_ssl",
        "atexit",
        "faulthandler",
        "llvmlite",
        "matplotlib",
        "site",
        "sysconfig",
        "zipimport",
    }
)
_DENIED_VALUE_ROOTS = (
    frozenset(_DENIED_IMPORT_REASONS) - _VALUES_FROM_DENIED_IMPORTS_ALLOWED
) | _PRIVATE_DENIED_MODULES
_FUNCTION_LIKE = (
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.BuiltinMethodType,
)


@functools.lru_cache(maxsize=4096)
def _module_violation(mod: str) -> str | None:
    """Verdict on a module object named ``mod`` (cached: called on every attribute read)."""
    if not _family_allowed(mod) or any(p in _DENIED_COMPONENTS for p in mod.split(".")[1:]):
        return f"module '{mod}' is not allowed; strategies may import only: {_ALLOWED_TEXT}"
    return None


@functools.lru_cache(maxsize=4096)
def _origin_violation(mod: str) -> str | None:
    """Verdict on an object defined in (or an instance of a class defined in) module ``mod``."""
    parts = mod.split(".")
    if parts[0] in _DENIED_VALUE_ROOTS or (
        _family_allowed(mod) and any(p in _DENIED_COMPONENTS for p in parts[1:])
    ):
        return f"objects from module '{mod}' are not allowed"
    return None


def _value_violation(value: object) -> str | None:
    """The reason a value reached through an attribute must not be handed to strategy code."""
    if isinstance(value, types.ModuleType):
        return _module_violation(value.__name__)
    if id(value) in _DANGEROUS_IDS:
        return f"builtin '{getattr(value, '__name__', value)}' is not allowed"
    if isinstance(value, _FUNCTION_LIKE):
        mod = getattr(value, "__module__", None)
    else:
        mod = getattr(type(value), "__module__", None)
    return _origin_violation(mod) if isinstance(mod, str) else None


def _guarded_getattr(obj: object, attr: str) -> Any:
    """Every ``obj.attr`` read in strategy code goes through here (see ``_GuardAttributes``)."""
    reason = _attr_violation(attr)
    if reason is None:
        value = getattr(obj, attr)
        reason = _value_violation(value)
        if reason is None:
            return value
    raise PermissionError(f"sandbox: attribute '{attr}': {reason}")


def _guarded_import(
    name: str,
    globals: dict[str, Any] | None = None,
    locals: dict[str, Any] | None = None,
    fromlist: tuple[str, ...] | list[str] | None = (),
    level: int = 0,
) -> types.ModuleType | None:
    """``__import__`` for strategy code: admits only :data:`ALLOWED_MODULES` (imported lazily
    on first request, so ``alphaloop.backtest.indicators`` loads only when a strategy asks)."""
    if isinstance(fromlist, list) and not fromlist and not level:
        # C code running on behalf of a library (numpy's ``arr.sum()`` lazily importing
        # ``numpy._core._methods``) calls ``PyImport_Import``, which looks ``__import__`` up in
        # the *strategy's* builtins and passes an empty list. Import statements pass None or a
        # tuple. PyImport_Import discards the return value and reads sys.modules, so import
        # for the side effect and hand nothing back.
        builtins.__import__(name, None, None, (), 0)
        return None
    if level:
        raise ImportError("sandbox: relative imports are not allowed")
    names = [n for n in (fromlist or ()) if n != "*"]
    if fromlist and "*" in fromlist:
        raise ImportError("sandbox: 'import *' is not allowed")
    reason = _from_import_violation(name, names) if names else _import_violation(name)
    if reason is not None:
        raise ImportError(f"sandbox: {reason}")
    module = builtins.__import__(name, None, None, tuple(names), 0)
    for n in names:
        try:
            value = getattr(module, n)
        except AttributeError:
            continue  # the import statement itself raises "cannot import name"
        if (reason := _value_violation(value)) is not None:
            raise ImportError(f"sandbox: 'from {name} import {n}': {reason}")
    return module


def _print_to_log(logger: logging.Logger) -> Callable[..., None]:
    def print(*args: object, sep: str | None = " ", end: str | None = "\n", **_: object) -> None:
        """Strategy ``print``: goes to the DEBUG log, never to stdout or a file."""
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s", (sep if sep is not None else " ").join(map(str, args)))

    return print


_SAFE_BUILTIN_NAMES = (
    # values and containers
    "None",
    "True",
    "False",
    "Ellipsis",
    "NotImplemented",
    "bool",
    "int",
    "float",
    "complex",
    "str",
    "bytes",
    "bytearray",
    "list",
    "tuple",
    "dict",
    "set",
    "frozenset",
    "range",
    "slice",
    "object",
    # functions
    "abs",
    "all",
    "any",
    "bin",
    "callable",
    "chr",
    "divmod",
    "enumerate",
    "filter",
    "format",
    "hash",
    "hex",
    "isinstance",
    "issubclass",
    "iter",
    "len",
    "map",
    "max",
    "min",
    "next",
    "oct",
    "ord",
    "pow",
    "repr",
    "reversed",
    "round",
    "sorted",
    "sum",
    "zip",
    # exceptions strategy code may raise or catch
    "ArithmeticError",
    "AssertionError",
    "AttributeError",
    "Exception",
    "FloatingPointError",
    "IndexError",
    "KeyError",
    "LookupError",
    "NotImplementedError",
    "OverflowError",
    "RuntimeError",
    "StopIteration",
    "TypeError",
    "ValueError",
    "ZeroDivisionError",
    "Warning",
    "RuntimeWarning",
    "UserWarning",
    "DeprecationWarning",
    "FutureWarning",
)


def safe_builtins(name: str | None = None) -> dict[str, Any]:
    """A fresh restricted ``__builtins__`` mapping for strategy code.

    Holds plain values, containers, pure functions and common exception classes; no
    ``open``/``exec``/``eval``/``compile``/``getattr``/``type``/``globals``/``vars``/
    ``input``/``breakpoint``/``__build_class__``. ``__import__`` admits only
    :data:`ALLOWED_MODULES`; ``print`` writes to the DEBUG logger
    ``alphaloop.strategy.NAME`` instead of stdout.
    """
    table: dict[str, Any] = {n: getattr(builtins, n) for n in _SAFE_BUILTIN_NAMES}
    table["__import__"] = _guarded_import
    table["print"] = _print_to_log(logging.getLogger(f"alphaloop.strategy.{name or 'unnamed'}"))
    return table


# ---------------------------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------------------------


class _GuardAttributes(ast.NodeTransformer):
    """Rewrite each attribute read ``x.a`` into ``__alphaloop_getattr__(x, 'a')``."""

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        self.generic_visit(node)
        if not isinstance(node.ctx, ast.Load):
            return node
        call = ast.Call(
            func=ast.Name(id=_GUARD_NAME, ctx=ast.Load()),
            args=[node.value, ast.Constant(value=node.attr)],
            keywords=[],
        )
        return ast.copy_location(call, node)


def strategy_filename(name: str) -> str:
    """The pseudo filename strategy code is compiled under (``<strategy NAME>``)."""
    return f"<strategy {name}>"


def _compile(tree: ast.Module, source: str, name: str) -> types.CodeType:
    filename = strategy_filename(name)
    guarded = ast.fix_missing_locations(_GuardAttributes().visit(tree))
    code = compile(guarded, filename, "exec", dont_inherit=True)
    # Let tracebacks (worker failure records) show the strategy's own lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return code


def _namespace(name: str) -> dict[str, Any]:
    return {
        "__builtins__": safe_builtins(name),
        "__name__": f"alphaloop_strategy_{name}",
        _GUARD_NAME: _guarded_getattr,
    }


def exec_source(source: str, name: str) -> dict[str, Any]:
    """Check, compile and execute strategy ``source``; return its module namespace.

    Raises ``StrategyError`` if the check fails or the module body raises (naming the line
    in the strategy source). The namespace holds ``generate_positions``, ``PARAMETERS`` and
    whatever else the module defines; functions in it keep the restricted builtins and the
    attribute guard when called later.
    """
    tree = _parse_and_check(source, name)
    return _run(tree, source, name)


def _run(tree: ast.Module, source: str, name: str) -> dict[str, Any]:
    code = _compile(tree, source, name)
    namespace = _namespace(name)
    try:
        exec(code, namespace)
    except Exception as exc:
        raise strategy_error_from_exception(exc, name) from exc
    return namespace


def _run_unchecked(source: str, name: str) -> dict[str, Any]:
    """Execute without the static check (tests use this to prove the runtime guards hold)."""
    return _run(ast.parse(source), source, name)


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def strategy_error_from_exception(exc: BaseException, name: str) -> StrategyError:
    """Describe ``exc``, raised by strategy ``name``'s code, as a one-line ``StrategyError``.

    The message is ``"strategy 'NAME' line N: ExcType: message"``, where N is the line of the
    deepest traceback frame in the strategy source (compiled as ``<strategy NAME>``); without
    such a frame the line is left out. Raise the result ``from exc`` to keep the traceback.
    """
    filename = strategy_filename(name)
    line: int | None = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    if line is None and isinstance(exc, SyntaxError) and exc.filename == filename:
        line = exc.lineno
    detail = _one_line(str(exc))
    kind = type(exc).__name__
    return _fail(name, line, f"{kind}: {detail}" if detail else kind)
