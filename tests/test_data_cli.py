"""``alphaloop data list`` and ``alphaloop data export``, including bad input exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from alphaloop.cli import (
    _data,  # noqa: F401  registers the commands
    app,
    main,
)

SRC = Path(__file__).resolve().parents[1] / "src"


def test_list_shows_the_sample() -> None:
    result = CliRunner().invoke(app, ["data", "list"])
    assert result.exit_code == 0, result.output
    for fragment in ("AAPL", "GOOG", "2004-08-19", "2,148", "1d", "embedded sample"):
        assert fragment in result.stdout


def test_list_a_folder(tmp_path: Path) -> None:
    pd.read_csv(_export(["aapl"]), index_col="date").iloc[:50].to_csv(tmp_path / "ABC.csv")
    result = CliRunner().invoke(app, ["data", "list", "--data", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "ABC" in result.stdout and "AAPL" not in result.stdout


def _export(args: list[str]) -> object:
    from io import StringIO

    result = CliRunner().invoke(app, ["data", "export", *args])
    assert result.exit_code == 0, result.output
    return StringIO(result.stdout)


def test_export_csv_format() -> None:
    lines = _export(["GOOG", "--timeframe", "1mo"]).read().splitlines()  # type: ignore[attr-defined]
    assert lines[0] == "date,open,high,low,close,volume"
    assert lines[1].startswith("2004-08-31,")
    assert lines[-1].startswith("2013-03-01,")


def test_export_intraday_has_times(tmp_path: Path) -> None:
    index = pd.date_range("2024-01-02 09:30", periods=40, freq="h", name="date")
    frame = pd.DataFrame(
        {"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 7.0}, index=index
    )
    frame.to_csv(tmp_path / "X.csv")
    lines = _export(["x", "--timeframe", "1h", "--data", str(tmp_path)]).read().splitlines()  # type: ignore[attr-defined]
    assert lines[1] == "2024-01-02T09:30:00,1.0,2.0,0.5,1.5,7.0"


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["data", "export", "NOPE"], "error: unknown ticker 'NOPE'"),
        (["data", "export", "goog", "--timeframe", "1h"], "error: GOOG data is daily (1d)"),
        (
            ["data", "list", "--data", "/no/such/folder"],
            "error: data path /no/such/folder does not",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(fragment) and err.count("\n") == 1


def test_module_entry_point_without_traceback() -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run(
        [sys.executable, "-m", "alphaloop.cli", "data", "export", "gogl"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "error: unknown ticker 'gogl' in the embedded sample; did you mean GOOG? "
        "available: AAPL, FB, GOOG, IBM, MSFT"
    ]
