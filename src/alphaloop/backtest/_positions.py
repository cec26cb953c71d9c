"""Running strategy code: compile the module, call ``generate_positions``, validate the result.

This is the only module that executes strategy code, and it does so only where it is allowed:

- in a kernel-confined process: `alphaloop.execution` forks one per strategy and calls
  `permit_execution()` after confining it;
- for the library's own files (shipped with alphaloop and trusted like it);
- inside `executing_in_process()`, which trusted callers (tests, benchmarks,
  `task_runner.run_task_in_process`) enter on purpose.

Anywhere else `compiled` raises `RuntimeError`: the orchestrator, the agents and the CLI read
strategies with `_source.inspect_source` and never run them.

The compiled module is checked against what was read statically: ``PARAMETERS`` must still
equal the literal (a module body that mutates it is refused) and ``generate_positions`` must
still accept every declared parameter.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from alphaloop.backtest._source import inspect_source, library_hashes
from alphaloop.errors import StrategyError

__all__ = [
    "compiled",
    "executing_in_process",
    "execution_permitted",
    "permit_execution",
    "run_positions",
    "validate_positions",
]

_PERMITTED = False  # this whole process may run strategy code (a confined child)
_local = threading.local()  # executing_in_process() depth, per thread


def permit_execution() -> None:
    """Let this process run any strategy code, for the rest of its life. Called by a confined
    child after the kernel confinement is in place; nothing else should call it."""
    global _PERMITTED
    _PERMITTED = True


@contextlib.contextmanager
def executing_in_process() -> Iterator[None]:
    """Run strategy code in this process, unconfined, inside the block (trusted code only:
    tests, benchmarks, a user's own notebook)."""
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        yield
    finally:
        _local.depth -= 1


def execution_permitted(source_hash: str) -> bool:
    """Whether code with this hash may run in this process now."""
    return (
        _PERMITTED or getattr(_local, "depth", 0) > 0 or source_hash in library_hashes()
    )


def _check_signature(fn: Callable[..., Any], specs: Mapping[str, Any], name: str) -> None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        raise StrategyError(
            f"strategy {name!r}: generate_positions must be a function defined with def"
        ) from None
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


@lru_cache(maxsize=128)
def _compile(source: str, name: str) -> Callable[..., Any]:
    from alphaloop.backtest import sandbox

    info = inspect_source(source, name)
    try:
        namespace = sandbox.exec_source(source, name)
    except StrategyError as exc:
        if isinstance(exc.__cause__, MemoryError):  # a limit, not a bug in the code
            raise exc.__cause__ from None
        raise
    fn = namespace.get("generate_positions")
    if not callable(fn):
        raise StrategyError(f"strategy {name!r}: generate_positions must be a function")
    try:
        same = namespace.get("PARAMETERS") == info.raw_parameters
    except Exception:
        same = False
    if not same:
        raise StrategyError(
            f"strategy {name!r}: PARAMETERS changed while the module ran; declare it once, as "
            "one literal dict, and do not modify it"
        )
    _check_signature(fn, info.parameters, name)
    return fn


def compiled(source: str, name: str) -> Callable[..., Any]:
    """``generate_positions`` of ``source``, compiled through the sandbox (cached per process).

    Raises `RuntimeError` where strategy code may not run (see the module docstring) and
    `StrategyError` if the sandbox refuses the code or the module body fails.
    """
    info = inspect_source(source, name)
    if not execution_permitted(info.code_hash):
        raise RuntimeError(
            f"strategy {name!r}: strategy code runs only in a kernel-confined process "
            "(alphaloop.execution); trusted code may use "
            "alphaloop.backtest.strategy.executing_in_process()"
        )
    return _compile(source, name)


def seed_random(source: str, kwargs: Mapping[str, Any]) -> None:
    """Seed numpy's global generator (``np.random.random`` & co) from the strategy's code and
    parameter values, just before a call into it: a strategy that draws from it (a coin-flip
    baseline) then gets the same numbers wherever and whenever a variant runs (any worker,
    any order, alone or in a grid) and the look-ahead check's runs on fewer bars draw the
    same prefix, instead of being accused of peeking. (The sandbox allows no other global
    generator; ``np.random.default_rng()`` without a seed stays the strategy's own choice.)"""
    key = repr(sorted((k, _plain(v)) for k, v in kwargs.items()))
    np.random.seed((_code_seed(source) ^ zlib.crc32(key.encode())) & 0xFFFFFFFF)


@lru_cache(maxsize=128)
def _code_seed(source: str) -> int:
    return int.from_bytes(hashlib.blake2b(source.encode(), digest_size=4).digest(), "little")


def _plain(value: Any) -> Any:
    """A parameter value as Python would write it: numpy's scalars and arrays (a grid's
    columns) compare and print like the values a single variant is given."""
    return value.tolist() if isinstance(value, np.ndarray | np.generic) else value


def run_positions(
    source: str, name: str, data: pd.DataFrame, kwargs: Mapping[str, Any]
) -> np.ndarray:
    """Call the strategy on ``data`` and return its validated positions."""
    fn = compiled(source, name)
    seed_random(source, kwargs)
    try:
        out = fn(data, **kwargs)
    except (StrategyError, MemoryError):  # running out of memory is a limit, not a bug
        raise
    except Exception as exc:
        from alphaloop.backtest import sandbox

        raise sandbox.strategy_error_from_exception(exc, name) from exc
    return validate_positions(out, data, name)


def _first_bad(mask: np.ndarray, index: pd.Index) -> tuple[int, str]:
    i = int(np.argmax(mask))
    label = index[i]
    text = (
        label.date().isoformat()
        if isinstance(label, pd.Timestamp) and label == label.normalize()
        else str(label)
    )
    return i, text


def validate_positions(out: object, data: pd.DataFrame, name: str) -> np.ndarray:
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

