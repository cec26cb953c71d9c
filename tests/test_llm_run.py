"""``alphaloop run --llm`` end to end, through the CLI in a subprocess, against the scripted
loopback server (tests/_llm_server.py): a synthetic series with a weekday effect no library
family captures (Monday +0.5%, Friday -0.5%), a scripted model that writes the strategy
trading it, and:

- the run reaches SUCCESS, holdout included, through the written strategy (``llm_*``);
- every request the server received names no ticker, file or date and holds no holdout
  figure (`audit_request`);
- a run killed (SIGKILL) once the writer's exchange is stored and its code smoke-tested, then
  resumed, ends as the uninterrupted run did, and no stored exchange is requested again;
- with the budget spent, the offline agents take over, a lesson says so, and the workflow
  completes;
- ``run --llm`` against an endpoint that does not work is one line, exit 2, and no workflow.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _llm_server import OK_TEXT, LLMServer, Request, error, isolate, openai_ok
from alphaloop.agents.llm.prompts import audit_request, forbidden_terms
from alphaloop.data import synthetic
from alphaloop.workflow._llm_roles import SMOKE_PASSED

TICKER = "WKDAY"
N_BARS = 1500
SEED = 3
WEEKDAY_MEANS = {0: 0.005, 4: -0.005}
"""Twice the calibration's effect (+-0.25%): 1,500 bars (1.7 years of holdout) are then
enough for a significant holdout look, and the run stays short."""

STRATEGY = '''\
"""Long into the first weekday bar, short into the last: a weekday drift."""

import numpy as np
import pandas as pd

PARAMETERS = {
    "size": {"default": 1.0, "low": 0.5, "high": 1.0},
    "short_side": {"default": True, "choices": [True, False]},
}


def generate_positions(data, size=1.0, short_side=True):
    # decided at bar t's close, held during bar t+1: long after the last bar of the week
    # (into the first), short after the fourth (into the last)
    day = np.asarray(data.index.dayofweek)
    pos = np.where(day == 4, size, 0.0)
    if short_side:
        pos = np.where(day == 3, -size, pos)
    return pd.Series(pos, index=data.index)
'''


PEEKING = '''\
"""Long into the first weekday bar, short into the last, read off the next bar's date."""

import numpy as np
import pandas as pd

PARAMETERS = {
    "size": {"default": 1.0, "low": 0.5, "high": 1.0},
}


def generate_positions(data, size=1.0):
    day = pd.Series(np.asarray(data.index.dayofweek, dtype=float), index=data.index)
    following = day.shift(-1).fillna(-1.0).to_numpy()
    pos = np.where(following == 0, size, 0.0)
    return pd.Series(np.where(following == 4, -size, pos), index=data.index)
'''


def _reply_text(request: Request) -> str:
    """What the scripted model says, by role (the system message names it)."""
    messages = request.body.get("messages") or []
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
    user = messages[-1]["content"] if messages else ""
    if "You are the research agent." in system:
        stats = re.findall(r"^- \[([^\]]+)\]", user, re.MULTILINE)
        return json.dumps({"hypotheses": [{
            "name": "weekday_drift",
            "hypothesis": "returns depend on the day of the week: the first weekday bar rises "
                          "and the last one falls on average",
            "evidence": stats[:1], "family": "new",
            "mechanism": "hold long during the first weekday bar and short during the last"}]})
    if "You are the strategy writer." in system:
        if len(messages) == 2:  # a first answer without the code: the writer asks again
            return "I would trade the weekday drift: long into the first bar, short the last."
        # then code that peeks at the next bar: rejected at gate 5, sent to the bug fixer
        return f"Here is the strategy.\n\n```python\n{PEEKING}```\n"
    if "You are the bug fixer." in system:
        return f"Fixed: decided from bar t's own weekday.\n```python\n{STRATEGY}```"
    if "You are the failure-analysis agent." in system:
        return json.dumps({"recommendation": "TUNE_PARAMETERS",
                           "reasoning": "the best variant nearly passes; tune it",
                           "specific_actions": ["tune the parameters"], "confidence": 0.5})
    if "You are the trajectory-analysis agent." in system:
        return json.dumps({"next_action": "CONTINUE", "reasoning": "the scores still move"})
    return OK_TEXT  # `llm check`'s ping


class Model:
    """The scripted model on a loopback server: counts each distinct request (the record
    key's ingredients); with ``hold`` set, the bug fixer's request (the writer's two
    exchanges are stored by then, and its code was smoke-tested) is held until
    ``release``."""

    def __init__(self, server: LLMServer) -> None:
        self.server = server
        self.asked: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.hold = False
        self.held = threading.Event()
        self.held_key: str | None = None
        self.release = threading.Event()
        server._default = self._answer  # type: ignore[method-assign]

    def _answer(self, request: Request) -> Any:
        body = request.body
        messages = body.get("messages") or []
        key = json.dumps([body.get("model"), messages, body.get("seed"),
                          body.get("response_format")], sort_keys=True)
        with self.lock:
            self.asked[key] += 1
            hold = (self.hold and not self.held.is_set()
                    and "You are the bug fixer." in messages[0]["content"])
            if hold:
                self.held_key = key
                self.held.set()
        if hold:
            self.release.wait(120)
        return openai_ok(_reply_text(request), prompt_tokens=400, completion_tokens=150)

    def repeated(self) -> list[str]:
        """Requests (but `llm check`'s ping) that came more than once."""
        return [k for k, n in self.asked.items() if n > 1 and "checking that an API" not in k]


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Model]:
    isolate(monkeypatch, tmp_path)
    with LLMServer() as server:
        yield Model(server)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bars = synthetic.weekday_effect(N_BARS, seed=SEED, weekday_means=WEEKDAY_MEANS)
    return synthetic.write_csv(bars, tmp_path_factory.mktemp("data") / f"{TICKER}.csv")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


def _run_args(server: LLMServer, data: Path, home: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "alphaloop.cli", "run", "--ticker", TICKER, "--data",
            str(data), "--home", str(home), "--json", "--seed", "1", "--variants", "2",
            "--workers", "2", "--commission", "0", "--llm", "openai:scripted",
            "--llm-base-url", server.openai_url, *extra]


def _cli(args: list[str]) -> tuple[int, dict[str, Any] | None, str]:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, env=_env())
    try:
        result = json.loads(proc.stdout) if proc.stdout.strip() else None
    except json.JSONDecodeError:
        result = None
    return proc.returncode, result, proc.stderr


def _audit(model: Model, data: Path, results: list[dict[str, Any]]) -> None:
    """No request names the ticker or the file, or holds a date or a holdout figure."""
    forbidden = forbidden_terms(TICKER, str(data))
    figures = set()
    for r in results:
        for name in ("sharpe_ratio", "total_return", "cagr", "max_drawdown"):
            v = (r.get("holdout_metrics") or {}).get(name)
            if isinstance(v, float) and abs(v) > 1e-3:
                figures |= {f"{v:.4f}", f"{v:.3f}"}
    assert model.server.requests
    for request in model.server.requests:
        messages = request.body.get("messages") or []
        assert audit_request(messages, forbidden) == []
        text = json.dumps(messages)
        assert not [f for f in figures if f in text], "a holdout figure was sent"
        assert TICKER.lower() not in text.lower()


COMPARED = ("status", "best_strategy_name", "best_strategy", "best_parameters", "best_metrics",
            "holdout_metrics", "holdout_significance", "in_sample_deflated_sharpe",
            "in_sample_trials", "variants_tried", "total_iterations", "holdout_looks",
            "lessons_learned")


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    """The same result but for the workflow's id (in variant ids) and the replayed calls."""
    a, b = (json.loads(json.dumps(x).replace(x["workflow_id"].removeprefix("workflow_"), "ID"))
            for x in (a, b))
    for key in COMPARED:
        assert a.get(key) == b.get(key), key
    la, lb = dict(a["llm"]), dict(b["llm"])
    la.pop("replayed_calls"), lb.pop("replayed_calls")
    assert la == lb


def test_run_with_a_model_finds_the_weekday_edge_and_survives_a_kill(
        model: Model, data_file: Path, tmp_path: Path) -> None:
    # the uninterrupted run
    code, whole, err = _cli(_run_args(model.server, data_file, tmp_path / "a"))
    assert code == 0 and whole is not None, err[-2000:]
    assert whole["status"] == "SUCCESS", whole.get("reason")
    assert whole["best_strategy_name"].startswith("llm_"), whole["best_strategy_name"]
    assert whole["holdout_significance"]["verdict"] == "passed"
    llm = whole["llm"]
    assert (llm["provider"], llm["model"]) == ("openai", "scripted")
    assert llm["calls"] == 4 and llm["replayed_calls"] == 0 and llm["fallbacks"] == 0
    assert llm["rejected_strategies"] == 0  # the look-ahead was fixed
    assert any("rejected at gate 5 (lookahead)" in x for x in whole["lessons_learned"])
    assert llm["prompt_tokens"] == 400 * llm["calls"]
    assert model.repeated() == []

    # the same run, SIGKILLed in the middle of STRATEGY_DEVELOPMENT (the writer's exchanges
    # stored, its code smoke-tested and rejected, the fix in flight), then resumed: the
    # phase is replayed
    model.asked.clear()
    model.hold = True
    home = tmp_path / "b"
    proc = subprocess.Popen(_run_args(model.server, data_file, home), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert model.held.wait(300), "the bug fixer was never asked"
        assert proc.poll() is None
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(60)
        model.release.set()
    (wid,) = [p.name for p in (home / "workflows").iterdir() if p.is_dir()]
    code, resumed, err = _cli([sys.executable, "-m", "alphaloop.cli", "resume", wid,
                               "--home", str(home), "--json", "--workers", "2"])
    assert code == 0 and resumed is not None, err[-2000:]
    _same(whole, resumed)
    assert resumed["llm"]["replayed_calls"] == 2  # the writer's two answers
    # every exchange stored before the kill was replayed, not asked again (the one in
    # flight, never answered, was asked again)
    assert model.repeated() == [model.held_key]
    _audit(model, data_file, [whole, resumed])

    # what `show` prints of it
    show = subprocess.run([sys.executable, "-m", "alphaloop.cli", "show", wid, "--home",
                           str(home)], capture_output=True, text=True, timeout=120, env=_env())
    assert show.returncode == 0 and "language model: openai:scripted" in show.stdout
    convo = subprocess.run([sys.executable, "-m", "alphaloop.cli", "show", wid, "--home",
                            str(home), "--llm"], capture_output=True, text=True, timeout=120,
                           env=_env())
    assert convo.returncode == 0
    assert "researcher" in convo.stdout and "strategy writer" in convo.stdout
    assert "=== RESEARCH_SWARM (research 0, strategy 0)" in convo.stdout
    assert "=== STRATEGY_DEVELOPMENT (research 0, strategy 0)" in convo.stdout
    assert f"outcome: {SMOKE_PASSED}" in convo.stdout and "bug fixer" in convo.stdout
    assert "outcome: rejected at gate 5 (lookahead)" in convo.stdout
    assert "outcome: invalid: the reply holds no ```python block" in convo.stdout
    assert "def generate_positions" in convo.stdout


def test_a_spent_budget_falls_back_to_the_offline_agents(model: Model, data_file: Path,
                                                        tmp_path: Path) -> None:
    # one call: the researcher's; the writer finds the budget spent. A loose gate and one
    # holdout look end the workflow after its first batch.
    code, result, err = _cli(_run_args(model.server, data_file, tmp_path / "h",
                                       "--llm-max-calls", "1", "--gate", "num_trades>=10",
                                       "--max-holdout-looks", "1"))
    assert code in (0, 1) and result is not None, err[-2000:]
    assert result["llm"]["calls"] == 1 and result["llm"]["fallbacks"] >= 1
    spent = [x for x in result["lessons_learned"] if "budget" in x]
    assert spent and "language model, writer: the offline agent took this step" in spent[0]
    assert not (result["best_strategy_name"] or "").startswith("llm_")
    _audit(model, data_file, [result])


def test_run_with_an_unreachable_model_creates_nothing(data_file: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    isolate(monkeypatch, tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    home = tmp_path / "home"
    proc = subprocess.run(
        [sys.executable, "-m", "alphaloop.cli", "run", "--ticker", TICKER, "--data",
         str(data_file), "--home", str(home), "--llm", "ollama:llama3.1", "--llm-base-url",
         url], capture_output=True, text=True, timeout=120, env=_env())
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: cannot reach")
    assert not home.exists()  # every input is checked before the home folder is made


def test_run_with_a_rejected_key_creates_nothing(model: Model, data_file: Path,
                                                 tmp_path: Path) -> None:
    model.server.push(error(401, "Incorrect API key provided"))
    home = tmp_path / "home"
    code, _, err = _cli(_run_args(model.server, data_file, home))
    assert code == 2 and err.count("\n") == 1 and "rejected the API key (401" in err
    assert not home.exists()
