"""A scripted language-model server on 127.0.0.1 for the tests: stdlib ``http.server``,
threaded, on a free port, speaking OpenAI's ``/v1/chat/completions`` and Anthropic's
``/v1/messages`` well enough for the real ``openai`` and ``anthropic`` clients.

Each request is recorded (arrival time, path, headers, JSON body) and answered with the next
scripted :class:`Reply` (or callable of the request giving one); when the script is empty, a
valid reply (``{"ok": true}``) for a known model and a 404 for an unknown one. Switches make
it refuse JSON schemas / JSON mode / ``output_config`` / tools with a 400, as servers that
lack them do. A reply with ``hang`` is held until the server closes (the client times out).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from alphaloop.agents.llm import AnthropicChat, OpenAIChat, RetryPolicy

OK_TEXT = '{"ok": true}'


@dataclass
class Reply:
    """One scripted answer: a status, a JSON body (or raw text), headers; ``hang`` holds it
    until the server closes."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


@dataclass(frozen=True)
class Request:
    """One request as the server saw it (header names in lower case)."""

    at: float
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes


Script = Reply | Callable[[Request], Reply]


def openai_ok(text: str = OK_TEXT, *, finish: str = "stop", prompt_tokens: int = 20,
              completion_tokens: int = 5, usage: bool = True) -> Reply:
    body: dict[str, Any] = {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "scripted",
        "choices": [{"index": 0, "finish_reason": finish,
                     "message": {"role": "assistant", "content": text}}]}
    if usage:
        body["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                         "total_tokens": prompt_tokens + completion_tokens}
    return Reply(200, body)


def anthropic_ok(text: str = OK_TEXT, *, tool_input: dict[str, Any] | None = None,
                 stop: str = "end_turn", input_tokens: int = 20,
                 output_tokens: int = 5) -> Reply:
    content: list[dict[str, Any]] = (
        [{"type": "tool_use", "id": "toolu_1", "name": "reply", "input": tool_input}]
        if tool_input is not None else [{"type": "text", "text": text}])
    return Reply(200, {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "scripted",
        "content": content, "stop_reason": "tool_use" if tool_input is not None else stop,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}})


def error(status: int, message: str, headers: dict[str, str] | None = None, *,
          anthropic: bool = False) -> Reply:
    body: dict[str, Any] = (
        {"type": "error", "error": {"type": "api_error", "message": message}} if anthropic
        else {"error": {"message": message, "type": "invalid_request_error", "code": None}})
    return Reply(status, body, dict(headers or {}))


def hang() -> Reply:
    return Reply(hang=True)


class LLMServer:
    """The server; use as a context manager. ``url`` is its root (Anthropic's base URL),
    ``openai_url`` its ``/v1`` (OpenAI's)."""

    def __init__(self, *, models: tuple[str, ...] = ("scripted",)) -> None:
        self.models = set(models)
        self.script: deque[Script] = deque()
        self.requests: list[Request] = []
        self.reject_json_schema = False
        self.reject_json_object = False
        self.reject_output_config = False
        self.reject_tools = False
        self.reject_temperature = False
        self._released = threading.Event()
        self._changed = threading.Condition()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                headers = {k.lower(): v for k, v in self.headers.items()}
                request = Request(time.monotonic(), self.path, headers, body, raw)
                reply = server._answer(request)
                if reply.hang:
                    server._released.wait(30)
                    return
                payload = (reply.body if isinstance(reply.body, bytes | str)
                           else json.dumps(reply.body))
                data = payload.encode() if isinstance(payload, str) else payload
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that timed out and left

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.openai_url = f"{self.url}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        daemon=True)

    def __enter__(self) -> LLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._released.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(10)

    def push(self, *replies: Script) -> LLMServer:
        """Answer the next requests with ``replies``, in order."""
        self.script.extend(replies)
        return self

    def wait_for(self, n: int, timeout: float = 10.0) -> bool:
        """Whether ``n`` requests arrived within ``timeout`` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.requests) >= n, timeout)

    def _answer(self, request: Request) -> Reply:
        with self._changed:
            self.requests.append(request)
            self._changed.notify_all()
            refused = self._refusal(request)
            if refused is not None:
                return refused
            item = self.script.popleft() if self.script else self._default
        return item(request) if callable(item) else item

    def _refusal(self, request: Request) -> Reply | None:
        body, anthropic = request.body, request.path.endswith("/messages")
        fmt = (body.get("response_format") or {}).get("type")
        if self.reject_json_schema and fmt == "json_schema":
            return error(400, "response_format of type 'json_schema' is not supported")
        if self.reject_json_object and fmt == "json_object":
            return error(400, "'response_format.type' must be 'json_schema' or 'text'")
        if self.reject_output_config and "output_config" in body:
            return error(400, "output_config: Extra inputs are not permitted", anthropic=True)
        if self.reject_tools and "tools" in body:
            return error(400, "tools are not supported by this model", anthropic=True)
        if self.reject_temperature and "temperature" in body:
            return error(400, "Unsupported value: 'temperature' does not support 0 with this "
                              "model. Only the default (1) value is supported.",
                         anthropic=anthropic)
        return None

    def _default(self, request: Request) -> Reply:
        anthropic = request.path.endswith("/messages")
        model = request.body.get("model")
        if model not in self.models:
            return error(404, f"The model `{model}` does not exist", anthropic=anthropic)
        if not anthropic:
            return openai_ok()
        if request.body.get("tools"):
            return anthropic_ok(tool_input={"ok": True})
        return anthropic_ok()


# --------------------------------------------------------------------------- client helpers
SECRET_OPENAI = "sk-proj-TESTKEY" + "q7" * 16
SECRET_ANTHROPIC = "sk-ant-TESTKEY" + "z3" * 16
FAST = RetryPolicy(base_delay=0.01, max_delay=0.05)
"""The default retry count (3) with short waits."""


def isolate(monkeypatch: Any, tmp_path: Any) -> None:
    """The test's environment: the test keys set, no endpoint or proxy variables, no
    Anthropic profile on disk."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_OPENAI)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET_ANTHROPIC)
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(tmp_path / "anthropic-config"))
    for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN",
                 "ANTHROPIC_PROFILE", "OPENAI_CUSTOM_HEADERS", "ANTHROPIC_CUSTOM_HEADERS",
                 "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def openai_chat(server: LLMServer, model: str = "scripted", *, timeout: float = 10.0,
                retry: RetryPolicy = FAST) -> OpenAIChat:
    return OpenAIChat(model, base_url=server.openai_url, timeout=timeout, retry=retry)


def anthropic_chat(server: LLMServer, model: str = "scripted", *, timeout: float = 10.0,
                   retry: RetryPolicy = FAST) -> AnthropicChat:
    return AnthropicChat(model, base_url=server.url, timeout=timeout, retry=retry)
