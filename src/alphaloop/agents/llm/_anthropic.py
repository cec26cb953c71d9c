"""Anthropic's models through the official ``anthropic`` SDK's Messages API."""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

from alphaloop.agents.llm._adapter import DEFAULT_TIMEOUT, Adapter, Raw, check_url, import_sdk
from alphaloop.agents.llm._retry import RetryPolicy
from alphaloop.agents.llm._schema import strict_schema, with_instruction
from alphaloop.agents.llm._types import Message, Mode
from alphaloop.errors import ConfigError

TOOL = "reply"
"""Name of the tool whose input is the reply, in ``tool`` mode."""

_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "tool_use": "stop",
           "pause_turn": "stop", "max_tokens": "length", "refusal": "refusal"}


class AnthropicChat(Adapter):
    """A Claude model behind ``/v1/messages``.

    The address is ``base_url``, else ``$ANTHROPIC_BASE_URL``, else Anthropic's; the key is
    ``api_key``, else whatever the SDK finds (``$ANTHROPIC_API_KEY``, ``$ANTHROPIC_AUTH_TOKEN``,
    its profiles). JSON is asked for with ``output_config``'s JSON schema, then a forced tool
    whose input schema is the schema, then the schema in the prompt (see :class:`Adapter`).
    Temperature 0 is sent until the endpoint refuses it; there is no seed.
    """

    PROVIDER: ClassVar[str] = "anthropic"
    LADDER: ClassVar[tuple[Mode, ...]] = ("json_schema", "tool", "prompt")
    KEY_ENV: ClassVar[str] = "ANTHROPIC_API_KEY"
    URL_ENV: ClassVar[str] = "ANTHROPIC_BASE_URL"

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, retry: RetryPolicy | None = None) -> None:
        anthropic = import_sdk("anthropic")
        if base_url is not None:
            base_url = check_url(base_url, "--llm-base-url")
        elif os.environ.get(self.URL_ENV):
            base_url = check_url(os.environ[self.URL_ENV], self.URL_ENV)
        missing = ConfigError(f"{self.KEY_ENV} is not set (nor another credential the "
                              f"anthropic SDK knows); export {self.KEY_ENV}=<your key>")
        try:
            client = anthropic.Anthropic(api_key=api_key, base_url=base_url, timeout=timeout,
                                         max_retries=0)
        except anthropic.AnthropicError:  # e.g. no profile to fall back on
            raise missing from None
        if not (client.api_key or client.auth_token or getattr(client, "credentials", None)):
            raise missing
        super().__init__(model, provider="anthropic", base_url=str(client.base_url).rstrip("/"),
                         timeout=timeout, retry=retry or RetryPolicy(),
                         secrets=[client.api_key, client.auth_token])
        self._client = client

    def _not_found_fix(self) -> str:
        return "check the model name, and that the base URL does not end in /v1"

    def _send(self, messages: list[Message], mode: Mode, schema: dict[str, Any] | None,
              max_tokens: int, seed: int | None) -> Raw:
        if schema is not None and mode == "prompt":
            messages = with_instruction(messages, schema)
        kwargs: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens}
        if messages[0]["role"] == "system":
            kwargs["system"] = messages[0]["content"]
            messages = messages[1:]
        extra: dict[str, Any] = {}  # not named arguments in every SDK version
        if self.temperature:
            extra["temperature"] = 0
        if schema is not None and mode == "json_schema":
            extra["output_config"] = {"format": {"type": "json_schema",
                                                 "schema": strict_schema(schema)}}
        elif schema is not None and mode == "tool":
            kwargs["tools"] = [{"name": TOOL, "description": "Give your reply as this tool's "
                                "input.", "input_schema": schema}]
            kwargs["tool_choice"] = {"type": "tool", "name": TOOL}
        response = self._client.messages.create(messages=messages, extra_body=extra, **kwargs)
        texts, tool_input = [], None
        for block in response.content or []:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "tool_use" and block.name == TOOL:
                tool_input = block.input
        text = json.dumps(tool_input) if tool_input is not None else "".join(texts)
        reason = response.stop_reason or "end_turn"
        usage = response.usage
        prompt = None if usage is None else (usage.input_tokens or 0) + (
            getattr(usage, "cache_creation_input_tokens", 0) or 0) + (
            getattr(usage, "cache_read_input_tokens", 0) or 0)
        completion = None if usage is None else usage.output_tokens
        return Raw(text, _FINISH.get(reason, reason), prompt, completion)
