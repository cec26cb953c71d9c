"""Run a strategy through the engine: one backtest (`backtest`) or a parameter grid (`run_grid`).

Both resolve parameters with `Strategy.resolve_params` (so a bad value is a `ConfigError`
naming it), compute validated positions with `Strategy.positions` and hand them to
`alphaloop.backtest.engine`. Annualisation comes from the timeframe
(`alphaloop.data.bars_per_year(timeframe, data.index)`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from alphaloop.backtest import engine
from alphaloop.backtest.strategy import Strategy

__all__ = ["backtest", "evaluate", "run_grid"]


def _bars_per_year(timeframe: str, index: pd.Index) -> float:
    from alphaloop.data import bars_per_year

    return bars_per_year(timeframe, index)


def backtest(
    strategy: Strategy,
    data: pd.DataFrame,
    params: Mapping[str, object] | None = None,
    *,
    commission: float = 0.001,
    slippage_bps: float = 0.0,
    borrow_bps: float = 0.0,
    rebalance: str = "change",
    timeframe: str = "1d",
    eval_start: object = None,
) -> engine.BacktestResult:
    """Backtest ``strategy`` on ``data`` with ``params`` (defaults for those not given).

    Runs the strategy's code in this process (see `Strategy.positions` for where that is
    allowed); `alphaloop.execution.task_runner` runs it in a confined child and calls
    `evaluate` on the positions it gets back.

    - params: parameter overrides, typed or CLI strings (``{"fast": "20"}``).
    - commission: fraction of traded notional per side (0.001 = 0.1%).
    - slippage_bps: extra cost per unit traded, in basis points.
    - borrow_bps: annual fee on short notional, in basis points, accrued per bar.
    - rebalance: "change" (units held until the target changes) or "bar" (constant weight);
      see `alphaloop.backtest.engine`.
    - timeframe: bar length of ``data`` ("1d", "1h", ...), for annualising the metrics.
    - eval_start: first date to trade and measure (e.g. a holdout's first bar). Positions are
      computed on all of ``data`` so indicators are warmed up, then the engine runs from this
      date on, starting flat: the position decided at the previous bar's close is not carried
      over.
    """
    resolved = strategy.resolve_params(params or {})
    positions = strategy.positions(data.copy(), resolved)
    return evaluate(
        data,
        positions,
        commission=commission,
        slippage_bps=slippage_bps,
        borrow_bps=borrow_bps,
        rebalance=rebalance,
        timeframe=timeframe,
        eval_start=eval_start,
    )


def evaluate(
    data: pd.DataFrame,
    positions: np.ndarray,
    *,
    commission: float = 0.001,
    slippage_bps: float = 0.0,
    borrow_bps: float = 0.0,
    rebalance: str = "change",
    timeframe: str = "1d",
    eval_start: object = None,
) -> engine.BacktestResult:
    """The engine on ``data`` (the caller's own bars) and validated ``positions``, one per bar;
    ``eval_start`` as in `backtest`."""
    bpy = _bars_per_year(timeframe, data.index)
    if eval_start is not None:
        k = int(data.index.searchsorted(pd.Timestamp(eval_start)))
        data, positions = data.iloc[k:], positions[k:]
    return engine.run(
        data,
        positions,
        commission=commission,
        slippage_bps=slippage_bps,
        bars_per_year=bpy,
        borrow_bps=borrow_bps,
        rebalance=rebalance,
    )


def run_grid(
    strategy: Strategy,
    data: pd.DataFrame,
    grid: Iterable[Mapping[str, object]],
    *,
    commission: float = 0.001,
    slippage_bps: float = 0.0,
    borrow_bps: float = 0.0,
    rebalance: str = "change",
    timeframe: str = "1d",
) -> list[dict[str, Any]]:
    """Metrics of ``strategy`` for each parameter set in ``grid``, in order (the fast path).

    Each element of the result is the engine's metrics dict for the matching parameter set
    (the same numbers `backtest` gives). The sets go through `alphaloop.backtest.grid.run_batch`
    (prices prepared once, a vectorised strategy called once per chunk, the engine on all
    columns in one compiled call). The first bad combination raises (`ConfigError` for a bad
    parameter value, `StrategyError` for bad positions) naming the strategy and the parameter
    or bar at fault.
    """
    from alphaloop.backtest import grid as batch

    return batch.run_batch(
        strategy,
        data,
        list(grid),
        commission=commission,
        slippage_bps=slippage_bps,
        borrow_bps=borrow_bps,
        rebalance=rebalance,
        timeframe=timeframe,
    ).metric_dicts()
