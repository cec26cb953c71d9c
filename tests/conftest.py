"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from alphaloop.backtest.strategy import executing_in_process


@pytest.fixture
def in_process() -> Iterator[None]:
    """Run test strategy sources in the test process (trusted code written by the tests; the
    product runs strategy code only in kernel-confined processes)."""
    with executing_in_process():
        yield
