"""Real-world file shapes (tests/data_corpus/, see its README): each loads, or is refused with
the one-line message docs/data.md documents; plus the Adj Close adjustment and ``data list``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphaloop import data
from alphaloop.cli import (
    _data,  # noqa: F401  registers the commands
    main,
)
from alphaloop.errors import DataError

CORPUS = Path(__file__).resolve().parent / "data_corpus"

# file -> (timeframe, first bar, last bar)
LOADED = {
    "PANDAS": ("1d", "2024-01-02", "2024-02-26"),
    "YAHOO": ("1d", "2024-01-02", "2024-02-26"),
    "MT4": ("1h", "2024-01-02 00:00", "2024-01-03 15:00"),
    "SEMICOLON": ("1d", "2024-01-02", "2024-02-26"),
    "TOKYO": ("1d", "2024-01-04", "2024-02-28"),  # not the previous UTC day, 15:00
    "NYSE": ("1h", "2024-03-05 14:30", "2024-03-12 19:30"),  # 09:30 EST .. 15:30 EDT, in UTC
    "BOMCRLF": ("1d", "2024-01-02", "2024-02-26"),
    "EXCELTAB": ("1d", "2024-01-02", "2024-02-26"),
    "PIPE": ("1d", "2024-01-02", "2024-02-26"),
}

# file -> fragments of its message
REFUSED = {
    "DECIMALCOMMA": [
        "DECIMALCOMMA.csv row 1 (line 2), 2024-01-02: open '100,00' is not a number",
        "the file is ';'-separated: numbers need a decimal point",
    ],
    "NOHEADER": ["the first line looks like data, not a header: add a header line such as"],
    "AMBIGUOUS": ["dates like '01/01/2020' could be day/month or month/day", "YYYY-MM-DD"],
    "YAHOONULL": [
        "YAHOONULL.csv row 8 (line 9), 2024-01-11: Adj Close is empty",
        "or pass --no-adjust to use the prices as they are",
    ],
}


def test_the_corpus_is_covered() -> None:
    assert {p.stem for p in CORPUS.glob("*.csv")} == set(LOADED) | set(REFUSED)


@pytest.mark.parametrize("name", sorted(LOADED))
def test_loaded(name: str) -> None:
    timeframe, first, last = LOADED[name]
    bars = data.load(name, timeframe, CORPUS / f"{name}.csv")
    assert bars.index[0] == pd.Timestamp(first) and bars.index[-1] == pd.Timestamp(last)
    assert data.detect_timeframe(bars.index) == timeframe
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused(name: str) -> None:
    with pytest.raises(DataError) as info:
        data.load(name, data_path=CORPUS / f"{name}.csv")
    message = str(info.value)
    assert "\n" not in message and f"{name}.csv" in message
    for fragment in REFUSED[name]:
        assert fragment in message, (fragment, message)


def test_same_bars_whatever_the_shape() -> None:
    prints = {
        data.fingerprint(data.load(n, data_path=CORPUS / f"{n}.csv"))
        for n in ("SEMICOLON", "BOMCRLF", "EXCELTAB")
    }
    assert len(prints) == 1


def test_mt4_date_and_time_are_joined() -> None:
    bars = data.load("mt4", "1h", CORPUS / "MT4.csv")
    assert (np.diff(bars.index.asi8) == 3600 * 10**9).all()


def test_intraday_zones_become_utc_without_a_dst_gap() -> None:
    bars = data.load("nyse", "1h", CORPUS / "NYSE.csv")
    opens = bars.index[~bars.index.normalize().duplicated()]
    assert [t.strftime("%H:%M") for t in opens] == ["14:30"] * 4 + ["13:30"] * 2


def test_adj_close_adjusts_like_the_sample() -> None:
    raw = pd.read_csv(CORPUS / "YAHOO.csv")
    bars = data.load("yahoo", data_path=CORPUS / "YAHOO.csv")
    np.testing.assert_allclose(bars["close"], raw["Adj Close"], rtol=1e-12)
    factor = raw["Adj Close"] / raw["Close"]
    np.testing.assert_allclose(bars["low"], raw["Low"] * factor, rtol=1e-12)
    np.testing.assert_allclose(bars["volume"], raw["Volume"] / factor, rtol=1e-12)
    assert bars["close"].pct_change().abs().max() < 0.05  # no fake -50% day at the split
    np.testing.assert_allclose(bars["close"] * bars["volume"], raw["Close"] * raw["Volume"])


def test_no_adjust_ignores_adj_close_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    data.clear_cache()
    with caplog.at_level(logging.WARNING, logger="alphaloop.data"):
        bars = data.load("yahoo", data_path=CORPUS / "YAHOO.csv", adjust=False)
        data.load("yahoonull", data_path=CORPUS / "YAHOONULL.csv", adjust=False)
    assert bars["close"].pct_change().min() < -0.45  # the split, as printed
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2 and all("Adj Close ignored (--no-adjust)" in w for w in warned)
    assert "YAHOO.csv" in warned[0]


def test_the_sample_unadjusted(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="alphaloop.data"):
        raw = data.load("aapl", data_path=None, adjust=False)
    adjusted = data.load("aapl")
    assert raw.loc["2000-06-20", "close"] / raw.loc["2000-06-21", "close"] > 1.8  # 2:1 split
    assert adjusted["close"].iloc[0] < raw["close"].iloc[0] / 10
    assert "Adj Close ignored" in caplog.text


def test_data_list_reports_each_bad_file_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["data", "list", "--data", str(CORPUS)])
    assert info.value.code == 2
    out, err = capsys.readouterr()
    for name in LOADED:
        assert name in out
    lines = err.splitlines()
    assert len(lines) == len(REFUSED), err
    for line, name in zip(lines, sorted(REFUSED), strict=True):
        assert line.startswith("error: ") and f"{name}.csv" in line


def test_scan_collects_problems() -> None:
    scan = data.scan_datasets(CORPUS, adjust=False)
    assert [p.ticker for p in scan.problems] == ["AMBIGUOUS", "DECIMALCOMMA", "NOHEADER"]
    assert "YAHOONULL" in [d.ticker for d in scan.datasets]
    with pytest.raises(DataError, match=r"AMBIGUOUS\.csv"):
        data.list_datasets(CORPUS)
