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


CHROMIUM_INSTALL = "apt-get install -y chromium"


def _chromium_executable() -> str | None:
    """The system Chromium (``ALPHALOOP_CHROMIUM``, else ``chromium``/``chromium-browser`` on
    PATH); None when there is none."""
    import os
    import shutil

    explicit = os.environ.get("ALPHALOOP_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """A headless system Chromium driven by playwright (never ``playwright install``: no
    network); one per module, so it is gone before other modules (the hostile suite counts
    this process's children). In CI (``CI=true``) a missing Chromium or playwright fails the
    test; elsewhere the browser tests skip with one line naming the install command."""
    import os

    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    exe = _chromium_executable()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if in_ci:
            pytest.fail("playwright is missing: pip install -e '.[test]'")
        pytest.skip("browser tests need playwright: pip install -e '.[test]'")
    if exe is None:
        if in_ci:
            pytest.fail(f"Chromium is missing: {CHROMIUM_INSTALL}")
        pytest.skip(f"browser tests need Chromium: {CHROMIUM_INSTALL}")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def artifacts() -> Path:
    """The test output folder (screenshots): ``$ALPHALOOP_TEST_OUTPUT`` or
    ``./test-output``."""
    import os

    out = Path(os.environ.get("ALPHALOOP_TEST_OUTPUT", "test-output"))
    out.mkdir(parents=True, exist_ok=True)
    return out
