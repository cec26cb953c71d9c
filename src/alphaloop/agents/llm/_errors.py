"""What a model call can end in besides a reply. Catch :class:`LLMError` to fall back to the
offline agent; the subclasses say why. Every message is one line naming the problem and the
fix, and never holds an API key (see :func:`redact`)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from alphaloop.errors import AlphaloopError


class LLMError(AlphaloopError):
    """A model call did not give a usable reply. ``kind`` names the fault: ``timeout``,
    ``connection``, ``rate_limit``, ``server``, ``auth``, ``forbidden``, ``not_found``,
    ``bad_request``, ``http``, ``budget``, ``invalid_reply``. ``status`` is the HTTP status
    when there was one, ``attempts`` the requests made."""

    def __init__(self, message: str, *, kind: str, status: int | None = None,
                 attempts: int = 0) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.attempts = attempts


class LLMUnavailable(LLMError):
    """The endpoint stayed unavailable through every retry: time-outs, refused connections,
    429 or 5xx. Transient: try again later; mid-run, the offline agent takes the step."""


class LLMRejected(LLMError):
    """The endpoint refused the request (400, 401, 403, 404, ...): a bad key, an unknown
    model, a request it cannot serve. Never retried: asking again gives the same answer."""


class BudgetSpent(LLMError):
    """The call was not made: it could take the budget past a cap (calls or tokens)."""


class InvalidReply(LLMError):
    """No reply validated, after asking again with the validation error each time.
    ``feedback`` is the last validation error."""

    def __init__(self, message: str, *, feedback: str, attempts: int) -> None:
        super().__init__(message, kind="invalid_reply", attempts=attempts)
        self.feedback = feedback


_KEY_LIKE = re.compile(r"\b(sk-(?:ant-|proj-|svcacct-)?)[A-Za-z0-9_\-]{8,}")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` without any of ``secrets`` of 8 characters or more (each replaced by ``***``)
    nor anything shaped like an OpenAI or Anthropic key (``sk-...``): servers echo a rejected
    key in their error text."""
    for secret in secrets:
        if secret and len(secret) >= 8:  # not a placeholder like "ollama"
            text = text.replace(secret, "***")
    return _KEY_LIKE.sub(r"\1***", text)
