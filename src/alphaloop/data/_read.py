"""Reading one user OHLCV file (CSV or Parquet) into raw bars, remembering where each row was.

What a file may look like:

- Column names are matched case-insensitively (surrounding spaces ignored). ``open``, ``high``,
  ``low``, ``close`` are required, ``volume`` is optional (missing -> 0.0 on every bar). Other
  columns are ignored; prices are used as given (supply adjusted prices if you want them). A
  column alphaloop reads may appear only once (``close`` and ``Close `` are the same column).
- Timestamps come from a column named ``date``, ``datetime`` or ``timestamp`` or, in a Parquet
  file without such a column, from its ``DatetimeIndex``. Text is parsed by pandas with one
  format for the whole column (inferred from the first row), e.g. ISO ``2020-01-31`` or
  ``2020-01-31 09:30:00``. Numbers are read as ``YYYYMMDD`` when all are 8-digit integers,
  otherwise as Unix epoch seconds/milliseconds/microseconds/nanoseconds by magnitude.
  Timestamps with a timezone or UTC offset are converted to UTC and the timezone is dropped;
  naive timestamps are kept as they are.
- In a CSV file, lines with no value at all (blank lines) are not bars and are skipped; a
  trailing delimiter on every line is tolerated (the first column is never taken as an index).

Row numbers in messages count data rows from 1, header excluded (so in a CSV file, row ``n`` is
line ``n + 1``, which the message also gives).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from alphaloop.errors import DataError

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "volume")
DATE_COLUMNS: tuple[str, ...] = ("date", "datetime", "timestamp")
SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".parquet")
"""File name endings recognised as data files; the ticker is the name without it."""


@dataclass(frozen=True)
class RawBars:
    """Bars as read, before validation: timestamps may be unsorted or repeated.

    ``frame`` has float64 columns ``open, high, low, close, volume`` and the parsed tz-naive
    timestamps as index; ``rows[i]`` is the 1-based data row of ``frame.iloc[i]`` in the file.
    """

    frame: pd.DataFrame
    rows: np.ndarray
    file: str
    is_csv: bool
    has_volume: bool

    def at(self, i: int, with_date: bool = True) -> str:
        """Where row ``i`` is, for a message: ``"x.csv row 4 (line 5), 2020-01-07"``."""
        return _where(
            self.file, int(self.rows[i]), self.is_csv, self.frame.index[i] if with_date else None
        )


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


def _header(path: Path, is_csv: bool) -> list[object] | None:
    """The column names exactly as the file spells them: pandas renames a repeated CSV column
    (``close``, ``close.1``) and pyarrow refuses to read a Parquet file that repeats one, so
    both would hide a duplicate. None if the header cannot be read this way."""
    try:
        if is_csv:
            first = pd.read_csv(path, header=None, nrows=1, index_col=False,
                                skip_blank_lines=False, dtype=str)
            return list(first.iloc[0]) if len(first) else None
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    except Exception:  # the full read below reports what is wrong with the file
        return None


def _normal(name: object) -> str:
    return str(name).replace("\ufeff", "").strip().lower()


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
    for key in (*DATE_COLUMNS, *COLUMNS):
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
    file = str(path)
    is_csv = not path.name.lower().endswith(".parquet")
    header = _header(path, is_csv)
    if header is not None:
        _check_repeats(file, header)
    try:
        table = (
            pd.read_csv(path, skip_blank_lines=False, index_col=False)
            if is_csv
            else pd.read_parquet(path)
        )
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
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
    table.columns = names
    dates = [n for n in DATE_COLUMNS if n in names]
    missing = [c for c in PRICE_COLUMNS if c not in names]
    if len(dates) != 1 or missing:
        shown = [_shown(c) for c in table.columns[:12]]
        more = len(table.columns) - len(shown)
        found = ", ".join(shown) + (f" and {more} more" if more > 0 else "") or "nothing"
        if len(dates) > 1:
            raise DataError(f"{file}: several timestamp columns ({', '.join(dates)}); keep one")
        need = ([] if dates else ["date (or datetime/timestamp)"]) + missing
        raise DataError(
            f"{file}: missing column(s) {', '.join(need)}; found {found}; "
            "the header needs date, open, high, low, close and optionally volume"
        )

    index = _parse_timestamps(table[dates[0]], file, rows, is_csv)
    frame = pd.DataFrame(index=index)
    has_volume = "volume" in names
    for column in COLUMNS:
        if column == "volume" and not has_volume:
            frame[column] = 0.0
            continue
        frame[column] = _to_float(table[column], column, file, rows, is_csv, index)
    frame.index.name = "date"
    return RawBars(frame, rows, file, is_csv, has_volume)


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
            parsed = values.dt.tz_convert("UTC").dt.tz_localize(None)
        elif pd.api.types.is_datetime64_dtype(dtype):
            parsed = values
        elif pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            parsed = _from_numbers(values)
        else:
            try:
                parsed = pd.to_datetime(values, errors="coerce", utc=True).dt.tz_localize(None)
            except (ValueError, TypeError) as exc:
                raise DataError(
                    f"{file}: cannot parse the timestamps ({_first_line(exc)}); "
                    "use one format for every row, e.g. 2020-01-31 or 2020-01-31 09:30:00"
                ) from None
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


def _from_numbers(values: pd.Series) -> pd.Series:
    numbers = values.to_numpy(dtype="float64")
    finite = numbers[np.isfinite(numbers)]
    if finite.size and ((finite >= 1e7) & (finite < 1e8) & (finite == np.floor(finite))).all():
        text = values.astype("Int64").astype("string")
        return pd.to_datetime(text, format="%Y%m%d", errors="coerce")
    biggest = float(np.abs(finite).max()) if finite.size else 0.0
    unit = "s" if biggest < 1e11 else "ms" if biggest < 1e14 else "us" if biggest < 1e17 else "ns"
    return pd.Series(pd.to_datetime(numbers, unit=unit, errors="coerce"), index=values.index)
