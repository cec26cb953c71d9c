"""Caps on what a workflow may spend on a model: calls, and tokens (prompt and completion
together), checked before every call and counted from the usage each reply reports."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from alphaloop.agents.llm._errors import BudgetSpent
from alphaloop.agents.llm._types import ChatModel, ChatReply, Message

DEFAULT_MAX_CALLS = 100
"""Calls a workflow may make (``--llm-max-calls``)."""
DEFAULT_MAX_TOKENS = 300_000
"""Prompt and completion tokens a workflow may use together (``--llm-max-tokens``)."""
CHARS_PER_TOKEN = 3
"""How a prompt not yet sent is sized: one token per 3 characters (a generous estimate;
English and code run nearer 4)."""


class Budget:
    """What may still be spent, and what was. Thread-safe; :meth:`to_dict` / :meth:`from_dict`
    keep it in the workflow state so a resumed workflow continues the count.

    A call is refused (:class:`BudgetSpent`, before anything is sent) when ``max_calls`` calls
    were made (or are in flight), or when its worst case (the tokens used so far, its prompt at
    :data:`CHARS_PER_TOKEN`, and its full ``max_tokens``) would pass ``max_tokens``. A reply is
    counted with the usage the endpoint reported (estimated when it reports none). A replayed
    reply counts like the original did, so a resumed workflow stops where an uninterrupted one
    would; ``replayed_calls`` says how many cost nothing this time.
    """

    def __init__(self, max_calls: int = DEFAULT_MAX_CALLS,
                 max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        if max_calls < 0 or max_tokens < 0:
            raise ValueError("budget caps must be >= 0")
        self.max_calls = int(max_calls)
        self.max_tokens = int(max_tokens)
        self.calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.replayed_calls = 0
        self.refused = 0
        """Calls refused because of the caps."""
        self._lock = threading.Lock()
        self._pending_calls = 0
        self._pending_tokens = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __repr__(self) -> str:
        return (f"Budget(calls {self.calls}/{self.max_calls}, tokens "
                f"{self.tokens}/{self.max_tokens}, replayed {self.replayed_calls})")

    def spent(self, prompt_chars: int = 0, max_tokens: int = 0) -> str | None:
        """Why a call of ``prompt_chars`` characters asking up to ``max_tokens`` would be
        refused now, or None if it may go (calls in flight count with their worst case)."""
        calls = self.calls + self._pending_calls
        if calls >= self.max_calls:
            return (f"{calls} of {self.max_calls} calls made; raise the call cap "
                    "(--llm-max-calls)")
        cost = -(-prompt_chars // CHARS_PER_TOKEN) + max_tokens
        used = self.tokens + self._pending_tokens
        if used + cost > self.max_tokens:
            return (f"{used:,} of {self.max_tokens:,} tokens used and this call may take "
                    f"{cost:,}; raise the token cap (--llm-max-tokens)")
        return None

    def reserve(self, messages: Sequence[Message] = (), max_tokens: int = 0) -> int:
        """Hold room for one call with ``messages`` and ``max_tokens``, or raise
        :class:`BudgetSpent` (see :meth:`spent`). Returns the tokens held, to give to
        :meth:`charge` or :meth:`release` when the call ends."""
        chars = sum(len(m["content"]) for m in messages)
        with self._lock:
            why = self.spent(chars, max_tokens)
            if why is None:
                held = -(-chars // CHARS_PER_TOKEN) + max_tokens
                self._pending_calls += 1
                self._pending_tokens += held
                return held
            self.refused += 1
        raise BudgetSpent(f"the language-model budget is spent: {why}", kind="budget")

    def release(self, held: int) -> None:
        """Give back the room :meth:`reserve` held for a call that brought no reply."""
        with self._lock:
            self._pending_calls -= 1
            self._pending_tokens -= held

    def charge(self, reply: ChatReply, held: int | None = None) -> None:
        """Count ``reply``'s call and tokens (and free what :meth:`reserve` held for it)."""
        with self._lock:
            if held is not None:
                self._pending_calls -= 1
                self._pending_tokens -= held
            self.calls += 1
            self.prompt_tokens += reply.prompt_tokens
            self.completion_tokens += reply.completion_tokens
            self.replayed_calls += int(reply.replayed)

    def to_dict(self) -> dict[str, int]:
        """The caps and counts, as JSON-ready integers."""
        with self._lock:
            return {"max_calls": self.max_calls, "max_tokens": self.max_tokens,
                    "calls": self.calls, "prompt_tokens": self.prompt_tokens,
                    "completion_tokens": self.completion_tokens,
                    "replayed_calls": self.replayed_calls, "refused": self.refused}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Budget:
        """The budget :meth:`to_dict` gave (missing counts are 0)."""
        budget = cls(int(data.get("max_calls", DEFAULT_MAX_CALLS)),
                     int(data.get("max_tokens", DEFAULT_MAX_TOKENS)))
        for name in ("calls", "prompt_tokens", "completion_tokens", "replayed_calls",
                     "refused"):
            setattr(budget, name, int(data.get(name, 0)))
        return budget


class BudgetedChat:
    """``inner`` within ``budget``: checked before each call, charged after each reply. Put it
    outermost, above a :class:`~alphaloop.agents.llm.ReplayingChat` (see :func:`guard`)."""

    def __init__(self, inner: ChatModel, budget: Budget) -> None:
        self.inner = inner
        self.budget = budget
        self.spec = inner.spec

    def __repr__(self) -> str:
        return f"BudgetedChat({self.inner!r}, {self.budget!r})"

    def complete(self, messages: Sequence[Message], *, schema: dict[str, Any] | None = None,
                 max_tokens: int = 1024, seed: int | None = None) -> ChatReply:
        held = self.budget.reserve(messages, max_tokens)
        try:
            reply = self.inner.complete(messages, schema=schema, max_tokens=max_tokens,
                                        seed=seed)
        except BaseException:
            self.budget.release(held)
            raise
        self.budget.charge(reply, held)
        return reply
