"""Checks every bar of a file before anything uses it; nothing is dropped, filled or reordered.

Each failure is a one-line ``DataError`` naming the file, the first offending row (1-based data
row, header excluded; CSV messages also give the line) and its date, how many rows share the
problem, and what to do about it. Prices must be finite and within ``MIN_PRICE..MAX_PRICE``
(1e-8..1e12).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from alphaloop.data._read import PRICE_COLUMNS, RawBars
from alphaloop.errors import DataError

MIN_BARS = 30
"""Fewest bars a dataset (and a resampled series) may have: less is no basis for a backtest."""

MIN_PRICE, MAX_PRICE = 1e-8, 1e12
"""Prices outside this range are refused: below it (1e-320, say) returns and costs underflow
to nonsense, above it (1e308) they overflow to infinity; no traded instrument is quoted there,
so such a value is a unit or parsing mistake."""


def _fail(raw: RawBars, bad: np.ndarray, problem: str | Callable[[int], str], fix: str) -> None:
    """Raise for the first row flagged in ``bad`` (boolean per frame row), if any."""
    hits = np.flatnonzero(bad)
    if hits.size:
        i = int(hits[0])
        more = f" ({hits.size} rows like this)" if hits.size > 1 else ""
        raise DataError(f"{raw.at(i)}: {problem(i) if callable(problem) else problem}{more}; {fix}")


def validate(raw: RawBars) -> pd.DataFrame:
    """``raw.frame`` if every check passes, else raise ``DataError`` for the first failure."""
    frame = raw.frame
    _check_order(raw)
    values = {c: frame[c].to_numpy() for c in frame.columns}
    for column in PRICE_COLUMNS:
        v = values[column]
        _fail(raw, np.isnan(v), f"{column} is empty", "fill in the price or remove the row")
        _fail(raw, ~np.isfinite(v), f"{column} is infinite", "fix the price")
        _fail(
            raw,
            v <= 0,
            lambda i, v=v, c=column: f"{c} is {v[i]:.10g}, not positive",
            "prices must be > 0; fix the row or remove it",
        )
        _fail(
            raw,
            (v < MIN_PRICE) | (v > MAX_PRICE),
            lambda i, v=v, c=column: f"{c} is {v[i]:.10g}, outside {MIN_PRICE:g}..{MAX_PRICE:g}",
            "check the column's units (or its decimal point) and fix the row",
        )
    high, low = values["high"], values["low"]
    _fail(
        raw,
        high < low,
        lambda i: f"high {high[i]:.10g} is below low {low[i]:.10g}",
        "swap or correct the two values",
    )
    for column in ("open", "close"):
        v = values[column]
        _fail(
            raw,
            (v < low) | (v > high),
            lambda i, v=v, c=column: (
                f"{c} {v[i]:.10g} is outside [low {low[i]:.10g}, high {high[i]:.10g}]"
            ),
            "correct the row so low <= open, close <= high",
        )
    volume = values["volume"]
    _fail(
        raw,
        np.isnan(volume),
        "volume is empty",
        "fill it in (0 if unknown) or drop the volume column",
    )
    _fail(
        raw,
        ~np.isfinite(volume) | (volume < 0),
        lambda i: f"volume {volume[i]:.10g} is negative or infinite",
        "fix the volume",
    )
    if len(frame) < MIN_BARS:
        raise DataError(
            f"{raw.file} has {len(frame)} bars; at least {MIN_BARS} are needed; "
            "supply a longer history"
        )
    return frame


def _check_order(raw: RawBars) -> None:
    ns = raw.frame.index.asi8
    if len(ns) < 2:
        return
    step = np.diff(ns)
    hits = np.flatnonzero(step <= 0)
    if not hits.size:
        return
    i = int(hits[0]) + 1
    earlier = int(raw.rows[i - 1])
    if step[i - 1] == 0:
        raise DataError(
            f"{raw.at(i)}: repeats the timestamp of row {earlier}; remove the duplicate bar"
        )
    raise DataError(
        f"{raw.at(i)}: comes before row {earlier} in time; the rows must be in "
        "ascending date order: sort the file by date"
    )
