"""`alphaloop run` starts the worker template before its own imports, and the pool then forks
its workers from that same template (one template per run, not two)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from alphaloop._entry import start_template as _start_template
from alphaloop.execution import _template


@pytest.mark.parametrize(
    "args",
    [["status"], ["run", "--help"], ["run", "--backend", "dask", "--scheduler", "tcp://x:1"],
     ["data", "list"], []],
)
def test_no_template_for_commands_that_start_no_local_worker(
    args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[bool] = []
    monkeypatch.setattr(_template, "shared", lambda: started.append(True))
    _start_template(args)
    assert started == []


@pytest.mark.parametrize("command", ["run", "resume", "backtest", "grid", "report"])
def test_worker_commands_start_the_template(command: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[bool] = []
    monkeypatch.setattr(_template, "shared", lambda: started.append(True))
    _start_template([command, "x"])
    assert started == [True]


def _templates_of(pid: int) -> list[psutil.Process]:
    try:
        kids = psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []
    out = []
    for p in kids:
        try:
            if "_template as t" in " ".join(p.cmdline()):
                out.append(p)
        except psutil.Error:
            continue
    return out


def test_a_run_forks_its_workers_from_the_one_template_it_started_first(tmp_path: Path) -> None:
    """The template started at launch is the one the pool uses: the scrubbed environment the
    command sees after its imports is the one it saw before them."""
    exe = Path(sys.executable).parent / "alphaloop"
    cmd = [str(exe), "run", "--ticker", "GOOG", "--home", str(tmp_path / "home"),
           "--variants", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "ALPHALOOP_EARLY_TEMPLATE": "1"})
    seen: set[int] = set()
    workers_seen = False
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        for t in _templates_of(proc.pid):
            seen.add(t.pid)
            with contextlib.suppress(psutil.Error):
                workers_seen = workers_seen or bool(t.children())
        time.sleep(0.02)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, 1), err.decode()
    assert len(seen) == 1, seen  # one template, started at launch and used by the pool
    assert workers_seen


def test_only_the_dask_backend_keeps_it_from_starting(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[bool] = []
    monkeypatch.setattr(_template, "shared", lambda: started.append(True))
    _start_template(["run", "--data", "/srv/dask_prices", "--backend", "local"])
    _start_template(["run", "--backend=dask"])
    assert started == [True]


def test_the_console_script_starts_it_before_importing_the_command() -> None:
    """The point of `alphaloop._entry`: the template's ~1 s of imports overlaps the command's
    own (typer, rich, pandas, the workflow), so none of them is loaded when it starts."""
    probe = (
        "import sys, psutil\n"
        "from alphaloop._entry import start_template\n"
        "start_template(['run', '--ticker', 'GOOG'])\n"
        "heavy = sorted(m for m in ('typer', 'rich', 'pandas', 'numpy', 'alphaloop.cli',"
        " 'alphaloop.workflow') if m in sys.modules)\n"
        "kids = [' '.join(p.cmdline()) for p in psutil.Process().children()]\n"
        "print(heavy, sum('_template as t' in k for k in kids))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "ALPHALOOP_EARLY_TEMPLATE": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "1"]
