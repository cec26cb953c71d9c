"""Reading one user OHLCV file (CSV or Parquet) into raw bars, remembering where each row was.

What a file may look like (``docs/data.md`` has examples of each, and every error with its fix):

- CSV fields are separated by ``,``, ``;``, a tab or ``|``: whichever of them the header line
  holds most often. Text is UTF-8 (a byte-order mark is skipped) or UTF-16 with its mark; line
  ends may be ``\n`` or ``\r\n``. Numbers need a decimal point (``123.45``): a decimal comma is
  refused (with a hint in a ``;`` file) rather than guessed at.
- Column names are matched case-insensitively (surrounding spaces ignored). ``open``, ``high``,
  ``low``, ``close`` are required, ``volume`` is optional (missing -> 0.0 on every bar).
  ``Adj Close`` (also ``adj_close``, ``adjclose``, ``adjusted close``) is kept aside for the
  split/dividend adjustment (``_adjust``). Other columns are ignored. A column alphaloop reads
  may appear only once (``close`` and ``Close `` are the same column).
- Timestamps come from a column named ``date``, ``datetime``, ``timestamp`` or ``time``; from
  ``date`` and ``time`` together (MetaTrader's ``2024.01.02,09:30``), joined into one; from an
  unnamed first column of text (what pandas' ``to_csv`` writes for a ``DatetimeIndex``); or, in
  a Parquet file without such a column, from its ``DatetimeIndex``. Text is parsed by pandas
  with one format for the whole column (inferred from the first row), e.g. ISO ``2020-01-31``
  or ``2020-01-31 09:30:00``. Dates written ``dd/mm/yyyy`` or ``mm/dd/yyyy`` (``/``, ``.``
  or ``-``) are read day-first when some first field is above 12, month-first when some second
  field is, and refused when no date settles it. Numbers are read as ``YYYYMMDD`` when all are
  8-digit integers, otherwise as Unix epoch seconds/milliseconds/microseconds/nanoseconds by
  magnitude.
- Time zones: timestamps with a UTC offset or time zone are made naive. Daily and coarser bars
  (median spacing of 16 hours or more) keep their local wall-clock time, hence their calendar
  date (a Tokyo bar of 2024-01-05 stays 2024-01-05); intraday bars are converted to UTC, so a
  session that crosses a daylight-saving switch stays evenly spaced. Naive timestamps are kept
  as they are.
- In a CSV file, lines with no value at all (blank lines) are not bars and are skipped; a
  trailing delimiter on every line is tolerated (the first column is never taken as an index).

Row numbers in messages count data rows from 1, header excluded (so in a CSV file, row ``n`` is
line ``n + 1``, which the message also gives).
"""

from __future__ import annotations

import gzip
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from alphaloop.errors import DataError

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "volume")
DATE_COLUMNS: tuple[str, ...] = ("date", "datetime", "timestamp", "time")
ADJ_CLOSE = "adj close"
"""The canonical name of the adjusted-close column (see ``_ADJ_ALIASES``)."""
SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".parquet")
"""File name endings recognised as data files; the ticker is the name without it."""

DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")
"""CSV field separators recognised; the header line decides (most frequent, ``,`` on a tie)."""

_ADJ_ALIASES = {
    "adj close",
    "adj_close",
    "adjclose",
    "adj. close",
    "adjusted close",
    "adjusted_close",
    "adj_close_price",
}
_DAILY_SPACING = pd.Timedelta(hours=16)
"""Median spacing from which bars count as daily or coarser (the ``1d`` band of _timeframes)."""
_OFFSET = re.compile(r"(?<=\d)\s*(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)
_DAY_MONTH = re.compile(r"^\s*(\d{1,2})[/.\-](\d{1,2})[/.\-]\d{2,4}(?!\d)")


@dataclass(frozen=True)
class RawBars:
    """Bars as read, before validation: timestamps may be unsorted or repeated.

    ``frame`` has float64 columns ``open, high, low, close, volume`` and the parsed tz-naive
    timestamps as index; ``rows[i]`` is the 1-based data row of ``frame.iloc[i]`` in the file.
    ``adj_close`` is the file's adjusted-close column as read (not yet checked), or None.
    """

    frame: pd.DataFrame
    rows: np.ndarray
    file: str
    is_csv: bool
    has_volume: bool
    adj_close: pd.Series | None = None

    def at(self, i: int, with_date: bool = True) -> str:
        """Where row ``i`` is, for a message: ``"x.csv row 4 (line 5), 2020-01-07"``."""
        return _where(
            self.file, int(self.rows[i]), self.is_csv, self.frame.index[i] if with_date else None
        )


@dataclass(frozen=True)
class _Layout:
    """How a CSV file is written: its field separator, text encoding and first line."""

    delimiter: str = ","
    encoding: str = "utf-8"
    first_line: str = ""


def _where(file: str, row: int, is_csv: bool, when: pd.Timestamp | None = None) -> str:
    text = f"{file} row {row}" + (f" (line {row + 1})" if is_csv else "")
    if when is not None and not pd.isna(when):
        text += f", {format_timestamp(when)}"
    return text


def format_timestamp(when: pd.Timestamp) -> str:
    """ISO date, with the time only when it is not midnight."""
    return when.strftime("%Y-%m-%d" if when == when.normalize() else "%Y-%m-%d %H:%M:%S")


def ticker_of(path: Path) -> str | None:
    """Upper-case ticker named by a data file, or None when the name is not a data file's."""
    name = path.name
    for suffix in SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)].upper()
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _sniff(path: Path) -> _Layout:
    """The delimiter and encoding of a CSV file, from its first 64 KiB."""
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as handle:
            start = handle.read(65536)
    except (OSError, EOFError):
        return _Layout()  # the full read reports what is wrong with the file
    if start.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    elif start.startswith(b"\xef\xbb\xbf"):
        encoding = "utf-8-sig"
    else:
        encoding = "utf-8"
    try:
        text = start.decode(encoding, errors="replace")
    except (LookupError, UnicodeError):
        return _Layout(encoding=encoding)
    first = next((line for line in text.lstrip("\ufeff").splitlines() if line.strip()), "")
    counts = {d: first.count(d) for d in DELIMITERS}
    delimiter = max(DELIMITERS, key=lambda d: (counts[d], d == ","))
    return _Layout(delimiter if counts[delimiter] else ",", encoding, first.strip())


def _header(path: Path, layout: _Layout | None) -> list[object] | None:
    """The column names exactly as the file spells them: pandas renames a repeated CSV column
    (``close``, ``close.1``) and pyarrow refuses to read a Parquet file that repeats one, so
    both would hide a duplicate. None if the header cannot be read this way."""
    try:
        if layout is not None:
            first = pd.read_csv(
                path,
                header=None,
                nrows=1,
                index_col=False,
                skip_blank_lines=False,
                dtype=str,
                sep=layout.delimiter,
                encoding=layout.encoding,
            )
            return list(first.iloc[0]) if len(first) else None
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    except Exception:  # the full read below reports what is wrong with the file
        return None


def _check_longer_rows(path: Path, layout: _Layout) -> None:
    """Raise if a line holds more fields than the header names and the extra ones are not
    empty: pandas (``index_col=False``) drops them with only a warning, and what is left is
    shifted values, such as a price written with a thousands separator (``1,040.5``). Empty
    extra fields, as a delimiter at the end of every line leaves, are harmless."""
    import csv

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding=layout.encoding, newline="") as handle:
        rows = csv.reader(handle, delimiter=layout.delimiter)
        header = next(rows, [])
        for fields in rows:
            if len(fields) > len(header) and any(f.strip() for f in fields[len(header):]):
                raise DataError(
                    f"{path}: line {rows.line_num} has {len(fields)} fields but the header "
                    f"names {len(header)}; a number with a thousands separator (1,040.5) or a "
                    "stray delimiter? Remove it, quote the field, or name the extra column in "
                    "the header"
                )


def _normal(name: object) -> str:
    text = str(name).replace("\ufeff", "").strip().lower()
    return ADJ_CLOSE if text in _ADJ_ALIASES else text


def _blank(name: object) -> bool:
    return not isinstance(name, str) or not name.replace("\ufeff", "").strip()


def _shown(name: object, width: int = 40) -> str:
    text = str(name)
    return text if len(text) <= width else text[: width - 3] + "..."


def _check_repeats(file: str, names: list[object]) -> None:
    """``DataError`` if a column alphaloop reads is named twice (after ignoring case and
    surrounding spaces): which one holds the bars would be a guess."""
    seen: dict[str, list[object]] = {}
    for name in names:
        if isinstance(name, str):
            seen.setdefault(_normal(name), []).append(name)
    for key in (*DATE_COLUMNS, *COLUMNS, ADJ_CLOSE):
        spelled = seen.get(key, [])
        if len(spelled) > 1:
            variants = ", ".join(repr(_shown(n)) for n in spelled)
            raise DataError(
                f"{file}: column {key} appears {len(spelled)} times ({variants}; names are "
                "case-insensitive and surrounding spaces are ignored); keep one and rename or "
                "remove the others"
            )


def read_file(path: Path) -> RawBars:
    """Read a CSV or Parquet file; raise a one-line ``DataError`` naming the file and the fix."""
    is_csv = not path.name.lower().endswith(".parquet")
    layout = _sniff(path) if is_csv else None
    try:
        return _read(path, layout)
    except DataError as exc:
        hint = _semicolon_hint(layout)
        if hint:
            raise DataError(f"{exc.args[0]}; {hint}") from None
        raise


def _semicolon_hint(layout: _Layout | None) -> str:
    """What to check in a file that uses ``;`` (European exports) and still failed."""
    if layout is None or ";" not in layout.first_line:
        return ""
    others = [d for d in DELIMITERS if d != ";" and d in layout.first_line]
    if others:
        return (
            f"its header mixes ';' and {others[0]!r}; separate every field with one "
            "delimiter: , ; tab or |"
        )
    return (
        "the file is ';'-separated: numbers need a decimal point, like 123.45, not a "
        "comma; re-export it with '.' as the decimal mark"
    )


def _read(path: Path, layout: _Layout | None) -> RawBars:
    file = str(path)
    is_csv = layout is not None
    header = _header(path, layout)
    if header is not None:
        _check_repeats(file, header)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            table = (
                pd.read_csv(
                    path,
                    skip_blank_lines=False,
                    index_col=False,
                    sep=layout.delimiter,
                    encoding=layout.encoding,
                )
                if layout is not None
                else pd.read_parquet(path)
            )
        if layout is not None and any(w.category is pd.errors.ParserWarning for w in caught):
            _check_longer_rows(path, layout)  # pandas dropped fields the header did not name
    except UnicodeDecodeError as exc:
        raise DataError(
            f"cannot read {file}: byte {exc.object[exc.start : exc.start + 1]!r} at offset "
            f"{exc.start} is not UTF-8 text; save the file as UTF-8 (Excel: 'CSV UTF-8')"
        ) from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        kind = "CSV" if is_csv else "Parquet"
        raise DataError(f"cannot read {file} as {kind}: {_first_line(exc)}") from None
    if is_csv and header is not None and len(header) == len(table.columns):
        # pandas' own names for the columns it renamed (a repeat) or named (a blank header)
        table.columns = [
            h if isinstance(h, str) else c for h, c in zip(header, table.columns, strict=True)
        ]
    named = {_normal(c) for c in table.columns}
    if isinstance(table.index, pd.DatetimeIndex) and not named & set(DATE_COLUMNS):
        table = table.rename_axis("date").reset_index()  # a Parquet file's DatetimeIndex
    rows = np.arange(1, len(table) + 1)
    if is_csv:
        blank = table.isna().all(axis=1).to_numpy()
        table, rows = table.loc[~blank].reset_index(drop=True), rows[~blank]

    names = [_normal(c) for c in table.columns]
    _check_repeats(file, names)
    if (
        is_csv
        and header is not None
        and len(header) == len(names)
        and names
        and not set(names) & set(DATE_COLUMNS)
        and _blank(header[0])
        and not pd.api.types.is_numeric_dtype(table.iloc[:, 0].dtype)
    ):
        names[0] = "date"  # pandas' to_csv of a DatetimeIndex without a name
    table.columns = names
    dates = [n for n in DATE_COLUMNS if n in names]
    missing = [c for c in PRICE_COLUMNS if c not in names]
    if dates == ["date", "time"]:
        stamps = _join_date_time(table["date"], table["time"], file)
    elif len(dates) != 1 or missing:
        shown = [_shown(c) for c in table.columns[:12]]
        more = len(table.columns) - len(shown)
        found = ", ".join(shown) + (f" and {more} more" if more > 0 else "") or "nothing"
        if len(dates) > 1:
            raise DataError(f"{file}: several timestamp columns ({', '.join(dates)}); keep one")
        need = ([] if dates else ["date (or datetime/timestamp)"]) + missing
        raise DataError(
            f"{file}: missing column(s) {', '.join(need)}; found {found}; "
            + (
                "the first line looks like data, not a header: add a header line such as "
                "date,time,open,high,low,close,volume"
                if header is not None and _looks_like_data(header)
                else "the header needs date, open, high, low, close and optionally volume"
            )
        )
    else:
        stamps = table[dates[0]]

    index = _parse_timestamps(stamps, file, rows, is_csv)
    frame = pd.DataFrame(index=index)
    has_volume = "volume" in names
    for column in COLUMNS:
        if column == "volume" and not has_volume:
            frame[column] = 0.0
            continue
        frame[column] = _to_float(table[column], column, file, rows, is_csv, index)
    frame.index.name = "date"
    adj = table[ADJ_CLOSE].reset_index(drop=True) if ADJ_CLOSE in names else None
    return RawBars(frame, rows, file, is_csv, has_volume, adj)


def _looks_like_data(header: list[object]) -> bool:
    """True when the first header cell is a date (a file written without a header line)."""
    first = str(header[0]).replace("\ufeff", "").strip() if header else ""
    if not first or not first[0].isdigit():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return not pd.isna(pd.to_datetime(first, errors="coerce"))


def _join_date_time(day: pd.Series, clock: pd.Series, file: str) -> pd.Series:
    """One timestamp text per row from separate date and time columns (MetaTrader exports)."""
    if pd.api.types.is_datetime64_any_dtype(day.dtype):
        if (day.dropna() != day.dropna().dt.normalize()).any():
            raise DataError(
                f"{file}: both the date and the time column hold a time of day; keep one"
            )
        day = day.dt.strftime("%Y-%m-%d")
    return day.astype("string").str.strip() + " " + clock.astype("string").str.strip()


def _to_float(
    values: pd.Series,
    column: str,
    file: str,
    rows: np.ndarray,
    is_csv: bool,
    index: pd.DatetimeIndex,
) -> np.ndarray:
    if pd.api.types.is_bool_dtype(values.dtype):
        raise DataError(f"{file}: column {column} holds true/false values; it needs numbers")
    numbers = pd.to_numeric(values, errors="coerce")
    bad = np.flatnonzero(numbers.isna().to_numpy() & values.notna().to_numpy())
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{_where(file, int(rows[i]), is_csv, index[i])}: {column} "
            f"{values.iloc[i]!r} is not a number; write plain numbers like 123.45 "
            f"({bad.size} such row(s))"
        )
    return numbers.to_numpy(dtype="float64")


def _parse_timestamps(
    values: pd.Series, file: str, rows: np.ndarray, is_csv: bool
) -> pd.DatetimeIndex:
    dtype = values.dtype
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "could not infer format" fallback
        if isinstance(dtype, pd.DatetimeTZDtype):
            utc = values.dt.tz_convert("UTC").dt.tz_localize(None)
            parsed = values.dt.tz_localize(None) if _daily(utc) else utc
        elif pd.api.types.is_datetime64_dtype(dtype):
            parsed = values
        elif pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            parsed = _from_numbers(values)
        else:
            parsed = _from_text(values, file)
    missing = np.flatnonzero(parsed.isna().to_numpy())
    if missing.size:
        i = int(missing[0])
        where = _where(file, int(rows[i]), is_csv)
        if pd.isna(values.iloc[i]):
            raise DataError(f"{where}: the timestamp is empty; fill it in or remove the row")
        raise DataError(
            f"{where}: cannot parse timestamp {values.iloc[i]!r} ({missing.size} "
            "bad row(s)); use one format for every row, e.g. 2020-01-31 or "
            "2020-01-31 09:30:00"
        )
    try:
        return pd.DatetimeIndex(parsed).as_unit("ns")
    except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime):
        raise DataError(
            f"{file}: timestamps outside 1677-2262 are not supported; check the date column"
        ) from None


def _daily(utc: pd.Series) -> bool:
    """Whether bars are daily or coarser: median spacing of at least 16 hours."""
    ns = pd.DatetimeIndex(utc.dropna()).as_unit("ns").asi8
    if len(ns) < 2:
        return True
    return bool(np.median(np.abs(np.diff(ns))) >= _DAILY_SPACING.value)


def _from_text(values: pd.Series, file: str) -> pd.Series:
    """Timestamps from text: with time zones per the module docstring, ambiguous
    day/month orders settled by the data or refused. The first value decides the kind (pandas
    infers one format from it for the whole column), so big files are not scanned twice."""
    present = values.dropna()
    first = str(present.iloc[0]).strip() if len(present) else ""
    try:
        if ":" in first and _OFFSET.search(first):
            utc = pd.to_datetime(values, errors="coerce", utc=True).dt.tz_localize(None)
            if not _daily(utc):
                return utc
            local = values.astype("string").str.strip().str.replace(_OFFSET, "", regex=True)
            return pd.to_datetime(local, errors="coerce")
        day_first = bool(_DAY_MONTH.match(first)) and _day_first(values, file)
        parsed = pd.to_datetime(values, errors="coerce", utc=True, dayfirst=day_first)
        return parsed.dt.tz_localize(None)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"{file}: cannot parse the timestamps ({_first_line(exc)}); "
            "use one format for every row, e.g. 2020-01-31 or 2020-01-31 09:30:00"
        ) from None


def _day_first(values: pd.Series, file: str) -> bool:
    """For dates like 03/04/2020: True if day-first, False if month-first (or not this kind of
    date); ``DataError`` if no row tells which, or rows disagree."""
    text = values.astype("string")
    fields = text.str.extract(_DAY_MONTH).dropna()
    if fields.empty:
        return False
    first, second = fields[0].astype(int), fields[1].astype(int)
    day_first, month_first = bool((first > 12).any()), bool((second > 12).any())
    example = str(text[fields.index[0]]).strip()
    if day_first and month_first:
        raise DataError(
            f"{file}: dates like {example!r} mix day/month and month/day orders; "
            "write every date as YYYY-MM-DD"
        )
    if not (day_first or month_first):
        raise DataError(
            f"{file}: dates like {example!r} could be day/month or month/day and no date "
            "settles it; write them as YYYY-MM-DD"
        )
    return day_first


def _from_numbers(values: pd.Series) -> pd.Series:
    numbers = values.to_numpy(dtype="float64")
    finite = numbers[np.isfinite(numbers)]
    if finite.size and ((finite >= 1e7) & (finite < 1e8) & (finite == np.floor(finite))).all():
        text = values.astype("Int64").astype("string")
        return pd.to_datetime(text, format="%Y%m%d", errors="coerce")
    biggest = float(np.abs(finite).max()) if finite.size else 0.0
    unit = "s" if biggest < 1e11 else "ms" if biggest < 1e14 else "us" if biggest < 1e17 else "ns"
    return pd.Series(pd.to_datetime(numbers, unit=unit, errors="coerce"), index=values.index)
