"""Every validation rule, on real bad files: the one-line message names file, row/line and date."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from alphaloop import data
from alphaloop.data._validate import MAX_PRICE, MIN_PRICE
from alphaloop.errors import DataError

HEADER = "date,open,high,low,close,volume"


def good_rows(n: int = 40) -> list[list[object]]:
    """``n`` valid daily bars on business days from 2021-01-04: o=100+i, h=o+2, l=o-2, c=o+1."""
    rows: list[list[object]] = []
    for i, day in enumerate(pd.bdate_range("2021-01-04", periods=n)):
        o = 100 + i
        rows.append([day.strftime("%Y-%m-%d"), o, o + 2, o - 2, o + 1, 1000 + i])
    return rows


def write_csv(path: Path, rows: list[list[object]], header: str = HEADER) -> Path:
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


def load_error(path: Path, ticker: str = "BAD") -> str:
    with pytest.raises(DataError) as info:
        data.load(ticker, data_path=path)
    message = str(info.value)
    assert "\n" not in message
    assert path.name in message
    return message


def test_good_file_loads(tmp_path: Path) -> None:
    bars = data.load("bad", data_path=write_csv(tmp_path / "BAD.csv", good_rows()))
    assert len(bars) == 40 and bars["close"].iloc[0] == 101.0


def test_missing_columns_lists_what_was_found(tmp_path: Path) -> None:
    rows = [[r[0], r[1], r[4], r[5]] for r in good_rows()]
    message = load_error(write_csv(tmp_path / "BAD.csv", rows, "Date,Open,Close,Volume"))
    assert "missing column(s) high, low" in message
    assert "found date, open, close, volume" in message


def test_missing_date_column(tmp_path: Path) -> None:
    message = load_error(write_csv(tmp_path / "BAD.csv", good_rows(), "day,open,high,low,close,v"))
    assert "missing column(s) date (or datetime/timestamp)" in message
    assert "found day, open, high, low, close, v" in message


# (row to break, how, expected fragments); rows are 0-based here, 1-based in messages
CASES = {
    "unparseable timestamp": (
        6,
        lambda r: r.__setitem__(0, "2021-13-45"),
        ["row 7 (line 8)", "cannot parse timestamp '2021-13-45'"],
    ),
    "empty timestamp": (
        6,
        lambda r: r.__setitem__(0, ""),
        ["row 7 (line 8)", "timestamp is empty"],
    ),
    "nan price": (
        3,
        lambda r: r.__setitem__(4, ""),
        ["row 4 (line 5), 2021-01-07", "close is empty"],
    ),
    "not a number": (
        3,
        lambda r: r.__setitem__(2, "1o5"),
        ["row 4 (line 5), 2021-01-07", "high '1o5' is not a number"],
    ),
    "non-positive low": (
        8,
        lambda r: r.__setitem__(3, -1),
        ["row 9 (line 10), 2021-01-14", "low is -1, not positive"],
    ),
    "zero open": (8, lambda r: r.__setitem__(1, 0), ["row 9 (line 10)", "open is 0, not positive"]),
    "high below low": (
        12,
        lambda r: r.__setitem__(2, r[3] - 1),
        ["row 13 (line 14), 2021-01-20", "high 109 is below low 110"],
    ),
    "close above high": (
        15,
        lambda r: r.__setitem__(4, r[2] + 5),
        ["row 16 (line 17), 2021-01-25", "close 122 is outside [low 113, high 117]"],
    ),
    "open below low": (
        16,
        lambda r: r.__setitem__(1, r[3] - 1),
        ["row 17 (line 18), 2021-01-26", "open 113 is outside [low 114, high 118]"],
    ),
    "negative volume": (
        20,
        lambda r: r.__setitem__(5, -5),
        ["row 21 (line 22), 2021-02-01", "volume -5 is negative"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_row_is_named(tmp_path: Path, case: str) -> None:
    index, corrupt, fragments = CASES[case]
    rows = good_rows()
    corrupt(rows[index])
    message = load_error(write_csv(tmp_path / "BAD.csv", rows))
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_counts_rows_with_the_same_problem(tmp_path: Path) -> None:
    rows = good_rows()
    rows[3][4] = rows[7][4] = ""
    assert "(2 rows like this)" in load_error(write_csv(tmp_path / "BAD.csv", rows))


def test_duplicate_timestamp(tmp_path: Path) -> None:
    rows = good_rows()
    rows[10][0] = rows[9][0]
    message = load_error(write_csv(tmp_path / "BAD.csv", rows))
    assert "row 11 (line 12), 2021-01-15: repeats the timestamp of row 10" in message


def test_unsorted_rows(tmp_path: Path) -> None:
    rows = good_rows()
    rows[4][0], rows[5][0] = rows[5][0], rows[4][0]
    message = load_error(write_csv(tmp_path / "BAD.csv", rows))
    assert "row 6 (line 7), 2021-01-08: comes before row 5 in time" in message
    assert "sort the file by date" in message


def test_too_few_bars(tmp_path: Path) -> None:
    message = load_error(write_csv(tmp_path / "BAD.csv", good_rows(data.MIN_BARS - 1)))
    assert f"has {data.MIN_BARS - 1} bars; at least {data.MIN_BARS} are needed" in message


def test_blank_lines_are_skipped_but_rows_keep_their_numbers(tmp_path: Path) -> None:
    rows = good_rows()
    rows[12][4] = 999
    lines = [HEADER] + [",".join(map(str, r)) for r in rows]
    lines.insert(5, "")  # a blank line 6: data row 5 is blank, so bar 13 is now row 14
    path = tmp_path / "BAD.csv"
    path.write_text("\n".join(lines) + "\n\n")
    assert "row 14 (line 15), 2021-01-20: close 999" in load_error(path)
    rows[12][4] = rows[12][1]
    lines[14] = ",".join(map(str, rows[12]))
    path.write_text("\n".join(lines) + "\n\n")
    assert len(data.load("bad", data_path=path)) == 40


def test_parquet_rows_are_numbered_without_lines(tmp_path: Path) -> None:
    frame = pd.DataFrame(good_rows(), columns=HEADER.split(","))
    frame.loc[7, "high"] = 50.0
    path = tmp_path / "BAD.parquet"
    frame.to_parquet(path, index=False)
    message = load_error(path)
    assert "BAD.parquet row 8, 2021-01-13: high 50 is below low 105" in message


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "BAD.parquet"
    path.write_text("not parquet")
    assert "cannot read" in load_error(path)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("1e308", "open is 1e+308, outside 1e-08..1e+12"),
        ("1e-320", "open is 9.999888672e-321, outside 1e-08..1e+12"),
        ("2e12", "open is 2e+12, outside"),
        ("1e309", "close is infinite"),  # overflows to inf when read
        ("inf", "close is infinite"),
        ("nan", "close is empty"),
    ],
)
def test_prices_must_be_finite_and_plausible(tmp_path: Path, value: str, fragment: str) -> None:
    rows = good_rows()
    rows[5][4] = value
    rows[9][4] = value
    # a finite value is given to the whole bar, so only the range rule can object
    if value in ("1e308", "1e-320", "2e12"):
        for r in (rows[5], rows[9]):
            r[1] = r[2] = r[3] = value
    message = load_error(write_csv(tmp_path / "BAD.csv", rows))
    assert "BAD.csv row 6 (line 7), 2021-01-11" in message, message
    assert fragment in message, message
    assert "(2 rows like this)" in message


def test_price_range_boundaries_are_accepted(tmp_path: Path) -> None:
    rows = good_rows()
    for r, v in ((rows[3], "1e-8"), (rows[4], "1e12")):
        r[1] = r[2] = r[3] = r[4] = v
    assert len(data.load("bad", data_path=write_csv(tmp_path / "BAD.csv", rows))) == 40
    assert (MIN_PRICE, MAX_PRICE) == (1e-8, 1e12)


@pytest.mark.parametrize(
    ("header", "column", "spelled"),
    [
        ("date,open,high,low,close,close,volume", "close", "'close', 'close'"),
        ("date,open,high,low,Close, close ,volume", "close", "'Close', ' close '"),
        ("Date,date,open,high,low,close,volume", "date", "'Date', 'date'"),
        ("date,open,high,low,close,volume,VOLUME", "volume", "'volume', 'VOLUME'"),
    ],
)
def test_a_repeated_column_is_refused(
    tmp_path: Path, header: str, column: str, spelled: str
) -> None:
    position = {name: i for i, name in enumerate(HEADER.split(","))}
    names = header.split(",")
    rows = [[r[position[n.strip().lower()]] for n in names] for r in good_rows()]
    message = load_error(write_csv(tmp_path / "BAD.csv", rows, header))
    assert f"column {column} appears 2 times ({spelled};" in message, message
    assert "keep one" in message


def test_repeated_ignored_columns_are_fine(tmp_path: Path) -> None:
    rows = [[*r, "x", "y"] for r in good_rows()]
    path = write_csv(tmp_path / "BAD.csv", rows, HEADER + ",note,note")
    assert len(data.load("bad", data_path=path)) == 40


def test_a_parquet_file_with_a_repeated_column_is_refused(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = pd.DataFrame(good_rows(), columns=HEADER.split(","))
    table = pa.Table.from_arrays(
        [pa.array(frame[c]) for c in frame.columns] + [pa.array(frame["close"] * 2)],
        names=[*frame.columns, "Close"],
    )
    path = tmp_path / "BAD.parquet"
    pq.write_table(table, path)
    message = load_error(path)
    assert "column close appears 2 times ('close', 'Close';" in message, message
