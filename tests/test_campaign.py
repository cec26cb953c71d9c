"""Campaigns: one workflow per ticker through one pool, the same results as separate runs,
stopped by a limit and resumed to the uninterrupted result, a DSR over every trial."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from _results import comparable
from alphaloop.errors import AlphaloopError, ConfigError
from alphaloop.execution import LocalPool
from alphaloop.workflow.api import run_workflow
from alphaloop.workflow.campaign import (
    campaign_result,
    members,
    parse_universe,
    resume_campaign,
    run_campaign,
)
from alphaloop.workflow.document import workflow_document

GATE = ["sharpe_ratio>=0.2", "max_drawdown<=0.9", "num_trades>=1"]
OPTIONS: dict[str, Any] = dict(quality_criteria=GATE, n_variants=3, seed=2, alpha=1.0)
TICKERS = ["GOOG", "MSFT"]


@pytest.fixture(scope="module")
def pool() -> Iterator[LocalPool]:
    with LocalPool(max_workers=2) as p:
        yield p


@pytest.fixture(scope="module")
def alone(pool: LocalPool, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """GOOG's workflow run on its own."""
    return run_workflow("GOOG", home=tmp_path_factory.mktemp("alone"), executor=pool, **OPTIONS)


@pytest.fixture(scope="module")
def campaign(pool: LocalPool, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The campaign run without a stop, its phases in the order they came, its results."""
    home = tmp_path_factory.mktemp("campaign")
    phases: list[str] = []
    out = run_campaign(TICKERS, home=home, executor=pool,
                       on_event=lambda t, kind, _i: phases.append(t) if kind == "phase" else None,
                       **OPTIONS)
    return {"out": out, "phases": phases, "home": home,
            "results": _results(home, out["campaign_id"], pool)}


def _results(home: Path, campaign_id: str, pool: Any) -> dict[str, dict[str, Any]]:
    """Each member's result, read back (resuming a finished workflow runs nothing)."""
    from alphaloop.workflow.api import resume_workflow

    ids = members(home, campaign_id)
    return {t: resume_workflow(wid, home=home, executor=pool) for t, wid in ids.items()}


def test_a_campaign_interleaves_its_workflows_and_gets_their_separate_results(
        campaign: dict[str, Any], alone: dict[str, Any]) -> None:
    out, phases = campaign["out"], campaign["phases"]
    assert out["status"] == "COMPLETED" and not out["errors"]
    # fair: the second ticker's workflow starts before the first one's ends
    first_end = max(i for i, t in enumerate(phases) if t == phases[0])
    assert any(t != phases[0] for t in phases[:first_end]), phases
    got = campaign["results"]
    # sharing the pool changes nothing in a workflow's search
    assert comparable(got["GOOG"]) == comparable(alone)
    # one row per ticker; the campaign's trials are every member's
    rows = {r["ticker"]: r for r in out["rows"]}
    assert list(rows) == TICKERS
    assert out["campaign_trials"] == sum(r["in_sample_trials"] for r in got.values())
    for t in TICKERS:
        assert rows[t]["status"] == got[t]["status"]
        assert rows[t]["best_strategy"] == got[t]["best_strategy_name"]
        own = got[t]["in_sample_deflated_sharpe"]
        # deflated by more trials than the workflow's own: never more significant
        if own is not None and rows[t]["campaign_deflated_sharpe"] is not None:
            assert rows[t]["campaign_deflated_sharpe"] <= own + 1e-12
    doc = workflow_document(rows["GOOG"]["workflow_id"], str(campaign["home"]))
    assert doc["settings"]["campaign"] == out["campaign_id"]


def test_a_limit_stops_the_campaign_and_resume_finishes_it_alike(
        tmp_path: Path, pool: LocalPool, campaign: dict[str, Any]) -> None:
    out = run_campaign(TICKERS, home=tmp_path, executor=pool, max_variants=1, **OPTIONS)
    assert out["status"] == "STOPPED", out
    assert "variant limit" in out["reason"]
    assert any(r["status"] == "INTERRUPTED" or r["workflow_id"] is None for r in out["rows"])
    again = resume_campaign(out["campaign_id"], home=tmp_path, executor=pool,
                            max_variants=10_000)
    assert again["status"] == "COMPLETED", again
    got = _results(tmp_path, out["campaign_id"], pool)
    for t in TICKERS:  # stopped mid-way and resumed: the uninterrupted campaign's results
        assert comparable(got[t]) == comparable(campaign["results"][t]), t
    assert campaign_result(out["campaign_id"], tmp_path)["rows"] == again["rows"]
    saved = json.loads((tmp_path / "campaigns" / f"{out['campaign_id']}.json").read_text())
    assert saved["tickers"] == TICKERS and saved["limits"]["max_variants"] == 1


def test_universe_input_is_checked_before_anything_is_created(tmp_path: Path) -> None:
    uni = tmp_path / "u.txt"
    uni.write_text("# big tech\ngoog\n\nMSFT  # software\ngoog\n")
    assert parse_universe(None, str(uni)) == ["GOOG", "MSFT"]
    assert parse_universe("aapl, ibm,,AAPL", None) == ["AAPL", "IBM"]
    for tickers, universe in (("", None), (None, str(tmp_path / "missing.txt")),
                              ("A", str(uni)), (" , ", None)):
        with pytest.raises(ConfigError) as exc:
            parse_universe(tickers, universe)
        assert "\n" not in str(exc.value)
    home = tmp_path / "home"
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(AlphaloopError, match="NOPE"):
        run_campaign(["GOOG", "NOPE"], home=home, **OPTIONS)
    assert not home.exists()
    # the campaign's own pool started before the data was checked: it is gone again
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    assert [p for p in left if p.status() != psutil.STATUS_ZOMBIE] == []
    with pytest.raises(ConfigError, match="campaign-max-variants"):
        run_campaign(["GOOG"], home=home, max_variants=0, **OPTIONS)


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    distributed = pytest.importorskip("distributed")
    import tempfile

    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                       host="127.0.0.1", dashboard_address=None,
                                       memory_limit="2GiB")
    client = distributed.Client(cluster)
    client.run(os.chdir, tempfile.mkdtemp(prefix="alphaloop-dask-cwd-"))
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def test_a_campaign_on_dask_survives_a_killed_worker(
        tmp_path: Path, dask_client: Any, campaign: dict[str, Any]) -> None:
    """Three tickers on a LocalCluster; one Dask worker is SIGKILLed once backtests have been
    recorded. Nothing is lost: the campaign completes with the results it has without the
    kill (the local campaign's, for the tickers both ran)."""
    import signal
    import sqlite3
    import threading

    import psutil

    from alphaloop.execution.dask_backend import DaskBackend

    killed = threading.Event()
    done = threading.Event()

    def completed() -> int:
        n = 0
        for db in tmp_path.glob("workflows/*/queue.db"):
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
                    n += c.execute("SELECT count(*) FROM tasks WHERE state = 'completed'"
                                   ).fetchone()[0]
            except sqlite3.Error:
                continue
        return n

    def killer() -> None:
        while not done.is_set():
            if completed() >= 4:
                pid = next(iter(dask_client.run(os.getpid).values()))
                psutil.Process(pid).send_signal(signal.SIGKILL)
                killed.set()
                return
            done.wait(0.05)

    th = threading.Thread(target=killer, daemon=True)
    th.start()
    with DaskBackend(client=dask_client, task_timeout=120.0) as backend:
        out = run_campaign([*TICKERS, "IBM"], home=tmp_path, executor=backend, **OPTIONS)
        done.set()
        th.join()
        got = _results(tmp_path, out["campaign_id"], backend)
    assert killed.is_set(), "the campaign ended before a worker could be killed"
    assert out["status"] == "COMPLETED" and not out["errors"], out
    for t in TICKERS:
        assert comparable(got[t]) == comparable(campaign["results"][t]), t


def _cli(*args: str, home: Path) -> Any:
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "alphaloop.cli", *args, "--home", str(home)],
                          capture_output=True, text=True, timeout=600)


def test_the_cli_runs_shows_and_lists_a_campaign(tmp_path: Path) -> None:
    home = tmp_path / "home"
    gate = [a for g in GATE for a in ("--gate", g)]
    run = _cli("run", "--tickers", "goog,aapl", "--variants", "2", "--seed", "2", "--alpha",
               "1", "--workers", "2", *gate, "--json", home=home)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["status"] == "COMPLETED" and [r["ticker"] for r in out["rows"]] == ["GOOG", "AAPL"]
    assert "GOOG: " in run.stderr  # one plain progress line per phase, with its ticker
    cid = out["campaign_id"]
    shown = _cli("show", cid, home=home)
    assert shown.returncode == 0 and f"campaign {cid}: COMPLETED" in shown.stdout
    assert "campaign DSR" in shown.stdout and "GOOG" in shown.stdout
    status = _cli("status", home=home)
    assert status.returncode == 0 and f"campaign {cid}" in status.stdout
    assert all(r["workflow_id"] in status.stdout for r in out["rows"])
    again = _cli("resume", cid, "--json", home=home)  # finished: nothing runs, same table
    assert again.returncode == 0 and json.loads(again.stdout)["rows"] == out["rows"]
    for args in (("run", "--tickers", "GOOG", "--ticker", "AAPL"),
                 ("run", "--tickers", "GOOG,NOPE"), ("show", "campaign_nope")):
        bad = _cli(*args, home=tmp_path / "none")
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
        assert "Traceback" not in bad.stderr
    assert not (tmp_path / "none").exists()
