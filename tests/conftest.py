"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from _llm_server import LLMServer, isolate
from alphaloop.backtest.strategy import executing_in_process


@pytest.fixture
def in_process() -> Iterator[None]:
    """Run test strategy sources in the test process (trusted code written by the tests; the
    product runs strategy code only in kernel-confined processes)."""
    with executing_in_process():
        yield


@pytest.fixture
def llm_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No provider key, endpoint or proxy from the environment (`_llm_server.isolate`)."""
    isolate(monkeypatch, tmp_path)


@pytest.fixture
def server() -> Iterator[LLMServer]:
    """A scripted OpenAI/Anthropic-compatible server on 127.0.0.1 (`_llm_server`)."""
    with LLMServer() as srv:
        yield srv
