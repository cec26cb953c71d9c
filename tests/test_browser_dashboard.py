"""The dashboard in a real browser (headless system Chromium, the `browser` fixture): it
follows a real `alphaloop run` without a reload, and every request stays on 127.0.0.1."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from alphaloop.web.server import running

WAIT_MS = 240_000  # generous: the machine is shared and a run's first phases take a while


def test_the_workflow_page_follows_a_live_run(browser: Any, artifacts: Path,
                                              tmp_path: Path) -> None:
    home = tmp_path / "home"  # created by the run, after the dashboard started
    with running(home) as url:
        page = browser.new_page()
        requests: list[str] = []
        errors: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        assert page.locator("#empty").is_visible()  # no workflow yet

        run = subprocess.Popen(
            [sys.executable, "-m", "alphaloop.cli", "run", "--ticker", "GOOG", "--variants",
             "2", "--workers", "1", "--home", str(home)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            link = page.locator("#workflows tbody a").first
            link.wait_for(timeout=WAIT_MS)  # the list refreshes itself
            link.click()
            page.wait_for_function("document.body.dataset.page === 'workflow'")
            page.evaluate("window.sameDocument = true")  # a reload would lose it
            phase = page.locator("#phase").get_attribute("data-phase")
            total = int(page.locator("#records-total").get_attribute("data-total") or 0)

            page.wait_for_function(
                "p => document.querySelector('#phase').dataset.phase !== p", arg=phase,
                timeout=WAIT_MS)
            page.wait_for_function(
                "n => Number(document.querySelector('#records-total').dataset.total) > n"
                " && document.querySelectorAll('#records tbody tr.new').length > 0",
                arg=total, timeout=WAIT_MS)
            assert page.evaluate("window.sameDocument") is True
            assert page.locator("#queue dd").count() == 4
            assert page.locator("#gate-def").inner_text().startswith("gate score: ")
            page.screenshot(path=str(artifacts / "dashboard-live-run.png"), full_page=True)
            shown = page.locator("#phase").inner_text()
            assert shown and "_" not in shown  # plain words, not the code
        finally:
            run.send_signal(signal.SIGINT)
            _, err = run.communicate(timeout=WAIT_MS / 1000)
            page.close()
    assert run.returncode in (0, 1, 130), err
    assert not errors, errors
    outside = [u for u in requests if not u.startswith((url, "data:"))]
    assert requests and not outside, outside
