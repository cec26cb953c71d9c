"""A home folder in trouble, with the faults really injected: lost, emptied, truncated or
overwritten workflow files, a read-only folder, a full disk (a small tmpfs), a home that does
not exist. Every command answers with ONE line and exit 2 (never a traceback), says whether
`alphaloop resume` can carry on, and loses nothing."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from _results import comparable
from alphaloop.execution import QUEUE_FILENAME, LocalPool
from alphaloop.workflow.api import resume_workflow, run_workflow
from alphaloop.workflow.state import StateManager

# AAPL: its first candidate passes the gate and the significance test on the holdout (PSR
# 0.998 at look 1), so the run ends SUCCESS, exit 0
RUN = ["run", "--ticker", "AAPL", "--gate", "num_trades>=1", "--variants", "2", "--json"]


def alphaloop(*args: str, home: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alphaloop.cli", *args, "--home", str(home)],
        capture_output=True, text=True, timeout=timeout,
    )


_PROGRESS = re.compile(r"^\[\d+\.\d s\] ")


def one_line_error(
    proc: subprocess.CompletedProcess[str], *fragments: str, warnings: bool = False
) -> str:
    """The single stderr line of a refused command (exit 2), checked for ``fragments``; with
    ``warnings``, one-line warnings may come before it."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    # a run's plain progress lines ("[0.1 s] backtesting variants ...") may come first
    lines = [ln for ln in proc.stderr.strip().splitlines() if not _PROGRESS.match(ln)]
    if warnings:
        assert all(line.startswith("WARNING ") for line in lines[:-1]), proc.stderr
        lines = lines[-1:]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert len(lines[0]) <= 300
    for fragment in fragments:
        assert _shown(fragment, lines[0]), (fragment, lines[0])
    return lines[0]


def _shown(fragment: str, line: str) -> bool:
    """``fragment`` is in ``line``, or was, before a message over 300 characters lost the
    middle of its longest word (a long temp path) to " ... "."""
    if fragment in line:
        return True
    head, sep, tail = line.partition(" ... ")
    return bool(sep) and any(
        head.endswith(fragment[:i]) and tail.startswith(fragment[j:])
        for i in range(1, len(fragment)) for j in range(i, len(fragment))
        if i + len(fragment) - j >= min(len(fragment) // 2, 40)
    )



@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, Any]]:
    """A home with one finished workflow: (home, workflow id, its result)."""
    home = tmp_path_factory.mktemp("finished")
    proc = alphaloop(*RUN, home=home)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    return home, result["workflow_id"], result


@pytest.fixture
def copy(finished: tuple[Path, str, dict[str, Any]], tmp_path: Path) -> tuple[Path, Path, str]:
    """A private copy of the finished home: (home, workflow folder, workflow id)."""
    home = tmp_path / "home"
    shutil.copytree(finished[0], home)
    wid = finished[1]
    return home, home / "workflows" / wid, wid


def _drop_companions(path: Path) -> None:
    for extra in path.parent.glob(path.name + "-*"):  # -wal, -shm
        extra.unlink()


def _truncate(path: Path) -> None:
    _drop_companions(path)
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "missing": lambda p: (_drop_companions(p), p.unlink()),
    "emptied": lambda p: (_drop_companions(p), p.write_bytes(b"")),
    "truncated": _truncate,
    "overwritten": lambda p: (_drop_companions(p), p.write_bytes(b"these bytes are not SQLite")),
}


# --- the queue: resume rebuilds it ----------------------------------------------------------


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_resume_rebuilds_a_lost_or_damaged_queue(
    copy: tuple[Path, Path, str], finished: tuple[Path, str, dict[str, Any]], damage: str
) -> None:
    home, folder, wid = copy
    queue = folder / QUEUE_FILENAME
    before = queue.read_bytes()
    DAMAGE[damage](queue)
    # show and status do not read the queue
    assert alphaloop("status", home=home).returncode == 0
    assert alphaloop("show", wid, home=home).returncode == 0
    proc = alphaloop("resume", wid, "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert json.loads(proc.stdout) == finished[2]  # the same result, deflated Sharpe included
    assert "queued again" in proc.stderr
    kept = list(folder.glob("queue.db.damaged-*"))
    if damage in ("truncated", "overwritten"):  # what was there is kept, not deleted
        assert len(kept) == 1 and "kept as queue.db.damaged-" in proc.stderr
        if damage == "truncated":
            assert kept[0].read_bytes() == before[: len(before) // 2]
    else:
        assert not kept
    with sqlite3.connect(f"file:{queue}?mode=ro", uri=True) as conn:
        states = dict(conn.execute("SELECT state, count(*) FROM tasks GROUP BY state"))
    assert set(states) == {"completed"}
    again = alphaloop("resume", wid, "--json", home=home)  # nothing is missing any more
    assert again.returncode == 0 and "queued again" not in again.stderr


class StopAfter:
    """An executor that stops the workflow like Ctrl-C after its ``n``-th batch finished."""

    def __init__(self, inner: LocalPool, n: int) -> None:
        self.inner, self.n, self.calls = inner, n, 0

    def run(self, queue: Any, fn: Any, **kw: Any) -> Any:
        summary = self.inner.run(queue, fn, **kw)
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt("stopped by the test")
        return summary

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def pool() -> Iterator[LocalPool]:
    with LocalPool(max_workers=2) as p:
        yield p


def test_a_queue_lost_mid_search_is_rebuilt_to_the_same_result(
    tmp_path: Path, pool: LocalPool
) -> None:
    settings: dict[str, Any] = dict(n_variants=3, seed=7)
    gate = ["sharpe_ratio>=1.5"]
    reference = run_workflow("MSFT", "", gate, home=tmp_path / "ref", executor=pool, **settings)
    assert reference["total_iterations"] >= 1  # several experiments: records to rebuild from
    home = tmp_path / "lost"
    with pytest.raises(KeyboardInterrupt):  # tools, experiment 1, then stopped in the next
        run_workflow("MSFT", "", gate, home=home, executor=StopAfter(pool, 3), **settings)
    (folder,) = (home / "workflows").iterdir()
    state = StateManager.load(folder.name, home).state
    assert state.status == "RUNNING" and state.variants_tried >= 3
    for extra in folder.glob(QUEUE_FILENAME + "*"):
        extra.unlink()
    resumed = resume_workflow(folder.name, home=home, executor=pool)
    assert comparable(resumed) == comparable(reference)


def test_a_lost_proposals_file_mid_search(tmp_path: Path, pool: LocalPool) -> None:
    home = tmp_path / "home"
    with pytest.raises(KeyboardInterrupt):  # stopped during the first experiment's batch
        run_workflow("GOOG", "", ["num_trades>=1"], home=home, n_variants=2,
                     executor=StopAfter(pool, 2))
    (folder,) = (home / "workflows").iterdir()
    state = StateManager.load(folder.name, home).state
    assert state.current_phase == "BACKTESTING"
    proposals = folder / f"{state.current_experiment_id}_proposals.json"
    proposals.unlink()
    one_line_error(alphaloop("resume", folder.name, home=home), str(proposals),
                   "cannot be used (no such file or directory)", "resume cannot rebuild it")


# --- the records and the settings: start the workflow again ---------------------------------


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_lost_or_damaged_records_cannot_be_rebuilt(
    copy: tuple[Path, Path, str], damage: str
) -> None:
    home, folder, wid = copy
    tracker = folder / "tracker.db"
    DAMAGE[damage](tracker)
    after = tracker.read_bytes() if tracker.exists() else None
    what = {"missing": "missing", "emptied": "are empty", "truncated": "are damaged",
            "overwritten": "are damaged (file is not a database)"}[damage]
    for command in ("show", "resume"):
        one_line_error(alphaloop(command, wid, home=home), "tracker.db", what,
                       "resume cannot rebuild them", "start the workflow again")
    # left as it was: not replaced by a new, empty tracker
    assert (tracker.read_bytes() if tracker.exists() else None) == after
    assert alphaloop("status", wid, home=home).returncode == 0


@pytest.mark.parametrize(
    ("forget", "what"),
    [
        ("DELETE FROM records WHERE sample = 'holdout'", "holdout records, the state counts"),
        ("DELETE FROM records WHERE rowid IN (SELECT min(rowid) FROM records)",
         "in-sample records, the state counts"),
        ("DELETE FROM records; DELETE FROM actions; DELETE FROM experiments", "no experiment"),
    ],
)
def test_records_older_than_the_state_are_refused(
    copy: tuple[Path, Path, str], forget: str, what: str
) -> None:
    """A valid tracker that lacks what the state says was recorded (an old backup put back):
    resume would search on without those records, so it refuses."""
    home, folder, wid = copy
    with sqlite3.connect(folder / "tracker.db") as conn:
        conn.executescript("DROP TRIGGER records_no_delete; " + forget)
    # (the tracker warns that the JSON lines know records it does not)
    one_line_error(alphaloop("resume", wid, home=home), "tracker.db are older than the workflow",
                   what, "resume cannot rebuild them", warnings=True)


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (None, "is missing"),
        (b'{"criteria": ["sharpe_ratio>=1"', "is unreadable"),
        (b"\xff\xfe not text", "is unreadable"),
        (b"[1, 2]", "is not a JSON object"),
        (b'{"criteria": ["sharp>=1"]}', "unknown gate metric"),
        (b'{"criteria": ["num_trades>=1"], "n_variants": "eight"}', "n_variants"),
    ],
)
def test_lost_or_damaged_settings_cannot_be_rebuilt(
    copy: tuple[Path, Path, str], content: bytes | None, what: str
) -> None:
    home, folder, wid = copy
    settings = folder / "settings.json"
    if content is None:
        settings.unlink()
    else:
        settings.write_bytes(content)
    one_line_error(alphaloop("resume", wid, home=home), "settings.json", what,
                   "resume cannot rebuild it", "start the workflow again")
    if content is None:  # the commands that do not need the settings still work
        assert alphaloop("show", wid, home=home).returncode == 0
        assert alphaloop("status", wid, home=home).returncode == 0


def test_a_damaged_workflow_does_not_stop_the_others(copy: tuple[Path, Path, str]) -> None:
    home, folder, wid = copy
    (folder / "state.json").write_text('{"workflow_id": "trunc')
    status = alphaloop("status", home=home)
    assert status.returncode == 0 and "Traceback" not in status.stderr
    assert "skipping workflow" in status.stderr
    one_line_error(alphaloop("status", wid, home=home), "state.json is unreadable")
    run = alphaloop(*RUN, home=home)
    assert run.returncode == 0, run.stderr
    listed = alphaloop("status", home=home).stdout
    assert json.loads(run.stdout)["workflow_id"] in listed and wid not in listed


# --- the home folder itself ------------------------------------------------------------------


def test_run_where_the_workflows_folder_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "workflows").write_text("not a folder")
    one_line_error(alphaloop(*RUN, home=tmp_path), f"cannot create a workflow in home folder "
                   f"{tmp_path} (file exists)", "then run again")


def test_read_only_commands_never_create_the_home(tmp_path: Path) -> None:
    home = tmp_path / "nowhere"
    status = alphaloop("status", home=home)
    assert status.returncode == 0 and status.stderr == ""
    assert "no workflows in" in status.stdout and "does not exist" in status.stdout
    one_line_error(alphaloop("status", "workflow_x", home=home), "no workflow 'workflow_x'")
    one_line_error(alphaloop("show", "workflow_x", home=home), "no workflow 'workflow_x'")
    one_line_error(alphaloop("resume", "workflow_x", home=home), "no workflow 'workflow_x'")
    assert not home.exists()
    (tmp_path / "file").write_text("x")
    one_line_error(alphaloop("status", home=tmp_path / "file"), "it is a file")


def _mount_tmpfs(where: Path, options: str) -> Callable[[], None]:
    """Mount a tmpfs at ``where`` (root only); return the unmount function. Skips the test
    when mounting is not allowed here."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")

    def unmount() -> None:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)

    return unmount


@pytest.fixture
def read_only_home(tmp_path: Path) -> Iterator[Path]:
    """An existing, empty folder no one can write to: a read-only tmpfs as root (root ignores
    permission bits), a folder without write permission otherwise."""
    home = tmp_path / "ro"
    if os.geteuid() == 0:
        unmount = _mount_tmpfs(home, "ro,size=1m")
        try:
            yield home
        finally:
            unmount()
    else:
        home.mkdir()
        home.chmod(0o555)
        try:
            yield home
        finally:
            home.chmod(0o755)


def test_run_in_a_read_only_home(read_only_home: Path) -> None:
    line = one_line_error(alphaloop(*RUN, home=read_only_home), str(read_only_home),
                          "then run again")
    assert "read-only file system" in line or "permission denied" in line
    assert not list(read_only_home.iterdir())
    # a home that cannot even be created gets the same kind of line
    one_line_error(alphaloop(*RUN, home=read_only_home / "sub"), "cannot be used")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (unmounted afterwards)."""
    where = tmp_path / "disk"
    unmount = _mount_tmpfs(where, "size=4m")
    try:
        yield where
    finally:
        unmount()


def _integrity(db: Path) -> str:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def test_a_full_disk_loses_nothing_and_resume_finishes(tmp_path: Path, small_disk: Path) -> None:
    reference = alphaloop(*RUN, home=tmp_path / "ref")
    assert reference.returncode == 0, reference.stderr
    # leave 256 KiB free: enough to start the workflow, not to finish it
    filler = small_disk / "filler"
    free = shutil.disk_usage(small_disk).free
    filler.write_bytes(b"\0" * (free - 256 * 1024))
    home = small_disk / "home"

    proc = alphaloop(*RUN, home=home)
    assert proc.returncode == 2, ("the disk did not fill up", proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0] == proc.stderr.strip().splitlines()[-1], proc.stderr
    (folder,) = (home / "workflows").iterdir()
    wid = folder.name
    assert errors[0] == (f"error: cannot write to home folder {home} (no space left on the "
                         f"device); free some space, then `alphaloop resume {wid}` carries on")
    # nothing lost: every file still opens and is consistent
    state = StateManager.load(wid, home).state
    assert state.current_phase != "COMPLETED"
    for name in (QUEUE_FILENAME, "tracker.db"):
        if (folder / name).exists():
            assert _integrity(folder / name) == "ok"
    assert json.loads((folder / "settings.json").read_text())["n_variants"] == 2

    filler.unlink()  # free the space
    resumed = alphaloop("resume", wid, "--json", home=home)
    assert resumed.returncode == 0, resumed.stderr
    assert comparable(json.loads(resumed.stdout)) == comparable(json.loads(reference.stdout))


def test_commands_on_a_disk_with_no_room_at_all(
    finished: tuple[Path, str, dict[str, Any]], small_disk: Path
) -> None:
    home = small_disk / "home"
    shutil.copytree(finished[0], home)
    wid = finished[1]
    for companion in home.glob("workflows/*/*.db-*"):  # as after a clean close
        companion.unlink()
    filler = small_disk / "filler"
    with open(filler, "wb", buffering=0) as fh:  # every last byte
        for chunk in (65536, 4096, 512, 1):
            try:
                while fh.write(b"\0" * chunk):
                    pass
            except OSError:
                continue
    status = alphaloop("status", home=home)
    assert status.returncode == 0 and wid in status.stdout
    # reading writes nothing (an idle database is read immutable): show works on a full disk
    shown = alphaloop("show", wid, home=home)
    assert shown.returncode == 0 and wid in shown.stdout, shown
    # resume needs room to write
    one_line_error(alphaloop("resume", wid, home=home), f"cannot write to home folder {home} "
                   "(no space left on the device); free some space")
    filler.unlink()
    assert alphaloop("show", wid, home=home).returncode == 0
    resumed = alphaloop("resume", wid, "--json", home=home)
    assert resumed.returncode == 0 and json.loads(resumed.stdout) == finished[2]
