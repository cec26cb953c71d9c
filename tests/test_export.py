"""Take the winner away and reproduce its numbers: `alphaloop export`, `backtest --warmup-from`
and `show --json`, through the real CLI."""

from __future__ import annotations

import json
import math
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def alphaloop(*args: str, cwd: Path | None = None,
              timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "alphaloop.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)


def one_line_error(proc: subprocess.CompletedProcess[str], words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], lines


@pytest.fixture(scope="module")
def workflow(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, Any]]:
    """A short workflow that reaches SUCCESS (significance off, loose gate), with costs that
    are not the defaults, so the commands must carry them."""
    home = tmp_path_factory.mktemp("home")
    proc = alphaloop("run", "--ticker", "GOOG", "--gate", "sharpe_ratio>=0.2",
                     "--gate", "num_trades>=1", "--variants", "3", "--workers", "2", "--json",
                     "--alpha", "1", "--commission", "0.0005", "--slippage-bps", "3",
                     "--borrow-bps", "40", "--rebalance", "bar", "--home", str(home))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "SUCCESS" and result["holdout_metrics"]
    return home, result["workflow_id"], result


def _commands(text: str) -> list[list[str]]:
    return [shlex.split(line.removeprefix("#").strip())
            for line in text.splitlines() if line.startswith("#   alphaloop backtest ")]


def _same_metrics(measured: dict[str, Any], recorded: dict[str, Any]) -> None:
    # every metric `backtest` prints is the record's; deflated_sharpe is the workflow's alone
    names = [k for k in recorded if k != "deflated_sharpe"]
    assert names and all(k in measured for k in names), (names, list(measured))
    for key in names:
        want, got = recorded[key], measured[key]
        if want is None:
            assert got is None, key
        else:
            assert got == pytest.approx(want, rel=1e-12, abs=0.0), key
            assert not (isinstance(want, float) and math.isnan(want))


def test_export_round_trip_reproduces_in_sample_and_holdout(
        workflow: tuple[Path, str, dict[str, Any]], tmp_path: Path) -> None:
    home, wid, result = workflow
    target = tmp_path / "winner.py"
    proc = alphaloop("export", wid, "--home", str(home), "-o", str(target))
    assert proc.returncode == 0, proc.stderr
    text = target.read_text(encoding="utf-8")
    printed = alphaloop("export", wid, "--home", str(home), "-o", str(target))
    assert printed.returncode == 0 and target.read_text(encoding="utf-8") == text
    stdout = alphaloop("export", wid, "--home", str(home))  # without -o: the same text
    assert stdout.returncode == 0

    def but_commands(t: str) -> list[str]:
        return [line for line in t.splitlines() if "alphaloop backtest " not in line]

    assert but_commands(stdout.stdout) == but_commands(text)
    # the provenance
    for words in (wid, "GOOG 1d", "data fingerprint", "commission=0.0005", "slippage_bps=3",
                  "borrow_bps=40", "rebalance=bar", "adjust: yes",
                  f"in-sample: {result['in_sample'][0]} .. {result['in_sample'][1]}",
                  f"holdout: {result['holdout'][0]} .. {result['holdout'][1]}"):
        assert words in text, words
    check = alphaloop("strategies", "check", str(target))
    assert check.returncode == 0, check.stdout + check.stderr
    commands = _commands(text)
    assert len(commands) == 2, text
    in_sample, holdout = commands
    assert "--warmup-from" not in in_sample and "--warmup-from" in holdout
    expected = [result["best_metrics"], result["holdout_metrics"]]
    for command, recorded in zip(commands, expected, strict=True):
        assert command[:3] == ["alphaloop", "backtest", str(target)]
        proc = alphaloop(*command[1:], "--json")
        assert proc.returncode == 0, proc.stderr
        measured = json.loads(proc.stdout)
        assert measured["parameters"] == result["best_parameters"]  # the defaults, tuned
        _same_metrics(measured, recorded)


def test_tuned_values_become_the_parameters_defaults() -> None:
    from alphaloop.backtest._source import inspect_source, library_source, with_parameters
    from alphaloop.workflow.document import _tuned

    code = library_source("sma_crossover")
    raw = inspect_source(code, "sma").raw_parameters
    tuned = _tuned(raw, {"fast": 7, "slow": 3000, "allow_short": False}, "sma")
    out = with_parameters(code, "sma", tuned)
    specs = inspect_source(out, "sma").parameters
    assert specs["fast"].default == 7 and specs["allow_short"].default is False
    assert specs["slow"].default == 3000 and specs["slow"].high == 3000  # widened to hold it
    assert out.count("def generate_positions(") == 1 and out.count("PARAMETERS =") == 1


def test_export_without_a_best_strategy_is_one_line(
        workflow: tuple[Path, str, dict[str, Any]], tmp_path: Path) -> None:
    home, wid, _ = workflow
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    state_file = copy / "workflows" / wid / "state.json"
    state = json.loads(state_file.read_text(encoding="utf-8"))
    state.update(best_strategy=None, best_metrics=None)  # as before any variant was measured
    state_file.write_text(json.dumps(state), encoding="utf-8")
    one_line_error(alphaloop("export", wid, "--home", str(copy)), "no best strategy")
    one_line_error(alphaloop("export", "workflow_none", "--home", str(copy)), "no workflow")
    doc = json.loads(alphaloop("show", wid, "--json", "--home", str(copy)).stdout)
    assert doc["result"]["winner"] is None


def test_show_json_is_the_whole_workflow(workflow: tuple[Path, str, dict[str, Any]]) -> None:
    home, wid, result = workflow
    proc = alphaloop("show", wid, "--json", "--home", str(home))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    json.dumps(doc, allow_nan=False)
    assert list(doc) == ["workflow_id", "state", "settings", "gate", "experiments",
                         "holdout_looks", "result", "lessons"]
    assert doc["workflow_id"] == wid and doc["state"]["status"] == "COMPLETED"
    assert doc["gate"]["criteria"] == ["sharpe_ratio>=0.2", "num_trades>=1"]
    assert doc["settings"]["commission"] == 0.0005
    winner = doc["result"]["winner"]
    assert doc["result"]["status"] == "SUCCESS"
    assert winner["strategy_name"] == result["best_strategy_name"]
    assert winner["parameters"] == result["best_parameters"]
    assert winner["holdout_metrics"] == result["holdout_metrics"]
    assert winner["significance"] == result["holdout_significance"]
    records = [r for e in doc["experiments"] for v in e["variants"] for r in v["records"]]
    samples = [r["sample"] for r in records]
    assert samples.count("in_sample") == result["variants_tried"]
    assert samples.count("holdout") == result["holdout_looks"] == len(doc["holdout_looks"])
    marked = [v for e in doc["experiments"] for v in e["variants"] if v["winner"]]
    assert [v["variant_id"] for v in marked] == [winner["variant_id"]]
    # the text view marks the winner and prints its holdout numbers
    text = alphaloop("show", wid, "--home", str(home)).stdout
    assert "★ winner" in text and "holdout: sharpe" in text


def test_warmup_from_must_come_before_start(tmp_path: Path) -> None:
    base = ["backtest", "sma_crossover", "--ticker", "GOOG", "--end", "2011-12-31"]
    one_line_error(alphaloop(*base, "--start", "2010-01-04", "--warmup-from", "2011-01-03"),
                   "must be before --start")
    one_line_error(alphaloop(*base, "--start", "2010-01-04", "--warmup-from", "2010-01-04"),
                   "must be before --start")
    one_line_error(alphaloop(*base, "--warmup-from", "2009-01-02"), "needs --start")
