"""`alphaloop dashboard` against the real server on 127.0.0.1: what it shows, paging a workflow
of 10,000 records, no way out of the home, no secret, a home it never writes, a locked
database, and the address it binds (through the real CLI)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest

from alphaloop.execution import BacktestTask, TaskQueue
from alphaloop.web.server import running
from alphaloop.workflow.state import StateManager
from alphaloop.workflow.tracker import ExperimentRecord, ExperimentTracker

N_RECORDS = 10_000
SECRET_SETTING = "sk-dashboard-setting-7f3a0c"
SECRET_ENV = "sk-dashboard-environment-91c2e4"
OUTSIDE = "outside-the-home-b41d9e"
CODE = "def generate_positions(data, **p):\n    return data.close * 0\n"
SETTINGS = {"criteria": ["sharpe_ratio>=1"], "n_variants": 4, "strategies_dir": None,
            "commission": 0.001, "slippage_bps": 0.0, "borrow_bps": 0.0, "rebalance": "change",
            "alpha": 0.05, "max_holdout_looks": 10, "min_trades": 10, "adjust": True}


def _record(wid: str, exp: str, i: int, **extra: Any) -> ExperimentRecord:
    return ExperimentRecord(
        workflow_id=wid, experiment_id=exp, variant_id=f"v{i:05d}", task_id=f"t{i}",
        strategy_name="sma_crossover", strategy_code=CODE,
        parameters={"fast": i % 50 + 2, "slow": 100}, ticker="GOOG",
        metrics={"sharpe_ratio": i / N_RECORDS, "max_drawdown": 0.3, "num_trades": 12},
        gate_score=-1 + i / N_RECORDS, failed_criteria=("sharpe_ratio 0.5, needs >= 1",),
        **extra)


def _big_workflow(home: Path) -> str:
    """A workflow in BACKTESTING with 10,000 records, a routing decision, a best strategy, a
    key among its settings, and a queue with 3 waiting tasks and 2 running."""
    st = StateManager.create(
        home, research_directive="trend following", ticker="GOOG",
        quality_criteria={"sharpe_ratio": 1.0}, max_parallel_workers=2,
        files={"settings.json": json.dumps({
            **SETTINGS, "llm": {"spec": "openai:gpt-4o-mini", "base_url": None,
                                "max_calls": 50, "max_tokens": 100_000,
                                "api_key": SECRET_SETTING},
            "openai_api_key": SECRET_SETTING})})
    wid = st.workflow_id
    st.update(current_phase="BACKTESTING", variants_tried=N_RECORDS, total_iterations=2,
              strategy_iteration=2, best_metrics={"sharpe_ratio": 0.9999},
              best_strategy={"name": "sma_crossover", "parameters": {"fast": 9, "slow": 100},
                             "gate_score": -0.0001, "code": CODE})
    with ExperimentTracker(home, wid) as tracker:
        exp = tracker.start_experiment(description="many variants")
        for i in range(3):  # the first ones through the tracker's own writes
            assert tracker.log_record(_record(wid, exp, i))
        tracker.set_action(exp, "TUNE_PARAMETERS",
                           {"reason": "R3: near miss: worst shortfall 19% <= 25%"})
        db = tracker.db_path
    # the rest straight into the tracker's table in one transaction (log_record fsyncs a JSON
    # line per record: 10,000 of them take minutes on a busy disk)
    rows = [(r.record_id, r.task_id, r.experiment_id, r.variant_id, None, r.sample,
             0, r.gate_score, r.created_at.isoformat(), r.model_dump_json())
            for r in (_record(wid, exp, i) for i in range(3, N_RECORDS))]
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany(
            "INSERT INTO records (record_id, task_id, experiment_id, variant_id, "
            "parent_variant_id, sample, gate_passed, gate_score, created_at, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.close()
    with ExperimentTracker(home, wid) as tracker:  # tracker records (reconciled into JSONL)
        assert tracker.counts()["in_sample"] == N_RECORDS
    queue = TaskQueue(st.dir / "queue.db")
    queue.enqueue_batch([BacktestTask(task_id=f"q{i}", experiment_id=exp, variant_id=f"v{i}",
                                      strategy_code=CODE, ticker="GOOG") for i in range(5)])
    assert len(queue.dequeue_many(2)) == 2
    queue.close()
    return wid


def _gone(folder: Path) -> None:
    """Record in ``folder`` a process that has ended as the one driving the workflow (what
    a run killed by SIGKILL leaves)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(proc.pid).create_time()  # a zombie until waited for
    proc.wait()
    (folder / "process.json").write_text(json.dumps(
        {"pid": proc.pid, "started": started, "host": socket.gethostname()}))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A home with the big workflow and a new one (a state, no database yet, its process
    gone), and things outside it that must never be served: a folder with a
    workflow-looking state and a tracker (linked into the home by symlinks), and a secret
    file next to the home."""
    root = tmp_path_factory.mktemp("dash")
    home = root / "home"
    big = _big_workflow(home)
    new = StateManager.create(home, research_directive="mean reversion", ticker="AAPL",
                              quality_criteria={"sharpe_ratio": 1.0},
                              files={"settings.json": json.dumps(SETTINGS)}).workflow_id
    _gone(home / "workflows" / new)
    outside = root / "outside"
    outside.mkdir()
    (root / "secret.txt").write_text(OUTSIDE)
    st = StateManager.create(outside, research_directive=OUTSIDE, ticker="GOOG",
                             quality_criteria={"sharpe_ratio": 1.0})
    with ExperimentTracker(outside, st.workflow_id) as tracker:
        exp = tracker.start_experiment(description=OUTSIDE)
        tracker.log_record(_record(st.workflow_id, exp, 1, strategy_description=OUTSIDE,
                                   error=OUTSIDE))
    (home / "workflows" / "workflow_20200101_000000_e0e0e0").symlink_to(st.dir)
    (home / "workflows" / new / "tracker.db").symlink_to(st.dir / "tracker.db")
    (home / "workflows" / new / "escape").symlink_to(root)
    return {"root": root, "home": home, "big": big, "new": new,
            "linked": "workflow_20200101_000000_e0e0e0"}


@pytest.fixture(scope="module")
def url(home: dict[str, Any]) -> Iterator[str]:
    """The dashboard of the home on 127.0.0.1."""
    with running(home["home"]) as u:
        yield u


def get(url: str, path: str, headers: dict[str, str] | None = None
        ) -> tuple[int, dict[str, str], bytes]:
    """GET ``path`` exactly as written (no client-side normalisation of ``..``)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def get_json(url: str, path: str) -> Any:
    status, headers, body = get(url, path)
    assert status == 200 and headers["content-type"].startswith("application/json"), body
    return json.loads(body)


def endpoints(home: dict[str, Any]) -> list[str]:
    big, new = home["big"], home["new"]
    paths = ["/", "/api/workflows", "/static/dashboard.js", "/static/dashboard.css",
             "/w/no_such_workflow", "/api/w/no_such_workflow/summary"]
    for wid in (big, new):
        paths += [f"/w/{wid}", f"/w/{wid}/report", f"/api/w/{wid}/summary",
                  f"/api/w/{wid}/records", f"/api/w/{wid}/records?sort=score&limit=200",
                  f"/api/w/{wid}/records?sort=old&offset=9990&sample=in_sample"]
    return paths


def test_the_pages_follow_the_home(url: str, home: dict[str, Any]) -> None:
    listed = get_json(url, "/api/workflows")["workflows"]
    assert {w["workflow_id"]: w["status"] for w in listed} == {
        home["big"]: "RUNNING", home["new"]: "INTERRUPTED"}  # never the symlinked one
    status, _, page = get(url, "/")
    assert status == 200 and home["big"].encode() in page and home["new"].encode() in page

    s = get_json(url, f"/api/w/{home['big']}/summary")
    assert (s["phase"], s["phase_plain"]) == ("BACKTESTING", "backtesting variants")
    assert s["counters"]["strategy"] == [2, 5] and s["counters"]["total"] == [2, 15]
    assert s["queue"] == {"queued": 3, "in_progress": 2, "completed": 0, "failed": 0}
    assert s["workers"] == {"busy": 2, "max": 2}
    assert s["best"]["name"] == "sma_crossover" and s["best"]["gate_score"] == -0.0001
    assert s["gate_score_definition"].startswith("gate score: ")
    assert s["records"]["total"] == N_RECORDS and s["records"]["last_seq"] == N_RECORDS
    decision = s["experiments"][0]["decision"]
    assert "near miss" in decision and "tuning the parameters" in decision
    assert "R3" not in decision
    status, _, page = get(url, f"/w/{home['big']}")
    assert status == 200 and b'data-phase="BACKTESTING"' in page

    fresh = get_json(url, f"/api/w/{home['new']}/summary")  # no queue, no tracker yet
    assert fresh["queue"] is None and fresh["records"]["total"] == 0
    assert fresh["phase_plain"] == "starting"
    assert (fresh["status"], fresh["status_text"]) == ("INTERRUPTED", "INTERRUPTED while starting")


def test_records_are_paged_on_the_server(url: str, home: dict[str, Any]) -> None:
    base = f"/api/w/{home['big']}/records"
    status, _, raw = get(url, base)
    page = json.loads(raw)
    assert status == 200 and page["total"] == N_RECORDS and len(page["rows"]) == 50
    assert [r["seq"] for r in page["rows"]] == list(range(N_RECORDS, N_RECORDS - 50, -1))
    assert len(raw) < 40_000 and b"generate_positions" not in raw  # no strategy code
    assert page["rows"][0]["failed"] == ["Sharpe 0.5 is below 1.0"]

    status, _, raw = get(url, f"{base}?limit=200&sort=score")
    page = json.loads(raw)
    assert len(page["rows"]) == 200 and len(raw) < 160_000
    scores = [r["gate_score"] for r in page["rows"]]
    assert scores == sorted(scores, reverse=True) and scores[0] == pytest.approx(-1e-4)

    tail = get_json(url, f"{base}?offset={N_RECORDS - 3}&sort=old")
    assert [r["seq"] for r in tail["rows"]] == [N_RECORDS - 2, N_RECORDS - 1, N_RECORDS]
    for bad in ("limit=201", "limit=0", "offset=-1", "offset=x", "sort=seq;DROP", "sample=x"):
        status, _, body = get(url, f"{base}?{bad}")
        assert status == 400 and b"Traceback" not in body, bad
    status, _, page_html = get(url, f"/w/{home['big']}")
    assert len(page_html) < 20_000  # the page itself holds no records
    status, _, summary = get(url, f"/api/w/{home['big']}/summary")
    assert len(summary) < 20_000


def test_an_unknown_workflow_is_a_404_page(url: str) -> None:
    for path in ("/w/workflow_20990101_000000_000000", "/w/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
                 "/w/x/report", "/nothing/here"):
        status, headers, body = get(url, path)
        assert status == 404 and headers["content-type"].startswith("text/html"), path
        assert b"<h1>not found</h1>" in body and b"Traceback" not in body
        assert b"<script>alert" not in body
    status, headers, body = get(url, "/api/w/workflow_20990101_000000_000000/summary")
    assert status == 404 and json.loads(body)["error"].startswith("no workflow")


TRAVERSALS = [
    "/w/..", "/w/../../etc/passwd", "/w/%2e%2e", "/w/%2e%2e%2f%2e%2e%2fsecret.txt",
    "/w/%252e%252e%252fsecret.txt", "/w/..%2f..%2fsecret.txt", "/api/w/%2e%2e/summary",
    "/api/w/..%2f..%2foutside/records", "/static/../../../etc/passwd",
    "/static/%2e%2e%2f%2e%2e%2fsecret.txt", "/static/..%2f__init__.py", "/static/%2fetc%2fpasswd",
    "/static//etc/passwd", "//etc/passwd", "/static/%252e%252e%252f_home.py", "/etc/passwd",
    "/w/%2Fetc%2Fpasswd", "/w/.%2e/.%2e/secret.txt", "/static/dashboard.js/../../_db.py",
    "/static/dashboard.js%00.py",
]


def test_no_path_leads_out_of_the_home(url: str, home: dict[str, Any]) -> None:
    root = home["root"]
    for path in [*TRAVERSALS,
                 f"/w/{home['new']}/escape", f"/w/{home['new']}/../../secret.txt",
                 f"/w/{home['new']}%2f..%2f..%2f..%2fsecret.txt",
                 f"/static/{root}/secret.txt", f"/w/{root}/secret.txt"]:
        status, _, body = get(url, path)
        assert 400 <= status < 500, (path, status)
        assert OUTSIDE.encode() not in body and b"root:x:0" not in body, path
    # a workflow folder that is a symlink out of the home is not a workflow
    for path in (f"/w/{home['linked']}", f"/api/w/{home['linked']}/summary",
                 f"/api/w/{home['linked']}/records", f"/w/{home['linked']}/report"):
        status, _, body = get(url, path)
        assert status == 404 and OUTSIDE.encode() not in body, path
    # a database that is a symlink out of the home is not read, nor copied for the report
    records = get_json(url, f"/api/w/{home['new']}/records")
    assert records["total"] == 0 and OUTSIDE not in json.dumps(records)
    # a page from another site cannot reach it through a name that resolves here
    status, _, _ = get(url, "/", headers={"Host": "attacker.example:8765"})
    assert status == 400


def _snapshot(home: Path) -> dict[str, str]:
    """Every name under ``home`` with the hash of its bytes (or where its link points)."""
    out = {}
    for folder, dirs, files in os.walk(home):
        for name in dirs + files:
            p = Path(folder, name)
            rel = str(p.relative_to(home))
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[rel] = "dir"
    return out


@pytest.fixture(scope="module")
def exercised(home: dict[str, Any]) -> dict[str, Any]:
    """Every page and API (and every traversal attempt) asked once of a fresh dashboard with
    keys in its environment, the idle home hashed before and after."""
    before = _snapshot(home["home"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENAI_API_KEY", SECRET_ENV)
        mp.setenv("ALPHALOOP_PROBE", SECRET_ENV)
        with running(home["home"]) as u:
            answers = {path: get(u, path) for path in [*endpoints(home), *TRAVERSALS]}
    return {"before": before, "after": _snapshot(home["home"]), "answers": answers}


def test_every_endpoint_leaves_the_idle_home_as_it_was(exercised: dict[str, Any]) -> None:
    before = exercised["before"]
    assert any(k.endswith("tracker.db") for k in before) and not any(
        k.endswith(("-wal", "-shm")) for k in before)  # idle: no writer holds a database
    for path, (status, _, body) in exercised["answers"].items():
        assert status < 500 and b"Traceback" not in body, (path, status)
    assert exercised["after"] == before


def test_the_report_is_served_from_memory(exercised: dict[str, Any],
                                          home: dict[str, Any]) -> None:
    status, headers, body = exercised["answers"][f"/w/{home['big']}/report"]
    assert status == 200 and home["big"].encode() in body and b"report not ready" not in body
    assert "default-src 'none'" in headers["content-security-policy"]  # nothing from outside
    assert b"alphaloop-report-" not in body  # the snapshot's folder is not named


def test_no_key_or_environment_value_appears(exercised: dict[str, Any],
                                             home: dict[str, Any]) -> None:
    _, _, body = exercised["answers"][f"/api/w/{home['big']}/summary"]
    settings = json.loads(body)["settings"]
    assert settings["criteria"] == ["sharpe_ratio>=1"]
    assert settings["llm"]["spec"] == "openai:gpt-4o-mini" and "api_key" not in settings["llm"]
    for path, (_, _, body) in exercised["answers"].items():
        assert SECRET_SETTING.encode() not in body and SECRET_ENV.encode() not in body, path
        assert OUTSIDE.encode() not in body, path  # the report copies no symlinked file


def test_a_locked_database_is_busy_then_read(tmp_path: Path) -> None:
    home = tmp_path / "home"
    st = StateManager.create(home, research_directive="x", ticker="GOOG",
                             quality_criteria={"sharpe_ratio": 1.0},
                             files={"settings.json": json.dumps(SETTINGS)})
    with ExperimentTracker(home, st.workflow_id) as tracker:
        exp = tracker.start_experiment()
        tracker.log_record(_record(st.workflow_id, exp, 1))
    writer = sqlite3.connect(st.dir / "tracker.db", isolation_level=None)
    writer.execute("PRAGMA locking_mode = EXCLUSIVE")
    writer.execute("BEGIN EXCLUSIVE")
    writer.execute("UPDATE experiments SET description = 'being written'")
    with running(home, busy_budget=0.2) as u:
        for path in (f"/api/w/{st.workflow_id}/summary", f"/api/w/{st.workflow_id}/records"):
            status, headers, body = get(u, path)
            assert status == 503 and json.loads(body)["busy"] is True, path
            assert headers["retry-after"] == "1"
        status, _, body = get(u, f"/w/{st.workflow_id}")
        assert status == 503 and b"busy" in body and b"Traceback" not in body
        writer.execute("COMMIT")
        writer.close()
        assert get_json(u, f"/api/w/{st.workflow_id}/summary")["records"]["total"] == 1
        assert len(get_json(u, f"/api/w/{st.workflow_id}/records")["rows"]) == 1


# --- the command -----------------------------------------------------------------------------


def _command(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "alphaloop.cli", "dashboard", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _local_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return str(a.address)
    return None


@pytest.mark.parametrize(("args", "words"), [
    (("--port", "99999"), "--port must be a number from 0 to 65535"),
    (("--port", "eighty"), "--port must be a number"),
    (("--host", "192.0.2.1", "--port", "0"), "cannot listen on 192.0.2.1:0"),  # not ours
    (("--port", "TAKEN"), "address already in use"),
])
def test_a_bad_port_or_host_is_one_line_and_exit_2(
        args: tuple[str, ...], words: str, home: dict[str, Any],
        capsys: pytest.CaptureFixture[str]) -> None:
    from alphaloop.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        with pytest.raises(SystemExit) as caught:
            main(["dashboard", "--home", str(home["home"]),
                  *(port if a == "TAKEN" else a for a in args)])
    _, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert caught.value.code == 2 and len(lines) == 1, err
    assert lines[0].startswith("error: ") and words in lines[0], lines


def test_the_command_binds_loopback_and_warns_beyond_it(home: dict[str, Any]) -> None:
    h = str(home["home"])
    # both at once: each start of the CLI takes seconds on a loaded machine
    local = _command("--home", h, "--port", "0")
    wide = _command("--home", h, "--host", "0.0.0.0", "--port", "0")
    try:
        line = local.stdout.readline()  # printed once the socket listens
        assert line.startswith("alphaloop dashboard: http://127.0.0.1:"), line
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        listening = [c.laddr for c in psutil.Process(local.pid).net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN]
        assert [(a.ip, a.port) for a in listening] == [("127.0.0.1", port)]
        status, _, body = get(f"http://127.0.0.1:{port}/", "/")
        assert status == 200 and home["big"].encode() in body
        other = _local_address()
        if other is not None:  # not reachable from another address of the machine
            with pytest.raises(OSError):
                socket.create_connection((other, port), timeout=10).close()

        line = wide.stdout.readline()
        assert line.startswith("alphaloop dashboard: http://0.0.0.0:"), line
        port = int(line.split("http://0.0.0.0:")[1].split("/")[0])
        status, _, _ = get(f"http://127.0.0.1:{port}/", "/")
        assert status == 200
    finally:
        for proc in (local, wide):
            proc.send_signal(signal.SIGINT)  # Ctrl-C
        results = [(p.wait(timeout=60), p.stderr.read()) for p in (local, wide)]
    (code, err), (wide_code, wide_err) = results
    assert code == 0 and err.strip() == "dashboard stopped", err
    assert wide_code == 0 and "Traceback" not in wide_err
    first = wide_err.strip().splitlines()[0]
    assert first.startswith("warning: listening on 0.0.0.0:") and "--host 127.0.0.1" in first
