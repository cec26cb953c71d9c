"""Parameter spaces: what a strategy's ``PARAMETERS`` declares, validated, and how CLI or
search values are parsed against it.

``PARAMETERS`` maps each parameter name to a plain dict, one of

- ``{"default": 10, "low": 2, "high": 100}`` — `IntRange` (optional ``"step"``);
- ``{"default": 2.0, "low": 0.5, "high": 4.0, "log": False}`` — `FloatRange` (optional
  ``"step"``; the range is float if any of default/low/high is a float);
- ``{"default": True, "choices": [True, False]}`` — `Choice` of str/int/float/bool values.

An integer range may add ``"unit": "days"``: the parameter is a lookback (a number of bars)
whose range is declared for daily bars. `scale_lookbacks` turns such ranges into bars of
another size (a 20-day lookback is 20 x bars-per-day bars) and clips them to what the data can
support; the search does that for the workflow's data. Unmarked ranges are never scaled.

`parse_parameters` turns the dict into specs (`StrategyError` naming the parameter at fault);
each spec's ``parse`` turns a CLI string or a number into an in-range value (`ValueError`).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from alphaloop.errors import ConfigError, StrategyError

__all__ = [
    "Choice",
    "FloatRange",
    "IntRange",
    "ParamSpec",
    "did_you_mean",
    "parse_assignments",
    "parse_parameters",
    "scale_lookbacks",
]

_TRUE = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "off", "0"})
Scalar = str | int | float | bool
Unit = Literal["days"]
"""The one unit a range may declare: a lookback in daily bars (see `scale_lookbacks`)."""


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
    unit: Unit | None = None

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
        """Short human text, e.g. ``int 2..100 (default 10)``, ``int 5..504 days (default
        126)`` for a lookback declared in days."""
        step = f" step {self.step}" if self.step else ""
        unit = f" {self.unit}" if self.unit else ""
        return f"int {self.low}..{self.high}{step}{unit} (default {self.default})"

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
        return (
            f"unknown key {loc!r} (allowed: default, low, high, step, log, unit, "
            "or default, choices)"
        )
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
    if "unit" in raw:
        raise ValueError(
            f"unit {raw['unit']!r} needs an integer range (a lookback is a number of bars), "
            f"got default, low, high = {values}"
        )
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


def _bars(days: float, bars_per_day: float) -> int:
    return math.floor(days * bars_per_day + 0.5)


def _scale_int(spec: IntRange, f: float, cap: float) -> dict[str, int]:
    floor = min(spec.low, 2)
    top = max(floor, cap)
    low = min(max(floor, _bars(spec.low, f)), top)
    high = min(max(low, _bars(spec.high, f)), top)
    default = min(max(low, _bars(spec.default, f)), high)
    out = {"low": low, "high": high, "default": default}
    if spec.step is not None and f != 1.0:
        step = max(1, _bars(spec.step, f))
        out["step"] = step
        out["default"] = min(low + round((default - low) / step) * step, high)
        while out["default"] > high:  # pragma: no cover - min() above keeps it in range
            out["default"] -= step
    return out


def _keep_order(specs: Mapping[str, IntRange], scaled: dict[str, dict[str, int]], key: str) -> None:
    """Where scaling made values of ``key`` (``low`` or ``default``) equal although the
    declaration ordered them (at the 2-bar floor, or at the cap), part them by a bar: each
    moves above every value declared below it while its range allows; failing that, a
    default moves below every value declared above it."""
    groups: dict[int, list[str]] = {}
    for name, spec in specs.items():
        groups.setdefault(getattr(spec, key), []).append(name)
    ordered = [groups[v] for v in sorted(groups)]
    movable = {n for n, s in specs.items() if scaled[n].get("step", 1) == 1}
    below = -math.inf
    for group in ordered:  # up, smallest first: a chain at the floor spreads upwards
        for n in group:
            if n in movable and scaled[n][key] <= below < scaled[n]["high"]:
                scaled[n][key] = int(below) + 1
                scaled[n]["default"] = max(scaled[n]["default"], scaled[n]["low"])
        below = max(below, *(scaled[n][key] for n in group))
    if key != "default":
        return
    above = math.inf
    for group in reversed(ordered):  # down, largest first: a chain at the cap spreads down
        for n in group:
            if n in movable and scaled[n][key] >= above > scaled[n]["low"]:
                scaled[n][key] = int(above) - 1
        above = min(above, *(scaled[n][key] for n in group))


def scale_lookbacks(
    specs: Mapping[str, IntRange | FloatRange | Choice],
    bars_per_day: float,
    max_bars: int | None = None,
) -> dict[str, IntRange | FloatRange | Choice]:
    """``specs`` with every range marked ``"unit": "days"`` turned into bars of a size with
    ``bars_per_day`` bars a day (daily 1, weekly 52/252, FX 4-hour bars about 6.2): each
    bound and the default multiplied by it, rounded half up. Other specs are kept as they are.

    - No bound goes below 2 bars (or the declared low, if that is lower); a ``step`` is
      scaled too (at least 1).
    - ``max_bars`` (a third of the bars the search tunes on) caps every bound: a lookback the
      data cannot support is not proposed.
    - The declared order of the lows and of the defaults stays strict (fast < slow): where the
      floor or the cap made two equal, they are parted by a bar where their ranges allow.

    A scaled range is a range of bars of that size: it loses the marker, so it is never
    scaled twice. With ``bars_per_day == 1`` and no cap below a declared bound, ``specs`` are
    returned as they are.
    """
    if not (math.isfinite(bars_per_day) and bars_per_day > 0):
        raise ValueError(f"bars_per_day must be a finite number > 0, got {bars_per_day!r}")
    cap = math.inf if max_bars is None else max_bars
    marked = {n: s for n, s in specs.items() if isinstance(s, IntRange) and s.unit == "days"}
    scaled = {n: _scale_int(s, bars_per_day, cap) for n, s in marked.items()}
    for key in ("low", "default"):
        _keep_order(marked, scaled, key)
    out = dict(specs)
    for name, values in scaled.items():
        spec = marked[name]
        if bars_per_day != 1.0 or any(getattr(spec, k) != v for k, v in values.items()):
            # now a range of bars of this size: unmarked, so it is never scaled twice
            out[name] = IntRange.model_validate(spec.model_dump(exclude={"kind", "unit"}) | values)
    return out


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """Split CLI ``NAME=VALUE`` strings into a dict (values stay strings for `resolve_params`)."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"parameter {item!r} must look like NAME=VALUE, e.g. fast=20")
        out[name.strip()] = value.strip()
    return out


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """``"did you mean 'x'? "`` for the closest of ``options``, or ``""``."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""

