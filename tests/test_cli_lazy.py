"""A command imports only the command group that defines it: ``alphaloop status`` answers
without loading pandas for ``data``'s sake, and help still lists every command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_PROBE = """
import sys
from alphaloop.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("LOADED", sorted(m for m in ("pandas", "pyarrow", "optuna", "numba") if m in sys.modules))
print("CODE", code)
"""


def _probe(*args: str) -> tuple[str, str]:
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True,
                          timeout=120)
    return done.stdout, done.stderr


def test_status_loads_no_data_library(tmp_path: Path) -> None:
    out, err = _probe("status", "--home", str(tmp_path / "home"))
    assert "LOADED []" in out, out + err
    assert "CODE 0" in out, out + err


def test_help_still_lists_every_command() -> None:
    out, _err = _probe("--help")
    for command in ("run", "resume", "status", "show", "backtest", "grid", "data", "strategies",
                    "report", "export", "dashboard", "llm"):
        assert f" {command} " in out, command


def test_a_typo_is_still_told_apart() -> None:
    out, err = _probe("stauts")
    assert "CODE 2" in out
    assert "stauts" in err
