"""The embedded sample: coverage, split/dividend adjustment, caching, listing, fingerprint."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphaloop import data
from alphaloop.data import _sample
from alphaloop.errors import DataError


def raw_sample(ticker: str) -> pd.DataFrame:
    """The unadjusted rows of ``ticker`` exactly as stored in the package."""
    table = pd.read_parquet(_sample.SAMPLE_PATH)
    return table[table["ticker"] == ticker].set_index("date")


def test_contract_shape() -> None:
    bars = data.load("AAPL")
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert all(dtype == np.float64 for dtype in bars.dtypes)
    assert isinstance(bars.index, pd.DatetimeIndex) and bars.index.name == "date"
    assert bars.index.tz is None and bars.index.is_monotonic_increasing and bars.index.is_unique


def test_goog_has_2148_daily_bars() -> None:
    goog = data.load("goog")
    assert len(goog) == 2148
    assert goog.index[0] == pd.Timestamp("2004-08-19")
    assert goog.index[-1] == pd.Timestamp("2013-03-01")


def test_aapl_june_2000_split_is_adjusted_away() -> None:
    raw = raw_sample("AAPL")
    raw_returns = raw["close"].pct_change().loc["2000-06-01":"2000-07-31"]
    # The raw data has the 2-for-1 split of 2000-06-21 as a fake -45% day...
    assert raw_returns.loc["2000-06-21"] == pytest.approx(55.63 / 101.25 - 1)
    assert raw_returns.abs().max() > 0.4
    # ...which the adjustment factor adj_close/close halves across that day.
    factor = raw["adj_close"] / raw["close"]
    assert factor.loc["2000-06-20"] / factor.loc["2000-06-21"] == pytest.approx(0.5, rel=1e-3)
    adjusted = data.load("aapl")["close"].pct_change().loc["2000-06-01":"2000-07-31"]
    assert adjusted.abs().max() < 0.30
    assert adjusted.loc["2000-06-21"] == pytest.approx(0.0989, abs=1e-3)


def test_adjustment_keeps_bar_shape_and_notional() -> None:
    raw = raw_sample("MSFT")
    bars = data.load("msft")
    factor = (raw["adj_close"] / raw["close"]).to_numpy()
    np.testing.assert_allclose(bars["close"].to_numpy(), raw["adj_close"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(bars["open"].to_numpy(), raw["open"].to_numpy() * factor)
    np.testing.assert_allclose(bars["close"] * bars["volume"], raw["close"] * raw["volume"])
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()


def test_list_datasets_on_the_sample() -> None:
    infos = {info.ticker: info for info in data.list_datasets()}
    assert sorted(infos) == ["AAPL", "FB", "GOOG", "IBM", "MSFT"]
    assert infos["GOOG"].bars == 2148 and infos["IBM"].bars == 3270 and infos["FB"].bars == 196
    assert infos["AAPL"].first == pd.Timestamp("2000-03-01")
    assert infos["AAPL"].last == pd.Timestamp("2013-03-01")
    assert {info.timeframe for info in infos.values()} == {"1d"}
    assert infos["MSFT"].source == "embedded sample (Quandl WIKI, public domain)"


def test_unknown_ticker_suggests_and_lists() -> None:
    with pytest.raises(
        DataError,
        match=r"unknown ticker 'GOGL'.*did you mean GOOG\?.*"
        r"available: AAPL, FB, GOOG, IBM, MSFT",
    ):
        data.load("GOGL")


def test_second_load_does_not_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    data.clear_cache()
    calls: list[object] = []
    real = pd.read_parquet

    def spy(*args: object, **kwargs: object) -> pd.DataFrame:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(_sample.pd, "read_parquet", spy)
    first = data.load("ibm")
    again = data.load("IBM")
    data.load("msft", "1w")
    assert len(calls) == 1
    assert again.equals(first)
    data.clear_cache()


def test_callers_cannot_corrupt_the_cache() -> None:
    bars = data.load("aapl")
    bars["close"] = 0.0
    bars.loc[bars.index[0], "open"] = -1.0
    fresh = data.load("aapl")
    assert fresh["close"].min() > 0 and fresh["open"].iloc[0] > 0


def test_fingerprint_is_pinned_and_sensitive() -> None:
    aapl = data.load("aapl")
    assert data.fingerprint(aapl) == "039edef96f88dd9c"
    assert data.fingerprint(aapl.copy()) == data.fingerprint(aapl)
    changed = aapl.copy()
    changed.iloc[100, 3] += 1e-9
    assert data.fingerprint(changed) != data.fingerprint(aapl)
    assert data.fingerprint(data.slice_dates(aapl, end="2012-12-31")) != data.fingerprint(aapl)
