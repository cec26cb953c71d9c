"""Optional smoke test against a real provider: skipped unless ``OPENAI_API_KEY`` or
``ANTHROPIC_API_KEY`` is set (no network otherwise). One tiny ``llm check`` call each, and one
structured question; the model is ``$ALPHALOOP_LIVE_OPENAI_MODEL`` /
``$ALPHALOOP_LIVE_ANTHROPIC_MODEL`` if set. ``OPENAI_BASE_URL`` / ``ANTHROPIC_BASE_URL`` are
honoured, so this can also smoke-test a local server."""

from __future__ import annotations

import os

import pytest
from pydantic import BaseModel

from alphaloop.agents.llm import Budget, ask_structured, check, guard, parse_spec

LIVE = [
    pytest.param("openai", os.environ.get("ALPHALOOP_LIVE_OPENAI_MODEL", "gpt-4o-mini"),
                 marks=pytest.mark.skipif(not os.environ.get("OPENAI_API_KEY"),
                                          reason="OPENAI_API_KEY is not set")),
    pytest.param("anthropic",
                 os.environ.get("ALPHALOOP_LIVE_ANTHROPIC_MODEL", "claude-haiku-4-5"),
                 marks=pytest.mark.skipif(not os.environ.get("ANTHROPIC_API_KEY"),
                                          reason="ANTHROPIC_API_KEY is not set")),
]


class Sum(BaseModel):
    total: int


@pytest.mark.parametrize(("provider", "model"), LIVE)
def test_a_real_provider_answers(provider: str, model: str) -> None:
    spec = f"{provider}:{model}"
    result = check(spec, timeout=60)
    assert result.latency_s > 0 and result.completion_tokens > 0
    budget = Budget(max_calls=3, max_tokens=5_000)
    chat = guard(parse_spec(spec, timeout=60), budget=budget)
    answer = ask_structured(chat, [{"role": "user", "content": "What is 2 + 3?"}], Sum,
                            max_tokens=300)
    assert answer.total == 5 and 1 <= budget.calls <= 3
