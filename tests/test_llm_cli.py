"""``alphaloop llm check`` against the scripted loopback server: latency and structured
output on success; one line and exit code 2 for a rejected key, a closed port, an unknown
model or a bad spec."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import Any

import pytest

from _llm_server import SECRET_OPENAI, LLMServer, error
from alphaloop.cli import main

# every test runs with the keys and endpoints cleared (conftest: llm_env, server)
pytestmark = pytest.mark.usefixtures("llm_env")


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(["llm", "check", *args])
    out, err = capsys.readouterr()
    return int(caught.value.code or 0), out, err


def test_check_prints_latency_and_structured_output(server: LLMServer,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = check(capsys, "--llm", "openai:scripted", "--llm-base-url",
                           server.openai_url)
    assert code == 0, err
    assert f"openai:scripted at {server.openai_url}: replied in " in out
    assert "(20 prompt + 5 completion tokens)" in out
    assert "structured output: yes (JSON schema)" in out and "reply: valid" in out
    assert len(server.requests) == 1 and server.requests[0].body["max_tokens"] == 256


def test_check_says_when_structured_output_falls_back(server: LLMServer,
                                                      capsys: pytest.CaptureFixture[str],
                                                      ) -> None:
    server.reject_output_config = server.reject_tools = True
    code, out, _ = check(capsys, "--llm", "anthropic:scripted", "--llm-base-url", server.url)
    assert code == 0 and "structured output: no, the schema in the prompt" in out


@pytest.mark.parametrize(("spec", "reply", "says"), [
    ("openai:scripted", error(401, f"Incorrect API key provided: {SECRET_OPENAI}"),
     "rejected the API key (401: Incorrect API key provided: ***); set OPENAI_API_KEY"),
    ("openai:nope", None, "has no model 'nope' or no API at this address (404: The model "),
    ("openai:scripted", error(500, "overloaded"), "failed (500: overloaded; 1 attempt)"),
])
def test_check_reports_a_broken_setup_in_one_line(server: LLMServer,
                                                  capsys: pytest.CaptureFixture[str],
                                                  spec: str, reply: Any, says: str) -> None:
    if reply is not None:
        server.push(reply)
    code, out, err = check(capsys, "--llm", spec, "--llm-base-url", server.openai_url)
    assert (code, out) == (2, "")
    assert err.startswith("error: ") and err.count("\n") == 1 and says in err
    assert SECRET_OPENAI not in err and len(server.requests) == 1


def test_check_of_a_closed_port(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    code, _, err = check(capsys, "--llm", "ollama:llama3.1", "--llm-base-url", url)
    assert code == 2 and err.count("\n") == 1
    assert f"error: cannot reach {url} for ollama:llama3.1" in err
    assert "start Ollama (ollama serve) or fix the address (--llm-base-url)" in err


@pytest.mark.parametrize("spec", ["gpt-4o", "opnai:gpt-4o"])
def test_check_of_a_bad_spec(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = check(capsys, "--llm", spec)
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"error: --llm '{spec}'")


LAZY_MAIN = """
import sys
import alphaloop, alphaloop.agents.llm
from alphaloop.cli import _register, main
_register()
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("openai", "anthropic"))
if loaded:
    sys.exit(f"importing alphaloop imported {loaded}")
main(sys.argv[1:])
"""


def test_a_real_process_loads_no_sdk_on_import_and_exits_2_without_a_traceback(
        server: LLMServer) -> None:
    server.push(error(401, "Incorrect API key provided"))
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    proc = subprocess.run(
        [sys.executable, "-c", LAZY_MAIN, "llm", "check", "--llm", "openai:scripted",
         "--llm-base-url", server.openai_url],
        capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "rejected the API key (401" in proc.stderr
