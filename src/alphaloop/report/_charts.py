"""Charts as inline SVG, drawn here in Python: no chart library, no script, nothing fetched.

Long series are thinned to at most `MAX_POINTS` points per line by keeping each bucket's
lowest and highest value (`thin`), so a drawdown's trough or a peak is never smoothed away.
Every chart is a ``<svg class="chart">`` with a ``viewBox``, scaled to the page's width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np
import pandas as pd

__all__ = ["MAX_POINTS", "Line", "heatmap", "line_chart", "thin", "trajectory_chart"]

MAX_POINTS = 1500
"""Most points drawn per line; a longer series keeps each bucket's extremes."""

WIDTH, HEIGHT = 960, 280
LEFT, RIGHT, TOP, BOTTOM = 58, 16, 26, 28
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class Line:
    """A series to draw: ``values`` per bar, a legend ``label`` and a CSS ``color``."""

    label: str
    values: np.ndarray
    color: str
    fill: bool = False  # shade between the line and zero (the underwater curve)
    dash: str = ""


def thin(values: np.ndarray, limit: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most ``limit`` points of ``values`` that keep its shape: the first and
    last points and, in each of ``limit // 2 - 1`` equal buckets, the lowest and the highest
    (NaNs are skipped)."""
    n = len(values)
    if n <= limit:
        return np.arange(n)
    buckets = max(1, limit // 2 - 1)
    edges = np.linspace(0, n, buckets + 1).astype(int)
    sizes = np.diff(edges)  # each >= 2: n > limit >= 2 * buckets
    finite = np.isfinite(values)
    bucket = np.repeat(np.arange(buckets), sizes)
    # sorted by bucket, then by value (stable: the first of equal values comes first), the
    # first index of each bucket is its lowest point; NaNs sort last and never win
    low = np.lexsort((np.where(finite, values, np.inf), bucket))[edges[:-1]]
    high = np.lexsort((np.where(finite, -values, np.inf), bucket))[edges[:-1]]
    some = np.add.reduceat(finite.astype(np.int64), edges[:-1]) > 0
    keep = np.concatenate([[0, n - 1], low[some], high[some]])
    return np.unique(keep)


def _nice_step(span: float, ticks: int = 5) -> float:
    raw = span / max(ticks, 1)
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _y_ticks(lo: float, hi: float) -> list[float]:
    step = _nice_step(hi - lo)
    first = math.ceil(lo / step) * step
    out, y = [], first
    while y <= hi + step * 1e-9 and len(out) < 12:
        out.append(round(y, 12))
        y += step
    return out


def _date_ticks(dates: pd.DatetimeIndex) -> list[tuple[int, str]]:
    """(bar index, label) at the first bar of each year, or of each month for a short range."""
    if len(dates) < 2:
        return []
    years = dates.year
    if years[-1] - years[0] >= 2:
        idx = np.flatnonzero(np.r_[True, years[1:] != years[:-1]])
        step = max(1, math.ceil(len(idx) / 14))
        return [(int(i), str(years[i])) for i in idx[::step]]
    months = dates.year * 12 + dates.month
    idx = np.flatnonzero(np.r_[True, months[1:] != months[:-1]])
    step = max(1, math.ceil(len(idx) / 12))
    return [(int(i), f"{MONTHS[dates.month[i] - 1]} {dates.year[i]}") for i in idx[::step]]


def _fmt(value: float, percent: bool) -> str:
    if abs(value) < 1e-12:
        return "0%" if percent else "0"
    if percent:
        return f"{value * 100:.0f}%" if abs(value) >= 0.1 else f"{value * 100:.1f}%"
    return f"{value:.4g}"


class _Frame:
    """Scales from data to pixels for one chart."""

    def __init__(self, n: int, lo: float, hi: float, height: int) -> None:
        if not hi > lo:
            lo, hi = lo - 0.5, hi + 0.5
        pad = (hi - lo) * 0.04
        self.lo, self.hi = lo - pad, hi + pad
        self.n = max(n - 1, 1)
        self.height = height

    def x(self, i: float) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * i / self.n

    def y(self, v: float) -> float:
        plot = self.height - TOP - BOTTOM
        return TOP + plot * (self.hi - v) / (self.hi - self.lo)


def _path(frame: _Frame, values: np.ndarray) -> str:
    idx = thin(values)
    parts: list[str] = []
    pen = "M"
    for i in idx:
        v = values[i]
        if not math.isfinite(v):
            pen = "M"
            continue
        parts.append(f"{pen}{frame.x(i):.1f},{frame.y(v):.1f}")
        pen = "L"
    return "".join(parts)


def _axes(frame: _Frame, dates: pd.DatetimeIndex | None, percent: bool,
          x_labels: Sequence[tuple[int, str]] = ()) -> list[str]:
    out = []
    for t in _y_ticks(frame.lo, frame.hi):
        y = frame.y(t)
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" '
                   f'y2="{y:.1f}"/><text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" '
                   f'text-anchor="end">{_fmt(t, percent)}</text>')
    ticks = list(x_labels) if x_labels else ([] if dates is None else _date_ticks(dates))
    base = frame.height - BOTTOM
    for i, label in ticks:
        x = frame.x(i)
        out.append(f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{base}" '
                   f'y2="{base + 4}"/><text class="tick" x="{x:.1f}" y="{base + 16}" '
                   f'text-anchor="middle">{escape(label)}</text>')
    out.append(f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{base}" y2="{base}"/>')
    return out


def _legend(lines: Sequence[Line]) -> str:
    out, x = [], LEFT
    for line in lines:
        out.append(f'<rect x="{x}" y="6" width="14" height="4" fill="{line.color}"/>'
                   f'<text class="legend" x="{x + 18}" y="12">{escape(line.label)}</text>')
        x += 26 + 7 * len(line.label)
    return "".join(out)


def _boundary(frame: _Frame, at: int | None, n: int) -> str:
    """The holdout shaded from bar ``at`` on, its first bar marked."""
    if at is None or not 0 < at < n:
        return ""
    x0, x1 = frame.x(at), frame.x(n - 1)
    bottom = frame.height - BOTTOM
    return (f'<rect class="holdout" x="{x0:.1f}" y="{TOP}" width="{max(x1 - x0, 1):.1f}" '
            f'height="{bottom - TOP}"/><line class="boundary" x1="{x0:.1f}" x2="{x0:.1f}" '
            f'y1="{TOP - 4}" y2="{bottom}"/><text class="note" x="{x0 + 4:.1f}" '
            f'y="{TOP + 10}">holdout &#8594;</text><text class="note" x="{x0 - 4:.1f}" '
            f'y="{TOP + 10}" text-anchor="end">&#8592; in-sample</text>')


def line_chart(title: str, dates: pd.DatetimeIndex, lines: Sequence[Line], *,
               percent: bool = False, boundary: int | None = None, height: int = HEIGHT,
               marks: str = "", extra_range: Sequence[float] = ()) -> str:
    """Lines over bars (x: bar index, labelled by date), the holdout shaded from
    ``boundary``; ``marks`` is extra SVG drawn on top (`trade_marks`)."""
    finite = [v[np.isfinite(v)] for v in (line.values for line in lines)]
    values = np.concatenate([*finite, np.asarray(extra_range, dtype=float)])
    lo = float(values.min()) if values.size else 0.0
    hi = float(values.max()) if values.size else 1.0
    if any(line.fill for line in lines):
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    frame = _Frame(len(dates), lo, hi, height)
    body = [_boundary(frame, boundary, len(dates)), *_axes(frame, dates, percent)]
    for line in lines:
        d = _path(frame, line.values)
        ends = np.flatnonzero(np.isfinite(line.values))
        if line.fill and d and ends.size:
            zero = frame.y(0.0)
            first, last = frame.x(ends[0]), frame.x(ends[-1])
            body.append(f'<path d="{d}L{last:.1f},{zero:.1f}L{first:.1f},{zero:.1f}Z" '
                        f'fill="{line.color}" fill-opacity="0.25" stroke="none"/>')
        dash = f' stroke-dasharray="{line.dash}"' if line.dash else ""
        body.append(f'<path class="line" d="{d}" stroke="{line.color}"{dash}/>')
    return _svg(title, height, [_legend(lines), *body, marks])


def _svg(title: str, height: int, body: Sequence[str]) -> str:
    return (f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
            f'aria-label="{escape(title)}">'
            f'<title>{escape(title)}</title>{"".join(body)}</svg>')


def price_chart(title: str, dates: pd.DatetimeIndex, close: np.ndarray,
                trades: Sequence[dict], boundary: int | None) -> str:
    """The close with each trade marked: an entry as a triangle (up: long, down: short), an
    exit as a ring; a trade's ``title`` gives its dates and return."""
    finite = close[np.isfinite(close)]
    frame = _Frame(len(dates), float(finite.min()), float(finite.max()), HEIGHT)
    where = {d: i for i, d in enumerate(dates.strftime("%Y-%m-%dT%H:%M:%S"))}
    longs, shorts, exits = [], [], []
    for t in trades:
        i = where.get(str(t.get("entry_date"))[:19])
        if i is not None:
            x, y = frame.x(i), frame.y(float(t["entry_price"]))
            if t.get("side") == "short":
                shorts.append(f"M{x:.1f},{y + 6:.1f}l-4,-8h8z")
            else:
                longs.append(f"M{x:.1f},{y - 6:.1f}l-4,8h8z")
        j = where.get(str(t.get("exit_date"))[:19])
        if j is not None and not t.get("is_open"):
            exits.append(f"M{frame.x(j) - 3:.1f},{frame.y(float(t['exit_price'])):.1f}"
                         "a3,3 0 1,0 6,0a3,3 0 1,0 -6,0")
    marks = "".join(
        f'<path class="{cls}" d="{"".join(parts)}"/>'
        for cls, parts in (("long", longs), ("short", shorts), ("exit", exits)) if parts)
    lines = [Line("close", close, "#4b5563"),
             Line(f"long entry ({len(longs)})", np.array([]), "#15803d"),
             Line(f"short entry ({len(shorts)})", np.array([]), "#b91c1c"),
             Line(f"exit ({len(exits)})", np.array([]), "#1d4ed8")]
    body = [_boundary(frame, boundary, len(dates)), *_axes(frame, dates, False),
            f'<path class="line" d="{_path(frame, close)}" stroke="#4b5563"/>', marks]
    return _svg(title, HEIGHT, [_legend(lines), *body])


def _cell_color(r: float | None, scale: float) -> str:
    if r is None or not math.isfinite(r):
        return "#f3f4f6"
    t = max(-1.0, min(1.0, r / scale))
    if t >= 0:  # white to green
        return f"rgb({int(255 - 200 * t)},{int(255 - 90 * t)},{int(255 - 190 * t)})"
    t = -t  # white to red
    return f"rgb({int(255 - 40 * t)},{int(255 - 200 * t)},{int(255 - 200 * t)})"


def heatmap(title: str, monthly: pd.Series) -> str:
    """Monthly returns: a row per year, a column per month and one for the year."""
    if monthly.empty:
        return ""
    by = {(p.year, p.month): float(v) for p, v in monthly.items() if math.isfinite(v)}
    years = list(range(monthly.index[0].year, monthly.index[-1].year + 1))
    scale = max([abs(v) for v in by.values()] + [0.01])
    scale = min(scale, 0.2)
    cw, ch, left, top = 62, 22, 52, 24
    height = top + ch * len(years) + 8
    out = []
    for j, name in enumerate([*MONTHS, "Year"]):
        out.append(f'<text class="tick" x="{left + cw * j + cw / 2}" y="{top - 8}" '
                   f'text-anchor="middle">{name}</text>')
    for i, year in enumerate(years):
        y = top + ch * i
        out.append(f'<text class="tick" x="{left - 6}" y="{y + 15}" text-anchor="end">'
                   f'{year}</text>')
        growth, seen = 1.0, False
        for m in range(1, 14):
            if m <= 12:
                r = by.get((year, m))
                if r is not None:
                    growth *= 1 + r
                    seen = True
            else:
                r = growth - 1 if seen else None
            x = left + cw * (m - 1)
            text = "" if r is None else f"{r * 100:.1f}"
            out.append(f'<rect x="{x}" y="{y}" width="{cw - 2}" height="{ch - 2}" '
                       f'fill="{_cell_color(r, scale * (3 if m == 13 else 1))}"/>'
                       f'<text class="cell" x="{x + cw / 2 - 1}" y="{y + 15}" '
                       f'text-anchor="middle">{text}</text>')
    width = left + cw * 13 + 4
    return (f'<svg class="chart heat" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{escape(title)}">'
            f'<title>{escape(title)}</title>{"".join(out)}</svg>')


def trajectory_chart(title: str, scores: Sequence[float | None],
                     research: Sequence[int]) -> str:
    """Each experiment's best gate score (dots) and the best so far (a step line), with the
    pass mark at 1 and each research iteration's start marked."""
    n = len(scores)
    if n == 0:
        return ""
    vals = np.array([np.nan if s is None else s for s in scores], dtype=float)
    best = np.fmax.accumulate(vals)
    finite = vals[np.isfinite(vals)]
    lo = float(min(finite.min(), 0.0)) if finite.size else -1.0
    hi = float(max(finite.max(), 1.0)) if finite.size else 1.0
    frame = _Frame(n + 1, lo, hi, 240)
    x = [frame.x(i + 0.5) for i in range(n)]
    labels = [(i, str(i + 1)) for i in range(0, n, max(1, math.ceil(n / 20)))]
    frame_labels = [(i + 0.5, text) for i, text in labels]
    body = _axes(frame, None, False, frame_labels)  # type: ignore[arg-type]
    y1 = frame.y(1.0)
    body.append(f'<line class="pass" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y1:.1f}" '
                f'y2="{y1:.1f}"/><text class="note" x="{WIDTH - RIGHT - 4}" y="{y1 - 4:.1f}" '
                'text-anchor="end">passes the gate from 1</text>')
    for i in range(n):
        if i == 0 or research[i] != research[i - 1]:
            body.append(f'<line class="boundary" x1="{x[i] - 4:.1f}" x2="{x[i] - 4:.1f}" '
                        f'y1="{TOP}" y2="{240 - BOTTOM}"/><text class="note" '
                        f'x="{x[i] - 1:.1f}" y="{240 - BOTTOM - 4}">research {research[i]}'
                        "</text>")
    step = []
    for i in range(n):
        if math.isfinite(best[i]):
            step.append(f"{'M' if not step else 'L'}{x[i] - 4:.1f},{frame.y(best[i]):.1f}"
                        f"H{x[i] + 4:.1f}")
    if step:
        body.append(f'<path class="line" d="{"".join(step)}" stroke="#1d4ed8"/>')
    for i in range(n):
        if math.isfinite(vals[i]):
            body.append(f'<circle cx="{x[i]:.1f}" cy="{frame.y(vals[i]):.1f}" r="3.5" '
                        f'fill="#0f766e"><title>experiment {i + 1}: {vals[i]:.3f}</title>'
                        '</circle>')
    legend = _legend([Line("best gate score of the experiment", vals, "#0f766e"),
                      Line("best so far", best, "#1d4ed8")])
    return _svg(title, 240, [legend, *body])
