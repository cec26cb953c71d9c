"""Check and execute strategy source: the Python-level layer, a first and friendlier line.

Strategy source (written by people or by LLMs) is a Python module defining
``generate_positions(data, **params)`` and ``PARAMETERS``. This module refuses code that reads
files, shells out, imports networking or pokes at interpreter internals, *before anything
runs*, with one line naming the strategy, the line, the rule and the fix.

**This layer is NOT the security boundary.** Python cannot be sandboxed from inside Python;
numpy, pandas and TA-Lib are large C/Cython libraries that a determined attacker will find a
way through. The boundary for untrusted code is the kernel: each strategy runs in a confined
child process (seccomp + Landlock, resource limits). This layer exists to name a rule and a
line early, and to make the easy escapes fail loudly.

Contract
--------
- :func:`check_source` parses the source and walks the AST; it raises ``StrategyError``
  ``"strategy 'NAME' line N: RULE: detail"`` for the first violation in source order, and
  returns ``None`` otherwise. It never executes anything.
- :func:`exec_source` checks, rewrites every attribute read ``obj.attr`` into a guarded call
  and every attribute write/delete target ``obj.attr = v`` into ``guard(obj).attr = v``,
  compiles with filename ``<strategy NAME>``, and executes the module body in a fresh
  namespace whose ``__builtins__`` is :func:`safe_builtins` (with an ``__import__`` that
  admits only :data:`ALLOWED_MODULES`). It returns that namespace. An exception from the
  module body becomes a ``StrategyError`` naming the strategy line.
- :func:`strategy_error_from_exception` turns an exception raised later, inside functions
  defined by the strategy, into a ``StrategyError`` naming the deepest strategy line.
- :func:`python_checks_enabled` reads ``ALPHALOOP_PY_SANDBOX`` (below).

Static rules (AST; the rule name starts the message)
----------------------------------------------------
- ``syntax error``; ``forbidden statement`` (``class``, ``match``, ``async``).
- ``forbidden import``: anything off :data:`ALLOWED_MODULES`, private or I/O submodules.
- ``forbidden name``: ``open``, ``eval``, ``exec``, ``getattr``, ``type``, ``globals``, ...
- ``dunder name`` / ``dunder attribute``: any ``__x__`` but reading ``__name__``/``__doc__``;
  ``private attribute``: ``_x``.
- ``forbidden attribute``: file I/O entry points, ``eval``, ``query``, ``style`` (Jinja),
  ``show_versions``, helpers that patch library classes (``register_series_accessor``,
  ``temp_setattr``, ``dataclass``, ``wraps``, ...), frame/code internals, and every
  ``func_*``, ``gi_*``, ``cr_*``, ``ag_*``, ``f_*``, ``tb_*``, ``co_*``, ``im_*`` attribute
  (Cython functions expose their module globals as ``func_globals``).
- ``file I/O``: ``read_*``, ``open_*``, ``write_*``, and ``to_*`` but the in-memory ones.
- ``dunder string``: ``__x__`` inside a str or bytes literal.
- ``format attribute``: a str or bytes literal whose replacement fields read an attribute or
  an item (``"{0.x}"``, ``"{0[k]}"``, also nested in a format spec).
- ``string dispatch``: a literal name other than a plain reduction (``"mean"``, ``"max"``,
  ...) passed as the function of ``agg``/``aggregate``/``apply``/``transform`` (also inside
  lists, dicts and named-aggregation tuples), of ``pipe``/``map``/``applymap``/``filter``,
  or as ``aggfunc=``/``NamedAgg``.

Runtime guards (hold where the source does not show the value)
---------------------------------------------------------------
- Restricted builtins (no ``open``/``eval``/``getattr``/``type``/``__build_class__``...);
  ``print`` goes to the DEBUG log; ``__import__`` admits only the allow-list.
- Attribute reads go through a guard that applies the name rules above, refuses to read from
  or hand out modules off the allow-list, dangerous builtins, frames/code/tracebacks/cells,
  module namespace dicts, and objects from file/process/network/import modules.
- ``string dispatch``: ``agg``/``aggregate``/``apply``/``transform``/``pipe``/``map``/
  ``applymap``/``filter``/``pivot_table``/``crosstab`` are handed out wrapped; the wrapper
  refuses a ``str`` function argument (computed at run time) that is not a plain reduction
  name, including inside lists/tuples/sets/dicts and named aggregations, and passes pandas a
  fresh copy of what it checked (so a callback cannot swap a name in afterwards).
- ``format attribute``: reading ``.format``/``.format_map`` of a computed string whose fields
  read attributes or items is refused; ``str.format``/``str.format_map`` read from the type
  are handed out wrapped and check the format string when called. (Bytes have no ``format``:
  every ``bytes`` -> ``str`` path, ``.decode()`` included, ends in one of those.)
- ``attribute write``: setting or deleting attributes of modules, classes, functions and
  other callables is refused (it would patch library code for the whole process).
- The guards keep their own references to the builtins and rule tables they use (closure
  locals captured at import, read-only tables): rebinding ``isinstance``, ``id``, ``type`` or
  a rule table in this module's globals does not switch them off.
- Cost: about 0.4 us per attribute read (verdicts are cached per name, type and object); a
  library strategy makes 4 to 8 reads per ``generate_positions`` call.

The switch
----------
``ALPHALOOP_PY_SANDBOX=off`` in the environment turns this whole layer off: ``check_source``
does nothing and ``exec_source`` runs the module with the real builtins, no attribute guard
and no import allow-list. It exists only to test the kernel boundary alone; it is a
test-only, **unsafe** setting. It is read on every call; a WARNING is logged once per process
when it is off.

Known gaps (accepted: the kernel is the boundary)
-------------------------------------------------
- Values *returned* by library calls are not inspected, only values reached by attribute
  reads; subscription (``d["k"]``) is not guarded. Any path to a module's globals dict, a
  frame or the real builtins that these rules do not name is a full escape.
- C code in numpy/pandas/TA-Lib does its own attribute lookups and imports. String dispatch
  is wrapped only under the method names above; other name-taking entry points exist
  (``rolling(win_type=...)`` picks a function of ``scipy.signal.windows``,
  ``interpolate(method=...)`` one of scipy's, ``talib.abstract.Function(name)`` a TA-Lib one).
- ``numpy.lib.stride_tricks.as_strided`` reads and writes out of bounds (arbitrary memory:
  enough to switch this layer off).
- Global library state can still be changed for the process: ``pd.set_option``,
  ``pd.options.x = ...`` (an object, not a class), ``np.seterr``, ABC ``register``, and
  library helpers this module does not name that set attributes for their caller; shared
  read-only arrays (the indicator memo) can be made writeable again
  (``x.flags.writeable = True``) and changed for later callers in the same process.
- A format string handed to library code that formats it itself (never read as ``.format``
  by strategy code) is not checked; the ``%`` operator only does mapping lookups.
- This module lives in the process it guards: a strategy that escapes can patch it for every
  strategy loaded later in the same process.
- Denial of service (loops, allocation) is left to the process limits.
- The module body runs in the calling process: load untrusted source only in a confined
  child.
"""

from __future__ import annotations

import ast
import builtins
import functools
import inspect
import linecache
import logging
import os
import re
import string
import types
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, Final

from alphaloop.errors import StrategyError

__all__ = [
    "ALLOWED_MODULES",
    "MAX_SOURCE_CHARS",
    "SWITCH_ENV",
    "check_source",
    "exec_source",
    "python_checks_enabled",
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

SWITCH_ENV: Final = "ALPHALOOP_PY_SANDBOX"
"""``ALPHALOOP_PY_SANDBOX=off`` turns the Python-level checks off (test-only, unsafe)."""

_log = logging.getLogger(__name__)

_ALLOWED_TEXT = ", ".join(sorted(ALLOWED_MODULES - {"__future__"}))

# Modules that get a specific reason when imported (everything else off the allow-list gets
# the generic one). Keyed by top-level name.
_FILE_PROCESS = "gives file/process access"
_NETWORK = "gives network access"
_INTERNALS = "exposes interpreter internals"
_DENIED_IMPORT_REASONS: Mapping[str, str] = MappingProxyType(
    {
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
                "string",
                "jinja2",
            ],
            _INTERNALS,
        ),
        "alphaloop": (
            "is alphaloop's own code (only alphaloop.backtest.indicators is for strategies)"
        ),
    }
)

# Names whose use (as a free name, not one the strategy binds itself) is refused.
_FORBIDDEN_NAMES: Mapping[str, str] = MappingProxyType(
    {
        **dict.fromkeys(("open", "input"), "reads files or the terminal"),
        **dict.fromkeys(
            ("exec", "eval", "compile", "__import__", "breakpoint"),
            "runs code the check cannot see",
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
)

# Dunder names a strategy may read.
_ALLOWED_DUNDER_NAMES = frozenset({"__name__", "__doc__"})

# pandas/numpy file I/O and other entry points, refused as attribute and imported names.
_IO = "is file I/O; strategies get their data as the `data` argument"
_FORBIDDEN_ATTRS: Mapping[str, str] = MappingProxyType(
    {
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
            ("f2py", "distutils", "testing", "plot", "plotting", "hist", "boxplot"),
            "is a build/test/plotting tool strategies do not need",
        ),
        **dict.fromkeys(
            ("eval", "query", "evaluate", "get_type_hints", "ForwardRef", "evaluate_forward_ref"),
            "evaluates code from a string, which the check cannot see",
        ),
        **dict.fromkeys(
            ("style", "Styler"),
            "renders through Jinja templates, which run code the check cannot see",
        ),
        **dict.fromkeys(
            ("show_versions", "show_config", "show_runtime"),
            "reports the environment (show_versions writes a file)",
        ),
        **dict.fromkeys(
            (
                "register_dataframe_accessor",
                "register_series_accessor",
                "register_index_accessor",
                "register_extension_dtype",
                "temp_setattr",
                "delegate_names",
                "dataclass",
                "update_wrapper",
                "wraps",
            ),
            "changes library classes or functions for the whole process",
        ),
        **dict.fromkeys(
            ("vformat", "Formatter", "get_field", "format_field"),
            "formats with attribute lookups the check cannot see; use an f-string",
        ),
        **dict.fromkeys(
            ["mro", "f_back", "f_globals", "f_locals", "f_builtins", "f_code"],
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
                "string",
            }
        },
    }
)

# Attribute prefixes of interpreter internals: Cython functions (func_globals, func_code,
# func_closure, ...), generators/coroutines (gi_frame, cr_frame, ag_frame), frames (f_back),
# tracebacks (tb_frame), code objects (co_code), Python 2 style methods (im_func).
_INTERNAL_PREFIXES = ("func_", "gi_", "cr_", "ag_", "f_", "tb_", "co_", "im_")

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

# Module name components refused on import and on modules reached through attributes
# (``apply``: pandas.core.apply runs functions named by strings).
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
        "apply",
    }
)

# String dispatch: pandas looks a method up by name when these get a string as the function
# (``data.agg("to_csv", 0, path)`` is ``data.to_csv(path)``). "Full" methods also take lists,
# dicts and named aggregations of names; the others take one function (a string there is
# never useful, so it is refused too).
_DISPATCH_FULL = frozenset({"agg", "aggregate", "apply", "transform"})
_DISPATCH_TOP = frozenset({"pipe", "map", "applymap", "filter"})
_DISPATCH_AGGFUNC = frozenset({"pivot_table", "crosstab"})
# Names that stay allowed as strings: plain reductions and cumulative transforms.
_SAFE_FUNC_NAMES = frozenset(
    {
        "sum",
        "mean",
        "median",
        "min",
        "max",
        "std",
        "var",
        "sem",
        "count",
        "size",
        "first",
        "last",
        "prod",
        "product",
        "nunique",
        "idxmin",
        "idxmax",
        "any",
        "all",
        "cumsum",
        "cumprod",
        "cummax",
        "cummin",
        "cumcount",
        "diff",
        "pct_change",
        "rank",
        "shift",
        "abs",
        "skew",
        "kurt",
        "kurtosis",
        "quantile",
        "ohlc",
        "ffill",
        "bfill",
        "nth",
        "mode",
        "ngroup",
        "describe",
        "corr",
        "cov",
    }
)
_SAFE_TEXT = "sum, mean, max, last, ..."
# Keywords of the dispatch methods that are parameters, not named aggregations.
_NOT_NAMED_AGG = frozenset(
    {
        "axis",
        "engine",
        "engine_kwargs",
        "args",
        "kwargs",
        "raw",
        "result_type",
        "by_row",
        "include_groups",
        "dropna",
        "na_action",
        "numeric_only",
        "min_count",
        "skipna",
    }
)

_DUNDER_RE = re.compile(r"^__\w+__$")
_DUNDER_IN_TEXT_RE = re.compile(r"__[A-Za-z]\w*__")
_GUARD_NAME = "__alphaloop_getattr__"
_TARGET_NAME = "__alphaloop_target__"


# ---------------------------------------------------------------------------------------------
# The switch
# ---------------------------------------------------------------------------------------------

_warned: dict[str, int] = {}  # setting -> pid that logged it (a forked child logs again)


def python_checks_enabled() -> bool:
    """False when ``ALPHALOOP_PY_SANDBOX=off`` (case and spaces ignored): the Python-level
    checks are then off entirely -- a test-only, unsafe setting for testing the kernel
    boundary alone. Read on every call; logs a WARNING once per process when off (and once
    for a value it does not recognise, which leaves the checks on)."""
    value = os.environ.get(SWITCH_ENV)
    if value is None:
        return True
    setting = value.strip().lower()
    if setting == "off":
        if _warned.get("off") != os.getpid():
            _warned["off"] = os.getpid()
            _log.warning(
                "%s=off: the Python-level strategy checks are OFF (no AST rules, real "
                "builtins, no attribute guard, no import allow-list); test-only and unsafe, "
                "for testing the kernel boundary alone",
                SWITCH_ENV,
            )
        return False
    if setting not in ("", "on") and _warned.get(setting) != os.getpid():
        _warned[setting] = os.getpid()
        _log.warning(
            "%s=%r is not 'off' or 'on'; the Python-level checks stay on", SWITCH_ENV, value
        )
    return True


# ---------------------------------------------------------------------------------------------
# Shared rules (default arguments keep the guards' references if module globals are rebound)
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _attr_violation(
    attr: str,
    _dunder: Callable[[str], object] = _DUNDER_RE.match,
    _forbidden: Mapping[str, str] = _FORBIDDEN_ATTRS,
    _internal: tuple[str, ...] = _INTERNAL_PREFIXES,
    _io: tuple[str, ...] = _IO_PREFIXES,
    _allowed_to: frozenset[str] = _ALLOWED_TO,
) -> str | None:
    """The reason attribute (or imported) name ``attr`` is refused, or None."""
    if _dunder(attr):
        return f"dunder attribute: '{attr}' reaches interpreter internals"
    if attr.startswith("_"):
        return f"private attribute: '{attr}' is internal; use the public API"
    if attr in _forbidden:
        return f"forbidden attribute: '{attr}' {_forbidden[attr]}"
    if attr.startswith(_internal):
        return (
            f"forbidden attribute: '{attr}' exposes interpreter internals (function globals, "
            "frames, code)"
        )
    if attr.startswith(_io) and attr not in _allowed_to:
        return (
            f"file I/O: '{attr}' {_IO} (in-memory to_* allowed: to_numpy, to_list, to_dict, "
            "to_frame, to_datetime, to_numeric, ...)"
        )
    return None


def _family_allowed(module: str, _allowed: frozenset[str] = ALLOWED_MODULES) -> bool:
    return any(module == m or module.startswith(m + ".") for m in _allowed)


def _import_violation(
    module: str,
    _family: Callable[[str], bool] = _family_allowed,
    _reasons: Mapping[str, str] = _DENIED_IMPORT_REASONS,
    _components: frozenset[str] = _DENIED_COMPONENTS,
) -> str | None:
    """The reason importing dotted ``module`` is refused, or None."""
    root = module.split(".")[0]
    if not _family(module):
        reason = _reasons.get(root)
        why = f"module '{module}' {reason}" if reason else f"module '{module}' is not allowed"
        return f"forbidden import: {why}; strategies may import only: {_ALLOWED_TEXT}"
    for part in module.split(".")[1:]:
        if part.startswith("_") or part in _components:
            return (
                f"forbidden import: submodule '{module}' is internal or does file I/O; "
                f"strategies may import only: {_ALLOWED_TEXT}"
            )
    return None


def _from_import_violation(
    module: str,
    names: list[str],
    _family: Callable[[str], bool] = _family_allowed,
    _import: Callable[[str], str | None] = _import_violation,
    _attr: Callable[[str], str | None] = _attr_violation,
    _allowed: frozenset[str] = ALLOWED_MODULES,
) -> str | None:
    """Check ``from module import names``: every name must be an allowed attribute, and if
    ``module`` is only a parent of an allowed module (``alphaloop.backtest``), the names must
    complete it to allowed modules (``from alphaloop.backtest import indicators``)."""
    if not _family(module):
        children = [f"{module}.{n}" for n in names]
        if children and all(c in _allowed for c in children):
            return None
        if not any(m.startswith(module + ".") for m in _allowed):
            return _import(module)  # from subprocess import run
        return _import(next((c for c in children if not _family(c)), module))
    if (v := _import(module)) is not None:
        return v
    for n in names:
        if (v := _attr(n)) is not None:
            return v
    return None


def _format_attribute_field(
    text: str, _parse: Callable[[str], Any] = string.Formatter().parse
) -> str | None:
    """The first replacement field of format string ``text`` that reads an attribute or an
    item (``{0.real}``, ``{0[k]}``), looking into nested format specs (``{0:{1.x}}``) too;
    None if there is none. A malformed string fails in ``str.format`` at the same place the
    parser stops here, so fields after that point are never evaluated."""
    pending = [text]
    while pending:
        try:
            for _, field, spec, _ in _parse(pending.pop()):
                if field is None:
                    continue
                if "." in field or "[" in field:
                    return field
                if spec and "{" in spec:
                    pending.append(spec)
        except ValueError:
            continue
    return None


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _format_message(field: str) -> str:
    return (
        f"format attribute: '{{{_clip(field)}}}' reads attributes by name when formatted; "
        "use an f-string"
    )


def _dispatch_message(method: str, name: str) -> str:
    return (
        f"string dispatch: {method}() got the name {_clip(name)!r}, which pandas looks up as a "
        f"method; pass a function (np.mean, a def) or a reduction name ({_SAFE_TEXT})"
    )


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


def _literal_violations(text: str, kind: str) -> Iterator[str]:
    m = _DUNDER_IN_TEXT_RE.search(text)
    if m:
        yield (
            f"dunder string: '{m.group()}' in a {kind} literal can reach interpreter internals "
            "by name"
        )
    if "{" in text and (field := _format_attribute_field(text)) is not None:
        yield _format_message(field)


def _dispatched_names(expr: ast.expr, full: bool, depth: int = 0) -> Iterator[str]:
    """String literals in ``expr`` that pandas would look up as method names."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        if expr.value not in _SAFE_FUNC_NAMES:
            yield expr.value
    elif full and depth < 4:
        if isinstance(expr, ast.List | ast.Tuple | ast.Set):
            for element in expr.elts:
                yield from _dispatched_names(element, full, depth + 1)
        elif isinstance(expr, ast.Dict):
            for value in expr.values:
                yield from _dispatched_names(value, full, depth + 1)


def _call_dispatch_violations(node: ast.Call) -> Iterator[tuple[str, str]]:
    """(method, name) for each literal name passed where pandas dispatches on names."""
    func = node.func
    method = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    for kw in node.keywords:
        if kw.arg == "aggfunc":
            for name in _dispatched_names(kw.value, True):
                yield method or "aggfunc", name
    if method == "NamedAgg" and len(node.args) > 1:
        for name in _dispatched_names(node.args[1], True):
            yield method, name
    if not isinstance(func, ast.Attribute):
        return
    full = method in _DISPATCH_FULL
    if not full and method not in _DISPATCH_TOP:
        return
    keywords = ("func",) if full else ("func", "arg")  # Series.map still takes arg=
    targets = [kw.value for kw in node.keywords if kw.arg in keywords]
    if node.args and not isinstance(node.args[0], ast.Starred):
        targets.append(node.args[0])
    if full and not node.args and not targets:  # named aggregation: agg(x=("close", "max"))
        for kw in node.keywords:
            if kw.arg is None or kw.arg in _NOT_NAMED_AGG:
                continue
            value = kw.value
            targets.extend(value.elts[1:] if isinstance(value, ast.Tuple) else [value])
    for target in targets:
        for name in _dispatched_names(target, full):
            yield method, name


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
        elif isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, str):
                if id(node) not in docstrings and value != "__main__":
                    for v in _literal_violations(value, "string"):
                        yield line, end, v
            elif isinstance(value, bytes):
                for v in _literal_violations(value.decode("latin-1"), "bytes"):
                    yield line, end, v
        elif isinstance(node, ast.Call):
            for method, name in _call_dispatch_violations(node):
                yield line, end, _dispatch_message(method, name)
        for ident in _identifiers(node):
            if _DUNDER_RE.match(ident):
                yield line, end, f"dunder name: '{ident}' reaches interpreter internals"


def check_source(source: str, name: str) -> None:
    """Refuse strategy ``source`` that breaks a sandbox rule; never executes it.

    Raises ``StrategyError("strategy 'NAME' line N: RULE: detail")`` for the first violation
    in source order, including syntax errors. Returns None when the source passes, and does
    nothing at all when ``ALPHALOOP_PY_SANDBOX=off`` (see :func:`python_checks_enabled`).
    """
    if not python_checks_enabled():
        return
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
        "_string",
        "atexit",
        "faulthandler",
        "llvmlite",
        "markupsafe",
        "matplotlib",
        "numexpr",
        "site",
        "sysconfig",
        "zipimport",
    }
)
_DENIED_VALUE_ROOTS = (
    frozenset(_DENIED_IMPORT_REASONS) - _VALUES_FROM_DENIED_IMPORTS_ALLOWED
) | _PRIVATE_DENIED_MODULES
# Types whose instances are never handed out or read from.
_INTERNAL_TYPES = frozenset(
    {
        types.FrameType,
        types.CodeType,
        types.TracebackType,
        types.CellType,
    }
)


@functools.lru_cache(maxsize=4096)
def _module_violation(
    mod: str,
    _family: Callable[[str], bool] = _family_allowed,
    _components: frozenset[str] = _DENIED_COMPONENTS,
) -> str | None:
    """Verdict on a module object named ``mod``."""
    if not _family(mod) or any(p in _components for p in mod.split(".")[1:]):
        return f"module '{mod}' is not allowed; strategies may import only: {_ALLOWED_TEXT}"
    return None


@functools.lru_cache(maxsize=4096)
def _origin_violation(
    mod: str,
    _roots: frozenset[str] = _DENIED_VALUE_ROOTS,
    _family: Callable[[str], bool] = _family_allowed,
    _components: frozenset[str] = _DENIED_COMPONENTS,
) -> str | None:
    """Verdict on an object defined in (or an instance of a class defined in) module ``mod``."""
    parts = mod.split(".")
    if parts[0] in _roots or (_family(mod) and any(p in _components for p in parts[1:])):
        return f"objects from module '{mod}' are not allowed"
    return None


# Verdicts on a type, for values of that type (cached per type).
_PLAIN: Final = 0  # fine, nothing more to check
_MODULE: Final = 1  # a module: check its name
_OWN_ORIGIN: Final = 2  # functions, classes, methods: each carries its own __module__
_NAMESPACE: Final = 3  # a dict: refuse module namespaces (function globals)

# Attribute names whose values are handed out wrapped or checked (cached per name).
_K_FULL: Final = 1
_K_TOP: Final = 2
_K_AGGFUNC: Final = 3
_K_FORMAT: Final = 4
_SPECIAL_ATTRS: Mapping[str, int] = MappingProxyType(
    {
        **dict.fromkeys(_DISPATCH_FULL, _K_FULL),
        **dict.fromkeys(_DISPATCH_TOP, _K_TOP),
        **dict.fromkeys(_DISPATCH_AGGFUNC, _K_AGGFUNC),
        "format": _K_FORMAT,
        "format_map": _K_FORMAT,
    }
)


class _Guards:
    """The runtime guard functions, built once by :func:`_make_guards`."""

    __slots__ = ("getattr", "import_", "target", "value_violation")

    def __init__(self, **functions: Callable[..., Any]) -> None:
        for key, fn in functions.items():
            object.__setattr__(self, key, fn)

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError("the sandbox guards are read-only")


def _make_guards() -> _Guards:
    """Build the guards as closures over references captured now.

    Everything the guards call at run time (builtins such as ``isinstance``/``id``/``type``,
    the rule functions and tables) is a local of this function, so rebinding names in this
    module's globals -- what an escaped strategy did to switch the old guard off -- changes
    nothing for them.
    """
    getattr_ = getattr
    type_ = type
    id_ = id
    isinstance_ = isinstance
    issubclass_ = issubclass
    callable_ = callable
    len_ = len
    str_ = str
    dict_ = dict
    list_ = list
    tuple_ = tuple
    set_ = set
    frozenset_ = frozenset
    permission_error = PermissionError
    import_error = ImportError
    type_error = TypeError
    module_type = types.ModuleType
    method_type = types.MethodType
    function_type = types.FunctionType
    real_import = builtins.__import__
    signature = inspect.signature
    attr_violation = _attr_violation
    module_violation = _module_violation
    origin_violation = _origin_violation
    import_violation = _import_violation
    from_import_violation = _from_import_violation
    format_field = _format_attribute_field
    format_message = _format_message
    dispatch_message = _dispatch_message
    dangerous_ids = _DANGEROUS_IDS
    internal_types = _INTERNAL_TYPES
    safe_names = _SAFE_FUNC_NAMES
    not_named_agg = _NOT_NAMED_AGG
    full_keywords = ("func",)
    top_keywords = ("func", "arg")  # Series.map still takes arg=
    sets = (set, frozenset)
    module_or_class = (types.ModuleType, type)
    special_get = _SPECIAL_ATTRS.get
    plain, module_kind, own_origin, namespace_kind = _PLAIN, _MODULE, _OWN_ORIGIN, _NAMESPACE
    k_full, k_aggfunc, k_format = _K_FULL, _K_AGGFUNC, _K_FORMAT

    @functools.lru_cache(maxsize=4096)
    def attr_kind(attr: str) -> str | int | None:
        """A refusal reason, a special kind, or None (plain) for attribute name ``attr``."""
        reason = attr_violation(attr)
        return reason if reason is not None else special_get(attr)

    type_verdicts: dict[type, int | str] = {}
    type_verdict_get = type_verdicts.get

    def classify(t: type) -> int | str:
        if issubclass_(t, module_type):
            verdict: int | str = module_kind
        elif t in internal_types:
            verdict = f"{t.__name__} objects expose interpreter internals"
        elif t is dict_:
            verdict = namespace_kind
        elif t is method_type or issubclass_(t, type_):
            verdict = own_origin
        else:
            verdict = plain
            for klass in t.__mro__:
                entry = klass.__dict__.get("__module__")
                if entry is not None:
                    if not isinstance_(entry, str_):  # a descriptor: per-object __module__
                        verdict = own_origin
                    break
            if verdict == plain:
                mod = t.__module__
                if isinstance_(mod, str_) and (reason := origin_violation(mod)) is not None:
                    verdict = reason
        if len_(type_verdicts) < 10_000:
            type_verdicts[t] = verdict
        return verdict

    # Verdicts on modules, functions and classes, keyed by id and holding the object itself
    # (so the id cannot be reused while the entry lives). Bound methods are looked up by
    # their function; builtins bound to an instance (``arr.sum``) are not cached.
    object_verdicts: dict[int, tuple[object, str | None]] = {}
    object_verdict_get = object_verdicts.get
    builtin_method_type = types.BuiltinMethodType

    def object_violation(value: object, verdict: int) -> str | None:
        if verdict == module_kind:
            return module_violation(getattr_(value, "__name__", "?"))
        if id_(value) in dangerous_ids:
            return f"builtin '{getattr_(value, '__name__', value)}' is not allowed"
        mod = getattr_(value, "__module__", None)
        if not isinstance_(mod, str_):
            mod = type_(value).__module__
        return origin_violation(mod) if isinstance_(mod, str_) else None

    def violation(value: object, verdict: int | str) -> str | None:
        """Why ``value`` (whose type got ``verdict``, not plain) must not be handed out."""
        if type_(verdict) is str_:
            return verdict  # type: ignore[return-value]
        if verdict == namespace_kind:
            mapping: Any = value
            if "__name__" in mapping and (
                "__builtins__" in mapping or "__spec__" in mapping or "__loader__" in mapping
            ):
                return "module namespaces (function globals) are not allowed"
            return None
        target = value.__func__ if type_(value) is method_type else value  # type: ignore[attr-defined]
        entry = object_verdict_get(id_(target))
        if entry is not None and entry[0] is target:
            return entry[1]
        reason = object_violation(target, verdict)  # type: ignore[arg-type]
        if len_(object_verdicts) < 10_000 and (
            type_(target) is not builtin_method_type
            or isinstance_(getattr_(target, "__self__", None), module_type)
        ):
            object_verdicts[id_(target)] = (target, reason)
        return reason

    def value_violation(value: object) -> str | None:
        t = type_(value)
        verdict = type_verdict_get(t)
        if verdict is None:
            verdict = classify(t)
        return None if verdict == plain else violation(value, verdict)

    def refuse(attr: str, reason: str) -> PermissionError:
        return permission_error(f"sandbox: attribute '{attr}': {reason}")

    # -- string dispatch ------------------------------------------------------------------

    def check_functions(value: object, method: str, full: bool, depth: int = 0) -> object:
        """``value`` (a function argument of ``method``) checked, as a fresh copy of any
        container so that nothing can swap a name in after the check."""
        if isinstance_(value, str_):
            if value in safe_names:
                return value
            raise permission_error(f"sandbox: {dispatch_message(method, value)}")
        if not full or value is None or callable_(value):
            return value
        t = type_(value)
        if depth >= 4:
            what = "containers nested this deep"
        elif isinstance_(value, list_):
            return [check_functions(v, method, full, depth + 1) for v in value]
        elif isinstance_(value, tuple_):
            return tuple_(check_functions(v, method, full, depth + 1) for v in value)
        elif isinstance_(value, sets):
            checked = [check_functions(v, method, full, depth + 1) for v in value]
            return set_(checked) if isinstance_(value, set_) else frozenset_(checked)
        elif isinstance_(value, dict_):
            return {k: check_functions(v, method, full, depth + 1) for k, v in value.items()}
        elif t.__name__ == "NamedAgg" and t.__module__ == "pandas":
            named: Any = value
            aggfunc = check_functions(named.aggfunc, method, full, depth + 1)
            return t(named.column, aggfunc, *named.args, **named.kwargs)
        else:
            what = t.__name__
        raise permission_error(
            f"sandbox: string dispatch: {method}() takes a function, a reduction name or a "
            f"list/dict of those here, not {what}"
        )

    def check_dispatch(
        method: Callable[..., Any],
        attr: str,
        kind: int,
        offset: int,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if kind == k_aggfunc:
            try:
                bound = signature(method).bind_partial(*args, **kwargs)
            except (TypeError, ValueError) as exc:
                raise type_error(f"{attr}(): {exc}") from None
            if "aggfunc" in bound.arguments:
                bound.arguments["aggfunc"] = check_functions(bound.arguments["aggfunc"], attr, True)
            return bound.args, bound.kwargs
        full = kind == k_full
        keywords = full_keywords if full else top_keywords
        kwargs = dict_(kwargs)
        function: object = None
        if len_(args) > offset:
            function = check_functions(args[offset], attr, full)
            args = (*args[:offset], function, *args[offset + 1 :])
        for key in keywords:
            if key in kwargs:
                kwargs[key] = check_functions(kwargs[key], attr, full)
                function = kwargs[key] if function is None else function
        if full and function is None:
            for key, value in kwargs.items():  # named aggregation: agg(x=("close", "max"))
                if key in not_named_agg or key in keywords:
                    continue
                if isinstance_(value, tuple_) and len_(value) > 1:
                    kwargs[key] = (value[0], *check_functions(value[1:], attr, True))  # type: ignore[misc]
                else:
                    kwargs[key] = check_functions(value, attr, True)
        return args, kwargs

    def dispatch_wrapper(
        method: Callable[..., Any], attr: str, kind: int, offset: int
    ) -> Callable[..., Any]:
        def checked(*args: Any, **kwargs: Any) -> Any:
            args, kwargs = check_dispatch(method, attr, kind, offset, args, kwargs)
            return method(*args, **kwargs)

        checked.__name__ = checked.__qualname__ = attr
        checked.__doc__ = getattr_(method, "__doc__", None)
        return checked

    def format_wrapper(method: Callable[..., Any], attr: str) -> Callable[..., Any]:
        def checked(*args: Any, **kwargs: Any) -> Any:
            if args and isinstance_(args[0], str_) and (field := format_field(args[0])):
                raise refuse(attr, format_message(field))
            return method(*args, **kwargs)

        checked.__name__ = checked.__qualname__ = attr
        return checked

    def special(obj: object, attr: str, kind: int, value: object) -> object:
        if kind == k_format:
            if isinstance_(obj, str_):
                if "{" in obj and (field := format_field(obj)) is not None:
                    raise refuse(attr, format_message(field))
                return value
            if isinstance_(obj, type_) and issubclass_(obj, str_):
                return format_wrapper(value, attr)  # type: ignore[arg-type]
            return value
        if not callable_(value) or isinstance_(obj, str_):
            return value
        # ``pd.DataFrame.agg`` (a function read from a class) takes the frame first.
        offset = 1 if isinstance_(obj, type_) and type_(value) is function_type else 0
        return dispatch_wrapper(value, attr, kind, offset)  # type: ignore[arg-type]

    # -- attribute reads and writes -------------------------------------------------------

    # Attribute names seen so far -> refusal reason, special kind, or None (plain).
    attr_kinds: dict[str, str | int | None] = {}
    attr_kind_get = attr_kinds.get
    unseen = object()

    def guarded_getattr(obj: object, attr: str) -> Any:
        """Every ``obj.attr`` read in strategy code goes through here. The common cases (a
        plain name; a plain value, or a module/function already judged) stay inline."""
        kind = attr_kind_get(attr, unseen)
        if kind is unseen:
            kind = attr_kind(attr)
            if len_(attr_kinds) < 10_000:
                attr_kinds[attr] = kind
        if type_(kind) is str_:
            raise refuse(attr, kind)  # type: ignore[arg-type]
        verdict = type_verdict_get(type_(obj))
        if verdict != plain:
            entry = object_verdict_get(id_(obj))
            if entry is None or entry[0] is not obj or entry[1] is not None:
                if verdict is None:
                    verdict = classify(type_(obj))
                if verdict != plain and (reason := violation(obj, verdict)) is not None:
                    raise refuse(attr, f"reading from it: {reason}")
        value = getattr_(obj, attr)
        verdict = type_verdict_get(type_(value))
        if verdict != plain:
            entry = object_verdict_get(id_(value))
            if entry is None or entry[0] is not value or entry[1] is not None:
                if verdict is None:
                    verdict = classify(type_(value))
                if verdict != plain and (reason := violation(value, verdict)) is not None:
                    raise refuse(attr, reason)
        if kind is None:
            return value
        return special(obj, attr, kind, value)  # type: ignore[arg-type]

    def guarded_target(obj: object, attr: str) -> object:
        """``obj`` in ``obj.attr = value`` / ``del obj.attr``: refuse patching library code."""
        reason = attr_violation(attr)
        if reason is None:
            if isinstance_(obj, module_or_class) or callable_(obj):
                reason = (
                    "attribute write: setting attributes of modules, classes and functions is "
                    "not allowed (it would change library code for the whole process); keep "
                    "state in variables"
                )
            else:
                reason = value_violation(obj)
        if reason is not None:
            raise refuse(attr, reason)
        return obj

    def guarded_import(
        name: str,
        globals: dict[str, Any] | None = None,
        locals: dict[str, Any] | None = None,
        fromlist: tuple[str, ...] | list[str] | None = (),
        level: int = 0,
    ) -> types.ModuleType | None:
        """``__import__`` for strategy code: admits only :data:`ALLOWED_MODULES` (imported
        lazily on first request, so ``alphaloop.backtest.indicators`` loads only when a
        strategy asks)."""
        if isinstance_(fromlist, list_) and not fromlist and not level:
            # C code running on behalf of a library (numpy's ``arr.sum()`` lazily importing
            # ``numpy._core._methods``) calls ``PyImport_Import``, which looks ``__import__``
            # up in the *strategy's* builtins and passes an empty list. Import statements pass
            # None or a tuple. PyImport_Import discards the return value and reads
            # sys.modules, so import for the side effect and hand nothing back.
            real_import(name, None, None, (), 0)
            return None
        if level:
            raise import_error("sandbox: relative imports are not allowed")
        names = [n for n in (fromlist or ()) if n != "*"]
        if fromlist and "*" in fromlist:
            raise import_error("sandbox: 'import *' is not allowed")
        reason = from_import_violation(name, names) if names else import_violation(name)
        if reason is not None:
            raise import_error(f"sandbox: {reason}")
        module = real_import(name, None, None, tuple_(names), 0)
        for n in names:
            try:
                value = getattr_(module, n)
            except AttributeError:
                continue  # the import statement itself raises "cannot import name"
            if (reason := value_violation(value)) is not None:
                raise import_error(f"sandbox: 'from {name} import {n}': {reason}")
        return module

    return _Guards(
        getattr=guarded_getattr,
        target=guarded_target,
        value_violation=value_violation,
        import_=guarded_import,
    )


_GUARDS: Final = _make_guards()
_guarded_getattr = _GUARDS.getattr
_guarded_target = _GUARDS.target
_guarded_import = _GUARDS.import_
_value_violation = _GUARDS.value_violation


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
_SAFE_BUILTINS: Mapping[str, Any] = MappingProxyType(
    {n: getattr(builtins, n) for n in _SAFE_BUILTIN_NAMES}
)


def safe_builtins(name: str | None = None) -> dict[str, Any]:
    """A fresh restricted ``__builtins__`` mapping for strategy code.

    Holds plain values, containers, pure functions and common exception classes; no
    ``open``/``exec``/``eval``/``compile``/``getattr``/``type``/``globals``/``vars``/
    ``input``/``breakpoint``/``__build_class__``. ``__import__`` admits only
    :data:`ALLOWED_MODULES`; ``print`` writes to the DEBUG logger
    ``alphaloop.strategy.NAME`` instead of stdout. (Not affected by ``ALPHALOOP_PY_SANDBOX``.)
    """
    table: dict[str, Any] = dict(_SAFE_BUILTINS)
    table["__import__"] = _GUARDS.import_
    table["print"] = _print_to_log(logging.getLogger(f"alphaloop.strategy.{name or 'unnamed'}"))
    return table


# ---------------------------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------------------------


class _GuardAttributes(ast.NodeTransformer):
    """Rewrite each attribute read ``x.a`` into ``__alphaloop_getattr__(x, 'a')``, and each
    write or delete target ``x.a`` into ``__alphaloop_target__(x, 'a').a``."""

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        self.generic_visit(node)
        guard = _GUARD_NAME if isinstance(node.ctx, ast.Load) else _TARGET_NAME
        call = ast.copy_location(
            ast.Call(
                func=ast.Name(id=guard, ctx=ast.Load()),
                args=[node.value, ast.Constant(value=node.attr)],
                keywords=[],
            ),
            node,
        )
        if isinstance(node.ctx, ast.Load):
            return call
        node.value = call
        return node


def strategy_filename(name: str) -> str:
    """The pseudo filename strategy code is compiled under (``<strategy NAME>``)."""
    return f"<strategy {name}>"


def _remember_source(source: str, name: str) -> None:
    # Let tracebacks (worker failure records) show the strategy's own lines.
    filename = strategy_filename(name)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)


def _compile(tree: ast.Module, source: str, name: str) -> types.CodeType:
    guarded = ast.fix_missing_locations(_GuardAttributes().visit(tree))
    code = compile(guarded, strategy_filename(name), "exec", dont_inherit=True)
    _remember_source(source, name)
    return code


def _namespace(name: str, _guards: _Guards = _GUARDS) -> dict[str, Any]:
    return {
        "__builtins__": safe_builtins(name),
        "__name__": f"alphaloop_strategy_{name}",
        _GUARD_NAME: _guards.getattr,
        _TARGET_NAME: _guards.target,
    }


def exec_source(source: str, name: str) -> dict[str, Any]:
    """Check, compile and execute strategy ``source``; return its module namespace.

    Raises ``StrategyError`` if the check fails or the module body raises (naming the line
    in the strategy source). The namespace holds ``generate_positions``, ``PARAMETERS`` and
    whatever else the module defines; functions in it keep the restricted builtins and the
    attribute guard when called later. With ``ALPHALOOP_PY_SANDBOX=off`` the source is
    executed unchecked, with the real builtins (test-only, unsafe).
    """
    if not python_checks_enabled():
        return _run_plain(source, name)
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


def _run_plain(source: str, name: str) -> dict[str, Any]:
    """Execute with no Python-level checks at all (``ALPHALOOP_PY_SANDBOX=off``)."""
    if not isinstance(source, str):
        raise _fail(name, None, f"source must be text, got {type(source).__name__}")
    try:
        code = compile(source, strategy_filename(name), "exec", dont_inherit=True)
    except SyntaxError as exc:
        msg = (exc.msg or "invalid syntax").replace("\n", " ")
        raise _fail(name, exc.lineno, f"syntax error: {msg}") from None
    except ValueError as exc:
        raise _fail(name, None, f"syntax error: {exc}") from None
    _remember_source(source, name)
    namespace: dict[str, Any] = {"__builtins__": builtins, "__name__": f"alphaloop_strategy_{name}"}
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
