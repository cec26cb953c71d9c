"""Options shared by the commands that run strategy code: limits and kernel confinement."""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer

from alphaloop.errors import ConfigError

GiB = 1 << 30
MAX_MEMORY = 1 << 40
"""Largest ``--memory`` (1 TiB): beyond it the address-space limit is a typo, not a budget."""
MAX_SECONDS = 86_400.0
"""Longest ``--timeout`` (a day): beyond it the wait would overflow the clock."""
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)

TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout", help="Wall seconds the strategy may run before it is stopped (exit 2)."
    ),
]
MemoryOpt = Annotated[
    str,
    typer.Option(
        "--memory",
        help="Memory the strategy may allocate on top of Python and its libraries, e.g. "
        "2GiB, 512MiB (exit 2 when exceeded).",
    ),
]
NoAdjustOpt = Annotated[
    bool,
    typer.Option(
        "--no-adjust",
        help="Use a data file's prices as given, ignoring its 'Adj Close' column (default: "
        "adjust OHLC by it, as the embedded sample is; docs/data.md).",
    ),
]
BorrowOpt = Annotated[
    float,
    typer.Option(
        "--borrow-bps",
        help="Annual fee on short notional, basis points, accrued per bar (default 0).",
    ),
]
RebalanceOpt = Annotated[
    str,
    typer.Option(
        "--rebalance",
        help="'change': hold units until the target changes, as brokers do (default); "
        "'bar': constant weight, rebalanced at every open and close at the same cost.",
    ),
]
UnconfinedOpt = Annotated[
    bool,
    typer.Option(
        "--unconfined",
        help="Where the kernel cannot confine strategy code (not Linux, no seccomp or "
        "Landlock), run code from outside the library anyway. Unsafe: the code can then "
        "read your files and use the network.",
    ),
]


def parse_bytes(text: str, option: str = "--memory") -> int:
    """``"2GiB" -> 2147483648``; `ConfigError` naming ``option`` if it is not a size."""
    m = _SIZE.match(text)
    if not m:
        raise ConfigError(f"{option} {text!r} is not a size; write e.g. 2GiB, 512MiB or 3G")
    value = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if value < 64 << 20:
        raise ConfigError(f"{option} {text!r} is below 64 MiB; give the strategy more memory")
    if value > MAX_MEMORY:
        raise ConfigError(f"{option} {text!r} is above 1 TiB; write e.g. 2GiB or 16GiB")
    return value


def positive_seconds(value: float, option: str) -> float:
    """``value`` if it is a positive number of seconds up to `MAX_SECONDS`, else `ConfigError`
    naming ``option``."""
    if not 0 < value <= MAX_SECONDS:
        raise ConfigError(
            f"{option} must be a number of seconds above 0 and at most {MAX_SECONDS:g} "
            f"(a day), got {value:g}"
        )
    return value


def strategy_task(strategy: Any, task_id: str, *, unconfined: bool, **fields: Any) -> Any:
    """The `BacktestTask` a command runs for ``strategy`` (a `Strategy`): its code and name,
    marked runnable without kernel confinement only for library code or ``--unconfined``."""
    from alphaloop.execution import BacktestTask

    return BacktestTask(
        task_id=task_id,
        experiment_id="cli",
        variant_id=strategy.name,
        strategy_code=strategy.source,
        strategy_name=strategy.name,
        unconfined_ok=unconfined or strategy.is_library,
        **fields,
    )


def check_confinement(unconfined: bool, untrusted: list[str]) -> None:
    """Refuse to run ``untrusted`` strategies (named) when the kernel cannot confine them,
    unless ``--unconfined``; warn on stderr on every run with ``--unconfined``."""
    from alphaloop.execution import confinement
    from alphaloop.execution._jail import require_kernel

    if not unconfined:
        require_kernel(untrusted)
        return
    status = confinement()
    typer.echo(
        "warning: --unconfined: "
        + (
            "strategy code still runs confined (the kernel can confine it)"
            if status.ok
            else f"strategy code runs WITHOUT kernel confinement ({status.describe()})"
        ),
        err=True,
    )
