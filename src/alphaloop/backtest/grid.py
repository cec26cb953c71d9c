"""Many parameter sets of one strategy over the same bars, in one call: the grid path.

`run_batch(strategy, data, param_sets)` gives the metrics of every parameter set, each equal
(to the last bit, or 1e-12 where numpy's and Python's arithmetic differ) to what
`runner.backtest` gives for that set alone. What a batch pays once, not per set:

- the parameters: each distinct value of a column is parsed and checked once;
- the bars: ``open`` and ``close`` are extracted and checked once, the bars per year computed
  once;
- the strategy: its code is compiled and the permission to run it checked once (the sandbox's
  gate, `_positions.compiled`);
- the engine: all columns of a chunk go through one compiled call
  (`_kernels.backtest_stats_many`, its work arrays allocated once), and the metrics are
  computed column-wise with numpy (`metric_columns`); no pandas object is built per set.

**Vectorised strategies.** A strategy may also define ``generate_positions_batch(data,
**params)``: each parameter arrives as a numpy array (one value per parameter set, all of one
length k) and it returns a ``(bars, k)`` array, column j the positions of set j (the same
values ``generate_positions`` returns for it). The library's crossover, breakout and momentum
strategies do; such a strategy is called once per chunk of sets. Any other strategy keeps the
simple interface, called once per set.

Where strategy code runs: here, in this process, so only where `_positions` allows it (the
library's own files, a confined process, or inside `executing_in_process()`; `RuntimeError`
elsewhere). `alphaloop.execution.grid_runner` runs a grid of any strategy through the confined
path (the strategy process computes positions; `evaluate_batch` measures them here).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alphaloop.backtest import engine
from alphaloop.backtest.metrics import _STD_EPS, METRIC_KEYS, Metric
from alphaloop.errors import ConfigError, DataError, StrategyError

__all__ = [
    "BATCH_FUNCTION",
    "GridResult",
    "batch_function",
    "batch_positions",
    "chunk_size",
    "evaluate_batch",
    "metric_columns",
    "param_columns",
    "run_batch",
    "set_at",
]

#: The optional function a vectorised strategy defines.
BATCH_FUNCTION = "generate_positions_batch"
#: Positions held at once per chunk of parameter sets, bytes (the chunk is at least 16 sets).
CHUNK_BYTES = 8 << 20
_INT_METRICS = frozenset({"max_drawdown_duration", "num_trades"})

Progress = Callable[[int, int], None]
"""``progress(done, total)``, called after each chunk."""


def chunk_size(bars: int) -> int:
    """Parameter sets per chunk: about `CHUNK_BYTES` of positions, at least 16."""
    return max(16, CHUNK_BYTES // (8 * max(1, bars)))


@dataclass(frozen=True)
class GridResult:
    """Metrics of a batch: one entry per parameter set, in the order given.

    ``params`` maps each parameter to its values (numpy arrays); ``metrics`` maps each key of
    `METRIC_KEYS` to float64 values, NaN where the engine's metric is None.
    """

    params: dict[str, np.ndarray]
    metrics: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.metrics.values()))) if self.metrics else 0

    def metric_dicts(self) -> list[dict[str, Metric]]:
        """Each set's metrics as the engine gives them (`engine.BacktestResult.metrics`)."""
        cols = [_values(key, self.metrics[key]) for key in METRIC_KEYS]
        return [dict(zip(METRIC_KEYS, row, strict=True)) for row in zip(*cols, strict=True)]

    def rows(self, order: Sequence[int] | np.ndarray | None = None) -> list[dict[str, Any]]:
        """Parameters then metrics per set (``order``: which sets, in which order)."""
        idx = np.arange(len(self)) if order is None else np.asarray(order, dtype=np.int64)
        names = [*self.params, *METRIC_KEYS]
        cols = [self.params[p][idx].tolist() for p in self.params]
        cols += [_values(key, self.metrics[key][idx]) for key in METRIC_KEYS]
        return [dict(zip(names, row, strict=True)) for row in zip(*cols, strict=True)]

    def ranking(self, metric: str, descending: bool = True) -> np.ndarray:
        """Set numbers from best to worst by ``metric`` (sets where it is None last; ties in
        the order given)."""
        if metric not in self.metrics:
            raise ConfigError(f"unknown metric {metric!r}; metrics: {', '.join(METRIC_KEYS)}")
        values = self.metrics[metric]
        key = np.where(np.isnan(values), np.inf, -values if descending else values)
        return np.argsort(key, kind="stable")


def _values(key: str, column: np.ndarray) -> list[Metric]:
    """A metric column as Python numbers, None where NaN (ints for the integer metrics)."""
    nan = np.isnan(column)
    if key in _INT_METRICS:
        out: list[Metric] = [int(v) for v in column.tolist()]
    else:
        out = column.tolist()
    if nan.any():
        for i in np.flatnonzero(nan).tolist():
            out[i] = None
    return out


# -- parameters -----------------------------------------------------------------------------
def param_columns(
    strategy: Any, param_sets: Iterable[Mapping[str, object]] | Mapping[str, Sequence[object]]
) -> dict[str, np.ndarray]:
    """The parameter sets as one array per declared parameter (defaults filled in), each
    value parsed and checked as `Strategy.resolve_params` does (`ConfigError` naming the
    parameter). ``param_sets`` is a list of dicts or a dict of equal-length value lists."""
    if isinstance(param_sets, Mapping):
        raw = {name: values.tolist() if isinstance(values, np.ndarray) else list(values)
               for name, values in param_sets.items()}
        lengths = {len(v) for v in raw.values()}
        if len(lengths) > 1:
            raise ConfigError("parameter columns must have one length, got "
                              + ", ".join(f"{k}: {len(v)}" for k, v in raw.items()))
        k = lengths.pop() if lengths else 0
    else:
        sets = list(param_sets)
        k = len(sets)
        raw = {}
        for i, params in enumerate(sets):
            for name in params:
                if name not in raw:
                    raw[name] = [_MISSING] * k
            for name, value in params.items():
                raw[name][i] = value
    strategy.resolve_params({name: values[0] for name, values in raw.items()
                             if values and values[0] is not _MISSING})  # unknown names
    defaults = strategy.defaults()
    columns: dict[str, np.ndarray] = {}
    for name, spec in strategy.parameters.items():
        values = raw.get(name)
        if values is None:
            values = [defaults[name]] * k
        elif any(v is _MISSING for v in values):
            values = [defaults[name] if v is _MISSING else v for v in values]
        columns[name] = _array(_parse_column(strategy, name, values), spec)
    return columns


def _parse_column(strategy: Any, name: str, values: list[Any]) -> list[Any]:
    """Each value parsed as `Strategy.resolve_params` does, each distinct value once."""
    if len({type(v) for v in values}) == 1:  # 1, 1.0 and True are equal keys: one type only
        try:
            parsed = {v: strategy.resolve_params({name: v})[name] for v in dict.fromkeys(values)}
        except TypeError:  # unhashable values
            pass
        else:
            return [parsed[v] for v in values]
    return [strategy.resolve_params({name: v})[name] for v in values]


_MISSING = object()


def _array(values: list[Any], spec: Any) -> np.ndarray:
    kind = getattr(spec, "kind", None)
    if kind == "int":
        return np.array(values, dtype=np.int64)
    if kind == "float":
        return np.array(values, dtype=np.float64)
    if values and all(isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.bool_)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def set_at(columns: Mapping[str, np.ndarray], j: int) -> dict[str, Any]:
    """Parameter set ``j`` of ``columns`` as plain Python values."""
    return {name: col[j].item() if isinstance(col[j], np.generic) else col[j]
            for name, col in columns.items()}


def _describe_set(columns: Mapping[str, np.ndarray], j: int) -> str:
    return ", ".join(f"{k}={v}" for k, v in set_at(columns, j).items())


# -- the engine on many columns ---------------------------------------------------------------
@dataclass(frozen=True)
class _Bars:
    """The bars a batch measures on, prepared once."""

    open_: np.ndarray
    close: np.ndarray
    index: pd.Index
    bars_per_year: float
    first: int  # first bar traded and measured (eval_start)


def _prepare(data: pd.DataFrame, timeframe: str, eval_start: object) -> _Bars:
    from alphaloop.data import bars_per_year

    if not isinstance(data, pd.DataFrame) or not isinstance(data.index, pd.DatetimeIndex):
        raise DataError("data must be a DataFrame with a DatetimeIndex (use alphaloop.data.load)")
    missing = [col for col in ("open", "close") if col not in data.columns]
    if missing:
        raise DataError(f"data lacks column(s) {', '.join(missing)}; need open and close")
    if len(data.index) == 0:
        raise DataError("data has no bars")
    bpy = bars_per_year(timeframe, data.index)
    first = 0
    if eval_start is not None:
        first = int(data.index.searchsorted(pd.Timestamp(eval_start)))
        if first >= len(data.index):
            raise DataError(f"no bars on or after {eval_start}")
    o = engine._column(data, "open")[first:].copy()
    c = engine._column(data, "close")[first:].copy()
    engine._validate(o, c, np.zeros_like(o), data.index[first:])  # prices, once
    return _Bars(o, c, data.index, bpy, first)


def _measure(
    bars: _Bars,
    targets: np.ndarray,
    costs: tuple[float, float, bool],
    name: str,
    columns: Mapping[str, np.ndarray],
    offset: int,
) -> np.ndarray:
    """Statistics (k x N_STATS) of ``targets`` (k x all bars), one compiled call."""
    k = engine._kernels()
    w = targets if bars.first == 0 else targets[:, bars.first :]
    w = np.require(w, dtype=np.float64, requirements=("C", "W"))
    rows = w.shape[0]
    stats = np.zeros((rows, k.N_STATS))
    codes = np.zeros(rows, dtype=np.int64)
    bad = np.zeros(rows, dtype=np.int64)
    cost, borrow, every_bar = costs
    k.backtest_stats_many(bars.open_, bars.close, w, cost, borrow, every_bar, stats, codes, bad)
    if codes.any():
        j = int(np.flatnonzero(codes)[0])
        i = int(bad[j]) + bars.first
        when = engine._bar(i, bars.index)
        what = "NaN" if codes[j] == k.NAN_TARGET else repr(float(targets[j, i]))
        raise StrategyError(
            f"strategy {name!r} ({_describe_set(columns, offset + j)}): position at {when} is "
            f"{what}; positions must be numbers in [-1, 1] (fill warm-up bars with 0, clip)")
    return stats


def _costs(commission: float, slippage_bps: float, borrow_bps: float, rebalance: str,
           bars_per_year: float) -> tuple[float, float, bool]:
    return (engine.unit_cost(commission, slippage_bps),
            engine.borrow_per_bar(borrow_bps, bars_per_year), engine._every_bar(rebalance))


def metric_columns(stats: np.ndarray, bars_per_year: float) -> dict[str, np.ndarray]:
    """`metrics.from_stats` of every row of ``stats`` at once: one float64 array per key of
    `METRIC_KEYS`, NaN where `from_stats` gives None. Same formulas, same order of
    operations."""
    (n, final, mean, std, downside, max_dd, max_dur, trades, wins, win_sum, loss_sum, losses,
     trade_sum, exposed, traded) = stats.T
    bpy = float(bars_per_year)
    nan = np.nan
    with np.errstate(all="ignore"):
        cagr = np.where(final > 0.0, _finite(final ** (bpy / n) - 1.0), -1.0)
        has_std = (n >= 2) & (std > _STD_EPS)
        sharpe = np.where(has_std, _finite(mean / std * math.sqrt(bpy)), nan)
        sortino = np.where(downside > 0.0,
                           _finite(mean * bpy / (downside * math.sqrt(bpy))), nan)
        calmar = np.where((max_dd > 0.0) & ~np.isnan(cagr), _finite(cagr / max_dd), nan)
        annual_vol = np.where(n >= 2, np.where(has_std, std * math.sqrt(bpy), 0.0), nan)
        out = {
            "total_return": _finite(final - 1.0),
            "cagr": cagr,
            "annual_volatility": annual_vol,
            "sharpe_ratio": sharpe,
            "sortino_ratio": sortino,
            "calmar_ratio": calmar,
            "max_drawdown": max_dd.copy(),
            "max_drawdown_duration": max_dur.copy(),
            "win_rate": np.where(trades > 0, wins / trades, nan),
            "profit_factor": np.where(losses > 0, _finite(win_sum / loss_sum), nan),
            "num_trades": trades.copy(),
            "avg_trade_return": np.where(trades > 0, _finite(trade_sum / trades), nan),
            "exposure": exposed / n,
            "turnover": _finite(traded * bpy / n),
        }
    return out


def _finite(x: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(x), x, np.nan)


def evaluate_batch(
    data: pd.DataFrame,
    targets: np.ndarray,
    columns: Mapping[str, np.ndarray] | None = None,
    *,
    name: str = "strategy",
    commission: float = 0.001,
    slippage_bps: float = 0.0,
    borrow_bps: float = 0.0,
    rebalance: str = "change",
    timeframe: str = "1d",
    eval_start: object = None,
) -> GridResult:
    """The engine on ``data`` (the caller's own bars) for each row of ``targets`` (k x bars,
    validated positions or not: a NaN or out-of-range one raises `StrategyError` naming its
    set), as `runner.evaluate` would measure each row; ``columns`` label the rows."""
    bars = _prepare(data, timeframe, eval_start)
    costs = _costs(commission, slippage_bps, borrow_bps, rebalance, bars.bars_per_year)
    t = np.asarray(targets, dtype=np.float64)
    if t.ndim != 2 or t.shape[1] != len(data.index):
        raise StrategyError(f"strategy {name!r}: positions have shape {t.shape}, need "
                            f"(parameter sets, {len(data.index)} bars)")
    cols = dict(columns or {})
    stats = _measure(bars, t, costs, name, cols, 0)
    return GridResult(cols, metric_columns(stats, bars.bars_per_year))


# -- strategy code ----------------------------------------------------------------------------
def batch_function(strategy: Any) -> tuple[Callable[..., Any], Callable[..., Any] | None]:
    """(``generate_positions``, ``generate_positions_batch`` or None) of ``strategy``,
    compiled through the sandbox once — where `_positions` allows strategy code to run."""
    from alphaloop.backtest import _positions

    fn = _positions.compiled(strategy.source, strategy.name)
    # the module's namespace is the function's globals (the sandbox executed it there)
    batch = fn.__globals__.get(BATCH_FUNCTION)  # type: ignore[attr-defined]
    return fn, batch if callable(batch) else None


def _call(fn: Callable[..., Any], data: pd.DataFrame, kwargs: Mapping[str, Any],
          name: str, source: str) -> Any:
    from alphaloop.backtest import _positions, sandbox

    _positions.seed_random(source, kwargs)
    try:
        # its own (copy-on-write) frame: what one call does to its data cannot reach the next
        return fn(data.copy(deep=False), **kwargs)
    except (StrategyError, MemoryError):
        raise
    except Exception as exc:
        raise sandbox.strategy_error_from_exception(exc, name) from exc


def batch_positions(batch: Callable[..., Any], data: pd.DataFrame,
                    columns: Mapping[str, np.ndarray], name: str, source: str) -> np.ndarray:
    """``(sets, bars)`` float64 positions of the vectorised strategy function ``batch`` on
    ``data`` for every set of ``columns`` (one array per parameter, all of one length), its
    result's shape and type checked; where `_positions` allows strategy code to run."""
    k = len(next(iter(columns.values()))) if columns else 0
    return _batch_positions(_call(batch, data, columns, name, source), len(data.index), k,
                            name)


def _batch_positions(out: object, n: int, k: int, name: str) -> np.ndarray:
    """The ``(n, k)`` result of a batch function as ``(k, n)`` float64 (no copy when it was
    built column by column, as the library's are)."""
    where = f"strategy {name!r}: {BATCH_FUNCTION}"
    if not isinstance(out, np.ndarray) or out.shape != (n, k):
        shape = getattr(out, "shape", type(out).__name__)
        raise StrategyError(f"{where} returned {shape} for {n} bars and {k} parameter sets; "
                            f"return a numpy array of shape ({n}, {k}), one column per set")
    if out.dtype.kind not in "biuf":
        raise StrategyError(f"{where} returned values of dtype {out.dtype}; positions must be "
                            "numbers in [-1, 1]")
    return np.require(out.T, dtype=np.float64, requirements=("C",))


def run_batch(
    strategy: Any,
    data: pd.DataFrame,
    param_sets: Iterable[Mapping[str, object]] | Mapping[str, Sequence[object]],
    *,
    commission: float = 0.001,
    slippage_bps: float = 0.0,
    borrow_bps: float = 0.0,
    rebalance: str = "change",
    timeframe: str = "1d",
    eval_start: object = None,
    progress: Progress | None = None,
) -> GridResult:
    """Metrics of ``strategy`` (a `Strategy`) on ``data`` for every set in ``param_sets``.

    ``param_sets`` is a list of dicts (missing names take their defaults) or a dict of
    equal-length value lists. Costs, ``timeframe`` and ``eval_start`` as in
    `runner.backtest`. Runs the strategy's code in this process (see the module docstring).
    A bad value raises `ConfigError`; bad positions raise `StrategyError` naming the set.
    """
    from alphaloop.backtest import _positions

    if not isinstance(param_sets, Mapping):
        param_sets = list(param_sets)
    columns = param_columns(strategy, param_sets)
    total = len(param_sets) if not isinstance(param_sets, Mapping) else (
        len(next(iter(param_sets.values()))) if param_sets else 0)
    bars = _prepare(data, timeframe, eval_start)
    costs = _costs(commission, slippage_bps, borrow_bps, rebalance, bars.bars_per_year)
    fn, batch = batch_function(strategy)
    n = len(data.index)
    step = chunk_size(n)
    parts: list[np.ndarray] = []
    for lo in range(0, total, step):
        hi = min(total, lo + step)
        if batch is not None:
            chunk = {name: col[lo:hi] for name, col in columns.items()}
            targets = batch_positions(batch, data, chunk, strategy.name, strategy.source)
        else:
            targets = np.empty((hi - lo, n))
            for j in range(lo, hi):
                out = _call(fn, data, set_at(columns, j), strategy.name, strategy.source)
                targets[j - lo] = _positions.validate_positions(out, data, strategy.name)
        parts.append(_measure(bars, targets, costs, strategy.name, columns, lo))
        if progress is not None:
            progress(hi, total)
    stats = np.concatenate(parts) if parts else np.zeros((0, engine._kernels().N_STATS))
    return GridResult(columns, metric_columns(stats, bars.bars_per_year))

