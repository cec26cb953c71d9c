"""User data: CSV and Parquet files, folders, column and timestamp variants, cache keys."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphaloop import data
from alphaloop.data import _load
from alphaloop.errors import DataError


def bars(n: int = 40, start: str = "2021-01-04", freq: str = "B") -> pd.DataFrame:
    """``n`` valid bars: open=100+i, high=open+2, low=open-2, close=open+1, volume=1000+i."""
    index = pd.date_range(start, periods=n, freq=freq, name="date")
    o = 100.0 + np.arange(n)
    return pd.DataFrame(
        {"open": o, "high": o + 2, "low": o - 2, "close": o + 1, "volume": 1000.0 + np.arange(n)},
        index=index,
    )


def test_csv_with_mixed_case_columns_and_extras(tmp_path: Path) -> None:
    frame = bars().reset_index()
    frame.columns = ["Date", " OPEN", "High", "low", "Close ", "VoLuMe"]
    frame["Adj Close"] = frame["Close "]  # already adjusted: factor 1, prices unchanged
    frame["Notes"] = "x"
    frame.to_csv(tmp_path / "spy.csv", index=False)
    loaded = data.load("SPY", data_path=tmp_path / "spy.csv")
    expected = bars()
    expected.index = expected.index.as_unit("ns")
    pd.testing.assert_frame_equal(loaded, expected, check_freq=False)


def test_parquet_with_datetime_index(tmp_path: Path) -> None:
    path = tmp_path / "BTC.parquet"
    bars(200, freq="h").to_parquet(path)
    loaded = data.load("btc", "4h", data_path=path)
    assert len(loaded) == 50 and loaded.index[0] == pd.Timestamp("2021-01-04 03:00")


def test_parquet_with_timestamp_column_and_no_volume(tmp_path: Path) -> None:
    frame = bars().reset_index().rename(columns={"date": "Timestamp"}).drop(columns="volume")
    frame.to_parquet(tmp_path / "X.parquet", index=False)
    loaded = data.load("x", data_path=tmp_path / "X.parquet")
    assert (loaded["volume"] == 0.0).all() and loaded["volume"].dtype == np.float64


def test_timezone_aware_timestamps_become_utc(tmp_path: Path) -> None:
    utc = pd.date_range("2024-03-08 14:30", periods=60, freq="h", name="date")
    local = utc.tz_localize("UTC").tz_convert("America/New_York")  # crosses the DST switch
    frame = bars(60).reset_index(drop=True).assign(datetime=[t.isoformat() for t in local])
    assert frame["datetime"].str.endswith("-05:00").any()
    assert frame["datetime"].str.endswith("-04:00").any()
    frame.to_csv(tmp_path / "ES.csv", index=False)
    loaded = data.load("es", "1h", data_path=tmp_path / "ES.csv")
    assert loaded.index.tz is None
    assert loaded.index.equals(utc.as_unit("ns"))
    aware = bars(40, start="2024-03-08 09:30", freq="h").tz_localize("Europe/Paris")
    aware.to_parquet(tmp_path / "CAC.parquet")
    assert data.load("cac", "1h", data_path=tmp_path / "CAC.parquet").index[0] == pd.Timestamp(
        "2024-03-08 08:30"
    )


@pytest.mark.parametrize(
    ("values", "first"),
    [
        (lambda idx: idx.strftime("%Y%m%d").astype(int), "2021-01-04"),
        (lambda idx: idx.asi8 // 10**9, "2021-01-04"),
        (lambda idx: idx.asi8 // 10**6, "2021-01-04"),
    ],
)
def test_numeric_timestamps(tmp_path: Path, values: object, first: str) -> None:
    frame = bars()
    frame.index = values(frame.index.as_unit("ns"))  # type: ignore[operator]
    frame.rename_axis("date").reset_index().to_csv(tmp_path / "N.csv", index=False)
    assert data.load("n", data_path=tmp_path / "N.csv").index[0] == pd.Timestamp(first)


def test_folder_of_files(tmp_path: Path) -> None:
    bars().to_csv(tmp_path / "AAPL.csv")
    bars(60, freq="W-FRI").to_parquet(tmp_path / "msft.parquet")
    bars(35).to_csv(tmp_path / "Ibm.csv.gz")
    (tmp_path / "README.md").write_text("not data")
    infos = data.list_datasets(tmp_path)
    assert [(i.ticker, i.bars, i.timeframe) for i in infos] == [
        ("AAPL", 40, "1d"),
        ("IBM", 35, "1d"),
        ("MSFT", 60, "1w"),
    ]
    assert infos[2].source == str((tmp_path / "msft.parquet").resolve())
    assert len(data.load("Msft", "1w", data_path=str(tmp_path))) == 60
    assert len(data.load("ibm", data_path=tmp_path)) == 35
    with pytest.raises(DataError, match=r"cannot produce 1d bars; use --timeframe 1w or coarser"):
        data.load("msft", data_path=tmp_path)
    with pytest.raises(DataError, match=r"unknown ticker 'APPL'.*did you mean AAPL\?"):
        data.load("APPL", data_path=tmp_path)


def test_folder_problems(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="holds no <TICKER>"):
        data.list_datasets(tmp_path)
    bars().to_csv(tmp_path / "AAPL.csv")
    bars().to_parquet(tmp_path / "aapl.parquet")
    with pytest.raises(DataError, match="two files for AAPL"):
        data.load("aapl", data_path=tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        data.load("aapl", data_path=tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="is not a data file"):
        data.load("notes", data_path=tmp_path / "notes.txt")


def test_single_file_names_its_ticker(tmp_path: Path) -> None:
    bars().to_csv(tmp_path / "EURUSD.csv")
    with pytest.raises(DataError, match=r"unknown ticker 'GBPUSD'.*available: EURUSD"):
        data.load("GBPUSD", data_path=tmp_path / "EURUSD.csv")


def test_cache_hits_and_invalidation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "SPY.csv"
    bars(200).to_csv(path)
    calls: list[Path] = []
    real = _load.read_file
    monkeypatch.setattr(_load, "read_file", lambda p: calls.append(p) or real(p))
    first = data.load("spy", data_path=path)
    assert data.load("SPY", data_path=str(path)).equals(first)
    data.load("spy", "1w", data_path=tmp_path)
    assert len(calls) == 1
    changed = bars(200)
    changed.iloc[-1] = changed.iloc[-1] * 2
    changed.to_csv(path)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert data.load("spy", data_path=path)["close"].iloc[-1] == 2 * first["close"].iloc[-1]
    assert len(calls) == 2


def test_export_loads_back_identically(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from alphaloop.cli import (
        _data,  # noqa: F401  registers the commands
        app,
    )

    result = CliRunner().invoke(app, ["data", "export", "aapl", "--timeframe", "1w"])
    assert result.exit_code == 0
    (tmp_path / "AAPL.csv").write_text(result.stdout)
    assert data.fingerprint(data.load("aapl", "1w", tmp_path)) == data.fingerprint(
        data.load("aapl", "1w")
    )


def test_trailing_delimiters_do_not_shift_columns(tmp_path: Path) -> None:
    path = tmp_path / "TC.csv"
    bars().to_csv(path)
    path.write_text("\n".join(line + "," for line in path.read_text().splitlines()) + "\n")
    assert data.load("tc", data_path=path)["open"].iloc[0] == 100.0


def test_parquet_date_column_wins_over_its_index(tmp_path: Path) -> None:
    frame = bars().reset_index()
    frame.index = pd.date_range("1990-01-01", periods=len(frame), name="when")
    frame.rename(columns={"date": "Date"}).to_parquet(tmp_path / "P.parquet")
    assert data.load("p", data_path=tmp_path / "P.parquet").index[0] == pd.Timestamp("2021-01-04")


def test_two_hourly_data_suggests_a_valid_timeframe(tmp_path: Path) -> None:
    bars(80, freq="2h").to_csv(tmp_path / "TWO.csv")
    with pytest.raises(
        DataError,
        match=r"2-hourly \(2h\); cannot produce 1h bars; use "
        r"--timeframe 4h or coarser",
    ):
        data.load("two", "1h", tmp_path)
    assert len(data.load("two", "4h", tmp_path)) == 40


def test_tz_aware_daily_parquet_keeps_local_dates(tmp_path: Path) -> None:
    bars(40).tz_localize("Australia/Sydney").to_parquet(tmp_path / "AX.parquet")
    assert data.load("ax", data_path=tmp_path).index[0] == pd.Timestamp("2021-01-04")


def test_a_numbered_unnamed_first_column_is_not_a_date(tmp_path: Path) -> None:
    bars().reset_index(drop=True).to_csv(tmp_path / "R.csv")  # ",open,..." then 0,1,2...
    with pytest.raises(DataError, match=r"missing column\(s\) date"):
        data.load("r", data_path=tmp_path)


def test_a_header_mixing_delimiters_gets_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "M.csv"
    bars().to_csv(path, sep=";")
    text = path.read_text().splitlines()
    path.write_text("\n".join(["date,open;high;low;close;volume", *text[1:]]) + "\n")
    with pytest.raises(DataError, match=r"header mixes ';' and ','; separate every field"):
        data.load("m", data_path=path)


def test_text_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "L.csv"
    bars().rename(columns={"volume": "Volumen \xfc"}).to_csv(path, encoding="latin-1")
    with pytest.raises(DataError, match=r"L\.csv: byte b'\\xfc' .* is not UTF-8 text; save"):
        data.load("l", data_path=path)


def test_date_and_time_columns_when_the_date_has_a_time(tmp_path: Path) -> None:
    frame = bars(40, freq="h").reset_index().assign(time="10:00")
    frame.to_parquet(tmp_path / "DT.parquet")
    with pytest.raises(DataError, match="both the date and the time column hold a time of day"):
        data.load("dt", data_path=tmp_path)


def test_export_no_adjust(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from alphaloop.cli import _data, app  # noqa: F401

    frame = bars().assign(**{"Adj Close": lambda f: f["close"] / 2})
    frame.to_csv(tmp_path / "H.csv")
    runner = CliRunner()
    adjusted = runner.invoke(app, ["data", "export", "h", "--data", str(tmp_path)])
    raw = runner.invoke(app, ["data", "export", "h", "--data", str(tmp_path), "--no-adjust"])
    assert adjusted.exit_code == raw.exit_code == 0
    assert adjusted.stdout.splitlines()[1] == "2021-01-04,50.0,51.0,49.0,50.5,2000.0"
    assert raw.stdout.splitlines()[1] == "2021-01-04,100.0,102.0,98.0,101.0,1000.0"


def test_a_thousands_separator_in_the_first_row_is_named_not_shifted(tmp_path: Path) -> None:
    """pandas drops the fields a header does not name (only a warning), which shifts what is
    left: '1,040.5' would read as open 1 and high 40.5. The line is named instead."""
    path = tmp_path / "K.csv"
    (bars() * 100).to_csv(path)
    lines = path.read_text().splitlines()
    date, first, *rest = lines[1].split(",")
    lines[1] = ",".join([date, f"{float(first):,.2f}", *rest])
    assert lines[1].count(",") == 6
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"K\.csv: line 2 has 7 fields but the header names 6; "
                                        r"a number with a thousands separator"):
        data.load("k", data_path=path)


def test_a_delimiter_ending_every_line_is_harmless(tmp_path: Path) -> None:
    path = tmp_path / "E.csv"
    bars().to_csv(path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], *(line + "," for line in lines[1:])]) + "\n")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing for the user's terminal either
        loaded = data.load("e", data_path=path)
    pd.testing.assert_frame_equal(loaded, data.load("e", data_path=_plain(tmp_path)))


def _plain(tmp_path: Path) -> Path:
    path = tmp_path / "plain" / "E.csv"
    path.parent.mkdir()
    bars().to_csv(path)
    return path
