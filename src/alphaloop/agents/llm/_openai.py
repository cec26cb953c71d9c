"""OpenAI and every OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio), through
the official ``openai`` SDK's chat completions."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from alphaloop.agents.llm._adapter import DEFAULT_TIMEOUT, Adapter, Raw, check_url, import_sdk
from alphaloop.agents.llm._retry import RetryPolicy
from alphaloop.agents.llm._schema import schema_name, strict_schema, with_instruction
from alphaloop.agents.llm._types import Message, Mode
from alphaloop.errors import ConfigError

OPENAI_URL = "https://api.openai.com/v1"
OLLAMA_URL = "http://127.0.0.1:11434/v1"


class OpenAIChat(Adapter):
    """A chat model behind ``/v1/chat/completions``.

    The address is ``base_url``, else ``$OPENAI_BASE_URL``, else OpenAI's; the key is
    ``api_key``, else ``$OPENAI_API_KEY`` (a server other than OpenAI's may go without one).
    Requests ask for temperature 0 and pass ``seed``; JSON is asked for with a JSON schema,
    then JSON mode, then the schema in the prompt (see :class:`Adapter`).
    """

    PROVIDER: ClassVar[str] = "openai"
    LADDER: ClassVar[tuple[Mode, ...]] = ("json_schema", "json_object", "prompt")
    KEY_ENV: ClassVar[str] = "OPENAI_API_KEY"
    URL_ENV: ClassVar[str] = "OPENAI_BASE_URL"

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 provider: str = "openai", timeout: float = DEFAULT_TIMEOUT,
                 retry: RetryPolicy | None = None) -> None:
        openai = import_sdk("openai")
        if base_url is not None:
            url = check_url(base_url, "--llm-base-url")
        elif os.environ.get(self.URL_ENV):
            url = check_url(os.environ[self.URL_ENV], self.URL_ENV)
        else:
            url = OPENAI_URL
        key = api_key or os.environ.get(self.KEY_ENV)
        official = "api.openai.com" in url
        if not key:
            if official:
                raise ConfigError(f"{self.KEY_ENV} is not set; export {self.KEY_ENV}=<your "
                                  "key>, or use ollama:MODEL for a local server")
            key = "unused"  # a local server without authentication; the SDK insists on one
        super().__init__(model, provider=provider, base_url=url, timeout=timeout,
                         retry=retry or RetryPolicy(), secrets=[key])
        self.token_param = "max_completion_tokens" if official else "max_tokens"
        """Name of the reply's token cap: OpenAI's own models want ``max_completion_tokens``,
        other servers know ``max_tokens``; switched once if the endpoint says so."""
        self._switched = False
        self._client = openai.OpenAI(api_key=key, base_url=url, timeout=self.timeout,
                                     max_retries=0)

    def _adapt(self, detail: str) -> bool:
        low = detail.lower()
        if not self._switched and "max_tokens" in low and "max_completion_tokens" in low:
            self._switched = True
            self.token_param = ("max_tokens" if self.token_param == "max_completion_tokens"
                                else "max_completion_tokens")
            return True
        return super()._adapt(detail)

    def _not_found_fix(self) -> str:
        if self.provider == "ollama":
            return "pull it (ollama pull MODEL) or pick one from ollama list"
        return "check the model name, and that the base URL ends in /v1"

    def _unreachable_fix(self) -> str:
        if self.provider == "ollama":
            return "start Ollama (ollama serve) or fix the address (--llm-base-url)"
        return super()._unreachable_fix()

    def _send(self, messages: list[Message], mode: Mode, schema: dict[str, Any] | None,
              max_tokens: int, seed: int | None) -> Raw:
        kwargs: dict[str, Any] = {"model": self.model, self.token_param: max_tokens}
        if self.temperature:
            kwargs["temperature"] = 0
        if seed is not None:
            kwargs["seed"] = seed
        if schema is not None and mode == "json_schema":
            kwargs["response_format"] = {"type": "json_schema", "json_schema": {
                "name": schema_name(schema), "schema": strict_schema(schema), "strict": True}}
        elif schema is not None and mode in ("json_object", "prompt"):
            messages = with_instruction(messages, schema)
            if mode == "json_object":
                kwargs["response_format"] = {"type": "json_object"}
        response = self._client.chat.completions.create(messages=messages, **kwargs)
        choices = response.choices or []
        if not choices:
            return Raw("", "empty", *_usage(response.usage))
        message, finish = choices[0].message, choices[0].finish_reason or "stop"
        text = message.content or ""
        if not text and getattr(message, "refusal", None):
            text, finish = str(message.refusal), "refusal"
        return Raw(text, str(finish), *_usage(response.usage))


def _usage(usage: Any) -> tuple[int | None, int | None]:
    if usage is None:
        return None, None
    return getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None)
