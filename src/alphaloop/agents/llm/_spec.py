"""``PROVIDER:MODEL`` → the adapter that serves it."""

from __future__ import annotations

import difflib

from alphaloop.agents.llm._adapter import DEFAULT_TIMEOUT, Adapter
from alphaloop.agents.llm._retry import RetryPolicy
from alphaloop.errors import ConfigError

PROVIDERS: dict[str, str] = {
    "openai": "OpenAI, or any OpenAI-compatible server at --llm-base-url / OPENAI_BASE_URL",
    "anthropic": "Anthropic (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL)",
    "ollama": "a local Ollama server (http://127.0.0.1:11434/v1 unless --llm-base-url)",
}
"""The providers ``--llm`` accepts, with what each means."""

_EXAMPLE = "openai:gpt-4o-mini, anthropic:claude-sonnet-4-5 or ollama:llama3.1"


def split_spec(spec: str) -> tuple[str, str]:
    """``(provider, model)`` of ``PROVIDER:MODEL``; the model may hold colons
    (``ollama:llama3.1:8b``). A bad spec is a one-line :class:`ConfigError`."""
    provider, sep, model = spec.strip().partition(":")
    provider, model = provider.strip().lower(), model.strip()
    if not sep or not provider or not model:
        raise ConfigError(f"--llm {spec!r} is not PROVIDER:MODEL; write e.g. {_EXAMPLE}")
    if provider not in PROVIDERS:
        close = difflib.get_close_matches(provider, PROVIDERS, n=1)
        hint = f"did you mean {close[0]}:{model}? " if close else ""
        raise ConfigError(f"--llm {spec!r}: unknown provider {provider!r}; {hint}use one of "
                          f"{', '.join(PROVIDERS)}")
    return provider, model


def parse_spec(spec: str, *, base_url: str | None = None, timeout: float = DEFAULT_TIMEOUT,
               retry: RetryPolicy | None = None) -> Adapter:
    """The adapter for ``spec`` (``openai:MODEL``, ``anthropic:MODEL``, ``ollama:MODEL``),
    at ``base_url`` if given, else at the provider's address (for openai and anthropic, the
    SDK's environment variable first). A missing key or SDK is a :class:`ConfigError`; no
    request is made."""
    provider, model = split_spec(spec)
    if provider == "anthropic":
        from alphaloop.agents.llm._anthropic import AnthropicChat

        return AnthropicChat(model, base_url=base_url, timeout=timeout, retry=retry)
    from alphaloop.agents.llm._openai import OLLAMA_URL, OpenAIChat

    if provider == "ollama":
        return OpenAIChat(model, base_url=base_url or OLLAMA_URL, api_key="ollama",
                          provider="ollama", timeout=timeout, retry=retry)
    return OpenAIChat(model, base_url=base_url, timeout=timeout, retry=retry)
