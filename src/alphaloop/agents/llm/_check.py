"""``alphaloop llm check``: one tiny call that shows a set-up works."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from alphaloop.agents.llm._parse import ReplyInvalid, parse_reply
from alphaloop.agents.llm._retry import RetryPolicy
from alphaloop.agents.llm._spec import parse_spec
from alphaloop.agents.llm._types import Message, Mode

CHECK_MAX_TOKENS = 256
"""The check's reply cap: room for a reasoning model's thoughts before ``{"ok": true}``."""


class Ping(BaseModel):
    """The check's reply."""

    model_config = ConfigDict(extra="forbid")

    ok: bool


PING: list[Message] = [
    {"role": "system", "content": "You are checking that an API works. Answer in JSON."},
    {"role": "user", "content": 'Reply with {"ok": true}.'},
]


class CheckResult(BaseModel):
    """What the check found: the endpoint answered in ``latency_s`` seconds, JSON was asked
    for in ``mode`` (``structured``: the endpoint took the schema itself) and the reply was
    ``valid`` (else ``detail`` says why not)."""

    model_config = ConfigDict(frozen=True)

    spec: str
    base_url: str
    latency_s: float
    mode: Mode
    structured: bool
    valid: bool
    detail: str = ""
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


def check(spec: str, *, base_url: str | None = None, timeout: float = 30.0) -> CheckResult:
    """Send :data:`PING` once to ``spec`` (no retries). A set-up that does not work (no key,
    a rejected key, an unknown model, an unreachable address) raises a one-line
    :class:`~alphaloop.errors.ConfigError` or :class:`~alphaloop.agents.llm.LLMError`."""
    model = parse_spec(spec, base_url=base_url, timeout=timeout, retry=RetryPolicy(retries=0))
    reply = model.complete(PING, schema=Ping.model_json_schema(), max_tokens=CHECK_MAX_TOKENS)
    detail = ""
    try:
        parse_reply(reply.text, Ping)
    except ReplyInvalid as exc:
        detail = exc.feedback.splitlines()[0]
        if reply.finish_reason == "length":
            detail = f"cut off at {CHECK_MAX_TOKENS} tokens; {detail}"
    return CheckResult(spec=model.spec, base_url=model.base_url, latency_s=reply.latency_s,
                       mode=reply.mode, structured=reply.structured, valid=not detail,
                       detail=detail, prompt_tokens=reply.prompt_tokens,
                       completion_tokens=reply.completion_tokens,
                       finish_reason=reply.finish_reason)
