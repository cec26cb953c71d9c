"""What a newcomer reads: golden tests of `alphaloop run`'s summary and progress lines and of
`status` / `show` for a FAILED, a COMPLETED and an interrupted workflow, each a real run.

Golden files live in tests/golden/cli_output/; volatile parts (workflow and experiment ids,
the home folder, elapsed seconds, timestamps) are normalised. After a deliberate change of
wording, regenerate them with ``ALPHALOOP_UPDATE_GOLDEN=1`` and read the diff.
"""

from __future__ import annotations

import difflib
import io
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

GOLDEN = Path(__file__).parent / "golden" / "cli_output"
UPDATE = os.environ.get("ALPHALOOP_UPDATE_GOLDEN") == "1"

# the default gate cannot pass at 5: every family far-misses and the run stops with nothing
# on the holdout; AAPL's first candidate passes in-sample and on the holdout (look 1)
FAILED_ARGS = ["run", "--ticker", "IBM", "--gate", "sharpe_ratio>=5", "--variants", "2",
               "--workers", "1"]
COMPLETED_ARGS = ["run", "--ticker", "AAPL", "--gate", "num_trades>=1", "--variants", "2",
                  "--workers", "1"]

# a strategy whose check takes long enough to be killed in the middle of it
SLOW = '''"""Deliberately slow, so the run can be killed while its strategies are checked."""
import numpy as np
import pandas as pd

PARAMETERS = {"work": {"default": 3000, "low": 3000, "high": 3001}}


def generate_positions(data, work=3000):
    close = data["close"].to_numpy()
    acc = 0.0
    for i in range(len(close)):
        for _ in range(work):
            acc = (acc + close[i]) % 7.0
    return pd.Series(np.where(close > close.mean(), 1.0, 0.0), index=data.index)
'''

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS")}
    env["NO_COLOR"] = "1"
    return env


@dataclass
class Output:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def alphaloop(capsys: pytest.CaptureFixture[str],
              monkeypatch: pytest.MonkeyPatch) -> Callable[..., Output]:
    """A read-only command (status, show) run in this process, as `main` runs it."""
    from alphaloop.cli import main

    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS"):  # a pipe, as in _env()
        monkeypatch.delenv(name, raising=False)

    def command(*args: str, home: Path) -> Output:
        capsys.readouterr()
        try:
            main([*args, "--home", str(home)])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return Output(code, out, err)

    return command


def normalise(text: str, home: Path) -> str:
    text = ANSI.sub("", text).replace(str(home), "HOME")
    text = re.sub(r"workflow_\d{8}_\d{6}_[0-9a-f]{6}", "workflow_ID", text)
    text = re.sub(r"exp_\d{8}_\d{6}_[0-9a-f]{6}_", "exp_ID_", text)
    text = re.sub(r"^\[\d+\.\d s\]", "[T]", text, flags=re.M)
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", "UPDATED_AT_UTC", text)
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def golden(name: str, text: str) -> None:
    """``text`` must equal the golden file ``name`` (rewritten under ALPHALOOP_UPDATE_GOLDEN)."""
    path = GOLDEN / f"{name}.txt"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"no golden file {path}; create it with ALPHALOOP_UPDATE_GOLDEN=1"
    expected = path.read_text()
    diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True),
                                        f"golden/{name}.txt", "now"))
    assert text == expected, f"output changed (ALPHALOOP_UPDATE_GOLDEN=1 to accept):\n{diff}"


@dataclass
class Run:
    home: Path
    wid: str
    rc: int
    stdout: str
    stderr: str


def _start(args: list[str], home: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "alphaloop.cli", *args, "--home", str(home)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())


def _finish(proc: subprocess.Popen[str], home: Path) -> Run:
    out, err = proc.communicate(timeout=600)
    (wid,) = [p.name for p in (home / "workflows").iterdir()]
    return Run(home, wid, proc.returncode, out, err)


def _task_state(db: Path, task_id: str) -> str | None:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            row = conn.execute("SELECT state FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
    except sqlite3.Error:  # not created yet
        return None
    return row[0] if row else None


def _killed_run(root: Path) -> Run:
    """A real run SIGKILLed while a worker checks its slow strategy: its state says RUNNING
    in TOOL_DEVELOPMENT, and no process drives it any more."""
    mine = root / "mine"
    mine.mkdir()
    (mine / "slow.py").write_text(SLOW)
    home = root / "killed"
    proc = _start(["run", "--ticker", "GOOG", "--variants", "2", "--workers", "1",
                   "--strategies", str(mine)], home)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        queues = list(home.glob("workflows/*/queue.db"))
        if queues and _task_state(queues[0], "tools_slow") == "in_progress":
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.kill()
    return _finish(proc, home)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    root = tmp_path_factory.mktemp("cli_output")
    # both finished runs at once (stderr is a pipe: progress lines, no panel)
    failed = _start(FAILED_ARGS, root / "failed")
    completed = _start(COMPLETED_ARGS, root / "completed")
    killed = _killed_run(root)
    return {"failed": _finish(failed, root / "failed"),
            "completed": _finish(completed, root / "completed"), "killed": killed}


CODES = re.compile(r"\bR\d:|\btier \d\b|\b(TUNE_PARAMETERS|FIX_BUG|REFINE_ALGORITHM|"
                   r"REFINE_RESEARCH|ABANDON|TOOL_DEVELOPMENT|QUALITY_GATE)\b")


def _lessons(run: Run) -> list[str]:
    state = json.loads((run.home / "workflows" / run.wid / "state.json").read_text())
    return state["lessons_learned"]


def test_failed_run_says_why_in_words(runs: dict[str, Run]) -> None:
    run = runs["failed"]
    assert run.rc == 1, run.stderr
    golden("failed_run", normalise(run.stdout, run.home))
    assert not CODES.search(run.stdout), CODES.search(run.stdout)
    assert "why it failed in-sample: Sharpe " in run.stdout and "is below 5.0" in run.stdout
    # nothing reached the holdout: no empty column of "not run", one line saying so
    assert "not run" not in run.stdout and "┃ holdout" not in run.stdout
    assert "holdout 2009-04-08 .. 2013-03-01: not looked at" in run.stdout
    assert "in-sample deflated Sharpe: " in run.stdout
    # every routing lesson is there, in words
    routed = [x for x in _lessons(run) if x.startswith("[research ")]
    assert len(routed) == run.stdout.count("\n  - research ")


def test_failed_run_prints_a_line_per_phase_and_decision(runs: dict[str, Run]) -> None:
    run = runs["failed"]
    golden("failed_run.stderr", normalise(run.stderr, run.home))
    lines = run.stderr.splitlines()
    assert lines and all(re.match(r"\[\d+\.\d s\] ", line) for line in lines), lines
    decided = [line for line in lines if "] decided: " in line]
    assert len(decided) == len([x for x in _lessons(run) if x.startswith("[research ")])
    assert lines[-1].endswith("FAILED: no strategy passed; nothing is left to try: every "
                              "library family far-missed")
    assert not CODES.search(run.stderr)


def test_completed_run_summary(runs: dict[str, Run]) -> None:
    run = runs["completed"]
    assert run.rc == 0, run.stderr
    golden("completed_run", normalise(run.stdout, run.home))
    golden("completed_run.stderr", normalise(run.stderr, run.home))
    head = run.stdout.splitlines()[0]
    assert head.startswith(f"SUCCESS {run.wid}: ")
    assert "┃ holdout 2009-04-08 .. 2013-03-01" in run.stdout  # the best reached it
    assert "holdout: significant: look 1" in run.stdout and "holdout PSR 0.998" in run.stdout
    assert "in-sample deflated Sharpe: " in run.stdout and "holdout PSR: the chance" in run.stdout


@pytest.mark.parametrize("which", ["failed", "completed", "killed"])
def test_status(runs: dict[str, Run], which: str, alphaloop: Callable[..., Output]) -> None:
    run = runs[which]
    before = sorted((p, p.stat().st_mtime_ns, p.stat().st_size) for p in run.home.rglob("*"))
    status = alphaloop("status", home=run.home)
    assert status.returncode == 0, status.stderr
    golden(f"{which}_status", normalise(status.stdout, run.home))
    row = next(line for line in status.stdout.splitlines() if run.wid in line)
    for word in ("FAILED", "COMPLETED", "RUNNING", "INTERRUPTED"):
        assert row.count(word) <= 1, row  # never "FAILED | FAILED"
    after = sorted((p, p.stat().st_mtime_ns, p.stat().st_size) for p in run.home.rglob("*"))
    assert after == before, "status must only read the home"


def test_killed_run_is_interrupted_not_running(runs: dict[str, Run],
                                               alphaloop: Callable[..., Output]) -> None:
    run = runs["killed"]
    assert run.rc == -signal.SIGKILL
    status = alphaloop("status", run.wid, home=run.home)
    assert "INTERRUPTED while checking strategies" in status.stdout
    assert "RUNNING" not in status.stdout
    assert f"`alphaloop resume {run.wid}` carries on" in status.stdout
    show = alphaloop("show", run.wid, home=run.home)
    assert show.returncode == 0, show.stderr
    assert "— INTERRUPTED while checking strategies" in show.stdout
    # the progress lines it printed before the kill
    assert run.stderr.splitlines()[-1].endswith("] checking strategies"), run.stderr


@pytest.mark.parametrize(("which", "header"), [("failed", "— FAILED"),
                                               ("completed", "— COMPLETED")])
def test_show_says_each_status_once(runs: dict[str, Run], which: str, header: str,
                                    alphaloop: Callable[..., Output]) -> None:
    run = runs[which]
    show = alphaloop("show", run.wid, home=run.home)
    assert show.returncode == 0, show.stderr
    first = show.stdout.splitlines()[0]
    assert first.endswith(header) and first.count(header.split()[-1]) == 1, first
    assert "gate score: 1 to 3 = passed, below 0 = failed" in show.stdout
    assert not re.search(r"-> (TUNE_PARAMETERS|REFINE_\w+|ABANDON|SUCCESS)", show.stdout)


def test_the_last_frame_shows_the_final_status(runs: dict[str, Run]) -> None:
    """The panel redraws itself from the current time (no event needed) and, once the run
    ends, shows the final status, not the phase it was in when routing stopped it."""
    from alphaloop.cli._run_output import Display, final_status
    from alphaloop.workflow.state import StateManager

    run = runs["failed"]
    state = StateManager.load(run.wid, run.home).state
    result = {"status": "FAILED", "reason": state.failure_reason}

    def text(display: Display) -> str:
        out = io.StringIO()
        Console(file=out, width=120, color_system=None).print(display)
        return out.getvalue()

    display = Display(Console(file=io.StringIO()), workers=1)
    first = text(display)
    assert "starting" in first and "elapsed" in first  # something to see before any event
    display.started -= 5.0  # as if five seconds passed with no event
    assert re.search(r"elapsed\s+5\.\d s", text(display))
    display("phase", {"phase": "QUALITY_GATE"})
    display.finish(state, final_status(result))
    last = text(display)
    assert "alphaloop run: FAILED: no strategy passed" in last
    assert "finished: no strategy passed" in last and "judging" not in last
