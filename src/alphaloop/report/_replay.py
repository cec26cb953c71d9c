"""The winner's curves, recomputed: its equity, trades and returns are not stored, only its
metrics, so the report runs it again.

The winner's code is strategy code (hostile, it may have been written by a language model): it
runs only through the path ``alphaloop backtest`` uses — a clean worker (`execution._host`)
forks a kernel-confined strategy process for the positions and measures them on its own bars
(`execution.task_runner.run_task_full`) — with the record's data, dates, warm-up and costs, so
the curves end on the stored metrics. Buy & hold and the price come from the same bars, read
here (bars are data, not code).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Curves", "Replay", "replay", "start_host"]

TIMEOUT_SECONDS = 120.0
"""Wall time the winner's strategy process may take for one run (the record's took less)."""


@dataclass(frozen=True)
class Curves:
    """The best candidate over its in-sample and holdout bars, chained.

    ``equity`` is the in-sample growth of 1, then the holdout's run (which starts flat, as the
    workflow measured it) scaled by the in-sample's final value. ``underwater`` restarts its
    peak at the holdout's first bar, so each part's trough is that part's ``max_drawdown``.
    ``boundary`` is the index of the first holdout bar (None: the holdout was never run).
    """

    dates: pd.DatetimeIndex
    close: np.ndarray
    equity: np.ndarray
    buy_hold: np.ndarray
    underwater: np.ndarray
    boundary: int | None
    trades: list[dict[str, Any]]
    monthly: pd.Series  # month end -> the strategy's return that month
    in_sample_total_return: float
    holdout_total_return: float | None
    in_sample_moments: list[float] | None
    bars_per_year: float  # of the workflow's whole range, as its deflated Sharpe used


@dataclass(frozen=True)
class Replay:
    """What the replay gives: the curves, or why there are none (``note``)."""

    curves: Curves | None
    note: str | None = None


def start_host() -> Any:
    """A clean worker (`execution._host.Host`), started now: it imports for a second or so
    while the caller does other work."""
    from alphaloop.execution._host import Host

    return Host().start()


def _task(record: Any, adjust: bool, task_id: str) -> Any:
    from alphaloop.backtest.strategy import from_source
    from alphaloop.execution import BacktestTask

    strategy = from_source(record.strategy_code, record.strategy_name)  # read, not run
    return BacktestTask(
        task_id=task_id,
        experiment_id=record.experiment_id,
        variant_id=record.variant_id,
        strategy_code=record.strategy_code,
        strategy_name=record.strategy_name,
        strategy_parameters=dict(record.parameters),
        ticker=record.ticker,
        timeframe=record.timeframe,
        data_path=record.data_path,
        adjust=adjust,
        start=record.start,
        end=record.end,
        commission=record.commission,
        slippage_bps=record.slippage_bps,
        borrow_bps=record.borrow_bps,
        rebalance=record.rebalance,
        eval_start=record.eval_start,
        unconfined_ok=strategy.is_library,  # other code only where the kernel confines it
    )


def _underwater(equity: np.ndarray) -> np.ndarray:
    peak = np.maximum.accumulate(equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(peak > 0, equity / peak - 1.0, -1.0)
    return out


def _monthly(dates: pd.DatetimeIndex, equity: np.ndarray) -> pd.Series:
    """The strategy's return in each calendar month (the first month from the first bar)."""
    series = pd.Series(equity, index=dates)
    ends = series.groupby(dates.to_period("M")).last()
    before = ends.shift(1)
    before.iloc[0] = equity[0]
    return (ends / before - 1.0).replace([np.inf, -np.inf], np.nan)


def _curves(ins_run: dict[str, Any], out_run: dict[str, Any] | None, bars: pd.DataFrame,
            timeframe: str) -> Curves:
    from alphaloop.data import bars_per_year

    dates = pd.DatetimeIndex(pd.to_datetime(ins_run["equity"]["dates"]))
    equity = np.asarray(ins_run["equity"]["values"], dtype=float)
    under = _underwater(equity)
    trades = list(ins_run["trades"])
    boundary = None
    out_return = None
    if out_run is not None:
        boundary = len(dates)
        out_dates = pd.DatetimeIndex(pd.to_datetime(out_run["equity"]["dates"]))
        out_equity = np.asarray(out_run["equity"]["values"], dtype=float)
        under = np.concatenate([under, _underwater(out_equity)])
        equity = np.concatenate([equity, out_equity * equity[-1]])
        dates = dates.append(out_dates)
        trades += [dict(t, holdout=True) for t in out_run["trades"]]
        out_return = float(out_run["metrics"]["total_return"])
    close = bars["close"].reindex(dates).to_numpy(dtype=float)
    return Curves(
        dates=dates,
        close=close,
        equity=equity,
        buy_hold=close / close[0],
        underwater=under,
        boundary=boundary,
        trades=trades,
        monthly=_monthly(dates, equity),
        in_sample_total_return=float(ins_run["metrics"]["total_return"]),
        holdout_total_return=out_return,
        in_sample_moments=ins_run.get("moments"),
        bars_per_year=bars_per_year(timeframe, bars.index),
    )


def replay(host: Any, ins: Any, out: Any, adjust: bool, end: str | None) -> Replay:
    """Run the best candidate's in-sample record ``ins`` (and holdout record ``out``, None if
    it never reached the holdout) again in ``host``'s confined strategy process; ``end`` is
    the workflow's last date (None: the data's)."""
    from alphaloop import data as market
    from alphaloop.errors import AlphaloopError
    from alphaloop.execution import TaskFailed

    try:
        ins_run = host.run(_run_fn(), _task(ins, adjust, "report_in_sample"),
                           timeout=TIMEOUT_SECONDS)
        out_run = None if out is None else host.run(
            _run_fn(), _task(out, adjust, "report_holdout"), timeout=TIMEOUT_SECONDS)
        bars = market.slice_dates(market.load(ins.ticker, ins.timeframe, ins.data_path,
                                              adjust=adjust), ins.start, end)
    except TaskFailed as exc:
        return Replay(None, f"the best candidate could not be run again ({exc.detail})")
    except AlphaloopError as exc:  # the data moved or the kernel cannot confine it here
        return Replay(None, f"the best candidate could not be run again ({exc})")
    curves = _curves(ins_run, out_run, bars, ins.timeframe)
    if not np.isfinite(curves.close).all() or curves.close[0] <= 0:
        return Replay(None, "the bars the best candidate ran on are no longer in the data")
    return Replay(curves)


def _run_fn() -> Any:
    from alphaloop.execution.task_runner import run_task_full

    return run_task_full
