"""The gates generated code passes before it is queued: the sandbox's static check (and no
calendar dates), size and parameters, near-duplicates; gates 4 and 5 from a task's outcome;
and the one send-back as a FIX_BUG. Nothing here executes strategy code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from alphaloop.agents.llm.codegate import (
    GATES,
    MAX_LINES,
    GateVerdict,
    bug_report,
    check_static,
    hashes_of,
    normalized_hash,
    send_back,
    task_verdict,
)
from alphaloop.agents.llm.prompts import BugReport
from alphaloop.backtest import _positions, sandbox
from alphaloop.backtest.strategy import library_source

GOOD = '''"""Long when the last n-bar return is positive."""

import numpy as np
import pandas as pd

from alphaloop.backtest import indicators as ind

PARAMETERS = {
    "n": {"default": 20, "low": 5, "high": 120, "unit": "days"},
    "k": {"default": 0.0, "low": 0.0, "high": 0.05},
}


def generate_positions(data, n=20, k=0.0):
    close = data["close"].to_numpy()
    past = ind.returns(close, n)  # n-bar return
    pos = np.where(past > k, 1.0, 0.0)
    return pd.Series(pos, index=data.index)
'''

# the same algorithm: other names, comments, docstring, ranges, defaults and import order
RENAMED = '''# a different comment
from alphaloop.backtest import indicators as helpers
import pandas
import numpy as numeric

PARAMETERS = {
    "lookback": {"default": 30, "low": 10, "high": 200},
    "threshold": {"default": 0.01, "low": 0.0, "high": 0.1},
}


def generate_positions(bars, lookback=30, threshold=0.01):
    """Changed docstring."""
    prices = bars["close"].to_numpy()

    change = helpers.returns(prices, lookback)
    out = numeric.where(change > threshold, 1.0, 0.0)   # long or flat
    return pandas.Series(out, index=bars.index)
'''


@pytest.fixture
def nothing_runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail the test if anything would execute strategy code."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("strategy code was executed")

    monkeypatch.delenv("ALPHALOOP_PY_SANDBOX", raising=False)
    for module, name in ((sandbox, "exec_source"), (sandbox, "_run"), (sandbox, "_run_plain"),
                         (_positions, "run_positions")):
        if hasattr(module, name):
            monkeypatch.setattr(module, name, refuse)
    yield


def hostile(marker: Path) -> dict[str, str]:
    """Code that would create ``marker`` if anything ran it."""
    params = 'PARAMETERS = {"n": {"default": 2, "low": 1, "high": 9}}\n'
    head = f'"""Hostile."""\n{params}'
    body = "def generate_positions(data, n=2):\n    return data['close'] * 0\n"
    return {
        "imports os": f"import os\n{head}os.system('touch {marker}')\n{body}",
        "opens a file": f"{head}open({str(marker)!r}, 'w').write('x')\n{body}",
        "calls __import__": f"{head}__import__('os').system('touch {marker}')\n{body}",
        "reads a dunder": f"{head}x = ().__class__.__bases__\n{body}",
        "dispatches a string": f"{head}{body}\ndef f(df):\n    return df.agg('to_csv')\n",
    }


@pytest.mark.parametrize("what", ["imports os", "opens a file", "calls __import__",
                                  "reads a dunder", "dispatches a string"])
def test_gate_1_rejects_hostile_code_and_runs_nothing(what: str, tmp_path: Path,
                                                      nothing_runs: None) -> None:
    marker = tmp_path / "ran"
    verdict = check_static(hostile(marker)[what], "evil")
    assert not verdict.passed and verdict.gate == "sandbox" and verdict.number == 1
    assert verdict.reason.startswith("strategy 'evil' line ")
    assert verdict.line is not None and verdict.kind == "sandbox"
    assert "rejected at gate 1 (sandbox)" in verdict.outcome()
    assert not marker.exists()


def test_gate_1_rejects_calendar_dates() -> None:
    year = GOOD.replace("past > k", "(past > k) & (data.index.year != 2008)")
    v = check_static(year, "memory")
    assert (v.gate, v.line) == ("sandbox", 17) and "calendar date" in v.reason
    date = GOOD.replace("    close =", "    crash = '2008-09-15'\n    close =")
    v = check_static(date, "memory")
    assert v.gate == "sandbox" and "'2008-09-15'" in v.reason
    weekday = GOOD.replace("past > k", "(past > k) & (data.index.dayofweek == 0)")
    assert check_static(weekday, "calendar_feature").passed


def test_gate_2_limits_lines_and_parameters() -> None:
    long = GOOD + "\n".join(f"# filler {i}" for i in range(MAX_LINES))
    v = check_static(long, "long")
    assert (v.gate, v.number, v.kind) == ("size", 2, "size") and "the limit is 200" in v.reason
    assert check_static(GOOD + "\n" * 50, "blank_tail").passed  # trailing blank lines aside
    names = [f"p{i}" for i in range(7)]
    params = "{" + ", ".join(f'"{n}": {{"default": 1, "low": 0, "high": 5}}' for n in names) + "}"
    code = (f'"""Seven."""\nimport pandas as pd\nPARAMETERS = {params}\n\n'
            f"def generate_positions(data, {', '.join(f'{n}=1' for n in names)}):\n"
            "    return pd.Series(0.0, index=data.index)\n")
    v = check_static(code, "wide")
    assert v.gate == "size" and v.parameters == 7 and "7 parameters" in v.reason
    six = code.replace(', "p6": {"default": 1, "low": 0, "high": 5}', "").replace(", p6=1", "")
    assert check_static(six, "six").passed


def test_gate_2_reads_parameters_statically() -> None:
    computed = GOOD.replace('"high": 120', '"high": 100 + 20')
    v = check_static(computed, "computed")
    assert v.gate == "size" and v.kind == "interface" and "literal" in v.reason
    unaccepted = GOOD.replace("n=20, k=0.0", "n=20")
    v = check_static(unaccepted, "sig")
    assert v.gate == "size" and "does not accept it" in v.reason


def test_gate_3_rejects_a_renamed_duplicate() -> None:
    assert normalized_hash(GOOD) == normalized_hash(RENAMED)
    seen = hashes_of([GOOD, library_source("sma_crossover")])
    v = check_static(RENAMED, "copy", seen)
    assert (v.gate, v.number, v.kind) == ("duplicate", 3, "duplicate")
    assert v.code_hash == normalized_hash(GOOD)
    different = GOOD.replace("past > k", "past < -k")
    assert normalized_hash(different) != normalized_hash(GOOD)
    assert check_static(different, "contrarian", seen).passed
    # the library's own strategies count as tried
    assert check_static(library_source("sma_crossover"), "again", seen).gate == "duplicate"


def test_gates_run_in_order() -> None:
    both = "import os\n" + GOOD + "\n".join(f"# filler {i}" for i in range(MAX_LINES))
    assert check_static(both, "x").gate == "sandbox"
    assert check_static(GOOD, "x", {normalized_hash(GOOD)}).gate == "duplicate"
    passed = check_static(GOOD, "fine")
    assert passed.passed and passed.gate is None and passed.outcome() == "gates passed"
    assert (passed.lines, passed.parameters) == (18, 2)
    assert GATES == ("sandbox", "size", "duplicate", "smoke", "lookahead")


def test_gates_4_and_5_from_the_task_outcome() -> None:
    err = ("StrategyError: strategy 'x' line 12: ZeroDivisionError: division by zero")
    v = task_verdict("x", None, err, code_hash="abc")
    assert (v.gate, v.number, v.kind, v.line, v.code_hash) == ("smoke", 4, "exception", 12, "abc")
    nan = ("StrategyError: strategy 'x': generate_positions returned NaN at 2005-01-03 (first "
           "of 19); fill warm-up bars with 0")
    assert task_verdict("x", None, nan).kind == "invalid"
    peek = task_verdict("x", {"metrics": {"num_trades": 9}, "lookahead": ["2006-05-01", "b"]})
    assert (peek.gate, peek.number, peek.kind) == ("lookahead", 5, "lookahead")
    assert "2006-05-01" in peek.reason and "2 cut(s)" in peek.reason
    idle = task_verdict("x", {"metrics": {"num_trades": 0}, "lookahead": []})
    assert (idle.gate, idle.kind) == ("smoke", "no_trades")
    assert task_verdict("x", {"metrics": {"num_trades": 3}, "lookahead": []}).passed


def test_send_back_once_as_fix_bug_with_the_reason(nothing_runs: None, tmp_path: Path) -> None:
    bad = "import os\n" + GOOD
    first = check_static(bad, "llm_x")
    asked: list[BugReport] = []

    def fixer(report: BugReport) -> str | None:
        asked.append(report)
        return GOOD

    sub = send_back(fixer, bad, first, name="llm_x_f1")
    assert len(asked) == 1
    report = asked[0]
    assert report.kind == "sandbox" and report.line == 1 and report.code == bad
    assert "forbidden import" in report.message and report.message == first.reason
    assert sub.passed and sub.code == GOOD and sub.verdict is not None
    assert sub.verdict.name == "llm_x_f1" and sub.first == first

    # a "fix" that only renames the rejected code is the same code: gate 3
    smoke = task_verdict("llm_y", None, "StrategyError: strategy 'llm_y' line 3: KeyError: 'x'",
                         code_hash=normalized_hash(GOOD))
    again = send_back(lambda r: RENAMED, GOOD, smoke)
    assert not again.passed and again.verdict is not None
    assert again.verdict.gate == "duplicate"
    # no code back: not passed, nothing checked
    none = send_back(lambda r: None, bad, first)
    assert not none.passed and none.verdict is None and none.code is None
    with pytest.raises(ValueError, match="nothing to send back"):
        send_back(fixer, GOOD, check_static(GOOD, "ok"))


def test_bug_report_of_each_gate() -> None:
    v = GateVerdict(name="x", passed=False, gate="lookahead", reason="peeks", kind="lookahead")
    assert bug_report("code", v).kind == "lookahead"
    odd = GateVerdict(name="x", passed=False, gate="smoke", reason="?", kind="weird")
    assert bug_report("code", odd).kind == "exception"
