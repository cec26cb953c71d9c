"""Strategies: source code defining ``generate_positions`` and ``PARAMETERS``, loaded safely.

A strategy is Python source (a library file, a user's file, or code an LLM wrote) that defines

- ``generate_positions(data: pd.DataFrame, **params) -> pd.Series``: the target position per
  bar, in [-1, 1], decided at that bar's close, on ``data.index``. A numpy array of one value per
  bar is accepted too (it is taken to be aligned with ``data``). Warm-up bars should be 0.
- ``PARAMETERS``: a dict, parameter name -> plain dict, one of
  ``{"default": 10, "low": 2, "high": 100}`` (int range, optional ``"step"``),
  ``{"default": 2.0, "low": 0.5, "high": 4.0, "log": False}`` (float range, optional
  ``"step"``; the range is float if any of default/low/high is a float) or
  ``{"default": True, "choices": [True, False]}`` (choice of str/int/float/bool values).
- a module docstring: the strategy's description (first line: the summary).

Every source, library files included, is loaded by `from_source`, which runs it through
`alphaloop.backtest.sandbox` (AST check, restricted builtins, import allow-list), so the
library uses exactly the form generated code must use. Loading and validation failures raise
`StrategyError`; bad user parameter values (``resolve_params``) raise `ConfigError`.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import inspect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from alphaloop.errors import ConfigError, StrategyError

__all__ = [
    "Choice",
    "FloatRange",
    "IntRange",
    "ParamSpec",
    "Strategy",
    "from_source",
    "library_names",
    "library_source",
    "load_strategy",
    "lookahead_check",
    "parse_assignments",
    "parse_parameters",
]

_LIBRARY_PACKAGE = "alphaloop.backtest.strategies"
_TRUE = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "off", "0"})
Scalar = str | int | float | bool


# -- parameter specifications -----------------------------------------------------------------
class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    def describe(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def parse(self, value: object) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """The plain-dict form used in ``PARAMETERS``."""
        return self.model_dump(exclude={"kind"}, exclude_defaults=True) | {
            "default": self.default  # type: ignore[attr-defined]
        }


def _check_step(value: float, low: float, step: float | None) -> None:
    if step is None:
        return
    k = (value - low) / step
    if abs(k - round(k)) > 1e-9:
        raise ValueError(f"{value!r} is not on the grid low + k * step (low={low}, step={step})")


class IntRange(_Spec):
    """Integer range ``low <= value <= high`` (optionally on the grid ``low + k * step``)."""

    kind: Literal["int"] = "int"
    default: int
    low: int
    high: int
    step: int | None = None

    @model_validator(mode="after")
    def _consistent(self) -> IntRange:
        if not self.low <= self.default <= self.high:
            raise ValueError(
                f"need low <= default <= high, got low={self.low}, default={self.default}, "
                f"high={self.high}"
            )
        if self.step is not None:
            if self.step < 1:
                raise ValueError(f"step must be >= 1, got {self.step}")
            _check_step(self.default, self.low, self.step)
        return self

    def describe(self) -> str:
        """Short human text, e.g. ``int 2..100 (default 10)``."""
        step = f" step {self.step}" if self.step else ""
        return f"int {self.low}..{self.high}{step} (default {self.default})"

    def parse(self, value: object) -> int:
        """Parse a CLI string or a number to an in-range int; `ValueError` if impossible."""
        if isinstance(value, bool):
            raise ValueError(f"must be an integer, got {value!r}")
        if isinstance(value, str):
            text = value.strip()
            try:
                number: int | float = int(text)
            except ValueError:
                try:
                    number = float(text)
                except ValueError:
                    raise ValueError(f"must be an integer, got {value!r}") from None
        elif isinstance(value, int | float | np.integer | np.floating):
            number = value.item() if isinstance(value, np.generic) else value
        else:
            raise ValueError(f"must be an integer, got {value!r}")
        if isinstance(number, float):
            if not (math.isfinite(number) and number.is_integer()):
                raise ValueError(f"must be an integer, got {value!r}")
            number = int(number)
        if not self.low <= number <= self.high:
            raise ValueError(f"{number} is out of range [{self.low}, {self.high}]")
        _check_step(number, self.low, self.step)
        return number


class FloatRange(_Spec):
    """Float range ``low <= value <= high``; ``log`` means sample it on a log scale."""

    kind: Literal["float"] = "float"
    default: float
    low: float
    high: float
    log: bool = False
    step: float | None = None

    @model_validator(mode="after")
    def _consistent(self) -> FloatRange:
        for key in ("default", "low", "high"):
            if not math.isfinite(getattr(self, key)):
                raise ValueError(f"{key} must be finite, got {getattr(self, key)}")
        if not self.low <= self.default <= self.high:
            raise ValueError(
                f"need low <= default <= high, got low={self.low}, default={self.default}, "
                f"high={self.high}"
            )
        if self.log and self.low <= 0:
            raise ValueError(f"log=True needs low > 0, got low={self.low}")
        if self.step is not None:
            if not self.step > 0:
                raise ValueError(f"step must be > 0, got {self.step}")
            if self.log:
                raise ValueError("step and log=True cannot be combined")
            _check_step(self.default, self.low, self.step)
        return self

    def describe(self) -> str:
        """Short human text, e.g. ``float 0.5..4.0 log (default 2.0)``."""
        extra = " log" if self.log else (f" step {self.step}" if self.step else "")
        return f"float {self.low:g}..{self.high:g}{extra} (default {self.default:g})"

    def parse(self, value: object) -> float:
        """Parse a CLI string or a number to an in-range float; `ValueError` if impossible."""
        if isinstance(value, bool):
            raise ValueError(f"must be a number, got {value!r}")
        try:
            number = float(value.strip() if isinstance(value, str) else value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"must be finite, got {value!r}")
        if not self.low <= number <= self.high:
            raise ValueError(f"{number:g} is out of range [{self.low:g}, {self.high:g}]")
        _check_step(number, self.low, self.step)
        return number


def _same(a: object, b: object) -> bool:
    """Equality that does not confuse True with 1 or 1 with 1.0."""
    return type(a) is type(b) and a == b


class Choice(_Spec):
    """One of a fixed list of values (str, int, float or bool)."""

    kind: Literal["choice"] = "choice"
    default: Scalar
    choices: tuple[Scalar, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _listify(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and isinstance(raw.get("choices"), list):
            raw = {**raw, "choices": tuple(raw["choices"])}
        return raw

    @model_validator(mode="after")
    def _consistent(self) -> Choice:
        for i, c in enumerate(self.choices):
            if any(_same(c, d) for d in self.choices[:i]):
                raise ValueError(f"choice {c!r} is listed twice")
        if not any(_same(self.default, c) for c in self.choices):
            raise ValueError(
                f"default {self.default!r} is not one of the choices {list(self.choices)}"
            )
        return self

    def describe(self) -> str:
        """Short human text, e.g. ``True|False (default True)``."""
        return f"{'|'.join(str(c) for c in self.choices)} (default {self.default})"

    def parse(self, value: object) -> Scalar:
        """Map a CLI string (``"false"``, ``"20"``) or a value to one of the choices."""
        for c in self.choices:
            if _same(value, c):
                return c
        for c in self.choices:
            if isinstance(c, bool):
                if isinstance(value, str):
                    text = value.strip().lower()
                    if (text in _TRUE and c) or (text in _FALSE and not c):
                        return c
            elif isinstance(c, int | float) and not isinstance(value, bool):
                try:
                    if type(c)(value.strip() if isinstance(value, str) else value) == c:  # type: ignore[arg-type]
                        return c
                except (TypeError, ValueError):
                    pass
            elif isinstance(c, str) and isinstance(value, str) and value.strip() == c:
                return c
        raise ValueError(f"{value!r} is not one of {list(self.choices)}")

    def to_dict(self) -> dict[str, Any]:
        """The plain-dict form used in ``PARAMETERS``."""
        return {"default": self.default, "choices": list(self.choices)}


ParamSpec = Annotated[IntRange | FloatRange | Choice, Field(discriminator="kind")]
"""A parameter's declared space: `IntRange`, `FloatRange` or `Choice`."""


def _one_line(exc: ValidationError) -> str:
    err = exc.errors()[0]
    msg = str(err["msg"]).removeprefix("Value error, ")
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"unknown key {loc!r} (allowed: default, low, high, step, log, or default, choices)"
    if err["type"] == "missing":
        return f"missing key {loc!r}"
    return f"{loc}: {msg}" if loc else msg


def _parse_spec(raw: object) -> IntRange | FloatRange | Choice:
    if not isinstance(raw, dict):
        raise ValueError(
            f"must be a dict like {{'default': 10, 'low': 2, 'high': 100}}, got {raw!r}"
        )
    if "choices" in raw:
        if not isinstance(raw["choices"], list | tuple):
            raise ValueError(f"choices must be a list, got {raw['choices']!r}")
        return Choice.model_validate(raw)
    values = [raw.get(k) for k in ("default", "low", "high")]
    missing = [k for k in ("default", "low", "high") if k not in raw]
    if missing:
        raise ValueError(
            f"missing {', '.join(missing)}; a range needs default, low and high "
            "(or use default + choices)"
        )
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in values):
        raise ValueError(
            f"default, low and high must be numbers, got {values}; for True/False use choices"
        )
    if all(isinstance(v, int) for v in values) and not isinstance(raw.get("step", 1), float):
        return IntRange.model_validate(raw)
    return FloatRange.model_validate(
        {**raw, **{k: float(raw[k]) for k in ("default", "low", "high")}}
    )


def parse_parameters(raw: object, strategy: str) -> dict[str, IntRange | FloatRange | Choice]:
    """Validate a ``PARAMETERS`` dict into specs; `StrategyError` names the parameter at fault."""
    if not isinstance(raw, dict):
        raise StrategyError(
            f"strategy {strategy!r}: PARAMETERS must be a dict of name -> spec, "
            f"got {type(raw).__name__}"
        )
    specs: dict[str, IntRange | FloatRange | Choice] = {}
    for name, spec in raw.items():
        if not (isinstance(name, str) and name.isidentifier()):
            raise StrategyError(
                f"strategy {strategy!r}: parameter name {name!r} must be a Python identifier"
            )
        try:
            specs[name] = _parse_spec(spec)
        except ValidationError as exc:
            raise StrategyError(
                f"strategy {strategy!r} parameter {name!r}: {_one_line(exc)}"
            ) from None
        except ValueError as exc:
            raise StrategyError(f"strategy {strategy!r} parameter {name!r}: {exc}") from None
    return specs


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """Split CLI ``NAME=VALUE`` strings into a dict (values stay strings for `resolve_params`)."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"parameter {item!r} must look like NAME=VALUE, e.g. fast=20")
        out[name.strip()] = value.strip()
    return out


def _did_you_mean(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


# -- the strategy ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Strategy:
    """A loaded, validated strategy. Immutable; build it with `from_source` / `load_strategy`."""

    name: str
    source: str = field(repr=False, compare=False)
    description: str = field(repr=False, compare=False)
    parameters: Mapping[str, IntRange | FloatRange | Choice] = field(repr=False, compare=False)
    code_hash: str
    _generate: Callable[..., Any] = field(repr=False, compare=False)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as its source: a worker process reloads it through the sandbox.
        return (from_source, (self.source, self.name))

    @property
    def summary(self) -> str:
        """First line of the description."""
        return self.description.strip().splitlines()[0] if self.description.strip() else ""

    def defaults(self) -> dict[str, Any]:
        """Each parameter's default value."""
        return {name: spec.default for name, spec in self.parameters.items()}

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
                    f"{_did_you_mean(name, self.parameters)}parameters: {known}"
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

        ``params`` should come from `resolve_params` (missing names take their defaults; values
        are not re-checked here, so a grid pays for that once). Raises `StrategyError` if the
        code raises (naming the line), or returns the wrong type, length or index, NaN, or a
        value outside [-1, 1] (naming the first bad date).
        """
        kwargs = self.defaults() if params is None else params
        if len(kwargs) != len(self.parameters) or any(k not in kwargs for k in self.parameters):
            kwargs = {**self.defaults(), **kwargs}
        try:
            out = self._generate(data, **kwargs)
        except StrategyError:
            raise
        except Exception as exc:
            from alphaloop.backtest import sandbox

            raise sandbox.strategy_error_from_exception(exc, self.name) from exc
        return _validate_positions(out, data, self.name)


def _first_bad(mask: np.ndarray, index: pd.Index) -> tuple[int, str]:
    i = int(np.argmax(mask))
    label = index[i]
    text = (
        label.date().isoformat()
        if isinstance(label, pd.Timestamp) and label == label.normalize()
        else str(label)
    )
    return i, text


def _validate_positions(out: object, data: pd.DataFrame, name: str) -> np.ndarray:
    """Check a ``generate_positions`` result and return it as a float64 array."""
    n = len(data.index)
    where = f"strategy {name!r}: generate_positions"
    if isinstance(out, pd.Series):
        if len(out) != n:
            raise StrategyError(
                f"{where} returned {len(out)} positions for {n} bars; return one per bar, "
                "e.g. pd.Series(pos, index=data.index)"
            )
        if out.index is not data.index and not out.index.equals(data.index):
            raise StrategyError(
                f"{where} returned a Series whose index differs from data.index; "
                "build it with pd.Series(pos, index=data.index)"
            )
        if isinstance(out.dtype, np.dtype):
            values = out.to_numpy()
        else:  # nullable / arrow dtypes: missing values become NaN (reported below)
            try:
                values = out.to_numpy(dtype=np.float64, na_value=np.nan)
            except (TypeError, ValueError):
                values = out.to_numpy()
    elif isinstance(out, np.ndarray):
        if out.ndim != 1 or out.shape[0] != n:
            raise StrategyError(
                f"{where} returned an array of shape {out.shape} for {n} bars; return one "
                "position per bar, e.g. pd.Series(pos, index=data.index)"
            )
        values = out
    else:
        raise StrategyError(
            f"{where} returned {type(out).__name__}; return a pandas Series of positions on "
            "data.index (or a numpy array of one value per bar)"
        )
    if values.dtype != np.float64:
        if values.dtype.kind not in "biuf":
            raise StrategyError(
                f"{where} returned values of dtype {values.dtype}; positions must be numbers "
                "in [-1, 1]"
            )
        values = values.astype(np.float64)
    if n == 0:
        return values
    low, high = values.min(), values.max()  # NaN propagates, so one pass finds every problem
    if not (low >= -1.0 and high <= 1.0):
        nan = np.isnan(values)
        if nan.any():
            _, date = _first_bad(nan, data.index)
            raise StrategyError(
                f"{where} returned NaN at {date} (first of {int(nan.sum())}); "
                "fill warm-up bars with 0 (flat), e.g. np.nan_to_num(pos) or .fillna(0)"
            )
        i, date = _first_bad(np.abs(values) > 1.0, data.index)
        raise StrategyError(
            f"{where} returned {float(values[i])!r} at {date}; positions must lie in [-1, 1] "
            "(clip them, e.g. np.clip(pos, -1, 1))"
        )
    return values


# -- loading --------------------------------------------------------------------------------
def _docstring(namespace: Mapping[str, Any], source: str) -> str:
    doc = namespace.get("__doc__")
    if not isinstance(doc, str):
        try:
            doc = ast.get_docstring(ast.parse(source))
        except SyntaxError:  # pragma: no cover - the sandbox rejected it first
            doc = None
    return inspect.cleandoc(doc) if doc else ""


def _check_signature(fn: Callable[..., Any], specs: Mapping[str, Any], name: str) -> None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # pragma: no cover - builtins only
        return
    params = list(sig.parameters.values())
    if not params or params[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise StrategyError(
            f"strategy {name!r}: generate_positions must take the data as its first argument: "
            "def generate_positions(data, **params)"
        )
    rest = params[1:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in rest):
        return
    accepted = {p.name for p in rest if p.kind is not inspect.Parameter.VAR_POSITIONAL}
    for pname in specs:
        if pname not in accepted:
            raise StrategyError(
                f"strategy {name!r}: PARAMETERS declares {pname!r} but generate_positions does "
                f"not accept it; add {pname}=... to its signature"
            )
    for p in rest:
        if (
            p.name not in specs
            and p.default is inspect.Parameter.empty
            and p.kind not in (inspect.Parameter.VAR_POSITIONAL,)
        ):
            raise StrategyError(
                f"strategy {name!r}: generate_positions argument {p.name!r} has no default and "
                "is not in PARAMETERS; declare it or give it a default"
            )


@lru_cache(maxsize=128)
def _from_source_cached(source: str, name: str) -> Strategy:
    from alphaloop.backtest import sandbox

    namespace = sandbox.exec_source(source, name)
    fn = namespace.get("generate_positions")
    if fn is None:
        raise StrategyError(
            f"strategy {name!r} defines no generate_positions; add "
            "def generate_positions(data, **params) -> pd.Series"
        )
    if not callable(fn):
        raise StrategyError(f"strategy {name!r}: generate_positions must be a function")
    if "PARAMETERS" not in namespace:
        raise StrategyError(
            f"strategy {name!r} defines no PARAMETERS; add PARAMETERS = {{}} (or declare its "
            "parameters, e.g. {'fast': {'default': 10, 'low': 2, 'high': 100}})"
        )
    specs = parse_parameters(namespace["PARAMETERS"], name)
    _check_signature(fn, specs, name)
    return Strategy(
        name=name,
        source=source,
        description=_docstring(namespace, source),
        parameters=MappingProxyType(specs),
        code_hash=hashlib.sha256(source.encode()).hexdigest()[:12],
        _generate=fn,
    )


def from_source(source: str, name: str) -> Strategy:
    """Load a strategy from its source code through the sandbox (cached per process).

    Raises `StrategyError` if the sandbox rejects the code, it fails to execute, or it lacks a
    valid ``generate_positions`` / ``PARAMETERS``.
    """
    if not isinstance(source, str):
        raise StrategyError(f"strategy {name!r}: source must be text, got {type(source).__name__}")
    return _from_source_cached(source, name)


def library_names() -> list[str]:
    """Names of the strategies shipped in ``alphaloop/backtest/strategies/``, sorted."""
    root = resources.files(_LIBRARY_PACKAGE)
    return sorted(
        entry.name[:-3]
        for entry in root.iterdir()
        if entry.name.endswith(".py") and not entry.name.startswith("_")
    )


def library_source(name: str) -> str:
    """Source text of library strategy ``name`` (`StrategyError` if there is none)."""
    names = library_names()
    if name not in names:
        raise StrategyError(
            f"unknown strategy {name!r}; {_did_you_mean(name, names)}"
            f"library strategies: {', '.join(names)} (or pass a path to a .py file)"
        )
    return resources.files(_LIBRARY_PACKAGE).joinpath(f"{name}.py").read_text(encoding="utf-8")


def _looks_like_path(text: str) -> bool:
    return text.endswith(".py") or "/" in text or "\\" in text or text.startswith(".")


def load_strategy(name_or_path: str | Path) -> Strategy:
    """A library strategy by name, or the strategy in a ``.py`` file (named by its stem)."""
    if isinstance(name_or_path, Path) or _looks_like_path(str(name_or_path)):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            names = library_names()
            hint = _did_you_mean(path.stem, names)
            raise StrategyError(
                f"strategy file {str(path)!r} not found; {hint}"
                f"library strategies: {', '.join(names)}"
            )
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise StrategyError(f"cannot read strategy file {str(path)!r}: {exc}") from None
        return from_source(source, path.stem)
    return from_source(library_source(str(name_or_path)), str(name_or_path))


# -- look-ahead detection -------------------------------------------------------------------
def _cut_points(full: np.ndarray, n: int, cuts: int) -> list[int]:
    """Cut lengths: half evenly spaced over the second half, half right after position changes.

    Cutting the data so that it ends at a bar where the full-data position changes is what
    exposes a strategy peeking one bar ahead: its decision there needs the next bar.
    """
    if n < 4:
        return []
    spaced = np.linspace(n // 2, n - 1, num=max(1, cuts - cuts // 2)).astype(int)
    changes = np.flatnonzero(np.diff(full) != 0.0) + 1  # bar t where position[t] != [t-1]
    changes = changes[changes >= 10]
    if changes.size > cuts // 2:
        changes = changes[np.linspace(0, changes.size - 1, num=cuts // 2).astype(int)]
    lengths = {int(k) for k in spaced} | {int(t) + 1 for t in changes}  # data ends at bar t
    return sorted(k for k in lengths if 2 <= k < n)


def lookahead_check(
    strategy: Strategy,
    data: pd.DataFrame,
    params: Mapping[str, Any] | None = None,
    cuts: int | Sequence[int | str | pd.Timestamp] = 20,
    *,
    atol: float = 1e-9,
) -> list[pd.Timestamp]:
    """Dates at which the strategy's positions depend on later data (empty list: none found).

    For each cut, positions are recomputed on ``data`` ending at the cut date (inclusive) and
    compared with the full-data positions up to that date; a causal strategy gives the same
    values. ``cuts`` is a number of cut points (about half spread over the second half of the
    data, half right after bars where the position changes, where a one-bar peek shows) or
    explicit cut dates / bar counts. A cut where the strategy fails (e.g. NaN at the last bar
    from ``shift(-1)``) although it succeeds on the full data counts as differing.
    """
    resolved = strategy.resolve_params(params or {})
    full = strategy.positions(data, resolved)
    n = len(data.index)
    if isinstance(cuts, int):
        lengths = _cut_points(full, n, cuts)
    else:
        lengths = []
        for c in cuts:
            if isinstance(c, int | np.integer) and not isinstance(c, bool):
                lengths.append(int(c))
            else:
                lengths.append(int(data.index.searchsorted(pd.Timestamp(c), side="right")))
        lengths = sorted({k for k in lengths if 1 <= k <= n})
    differ: list[pd.Timestamp] = []
    for k in lengths:
        try:
            part = strategy.positions(data.iloc[:k], resolved)
        except StrategyError:
            differ.append(data.index[k - 1])
            continue
        if not np.allclose(part, full[:k], rtol=0.0, atol=atol):
            differ.append(data.index[k - 1])
    return differ
