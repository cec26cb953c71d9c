"""The report in a real browser (headless system Chromium, `browser` fixture): its charts
render, its variants table sorts, filters and pages at 10,000 variants, nothing is logged as
an error, and no request leaves ``file:``. A screenshot goes to the test output folder."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from test_report import shared_pages, shared_workflow


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The shared workflow's report, and the same report with 10,000 variants."""
    _, _, result = shared_workflow(tmp_path_factory)
    real, big = shared_pages(tmp_path_factory)
    text = big.read_text(encoding="utf-8")
    rows = json.loads(re.search(r'id="variants-data">(.*?)</script>', text, re.S).group(1))
    return {"real": real, "big": big, "result": result, "rows": rows["rows"]}


class Opened:
    """A page opened from a file, with what it logged and asked for."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page = browser.new_page(viewport={"width": 1200, "height": 900})
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error"
                     else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.as_uri(), wait_until="load")

    def status(self) -> str:
        return str(self.page.text_content("#variants-status"))

    def column(self, index: int) -> list[str]:
        cells = self.page.query_selector_all(f"#variants-table tbody tr td:nth-child({index})")
        return [str(c.text_content()) for c in cells]

    def check_clean(self) -> None:
        assert self.errors == []
        assert self.requests and all(u.startswith("file:") for u in self.requests), (
            self.requests)


@pytest.fixture
def opened(browser: Any) -> Iterator[Any]:
    made: list[Opened] = []

    def open_(path: Path) -> Opened:
        made.append(Opened(browser, path))
        return made[-1]

    yield open_
    for o in made:
        o.page.close()


def test_report_renders_its_charts_offline(opened: Any, pages: dict[str, Any],
                                           artifacts: Path) -> None:
    o = opened(pages["real"])
    charts = o.page.query_selector_all("svg.chart")
    assert len(charts) >= 5  # equity, underwater, trades, monthly returns, trajectory
    for chart in charts:
        box = chart.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 100, box
    lines = o.page.query_selector_all("svg.chart path.line")
    assert len(lines) >= 4
    for line in lines:
        box = line.bounding_box()
        assert box and box["width"] > 0 and box["height"] > 0
    assert o.page.query_selector_all("svg.chart path.long")  # trades marked on the price
    rows = o.page.query_selector_all("#variants-table tbody tr")
    assert len(rows) == pages["result"]["variants_tried"]
    o.page.screenshot(path=str(artifacts / "report.png"), full_page=True)
    o.check_clean()


def test_variants_table_sorts_filters_and_pages_at_10000(opened: Any,
                                                        pages: dict[str, Any]) -> None:
    rows = pages["rows"]
    o = opened(pages["big"])
    assert o.status() == "10000 of 10000 variants, page 1 of 200"
    assert len(o.page.query_selector_all("#variants-table tbody tr")) == 50
    # sort by gate score: highest first, then lowest first
    scores = sorted(r[4] for r in rows)
    header = o.page.locator('#variants-table th[data-key="gate_score"]')
    header.click()
    assert header.get_attribute("aria-sort") == "descending"
    assert o.column(6)[0] == f"{scores[-1]:.3f}"
    header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    assert o.column(6)[0] == f"{scores[0]:.3f}"
    # filter by text: the rows whose parameters hold it
    wanted = sum(1 for r in rows if "period=21," in r[3])
    o.page.fill("#variants-search", "period=21,")
    assert o.status().startswith(f"{wanted} of 10000 variants")
    assert all("period=21," in p for p in o.column(5))
    # and by verdict
    o.page.select_option("#variants-verdict", "1")
    passed = sum(1 for r in rows if "period=21," in r[3] and r[5] == 1)
    assert o.status().startswith(f"{passed} of 10000 variants")
    assert set(o.column(7)) <= {"passed"}
    # pages
    o.page.fill("#variants-search", "")
    o.page.select_option("#variants-verdict", "all")
    o.page.click("#variants-next")
    assert o.status() == "10000 of 10000 variants, page 2 of 200"
    # the experiment tree's link shows that experiment's variants
    link = o.page.locator('a[data-experiment="3"]')
    link.locator("xpath=ancestor::details[1]/summary").click()  # open the experiment
    link.click()
    assert o.status().startswith(f"{sum(1 for r in rows if r[0] == 3)} of 10000 variants")
    o.check_clean()
