"""The contract every model provider meets: :class:`ChatModel` (messages in, :class:`ChatReply`
out). Adapters (:mod:`._openai`, :mod:`._anthropic`) only translate the wire format; the
wrappers above them (budget, record/replay) and the reply parsing are written once, against
this protocol."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, TypedDict, runtime_checkable

from pydantic import BaseModel, ConfigDict

Role = Literal["system", "user", "assistant"]

Mode = Literal["text", "json_schema", "tool", "json_object", "prompt"]
"""How a reply was asked for: ``text`` (no schema given); ``json_schema`` (the endpoint's
structured output: OpenAI ``response_format``, Anthropic ``output_config``); ``tool`` (an
Anthropic tool whose ``input_schema`` is the schema, its use forced); ``json_object`` (JSON
mode, the schema written into the system message); ``prompt`` (the schema written into the
system message only)."""

STRUCTURED_MODES: frozenset[str] = frozenset({"json_schema", "tool"})
"""Modes in which the endpoint itself was given the schema."""


class Message(TypedDict):
    """One turn of a conversation: a ``system`` message (at most one, first), then ``user``
    and ``assistant`` turns."""

    role: Role
    content: str


class ChatReply(BaseModel):
    """One reply of a model, with what it cost. Frozen."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    """The reply's text (in ``tool`` mode: the tool input, as JSON)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usage_reported: bool = True
    """False when the endpoint returned no usage and the token counts are estimates
    (one token per 4 characters)."""
    finish_reason: str = "stop"
    """``stop``, ``length`` (cut off at ``max_tokens``), ``refusal``, ``content_filter``..."""
    latency_s: float = 0.0
    """Seconds the request that produced this reply took (retries before it excluded)."""
    mode: Mode = "text"
    structured: bool = False
    """Whether the endpoint itself was given the schema (mode ``json_schema`` or ``tool``)."""
    spec: str = ""
    """``PROVIDER:MODEL`` of the model that replied."""
    replayed: bool = False
    """True when the reply came from the record store, not from the endpoint."""
    key: str | None = None
    """The exchange's key in the record store, if one recorded it."""

    @property
    def tokens(self) -> int:
        """Prompt and completion tokens together."""
        return self.prompt_tokens + self.completion_tokens


@runtime_checkable
class ChatModel(Protocol):
    """A chat model: answers a conversation, optionally in JSON following a schema.

    ``complete`` returns a :class:`ChatReply` or raises an
    :class:`~alphaloop.agents.llm.LLMError` (the endpoint failed after its retries, refused the
    request, or the budget is spent); a caller falls back to the offline agent on any of them.
    """

    spec: str
    """``PROVIDER:MODEL``, e.g. ``openai:gpt-4o-mini`` (part of every record key)."""

    def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: dict[str, Any] | None = None,
        max_tokens: int = 1024,
        seed: int | None = None,
    ) -> ChatReply:
        """Answer ``messages``; with ``schema`` (a JSON schema), ask for one JSON object
        following it. ``max_tokens`` caps the reply; ``seed`` is passed where supported."""
        ...


def check_messages(messages: Sequence[Mapping[str, Any]]) -> list[Message]:
    """``messages`` as plain dicts, after checking their shape: a non-empty list of
    ``{"role", "content"}`` with string content, a ``system`` message only first, and at least
    one ``user`` message. A wrong shape is a programming error: :class:`ValueError`."""
    out: list[Message] = []
    for i, m in enumerate(messages):
        role, content = m.get("role"), m.get("content")
        if role not in ("system", "user", "assistant") or not isinstance(content, str):
            raise ValueError(f"message {i} must be {{'role': system|user|assistant, "
                             f"'content': str}}, got {dict(m)!r:.80}")
        if role == "system" and i != 0:
            raise ValueError(f"message {i}: a system message must come first")
        out.append({"role": role, "content": content})
    if not any(m["role"] == "user" for m in out):
        raise ValueError("messages need at least one user message")
    return out
