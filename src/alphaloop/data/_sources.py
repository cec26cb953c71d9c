"""Where bars come from: the embedded sample, one user file, or a folder of user files."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from alphaloop.data._read import SUFFIXES, ticker_of
from alphaloop.data._sample import SAMPLE_PATH, SAMPLE_SOURCE, SAMPLE_TICKERS
from alphaloop.errors import DataError


@dataclass(frozen=True)
class Source:
    """Tickers available from one place, and the file holding each."""

    files: dict[str, Path]
    label: str
    sample: bool = False

    def find(self, ticker: str) -> tuple[str, Path]:
        """``(TICKER, file)`` for a case-insensitive ticker, or a ``DataError`` with suggestions."""
        key = str(ticker).strip().upper()
        if key in self.files:
            return key, self.files[key]
        names = sorted(self.files)
        close = difflib.get_close_matches(key, names, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise DataError(
            f"unknown ticker {ticker!r} in {self.label}; {hint}available: {', '.join(names)}"
        )

    def describe(self, ticker: str) -> str:
        """What ``list_datasets`` shows as the source of ``ticker``."""
        return SAMPLE_SOURCE if self.sample else str(self.files[ticker])


def resolve(data_path: str | Path | None) -> Source:
    """The :class:`Source` for ``data_path`` (None means the embedded sample)."""
    if data_path is None:
        return Source({t: SAMPLE_PATH for t in SAMPLE_TICKERS}, "the embedded sample", True)
    path = Path(data_path).expanduser().resolve()
    kinds = "/".join(SUFFIXES)
    if path.is_file():
        ticker = ticker_of(path)
        if ticker is None:
            raise DataError(f"{path} is not a data file; use a {kinds} file or a folder of them")
        return Source({ticker: path}, str(path))
    if path.is_dir():
        files: dict[str, Path] = {}
        for child in sorted(path.iterdir()):
            ticker = ticker_of(child)
            if ticker is None or not child.is_file():
                continue
            if ticker in files:
                raise DataError(
                    f"{path} has two files for {ticker} ({files[ticker].name}, "
                    f"{child.name}; tickers are case-insensitive); keep one"
                )
            files[ticker] = child
        if not files:
            raise DataError(
                f"{path} holds no <TICKER>{kinds} files; add some or point --data elsewhere"
            )
        return Source(files, f"folder {path}")
    raise DataError(f"data path {path} does not exist; give a {kinds} file or a folder of them")
