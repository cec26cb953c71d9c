"""Timeframes: detection, resampling (hand-worked and against pandas), slicing, annualisation."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from alphaloop import data
from alphaloop.errors import DataError

AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


def frame(index: list[str] | pd.DatetimeIndex, base: float = 10.0) -> pd.DataFrame:
    """Bars i=0..n-1: open=base+i, high=open+3, low=open-1, close=open+2, volume=i+1."""
    index = pd.DatetimeIndex(index, name="date")
    o = base + np.arange(len(index), dtype=float)
    return pd.DataFrame(
        {
            "open": o,
            "high": o + 3,
            "low": o - 1,
            "close": o + 2,
            "volume": np.arange(1.0, len(index) + 1),
        },
        index=index,
    )


def test_weekly_by_hand() -> None:
    # Tue, Wed, Fri of one week (Thursday missing), Mon+Tue of the next, nothing for a week,
    # then a lone Wednesday.
    days = frame(
        ["2024-01-02", "2024-01-03", "2024-01-05", "2024-01-08", "2024-01-09", "2024-01-24"]
    )
    weekly = data.resample(days, "1w")
    expected = pd.DataFrame(
        {
            "open": [10.0, 13.0, 15.0],
            "high": [15.0, 17.0, 18.0],
            "low": [9.0, 12.0, 14.0],
            "close": [14.0, 16.0, 17.0],
            "volume": [6.0, 9.0, 6.0],
        },
        index=pd.DatetimeIndex(["2024-01-05", "2024-01-09", "2024-01-24"], name="date"),
    )
    pd.testing.assert_frame_equal(weekly, expected)
    monthly = data.resample(days, "1mo")
    assert monthly.index.tolist() == [pd.Timestamp("2024-01-24")]
    assert monthly.iloc[0].tolist() == [10.0, 18.0, 9.0, 17.0, 21.0]


def pandas_resample(bars: pd.DataFrame, rule: str) -> pd.DataFrame:
    """Independent reference: pandas resample, empty periods dropped, labelled by last bar."""
    expected = bars.resample(rule).agg(AGG).dropna(subset=["open"])
    last = bars.index.to_series().resample(rule).last().dropna()
    expected.index = pd.DatetimeIndex(last.to_numpy(), name="date")
    return expected


@pytest.mark.parametrize(("timeframe", "rule"), [("1w", "W-SUN"), ("1mo", "ME")])
def test_daily_sample_matches_pandas(timeframe: str, rule: str) -> None:
    daily = data.load("aapl")
    ours = data.load("aapl", timeframe)
    pd.testing.assert_frame_equal(ours, pandas_resample(daily, rule), check_freq=False)
    assert (ours.index.isin(daily.index)).all()  # labels are real bar timestamps: no look-ahead


@pytest.mark.parametrize(("timeframe", "rule"), [("4h", "4h"), ("1d", "D"), ("1w", "W-SUN")])
def test_hourly_matches_pandas(timeframe: str, rule: str) -> None:
    stamps = pd.date_range("2023-01-02 09:30", periods=24 * 60, freq="h")
    hourly = frame(stamps[(stamps.hour >= 9) & (stamps.hour <= 15) & (stamps.day_of_week < 5)])
    assert data.detect_timeframe(hourly.index) == "1h"
    ours = data.resample(hourly, timeframe)
    pd.testing.assert_frame_equal(ours, pandas_resample(hourly, rule), check_freq=False)


def test_detect_timeframe() -> None:
    assert data.detect_timeframe(pd.date_range("2020-01-01", periods=50, freq="15min")) == "15min"
    assert data.detect_timeframe(pd.date_range("2020-01-01", periods=50, freq="4h")) == "4h"
    assert data.detect_timeframe(pd.bdate_range("2020-01-01", periods=50)) == "1d"
    assert data.detect_timeframe(pd.date_range("2020-01-01", periods=50, freq="W-FRI")) == "1w"
    assert data.detect_timeframe(pd.date_range("2020-01-01", periods=50, freq="BME")) == "1mo"
    with pytest.raises(DataError, match="at most monthly"):
        data.detect_timeframe(pd.date_range("2000-01-01", periods=50, freq="YE"))


def test_same_timeframe_is_returned_as_is() -> None:
    minutes = frame(pd.date_range("2024-03-04 09:30", periods=120, freq="15min"))
    hourly = data.resample(minutes, "1h")
    # 09:30 and 09:45 make the first (partial) hour, labelled by its last bar; then 30 full hours
    assert len(hourly) == 31 and hourly.index[0] == pd.Timestamp("2024-03-04 09:45")
    assert hourly.iloc[0].tolist() == [10.0, 14.0, 9.0, 13.0, 3.0]
    assert data.resample(hourly, "1h") is hourly


def test_finer_timeframe_is_refused() -> None:
    with pytest.raises(DataError) as info:
        data.load("goog", "1h")
    assert str(info.value) == (
        "GOOG data is daily (1d); cannot produce 1h bars; use --timeframe 1d or coarser"
    )


def test_unknown_timeframe_lists_valid_ones() -> None:
    with pytest.raises(DataError, match="unknown timeframe '2d'; use one of 1h, 4h, 1d, 1w, 1mo"):
        data.load("goog", "2d")
    assert len(data.load("goog", " 1W ")) == len(data.load("goog", "1w"))


def test_too_few_resampled_bars() -> None:
    with pytest.raises(DataError, match="FB gives only 11 monthly"):
        data.load("fb", "1mo")


def test_bars_per_year() -> None:
    assert data.bars_per_year("1d") == 252.0
    assert data.bars_per_year("1w") == 52.0
    assert data.bars_per_year("1mo") == 12.0
    assert data.bars_per_year("1h") == 1638.0
    assert data.bars_per_year("4h") == 504.0
    crypto = pd.date_range("2021-01-01", "2023-01-01", freq="h", inclusive="left")
    assert data.bars_per_year("1h", crypto) == pytest.approx(24 * 365.25, rel=2e-3)
    with pytest.raises(DataError):
        data.bars_per_year("5m")


def test_slice_dates() -> None:
    aapl = data.load("aapl")
    part = data.slice_dates(aapl, "2005-01-03", "2005-01-31")
    assert part.index[0] == pd.Timestamp("2005-01-03")
    assert part.index[-1] == pd.Timestamp("2005-01-31")
    assert data.slice_dates(aapl, date(2005, 1, 3), date(2005, 1, 31)).equals(part)
    assert len(data.slice_dates(aapl, start="2013-02-25")) == 5
    assert len(data.slice_dates(aapl)) == len(aapl)
    hourly = frame(pd.date_range("2024-01-01", periods=72, freq="h"))
    assert len(data.slice_dates(hourly, end="2024-01-02")) == 48  # the end day is whole


@pytest.mark.parametrize(
    ("start", "end", "fragment"),
    [
        ("2005-02-30", None, "bad start date '2005-02-30'"),
        (None, "soon", "bad end date 'soon'"),
        ("2020-01-01", None, "no bars between 2020-01-01 and the end"),
        ("2006-01-01", "2005-01-01", "is after end"),
    ],
)
def test_slice_dates_errors(start: str | None, end: str | None, fragment: str) -> None:
    with pytest.raises(DataError) as info:
        data.slice_dates(data.load("aapl"), start, end)
    assert fragment in str(info.value)
    assert "data covers 2000-03-01 .. 2013-03-01" in str(info.value)
