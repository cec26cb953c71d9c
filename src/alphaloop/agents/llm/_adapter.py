"""What both SDK adapters share: the request loop around one SDK call.

A request is retried for transient faults (:mod:`._retry`). A 400 is never retried as such,
but it may say the endpoint cannot take an option; then the request is sent again without
it, and the adapter remembers what worked for its model: temperature 0 dropped, the other
name of the token cap, or the next, humbler way to ask for JSON (:attr:`Adapter.LADDER`:
the endpoint's JSON schema, then JSON mode or a forced tool, then the schema written into the
prompt). Faults become one-line :class:`LLMError` s that name the fix and never the key.
"""

from __future__ import annotations

import threading
import time
import types
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

from alphaloop.agents.llm._errors import LLMError, LLMRejected, LLMUnavailable, redact
from alphaloop.agents.llm._retry import (
    Failed,
    Fault,
    RetryPolicy,
    retry_after_seconds,
    with_retries,
)
from alphaloop.agents.llm._types import STRUCTURED_MODES, ChatReply, Message, Mode, check_messages
from alphaloop.errors import ConfigError, clean_message

DEFAULT_TIMEOUT = 120.0
"""Seconds a request may take before it counts as timed out (and is retried)."""

_FORMAT_WORDS = ("response_format", "json_schema", "json_object", "schema", "format",
                 "output_config", "structured", "tool", "grammar")
"""A 400 mentioning one of these is taken to refuse the way JSON was asked for."""


@dataclass(frozen=True)
class Raw:
    """What an adapter read from one SDK response; ``None`` tokens: the endpoint gave none."""

    text: str
    finish_reason: str
    prompt_tokens: int | None
    completion_tokens: int | None


def import_sdk(name: str) -> types.ModuleType:
    """The SDK module ``name``, imported only when an adapter is made (the base install runs
    without it)."""
    try:
        return __import__(name)
    except ImportError:
        raise ConfigError(f"the {name} package is not installed; install the language-model "
                          "extra: pip install 'alphaloop[llm]'") from None


def check_url(url: str, source: str) -> str:
    """``url`` without its trailing slash, if it is an http(s) address, else ConfigError."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{source} {url!r} is not an http(s) address; give one like "
                          "http://127.0.0.1:11434/v1")
    return url.rstrip("/")


def _attempts(n: int) -> str:
    return f"{n} attempt{'s' if n != 1 else ''}"


class Adapter(ABC):
    """A :class:`~alphaloop.agents.llm.ChatModel` over one SDK client (built by the subclass
    with ``max_retries=0``: retrying is done here)."""

    PROVIDER: ClassVar[str]
    LADDER: ClassVar[tuple[Mode, ...]]
    KEY_ENV: ClassVar[str]
    URL_ENV: ClassVar[str]

    def __init__(self, model: str, *, provider: str, base_url: str, timeout: float,
                 retry: RetryPolicy, secrets: Sequence[str | None]) -> None:
        if not model.strip():
            raise ConfigError(f"no model named for {provider}; write {provider}:MODEL")
        if not timeout > 0:
            raise ConfigError(f"the time-out must be > 0 seconds, got {timeout}")
        self.model = model
        self.provider = provider
        self.spec = f"{provider}:{model}"
        self.base_url = base_url
        self.timeout = float(timeout)
        self.retry = retry
        self._secrets = tuple(s for s in secrets if s)
        self._lock = threading.Lock()
        self._mode: Mode = self.LADDER[0]
        self.temperature = True
        """Whether temperature 0 is sent (dropped for good once the endpoint refuses it)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r}, base_url={self.base_url!r})"

    @property
    def structured_mode(self) -> Mode:
        """How JSON is asked for now: the first mode of :attr:`LADDER` this model took."""
        return self._mode

    # -- the subclass's part ---------------------------------------------------------------

    @abstractmethod
    def _send(self, messages: list[Message], mode: Mode, schema: dict[str, Any] | None,
              max_tokens: int, seed: int | None) -> Raw:
        """One SDK call; SDK exceptions propagate."""

    def _adapt(self, detail: str) -> bool:
        """Change what is sent after a 400 saying ``detail``; whether anything changed."""
        if self.temperature and "temperature" in detail.lower():
            self.temperature = False
            return True
        return False

    def _not_found_fix(self) -> str:
        return "check the model name"

    def _unreachable_fix(self) -> str:
        return f"start the server or fix the address (--llm-base-url or {self.URL_ENV})"

    @property
    def _sdk(self) -> types.ModuleType:
        return import_sdk(self.PROVIDER)

    # -- the loop -------------------------------------------------------------------------

    def complete(self, messages: Sequence[Message], *, schema: dict[str, Any] | None = None,
                 max_tokens: int = 1024, seed: int | None = None) -> ChatReply:
        """See :meth:`alphaloop.agents.llm.ChatModel.complete`."""
        msgs = check_messages(messages)
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        mode: Mode = self._mode if schema is not None else "text"
        attempts = 0
        while True:
            took = [0.0]

            def send(mode: Mode = mode, took: list[float] = took) -> Raw:
                start = time.monotonic()
                raw = self._send(msgs, mode, schema, max_tokens, seed)
                took[0] = time.monotonic() - start
                return raw

            try:
                raw = with_retries(send, self._classify, self.retry)
            except Failed as failed:
                attempts += failed.attempts
                fault = failed.fault
                if fault.kind == "bad_request" and attempts < 8:
                    with self._lock:
                        adapted = self._adapt(fault.detail)
                    if adapted:
                        continue
                    if mode not in ("text", "prompt") and any(
                            w in fault.detail.lower() for w in _FORMAT_WORDS):
                        mode = self.LADDER[self.LADDER.index(mode) + 1]
                        continue
                raise self._error(fault, attempts) from None
            break
        if schema is not None:
            with self._lock:
                if self.LADDER.index(mode) > self.LADDER.index(self._mode):
                    self._mode = mode
        return self._reply(raw, msgs, mode, took[0])

    def _reply(self, raw: Raw, msgs: list[Message], mode: Mode, latency: float) -> ChatReply:
        reported = raw.prompt_tokens is not None and raw.completion_tokens is not None
        prompt = raw.prompt_tokens if raw.prompt_tokens is not None else (
            sum(len(m["content"]) for m in msgs) + 3) // 4
        completion = raw.completion_tokens if raw.completion_tokens is not None else (
            len(raw.text) + 3) // 4
        return ChatReply(text=raw.text, prompt_tokens=prompt, completion_tokens=completion,
                         usage_reported=reported, finish_reason=raw.finish_reason,
                         latency_s=latency, mode=mode, structured=mode in STRUCTURED_MODES,
                         spec=self.spec)

    def _classify(self, exc: BaseException) -> Fault | None:
        sdk = self._sdk
        if isinstance(exc, sdk.APITimeoutError):
            return Fault("timeout")
        if isinstance(exc, sdk.APIConnectionError):
            return Fault("connection", detail=self._clean(exc.__cause__ or exc))
        if not isinstance(exc, sdk.APIStatusError):
            return None
        status = exc.status_code
        kind = {400: "bad_request", 401: "auth", 403: "forbidden", 404: "not_found",
                408: "timeout", 422: "bad_request", 429: "rate_limit"}.get(status)
        body = exc.body
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            body = body["error"]
        message = body.get("message") if isinstance(body, dict) else None
        return Fault(kind or ("server" if status >= 500 else "http"), status,
                     self._clean(message or exc.message),
                     retry_after_seconds(exc.response.headers))

    def _clean(self, text: object) -> str:
        return clean_message(redact(str(text), self._secrets), limit=300)

    def _error(self, fault: Fault, attempts: int) -> LLMError:
        where, code = f"{self.spec} at {self.base_url}", fault.status
        detail = clean_message(fault.detail, limit=160)
        said = f"{code}: {detail}" if detail else str(code)
        n = _attempts(attempts)
        text = {
            "timeout": f"{where} gave no reply within {self.timeout:g} s ({n}); try again "
                       "later, or allow more time if the model is slow",
            "connection": f"cannot reach {self.base_url} for {self.spec} ({detail}; {n}); "
                          f"{self._unreachable_fix()}",
            "rate_limit": f"{where} is rate-limiting ({said}; {n}); wait and try again, or "
                          "raise the account's rate limit",
            "server": f"{where} failed ({said}; {n}); the server is in trouble: try again "
                      "later",
            "auth": f"{where} rejected the API key ({said}); set {self.KEY_ENV} to a valid "
                    "key",
            "forbidden": f"{where} refused access ({said}); use a key allowed to use this "
                         "model",
            "not_found": f"{where} has no model {self.model!r} or no API at this address "
                         f"({said}); {self._not_found_fix()}",
            "bad_request": f"{where} rejected the request ({said}); check that it is a chat "
                           "model that takes the options alphaloop sends",
        }.get(fault.kind, f"{where} answered HTTP {said}; check the address, the model and "
                          "the key's account")
        cls = LLMUnavailable if fault.retryable else LLMRejected
        return cls(text, kind=fault.kind, status=fault.status, attempts=attempts)
