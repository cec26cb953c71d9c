"""The look-ahead check: do a strategy's positions change when later bars are removed?

A causal strategy decides bar ``t`` from bars up to ``t``, so its positions on data cut at a
date equal the full-data positions up to that date. The check recomputes the positions on
copies cut at about 20 dates and reports each date where they differ.

`lookahead_check` runs strategy code in the calling process: the reference, for trusted code
(`task_runner.run_task_in_process`, tests). A task's check is decided elsewhere: the worker
picks the cuts with `cut_points` from the full-data positions, a blind process that never held
bars beyond each cut computes the positions on them (`execution._blind`), and the worker
compares with `differs`; the same cuts, the same comparison, the same dates.
It can be evaded by code written to notice the cut (e.g. comparing the last date with one it
knows); `docs/sandbox.md` lists that among the residual risks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from alphaloop.errors import StrategyError

if TYPE_CHECKING:
    from alphaloop.backtest.strategy import Strategy

__all__ = ["ATOL", "CUTS", "cut_points", "differs", "lookahead_check"]

CUTS = 20
"""Cut points a task's check uses (``lookahead_check``'s default)."""
ATOL = 1e-9
"""Largest difference between cut and full-data positions that counts as equal."""


def cut_points(full: np.ndarray, n: int, cuts: int = CUTS) -> list[int]:
    """Cut lengths (bars kept, ascending, each in [2, n)) for full-data positions ``full`` of
    ``n`` bars: half evenly spaced over the second half, half right after position changes.

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


_cut_points = cut_points  # the name it had


def differs(part: np.ndarray, expected: np.ndarray, atol: float = ATOL) -> bool:
    """Whether the positions ``part`` computed on a cut differ from ``expected``, the
    full-data positions up to the cut (a different length, NaN or a value further than
    ``atol`` all count)."""
    if len(part) != len(expected):
        return True
    return not np.allclose(part, expected, rtol=0.0, atol=atol)


def lookahead_check(
    strategy: Strategy,
    data: pd.DataFrame,
    params: Mapping[str, Any] | None = None,
    cuts: int | Sequence[int | str | pd.Timestamp] = CUTS,
    *,
    atol: float = ATOL,
    full: np.ndarray | None = None,
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
    if full is None:  # the caller may pass the full-data positions it already has
        full = strategy.positions(data, resolved)
    n = len(data.index)
    if isinstance(cuts, int):
        lengths = cut_points(full, n, cuts)
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
        if differs(part, full[:k], atol):
            differ.append(data.index[k - 1])
    return differ
