"""Error messages are safe to print: terminal control characters from files are escaped and a
message is at most 300 characters, in the library (`str(exc)`) and on the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from alphaloop import data
from alphaloop.cli import main
from alphaloop.errors import MAX_MESSAGE, ConfigError, DataError, clean_message

ESC = "\x1b"
RED = f"{ESC}[31m"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (f"column {RED}close{ESC}[0m", "column \\x1b[31mclose\\x1b[0m"),
        ("a\nb\rc\td", "a\\nb\\rc\\td"),  # never more than one line
        ("bell\x07 del\x7f nul\x00", "bell\\x07 del\\x7f nul\\x00"),
        ("csi\x9b2J c1\x85", "csi\\x9b2J c1\\x85"),  # C1 controls
        ("bidi\u202eevil zero\u200bwidth", "bidi\\u202eevil zero\\u200bwidth"),
        ("plain text, ünïcode and € stay", "plain text, ünïcode and € stay"),
    ],
)
def test_control_characters_are_escaped(raw: str, shown: str) -> None:
    assert clean_message(raw) == shown
    assert str(DataError(raw)) == shown


def test_long_messages_keep_their_start_and_their_fix() -> None:
    raw = "file.csv: column " + "x" * 5000 + " is wrong; rename it"
    text = clean_message(raw)
    assert len(text) <= MAX_MESSAGE
    assert text.startswith("file.csv: column xxx") and text.endswith("is wrong; rename it")
    assert " ... " in text
    assert clean_message("short") == "short"


def test_an_escape_is_never_cut_in_two() -> None:
    for shift in range(8):
        text = clean_message("a" * shift + ESC * 400)
        assert len(text) <= MAX_MESSAGE
        head, tail = text.split(" ... ")
        assert head.replace("a", "").replace("\\x1b", "") == ""
        assert tail.replace("\\x1b", "") == ""


def test_the_raw_message_stays_in_args() -> None:
    exc = ConfigError(f"bad {RED}")
    assert exc.args == (f"bad {RED}",)
    assert str(exc) == "bad \\x1b[31m"


def _hostile_csv(path: Path) -> Path:
    """A CSV whose header has an ANSI colour escape in a column name and a 5 KB column name,
    and lacks the high column, so the error quotes what it found."""
    names = ["date", "open", f"{RED}low", "close", "n" * 5000]
    rows = [[d.strftime("%Y-%m-%d"), 1, 1, 1, 0] for d in pd.bdate_range("2021-01-04",
                                                                          periods=40)]
    path.write_text(",".join(names) + "\n" + "\n".join(",".join(map(str, r)) for r in rows))
    return path


def test_library_error_from_a_hostile_header(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        data.load("BAD", data_path=_hostile_csv(tmp_path / "BAD.csv"))
    text = str(info.value)
    assert ESC not in text and "\\x1b[31mlow" in text
    assert len(text) <= MAX_MESSAGE and "\n" not in text
    assert "missing column(s) high" in text


def test_cli_prints_one_short_line_without_escape_codes(tmp_path: Path) -> None:
    path = _hostile_csv(tmp_path / "BAD.csv")
    proc = subprocess.run(
        [sys.executable, "-m", "alphaloop.cli", "data", "list", "--data", str(path)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("error: ") and len(line) <= MAX_MESSAGE
    assert ESC not in proc.stderr and "\\x1b[31m" in line
    assert "missing column(s) high" in line


def test_every_cli_error_goes_through_the_same_hygiene(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # an error raised with an escape and a huge name, through main(): one capped line
    def boom(*args: object, **kwargs: object) -> None:
        raise ConfigError(f"unknown ticker {RED}{'Z' * 4000}; pick one of GOOG, IBM")

    monkeypatch.setattr(data, "load", boom)
    with pytest.raises(SystemExit) as info:
        main(["data", "export", "x"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ESC not in err
    assert len(err.rstrip("\n")) <= MAX_MESSAGE
    assert err.startswith("error: unknown ticker \\x1b[31mZZ")
    assert err.rstrip().endswith("pick one of GOOG, IBM")


def test_a_long_path_gives_up_its_middle_not_the_reason() -> None:
    path = "/home/someone/" + "deep/" * 40 + "exp_001_proposals.json"
    text = clean_message(f"workflow file {path} cannot be used (no such file or directory); "
                         "resume cannot rebuild it: start the workflow again")
    assert len(text) <= MAX_MESSAGE
    assert text.startswith("workflow file /home/someone/deep/")
    assert " ... " in text and "exp_001_proposals.json cannot be used (no such file or " \
        "directory); resume cannot rebuild it: start the workflow again" in text


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["run", "--variants", "abc"], ["--variants", "alphaloop run --help"]),
        (["stauts"], ["stauts", "status"]),
        (["run", "--tickr", "GOOG"], ["--tickr", "--ticker"]),
        (["backtest"], ["strategy", "alphaloop backtest --help"]),
    ],
)
def test_usage_errors_are_one_line_exit_2(args: list[str], names: list[str],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Mistyped commands and option values get the one line every other bad input gets
    (typer would draw a box of several lines), naming the thing and where to read more."""
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    for name in names:
        assert name in err, err


def test_a_group_without_its_command_shows_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["data"])
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert "export" in out and err == ""


def test_a_file_pandas_warns_about_is_still_one_line(tmp_path: Path) -> None:
    """pandas' ParserWarning (a header with fewer fields than the rows) never reaches the
    terminal beside the error: the error names the line instead."""
    rows = ["date,open;high;low;close;volume"]
    rows += [f"2021-01-{d:02d};1;2;0.5;1.5;100" for d in range(4, 30)]
    path = tmp_path / "M.csv"
    path.write_text("\n".join(rows) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "alphaloop.cli", "data", "export", "M", "--data", str(path)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "line 2 has 6 fields but the header names 5" in done.stderr
    assert "header mixes ';' and ','" in done.stderr
