"""The refinements' positions, bit for bit, against the pandas formulas they implement (the
generated code works on numpy arrays for speed; the numbers must not move)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphaloop import data as market
from alphaloop.agents._refine import VOL_TARGET_DAYS, refine
from alphaloop.backtest import indicators as ind
from alphaloop.backtest import strategy as strategies
from alphaloop.backtest.strategy import library_source


def reference(name: str, base: pd.Series, data: pd.DataFrame, **p: float) -> np.ndarray:
    """What each refinement does, written with pandas as the refinements first were."""
    pos, close = base, data["close"]
    if name == "trend_filter":
        trend = close.rolling(p["trend_window"], min_periods=p["trend_window"]).mean()
        pos = pos.where(((pos > 0) & (close > trend)) | ((pos < 0) & (close < trend)), 0.0)
    elif name == "volatility_filter":
        vol = close.pct_change().rolling(p["filter_window"]).std()
        limit = vol.expanding(min_periods=p["filter_window"] * 5).quantile(p["vol_quantile"])
        pos = pos.where(~(vol > limit), 0.0)
    elif name == "long_only":
        pos = pos.clip(lower=0.0)
    elif name == "vol_target":
        realised = close.pct_change().rolling(VOL_TARGET_DAYS).std() * (
            ind.bars_per_year(data.index) ** 0.5)
        pos = pos * (p["target_vol"] / realised).clip(upper=1.0)
    return pos.fillna(0.0).clip(-1.0, 1.0).to_numpy()


CASES = [
    ("sma_crossover", "trend_filter", {"trend_window": 120}),
    ("donchian_breakout", "volatility_filter", {"filter_window": 15, "vol_quantile": 0.7}),
    ("macd", "long_only", {}),
    ("donchian_breakout", "vol_target", {"target_vol": 0.1}),
    ("rsi_reversion", "vol_target", {"target_vol": 0.3}),
]


@pytest.mark.parametrize(("base_name", "refinement", "params"), CASES)
@pytest.mark.parametrize("ticker", ["GOOG", "IBM"])
def test_refined_positions_equal_the_pandas_formulas(
    base_name: str, refinement: str, params: dict[str, float], ticker: str
) -> None:
    data = market.load(ticker)
    base = strategies.from_source(library_source(base_name), base_name)
    refined = refine(base, refinement)
    with strategies.executing_in_process():
        for cut in (len(data), 500, 60):
            part = data.iloc[:cut]
            got = refined.positions(part, refined.resolve_params(params))
            base_params = {k: v for k, v in refined.resolve_params(params).items()
                           if k in base.parameters}
            raw = pd.Series(base.positions(part, base.resolve_params(base_params)),
                            index=part.index)
            if refinement == "long_only":  # it fixes the base's shorting off
                raw = pd.Series(base.positions(part, base.resolve_params(
                    {**base_params, "allow_short": False})), index=part.index)
            want = reference(refinement, raw, part, **params)
            assert got.tobytes() == want.tobytes(), (refinement, cut)
