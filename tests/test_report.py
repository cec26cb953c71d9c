"""`alphaloop report`: one self-contained HTML page per workflow, built from a real workflow
run once (shared with tests/test_browser_report.py), checked for what a reader relies on: the
verdict and the gate, the two deflated Sharpe figures, curves that end on the stored metrics,
no reference outside the file, the size budget at 10,000 variants, and a home left as it was."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import subprocess
import sys
from html import unescape
from pathlib import Path
from typing import Any

import pytest

MAX_BYTES = 2_000_000
"""The size budget of a report (issue 10)."""


def alphaloop(*args: str, cwd: Path | None = None,
              timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "alphaloop.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)


def shared_workflow(factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, Any]]:
    """A short GOOG workflow that reaches the holdout (a loose gate, significance off), run
    once per test session and shared by the report's test modules (a marker file in the
    session's base folder says it is there)."""
    base = factory.getbasetemp() / "report-workflow"
    marker = base / "result.json"
    home = base / "home"
    if not marker.exists():
        base.mkdir(exist_ok=True)
        proc = alphaloop("run", "--ticker", "GOOG", "--gate", "sharpe_ratio>=0.2",
                         "--gate", "num_trades>=1", "--variants", "2", "--workers", "1",
                         "--alpha", "1", "--json", "--home", str(home))
        assert proc.returncode == 0, proc.stderr
        marker.write_text(proc.stdout, encoding="utf-8")
    result = json.loads(marker.read_text(encoding="utf-8"))
    assert result["status"] == "SUCCESS" and result["holdout_metrics"], result
    return home, result["workflow_id"], result


def many_rows(report: Any, n: int) -> Any:
    """``report`` with ``n`` variants: its own rows repeated over 100 experiments, each a
    little different, as a long workflow would record them."""
    base = list(report.rows)
    experiments = [dataclasses.replace(report.experiments[0], seq=k + 1,
                                       research_iteration=k // 10,
                                       experiment_id=f"exp_{k + 1:03d}")
                   for k in range(100)]
    failed = ("sharpe_ratio 0.8102, needs >= 1; win_rate 0.4483, needs >= 0.5; "
              "max_drawdown 0.3292, needs <= 0.2")
    rows = []
    for i in range(n):
        row = list(base[i % len(base)])
        row[0] = i % 100
        row[1] = f"v{i // 100:02d}"
        row[3] = f"period={20 + i % 180}, exit_period={5 + i % 90}, allow_short=False"
        row[4] = round(-2 + (i * 7919 % 5000) / 1000, 4)
        row[5] = 1 if row[4] >= 1 else 0
        row[12] = "" if row[5] else failed
        rows.append(row)
    return dataclasses.replace(report, experiments=experiments, rows=rows)


def shared_pages(factory: pytest.TempPathFactory, report: Any = None) -> tuple[Path, Path]:
    """The shared workflow's report and the same report with 10,000 variants (`many_rows`),
    written once per test session; ``report`` is its content if the caller has it."""
    from alphaloop.report._page import render

    base = factory.getbasetemp() / "report-workflow"
    real, big = base / "report.html", base / "report-10000.html"
    if not big.exists():
        if report is None:
            home, wid, _ = shared_workflow(factory)
            report = gather_once(wid, home)
        real.write_text(render(report), encoding="utf-8")
        big.write_text(render(many_rows(report, 10_000)), encoding="utf-8")
    return real, big


def gather_once(wid: str, home: Path) -> Any:
    """The report's content (`report._gather`), the winner run again in a confined process."""
    from alphaloop.report._gather import gather
    from alphaloop.report._replay import start_host

    host = start_host()
    try:
        return gather(wid, str(home), host)
    finally:
        host.close()


def _snapshot(home: Path) -> dict[str, str]:
    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(home.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def workflow(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, Any]]:
    return shared_workflow(tmp_path_factory)


@pytest.fixture(scope="module")
def page(workflow: tuple[Path, str, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
         ) -> dict[str, Any]:
    """The report written by the CLI, with the home's files before and after."""
    home, wid, _ = workflow
    before = _snapshot(home)
    out = tmp_path_factory.mktemp("report") / "report.html"
    proc = alphaloop("report", wid, "--home", str(home), "-o", str(out))
    return {"proc": proc, "path": out, "before": before, "after": _snapshot(home)}


@pytest.fixture(scope="module")
def gathered(workflow: tuple[Path, str, dict[str, Any]],
             tmp_path_factory: pytest.TempPathFactory) -> Any:
    home, wid, _ = workflow
    report = gather_once(wid, home)
    shared_pages(tmp_path_factory, report)  # for the browser tests
    return report


def _text(html: str) -> str:
    """The page's visible words, one space between them."""
    body = re.sub(r"<script.*?</script>|<style.*?</style>", " ", html, flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", body)).split())


def test_cli_writes_the_report_and_says_where(page: dict[str, Any]) -> None:
    proc = page["proc"]
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith(f"wrote {page['path']}"), proc.stderr
    assert page["path"].stat().st_size > 0


def test_report_holds_the_verdict_gate_and_both_deflated_sharpes(
        page: dict[str, Any], workflow: tuple[Path, str, dict[str, Any]]) -> None:
    _, wid, result = workflow
    html = page["path"].read_text(encoding="utf-8")
    text = _text(html)
    assert wid in text and "SUCCESS" in text
    assert f"{result['best_strategy_name']} passed the gate in-sample and on the holdout" in text
    # the gate table: each criterion with its in-sample and holdout values and its threshold
    for expression in ("sharpe_ratio>=0.2", "num_trades>=1"):
        assert expression in text
    ins, out = result["best_metrics"], result["holdout_metrics"]
    assert f"{ins['sharpe_ratio']:.3f} pass" in text and f"{out['sharpe_ratio']:.3f} pass" in text
    assert f"+{ins['sharpe_ratio'] - 0.2:.3f}" in text  # its margin
    # both deflated Sharpe figures, labelled, with the trials and the holdout looks
    dsr = result["in_sample_deflated_sharpe"]
    assert f"in-sample deflated Sharpe {dsr:.3f} over {result['in_sample_trials']} trials" in text
    psr = result["holdout_significance"]["psr"]
    assert f"holdout PSR {psr:.3f} 1 holdout look in the workflow" in text
    assert "gate score: " in text  # defined where it is shown
    assert "Language model" not in text  # the workflow ran offline


def test_report_holds_source_parameters_fingerprint_and_reproduce_commands(
        page: dict[str, Any], workflow: tuple[Path, str, dict[str, Any]]) -> None:
    home, wid, result = workflow
    text = _text(page["path"].read_text(encoding="utf-8"))
    from alphaloop.workflow.document import export_source

    header = export_source(wid, str(home), None).split("\n\n", 1)[0]  # `alphaloop export`
    commands = [line.removeprefix("#").strip() for line in header.splitlines()
                if line.startswith("#   alphaloop backtest ")]
    assert len(commands) == 2  # in-sample and holdout (with --warmup-from)
    for command in commands:
        assert command in text
    fingerprint = re.search(r"data fingerprint \(in-sample bars\): (\w+)", header)
    assert fingerprint and fingerprint.group(1) in text
    assert "def generate_positions" in text and "PARAMETERS" in text
    for name, value in result["best_parameters"].items():
        assert f"{name} {json.dumps(value)}" in text


def test_report_holds_tree_trajectory_lessons_and_every_variant(
        page: dict[str, Any], workflow: tuple[Path, str, dict[str, Any]]) -> None:
    _, _, result = workflow
    html = page["path"].read_text(encoding="utf-8")
    text = _text(html)
    assert "research iteration 0" in text and "experiment 1" in text
    from alphaloop.workflow.explain import plain_action

    assert plain_action("SUCCESS") in text  # the routing action in words, not its code
    data = json.loads(re.search(r'<script type="application/json" id="variants-data">(.*?)'
                                r"</script>", html, re.S).group(1))
    assert len(data["rows"]) == result["variants_tried"]
    assert len(data["fields"]) == len(data["rows"][0])
    for lesson in result["lessons_learned"]:
        assert "(tier" not in text or lesson not in text  # lessons are shown in words
    for heading in ("Equity (growth of 1) against buy and hold", "Underwater",
                    "Trades on the price", "Monthly returns", "The trajectory", "Lessons"):
        assert heading in text
    assert html.count("<svg") >= 5


def test_report_is_self_contained_and_small(page: dict[str, Any]) -> None:
    html = page["path"].read_text(encoding="utf-8")
    assert len(html.encode("utf-8")) <= MAX_BYTES
    refs = re.findall(r"""(?:src|href|action|xlink:href)\s*=\s*["']?([^"'\s>]*)""", html, re.I)
    assert refs, "expected the in-page links"
    assert all(r.startswith("#") for r in refs), refs
    assert not re.search(r"https?:|//[a-z0-9]", re.sub(r"<pre>.*?</pre>", "", html, flags=re.S),
                         re.I)
    assert "<link" not in html and "@import" not in html and "url(" not in html
    assert "default-src 'none'" in html  # the browser may fetch nothing


def test_report_leaves_the_home_as_it_was(page: dict[str, Any]) -> None:
    before, after = page["before"], page["after"]
    # every file of the home is unchanged, byte for byte, and none appeared: an idle tracker
    # is read immutable, so SQLite leaves no -wal/-shm behind either
    assert after == before


def test_curves_end_on_the_stored_metrics(gathered: Any,
                                          workflow: tuple[Path, str, dict[str, Any]]) -> None:
    import numpy as np

    _, _, result = workflow
    c = gathered.curves
    assert c is not None, gathered.curves_note
    ins, out = result["best_metrics"], result["holdout_metrics"]
    assert c.in_sample_total_return == ins["total_return"]
    assert c.holdout_total_return == out["total_return"]
    k = c.boundary
    assert k is not None and c.dates[k].date().isoformat() == result["holdout"][0]
    assert c.equity[k - 1] - 1 == pytest.approx(ins["total_return"], rel=1e-12)
    assert c.equity[-1] / c.equity[k - 1] - 1 == pytest.approx(out["total_return"], rel=1e-12)
    assert -c.underwater[:k].min() == pytest.approx(ins["max_drawdown"], rel=1e-12)
    assert -c.underwater[k:].min() == pytest.approx(out["max_drawdown"], rel=1e-12)
    assert c.buy_hold[0] == 1.0 and np.isfinite(c.buy_hold).all()
    closed = [t for t in c.trades if not t.get("holdout") and not t["is_open"]]
    assert len([t for t in c.trades if not t.get("holdout")]) == ins["num_trades"]
    assert closed and all(t["entry_date"] < t["exit_date"] for t in closed)
    growth = float(np.prod(1 + c.monthly.to_numpy()))
    assert growth == pytest.approx(c.equity[-1] / c.equity[0], rel=1e-9)
    # the deflated Sharpe the report shows is the workflow's, recomputed from the returns
    assert gathered.deflated_in_sample == pytest.approx(result["in_sample_deflated_sharpe"],
                                                        rel=1e-9)


def test_ten_thousand_variants_fit_the_size_budget(
        gathered: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    html = shared_pages(tmp_path_factory, gathered)[1].read_text(encoding="utf-8")
    assert len(html.encode("utf-8")) <= MAX_BYTES, len(html)
    data = json.loads(re.search(r'id="variants-data">(.*?)</script>', html, re.S).group(1))
    assert len(data["rows"]) == 10_000
    assert "<tbody></tbody>" in html  # rows are drawn a page at a time, not 10,000 in the DOM


def test_charts_keep_the_extremes_of_long_series() -> None:
    import numpy as np

    from alphaloop.report._charts import MAX_POINTS, thin

    rng = np.random.default_rng(7)
    series = np.cumsum(rng.normal(size=100_000))
    keep = thin(series)
    assert len(keep) <= MAX_POINTS
    assert series.argmin() in keep and series.argmax() in keep
    assert keep[0] == 0 and keep[-1] == len(series) - 1


def test_a_workflow_with_nothing_measured_still_renders(
        workflow: tuple[Path, str, dict[str, Any]], tmp_path: Path) -> None:
    """A workflow run with --llm and killed right after it started: its state (with the
    language model's budget) and settings, no experiment."""
    from alphaloop.report import render_report
    from alphaloop.workflow.state import StateManager

    home, wid, _ = workflow
    settings = (home / "workflows" / wid / "settings.json").read_text(encoding="utf-8")
    fresh = tmp_path / "home"
    budget = {"max_calls": 50, "max_tokens": 200_000, "calls": 7, "prompt_tokens": 12_345,
              "completion_tokens": 2_345, "replayed_calls": 3, "refused": 0}
    st = StateManager.create(fresh, research_directive="trend following", ticker="GOOG",
                             quality_criteria={"sharpe_ratio": 1.0},
                             files={"settings.json": settings},
                             llm={"spec": "openai:gpt-4o-mini", "budget": budget,
                                  "fallbacks": 1, "rejected_strategies": 2})
    text = _text(render_report(st.state.workflow_id, fresh))
    assert st.state.workflow_id in text and "RUNNING" in text
    assert "nothing measured yet" in text and "No charts" in text
    # the process that ran it is gone: INTERRUPTED, and resume carries on
    subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from "
                    "alphaloop.workflow.liveness import record_process; "
                    "record_process(Path(sys.argv[1]))", str(st.dir)], check=True)
    text = _text(render_report(st.state.workflow_id, fresh))
    assert "INTERRUPTED" in text and "resume" in text and "RUNNING" not in text
    # the language model's usage (issue 9's budget)
    assert "Language model model openai:gpt-4o-mini" in text
    assert "calls 7 (3 replayed on resume) of at most 50" in text
    assert "prompt tokens 12,345 completion tokens 2,345 (at most 200,000 in all)" in text
    assert "fallbacks to the offline agents 1 written strategies rejected 2" in text


def test_errors_are_one_line_and_exit_2(workflow: tuple[Path, str, dict[str, Any]],
                                        tmp_path: Path) -> None:
    home, wid, _ = workflow

    def one_line(proc: subprocess.CompletedProcess[str], words: str) -> None:
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], lines

    from alphaloop.errors import ConfigError
    from alphaloop.report import render_report

    one_line(alphaloop("report", "workflow_nope", "--home", str(home), cwd=tmp_path),
             "no workflow 'workflow_nope'")
    missing = tmp_path / "no-home"
    with pytest.raises(ConfigError, match="no workflow"):
        render_report(wid, missing)
    assert not missing.exists()  # reading never creates a home
    one_line(alphaloop("report", wid, "--home", str(home), "-o", str(tmp_path)),
             f"cannot write {tmp_path}")
    assert not list(tmp_path.glob("*.html"))


def test_thinning_keeps_each_buckets_extremes() -> None:
    """The vectorised thinning against a plain loop over the buckets (NaNs, ties, a NaN half,
    a series just over the limit)."""
    import itertools

    import numpy as np

    from alphaloop.report._charts import thin

    def by_loop(values: Any, limit: int = 1500) -> Any:
        n = len(values)
        if n <= limit:
            return np.arange(n)
        edges = np.linspace(0, n, max(1, limit // 2 - 1) + 1).astype(int)
        keep = [0, n - 1]
        for lo, hi in itertools.pairwise(edges):
            chunk = values[lo:hi]
            if not np.isnan(chunk).all():
                keep += [lo + int(np.nanargmin(chunk)), lo + int(np.nanargmax(chunk))]
        return np.unique(keep)

    rng = np.random.default_rng(0)
    for n in (10, 1500, 1501, 2148, 21480):
        for k in range(8):
            v = rng.normal(size=n).cumsum()
            if k % 2:
                v[rng.integers(0, n, n // 5)] = np.nan
            if k % 3 == 0:
                v = np.round(v)
            if k == 4:
                v[: n // 2] = np.nan
            assert np.array_equal(thin(v), by_loop(v)), (n, k)
