"""The OpenAI and Anthropic adapters, driven through the real SDKs against the scripted
loopback server: replies, retries and what is never retried, Retry-After, time-outs, cut-off
replies, the structured-output fallbacks, and API keys kept out of every error."""

from __future__ import annotations

import socket
import traceback
from collections.abc import Callable
from typing import Any

import pytest

from _llm_server import (
    FAST,
    SECRET_ANTHROPIC,
    SECRET_OPENAI,
    LLMServer,
    Reply,
    anthropic_chat,
    anthropic_ok,
    error,
    hang,
    openai_chat,
    openai_ok,
)
from alphaloop.agents.llm import (
    OLLAMA_URL,
    AnthropicChat,
    ChatModel,
    LLMError,
    LLMRejected,
    LLMUnavailable,
    OpenAIChat,
    RetryPolicy,
    parse_spec,
)
from alphaloop.errors import ConfigError

ASK = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello?"}]
SCHEMA = {"title": "Ping", "type": "object", "properties": {"ok": {"type": "boolean"}},
          "required": ["ok"]}


# every test runs with the keys and endpoints cleared (conftest: llm_env, server)
pytestmark = pytest.mark.usefixtures("llm_env")


class Provider:
    """What differs between the two providers in these tests."""

    def __init__(self, name: str, make: Callable[..., Any], ok: Callable[..., Reply],
                 secret: str) -> None:
        self.name, self.make, self.ok, self.secret = name, make, ok, secret

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
        return error(status, message, headers, anthropic=self.name == "anthropic")

    def __repr__(self) -> str:
        return self.name


PROVIDERS = [Provider("openai", openai_chat, openai_ok, SECRET_OPENAI),
             Provider("anthropic", anthropic_chat, anthropic_ok, SECRET_ANTHROPIC)]
both = pytest.mark.parametrize("p", PROVIDERS, ids=repr)


@both
def test_a_plain_reply_with_its_usage(server: LLMServer, p: Provider) -> None:
    model = p.make(server)
    assert isinstance(model, ChatModel)
    server.push(p.ok("Hi.") if p.name == "openai" else anthropic_ok("Hi."))
    reply = model.complete(ASK, max_tokens=50, seed=7)
    assert (reply.text, reply.finish_reason, reply.mode, reply.structured) == (
        "Hi.", "stop", "text", False)
    assert (reply.prompt_tokens, reply.completion_tokens, reply.spec) == (
        20, 5, f"{p.name}:scripted")
    assert reply.latency_s > 0
    body = server.requests[0].body
    assert body["temperature"] == 0
    if p.name == "openai":
        assert body["messages"] == ASK and body["seed"] == 7 and body["max_tokens"] == 50
    else:
        assert body["system"] == "Be brief." and body["messages"] == ASK[1:]
        assert body["max_tokens"] == 50


def test_a_reply_without_usage_is_estimated(server: LLMServer) -> None:
    server.push(openai_ok("x" * 40, usage=False))
    reply = openai_chat(server).complete(ASK)
    assert not reply.usage_reported and reply.completion_tokens == 10 and reply.prompt_tokens > 0


@both
@pytest.mark.parametrize("status", [500, 503, 429])
def test_transient_faults_are_retried_three_times(server: LLMServer, p: Provider,
                                                  status: int) -> None:
    server.push(*[p.error(status, "busy")] * 4)
    with pytest.raises(LLMUnavailable) as caught:
        p.make(server).complete(ASK)
    assert len(server.requests) == 4 and caught.value.attempts == 4
    assert caught.value.status == status and "4 attempts" in str(caught.value)


@both
def test_a_transient_fault_then_a_reply(server: LLMServer, p: Provider) -> None:
    server.push(p.error(500, "oops"), p.error(502, "oops"), p.ok())
    assert p.make(server).complete(ASK).text == '{"ok": true}'
    assert len(server.requests) == 3


@both
@pytest.mark.parametrize(("status", "kind"), [(400, "bad_request"), (401, "auth"),
                                              (403, "forbidden"), (404, "not_found")])
def test_final_statuses_are_never_retried(server: LLMServer, p: Provider, status: int,
                                          kind: str) -> None:
    server.push(p.error(status, "no"), p.ok())
    with pytest.raises(LLMRejected) as caught:
        p.make(server).complete(ASK)
    assert len(server.requests) == 1 and caught.value.kind == kind
    assert caught.value.status == status


def test_retry_after_is_honoured(server: LLMServer) -> None:
    server.push(error(429, "slow down", {"Retry-After": "1"}), openai_ok())
    openai_chat(server).complete(ASK)  # FAST's own backoff would wait about 0.01 s
    first, second = server.requests
    assert second.at - first.at >= 0.9


def test_a_retry_after_beyond_the_limit_is_not_waited_for(server: LLMServer) -> None:
    server.push(error(429, "come back tomorrow", {"Retry-After": "86400"}), openai_ok())
    policy = RetryPolicy(base_delay=0.01, max_retry_after=60)
    with pytest.raises(LLMUnavailable, match="429"):
        openai_chat(server, retry=policy).complete(ASK)
    assert len(server.requests) == 1


@both
def test_a_time_out_is_retried_then_reported(server: LLMServer, p: Provider) -> None:
    server.push(hang(), hang(), hang(), hang())
    with pytest.raises(LLMUnavailable) as caught:
        p.make(server, timeout=0.15).complete(ASK)
    assert caught.value.kind == "timeout" and caught.value.attempts == 4
    assert server.wait_for(4) and "no reply within 0.15 s" in str(caught.value)


def test_a_refused_connection_is_retried_then_reported() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    model = OpenAIChat("scripted", base_url=f"http://127.0.0.1:{port}/v1", retry=FAST)
    with pytest.raises(LLMUnavailable) as caught:
        model.complete(ASK)
    assert caught.value.kind == "connection" and caught.value.attempts == 4
    assert f"cannot reach http://127.0.0.1:{port}/v1" in str(caught.value)
    assert "start the server or fix the address (--llm-base-url or OPENAI_BASE_URL)" in str(
        caught.value)


@both
def test_a_reply_cut_off_for_length(server: LLMServer, p: Provider) -> None:
    server.push(openai_ok('{"ok": tr', finish="length") if p.name == "openai"
                else anthropic_ok('{"ok": tr', stop="max_tokens"))
    reply = p.make(server).complete(ASK, schema=SCHEMA, max_tokens=5)
    assert reply.finish_reason == "length" and reply.text == '{"ok": tr'


# --------------------------------------------------------------------------- structured output
def test_openai_asks_for_a_strict_json_schema(server: LLMServer) -> None:
    reply = openai_chat(server).complete(ASK, schema=SCHEMA)
    assert (reply.mode, reply.structured) == ("json_schema", True)
    sent = server.requests[0].body["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "Ping"
    assert sent["json_schema"]["schema"]["additionalProperties"] is False


def test_openai_falls_back_to_json_mode_and_remembers(server: LLMServer) -> None:
    server.reject_json_schema = True
    model = openai_chat(server)
    reply = model.complete(ASK, schema=SCHEMA)
    assert (reply.mode, reply.structured, len(server.requests)) == ("json_object", False, 2)
    second = server.requests[1].body
    assert second["response_format"] == {"type": "json_object"}
    assert second["messages"][0]["content"].startswith("Be brief.\n\nReply with one JSON")
    assert '"ok"' in second["messages"][0]["content"]
    model.complete(ASK, schema=SCHEMA)
    assert len(server.requests) == 3 and model.structured_mode == "json_object"
    model.complete(ASK)  # without a schema: plain text, no response_format
    assert "response_format" not in server.requests[3].body


def test_openai_falls_back_to_the_prompt_when_json_mode_is_refused_too(
        server: LLMServer) -> None:
    server.reject_json_schema = server.reject_json_object = True
    model = openai_chat(server)
    assert model.complete(ASK, schema=SCHEMA).mode == "prompt"
    assert len(server.requests) == 3 and "response_format" not in server.requests[2].body
    assert model.complete(ASK, schema=SCHEMA).mode == "prompt" and len(server.requests) == 4


def test_anthropic_asks_with_output_config_then_a_tool_then_the_prompt(
        server: LLMServer) -> None:
    model = anthropic_chat(server)
    assert model.complete(ASK, schema=SCHEMA).mode == "json_schema"
    assert server.requests[0].body["output_config"]["format"]["type"] == "json_schema"
    server.reject_output_config = True
    reply = model.complete(ASK, schema=SCHEMA)
    assert (reply.mode, reply.structured, reply.text) == ("tool", True, '{"ok": true}')
    assert server.requests[2].body["tool_choice"] == {"type": "tool", "name": "reply"}
    server.reject_tools = True
    assert model.complete(ASK, schema=SCHEMA).mode == "prompt"
    assert "Reply with one JSON object" in server.requests[4].body["system"]


def test_a_400_about_something_else_does_not_step_down(server: LLMServer) -> None:
    server.push(error(400, "context length exceeded"))
    model = openai_chat(server)
    with pytest.raises(LLMRejected, match="context length exceeded"):
        model.complete(ASK, schema=SCHEMA)
    assert len(server.requests) == 1 and model.structured_mode == "json_schema"


@both
def test_temperature_is_dropped_once_refused(server: LLMServer, p: Provider) -> None:
    server.reject_temperature = True
    model = p.make(server)
    model.complete(ASK)
    model.complete(ASK)
    assert len(server.requests) == 3 and "temperature" not in server.requests[2].body


def test_the_other_token_cap_name_is_used_when_asked(server: LLMServer) -> None:
    def refuse(request: Any) -> Reply:
        if "max_tokens" in request.body:
            return error(400, "Unsupported parameter: 'max_tokens' is not supported with "
                              "this model. Use 'max_completion_tokens' instead.")
        return openai_ok()

    server.push(refuse, refuse)
    model = openai_chat(server)
    model.complete(ASK, max_tokens=99)
    assert server.requests[1].body["max_completion_tokens"] == 99
    assert model.token_param == "max_completion_tokens"


# --------------------------------------------------------------------------- keys and set-up
@both
def test_the_key_is_in_no_error_and_no_repr(server: LLMServer, p: Provider) -> None:
    server.push(p.error(401, f"Incorrect API key provided: {p.secret}. Find yours at ..."))
    model = p.make(server)
    with pytest.raises(LLMRejected) as caught:
        model.complete(ASK)
    exc = caught.value
    shown = [str(exc), repr(exc), *map(str, exc.args), repr(model), str(model),
             "".join(traceback.format_exception(exc))]
    assert all(p.secret not in s and p.secret[-12:] not in s for s in shown)
    assert "401" in str(exc) and f"{p.name.upper()}_API_KEY" in str(exc)
    assert server.requests[0].headers.get("authorization", server.requests[0].headers.get(
        "x-api-key", "")).endswith(p.secret)  # it was sent, to the endpoint only


def test_a_missing_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set; export"):
        parse_spec("openai:gpt-4o-mini")
    with pytest.raises(ConfigError, match=r"ANTHROPIC_API_KEY is not set .*; export"):
        parse_spec("anthropic:claude-sonnet-4-5")
    local = parse_spec("openai:qwen", base_url="http://127.0.0.1:8000/v1")  # no key needed
    assert local.base_url == "http://127.0.0.1:8000/v1"


def test_specs_name_their_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    ollama = parse_spec("ollama:llama3.1:8b")
    assert isinstance(ollama, OpenAIChat) and ollama.spec == "ollama:llama3.1:8b"
    assert ollama.base_url == OLLAMA_URL and ollama.model == "llama3.1:8b"
    assert isinstance(parse_spec(" Anthropic:claude-x "), AnthropicChat)
    assert parse_spec("openai:gpt-4o-mini").base_url == "https://api.openai.com/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1/")
    assert parse_spec("openai:m").base_url == "http://127.0.0.1:8000/v1"
    assert parse_spec("openai:m", base_url="http://h:1/v1").base_url == "http://h:1/v1"


@pytest.mark.parametrize(("spec", "base_url", "says"), [
    ("gpt-4o", None, "is not PROVIDER:MODEL; write e.g. openai:"),
    ("openai:", None, "is not PROVIDER:MODEL"),
    (":gpt-4o", None, "is not PROVIDER:MODEL"),
    ("openia:gpt-4o", None, "did you mean openai:gpt-4o?"),
    ("azure:gpt-4o", None, "unknown provider 'azure'; use one of openai, anthropic, ollama"),
    ("openai:m", "localhost:8000", "is not an http(s) address; give one like"),
])
def test_bad_specs_are_one_line_config_errors(spec: str, base_url: str | None,
                                              says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_spec(spec, base_url=base_url)
    assert says in str(caught.value) and "\n" not in str(caught.value)


def test_every_llm_error_is_an_alphaloop_error() -> None:
    from alphaloop.errors import AlphaloopError

    assert issubclass(LLMError, AlphaloopError)
