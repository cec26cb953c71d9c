"""Reading replies (JSON and strategy code out of any text around them), the validation
feedback, strict schemas, the retry policy's arithmetic, key redaction and the budget's
bookkeeping: pure functions, no server."""

from __future__ import annotations

import email.utils
from collections.abc import Sequence
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from alphaloop.agents.llm import (
    Budget,
    BudgetedChat,
    BudgetSpent,
    ChatReply,
    InvalidReply,
    Message,
    ReplyInvalid,
    RetryPolicy,
    ask_structured,
    extract_json,
    extract_python,
    parse_reply,
    redact,
)
from alphaloop.agents.llm._retry import retry_after_seconds
from alphaloop.agents.llm._schema import strict_schema


class Verdict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: str
    confidence: float
    notes: list[str] = []


@pytest.mark.parametrize("text", [
    '{"action": "TUNE", "confidence": 0.5}',
    'Sure! Here it is:\n```json\n{"action": "TUNE", "confidence": 0.5}\n```\nAnything else?',
    '```\n{"action": "TUNE", "confidence": 0.5}\n```',
    'The answer is {"action": "TUNE", "confidence": 0.5} as requested.',
    '<think>maybe {"action": "X"}... no</think>\n{"action": "TUNE", "confidence": 0.5}',
    'Note [1]: see below.\n{"action": "TUNE", "confidence": 0.5}',
])
def test_json_is_found_in_any_wrapping(text: str) -> None:
    assert extract_json(text) == {"action": "TUNE", "confidence": 0.5}


@pytest.mark.parametrize(("text", "says"), [
    ("", "the reply was empty"),
    ("I cannot help with that.", "holds no JSON object"),
    ('Here: {"action": "TUNE", "confidence": }', "not valid JSON: Expecting value at line 1"),
])
def test_no_json_says_why(text: str, says: str) -> None:
    with pytest.raises(ReplyInvalid, match=says):
        extract_json(text)


def test_validation_feedback_is_pydantics_exact_text_without_links() -> None:
    with pytest.raises(ReplyInvalid) as caught:
        parse_reply('{"action": "TUNE", "confidence": "high", "extra": 1}', Verdict)
    feedback = caught.value.feedback
    assert feedback.startswith("2 validation errors for Verdict\nconfidence\n")
    assert "Input should be a valid number" in feedback and "Extra inputs" in feedback
    assert "errors.pydantic.dev" not in feedback
    assert parse_reply('{"action": "A", "confidence": 1}', Verdict).notes == []


STRATEGY = '''import pandas as pd

PARAMETERS = {"n": {"default": 5, "low": 2, "high": 50}}


def generate_positions(data, n=5):
    return (data["close"].diff(n) > 0).astype(float)
'''


@pytest.mark.parametrize("reply", [
    f"Here is the strategy:\n```python\n{STRATEGY}```\nIt buys momentum.",
    f"```py\nprint('a helper')\n```\nand the strategy:\n```python\n{STRATEGY}\n```",
    f"<think>```python\nimport os\n```</think>```\n{STRATEGY}```",
    f"```Python3 title=strategy.py\n{STRATEGY}```",
])
def test_the_strategy_block_is_found_anywhere(reply: str) -> None:
    assert extract_python(reply) == STRATEGY


def test_no_or_unclosed_python_block_gives_none() -> None:
    assert extract_python("def generate_positions(data): ...") is None
    assert extract_python("```json\n{}\n```") is None
    assert extract_python(f"```python\n{STRATEGY[:60]}") is None  # cut off


def test_strict_schema_closes_objects_and_requires_every_field() -> None:
    schema = Verdict.model_json_schema()
    schema["properties"]["default"] = {"type": "string", "default": "x"}
    strict = strict_schema(schema)
    assert strict["additionalProperties"] is False
    assert strict["required"] == ["action", "confidence", "notes", "default"]
    assert "default" not in strict["properties"]["notes"]
    assert "default" in strict["properties"] and "default" in schema["properties"]["notes"]


# --------------------------------------------------------------------------- retry policy
def test_backoff_doubles_with_jitter_and_retry_after_wins() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=3.0, jitter=0.5)
    for retry, top in [(0, 1.0), (1, 2.0), (2, 3.0), (9, 3.0)]:
        waits = [policy.delay(retry) for _ in range(50)]
        assert all(w is not None and top / 2 <= w <= top for w in waits)
    assert policy.delay(0, retry_after=7.5) == 7.5
    assert RetryPolicy(max_retry_after=60).delay(0, retry_after=61) is None


def test_bad_policies_are_refused() -> None:
    for bad in ({"retries": -1}, {"retries": 11}, {"base_delay": -1}, {"jitter": 2}):
        with pytest.raises(ValueError):
            RetryPolicy(**bad)


def test_retry_after_headers() -> None:
    assert retry_after_seconds({"retry-after": "3"}) == 3
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert retry_after_seconds({"retry-after": date}, now=lambda: 1_000_000) == 30
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_redact_removes_keys_and_key_shaped_text() -> None:
    secret = "my-very-secret-value"
    text = f"bad key {secret}; also sk-proj-abcdefghijkl1234 and sk-ant-api03-XYZXYZXYZXYZ"
    clean = redact(text, [secret, None, "short"])
    assert secret not in clean and "abcdefghijkl" not in clean and "XYZXYZ" not in clean
    assert clean.startswith("bad key ***; also sk-proj-***")
    assert redact("ollama at http://127.0.0.1", ["ollama"]) == "ollama at http://127.0.0.1"


# --------------------------------------------------------------------------- fake model
class Scripted:
    """A fake ChatModel answering from a list (for the parsing loop, without HTTP)."""

    spec = "fake:scripted"

    def __init__(self, *texts: str, finish: str = "stop", tokens: int = 10) -> None:
        self.texts, self.finish, self.tokens = list(texts), finish, tokens
        self.seen: list[list[Message]] = []

    def complete(self, messages: Sequence[Message], *, schema: dict[str, Any] | None = None,
                 max_tokens: int = 1024, seed: int | None = None) -> ChatReply:
        self.seen.append(list(messages))
        return ChatReply(text=self.texts.pop(0), finish_reason=self.finish,
                         prompt_tokens=self.tokens, completion_tokens=self.tokens,
                         spec=self.spec)


ASK: list[Message] = [{"role": "user", "content": "Verdict?"}]


def test_ask_structured_sends_the_exact_error_back() -> None:
    model = Scripted('{"action": "TUNE", "confidence": "high"}',
                     '{"action": "TUNE", "confidence": 0.7}')
    assert ask_structured(model, ASK, Verdict) == Verdict(action="TUNE", confidence=0.7)
    assert len(model.seen) == 2
    again = model.seen[1]
    assert again[1] == {"role": "assistant",
                        "content": '{"action": "TUNE", "confidence": "high"}'}
    assert "1 validation error for Verdict\nconfidence\n  Input should be a valid number" in \
        again[2]["content"] and '"confidence"' in again[2]["content"]


def test_ask_structured_gives_up_after_two_repairs() -> None:
    model = Scripted("no", "still no", "nope", "never asked")
    with pytest.raises(InvalidReply) as caught:
        ask_structured(model, ASK, Verdict)
    assert len(model.seen) == 3 and caught.value.attempts == 3
    assert "fake:scripted gave no valid Verdict in 3 replies" in str(caught.value)
    assert "holds no JSON object" in caught.value.feedback


def test_a_cut_off_reply_is_told_so() -> None:
    model = Scripted('{"action": "TU', finish="length")
    with pytest.raises(InvalidReply, match="cut off at 30 tokens"):
        ask_structured(model, ASK, Verdict, retries=0, max_tokens=30)


# --------------------------------------------------------------------------- budget
def test_budget_refuses_the_call_that_would_pass_a_cap() -> None:
    budget = Budget(max_calls=3, max_tokens=100)
    model = BudgetedChat(Scripted("a", "b", "c", "d", tokens=20), budget)
    model.complete(ASK, max_tokens=50)  # worst case 3 + 50 <= 100: sent, uses 40
    with pytest.raises(BudgetSpent, match="40 of 100 tokens used and this call may take 63"):
        model.complete(ASK, max_tokens=60)  # 40 + 3 + 60 > 100: refused, nothing sent
    model.complete(ASK, max_tokens=10)
    assert (budget.calls, budget.tokens, budget.refused) == (2, 80, 1)
    budget.max_tokens = 10_000
    model.complete(ASK, max_tokens=10)
    with pytest.raises(BudgetSpent, match="3 of 3 calls made; raise the call cap"):
        model.complete(ASK, max_tokens=10)
    assert len(model.inner.seen) == 3


def test_budget_round_trips_through_a_dict() -> None:
    budget = Budget(max_calls=5, max_tokens=1000)
    budget.charge(ChatReply(text="x", prompt_tokens=7, completion_tokens=3))
    budget.charge(ChatReply(text="x", prompt_tokens=1, completion_tokens=1, replayed=True))
    data = budget.to_dict()
    assert data == {"max_calls": 5, "max_tokens": 1000, "calls": 2, "prompt_tokens": 8,
                    "completion_tokens": 4, "replayed_calls": 1, "refused": 0}
    assert Budget.from_dict(data).to_dict() == data
    assert Budget.from_dict({}).to_dict()["max_calls"] == 100


def test_a_failed_call_gives_its_room_back() -> None:
    class Broken(Scripted):
        def complete(self, *args: Any, **kwargs: Any) -> ChatReply:
            raise RuntimeError("down")

    budget = Budget(max_calls=1, max_tokens=100)
    with pytest.raises(RuntimeError):
        BudgetedChat(Broken(), budget).complete(ASK, max_tokens=90)
    assert budget.spent(3, 90) is None and budget.calls == 0
