"""What every role shares: the outcome it reports for each step, and the two ways it asks a
model (a JSON reply validated by a pydantic model, or a strategy in a ```python block), each
re-asked with the exact error at most twice, every request sealed by the `Blind`."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from alphaloop.agents.llm._errors import InvalidReply, LLMError
from alphaloop.agents.llm._parse import ReplyInvalid, extract_python, parse_reply, repair_request
from alphaloop.agents.llm._replay import ExchangeStore
from alphaloop.agents.llm._types import ChatModel, Message
from alphaloop.agents.llm.prompts import CODE_REPLY, Blind, HonestyError

__all__ = ["FALLBACK_ERRORS", "ReplyInvalid", "Role", "RoleName", "RoleOutcome", "Tally"]

M = TypeVar("M", bound=BaseModel)

FALLBACK_ERRORS: tuple[type[BaseException], ...] = (LLMError, HonestyError)
"""What sends a step to the offline agent: any model failure, and a prompt that would leak
(never expected: `Blind.seal` scrubs before it audits)."""

RoleName = Literal["researcher", "writer", "fixer", "failure_analyst", "trajectory_analyst"]

_GENERATE = re.compile(r"^\s*def\s+generate_positions\s*\(", re.MULTILINE)
_LINE_FENCE = re.compile(r"^[ \t]*```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)^[ \t]*```",
                         re.MULTILINE | re.DOTALL)


def python_block(text: str) -> str | None:
    """The strategy in a reply: `extract_python`'s answer when it defines
    ``generate_positions``, else a fenced block whose fences start their lines (so a stray
    ```` ``` ```` inside a sentence does not pair with the real one); None if neither."""
    code = extract_python(text)
    if code is not None and _GENERATE.search(code):
        return code
    for body in _LINE_FENCE.findall(text):
        if _GENERATE.search(body):
            return body.strip("\n") + "\n"
    return code


class RoleOutcome(BaseModel):
    """How one step of a role went: who answered (``model``; ``offline``, the fallback agent;
    ``rule``, when the answer was fixed by a limit and no call was worth making), and when the
    offline agent took over although the model was asked (``fallback``), why: ``kind`` (the
    `LLMError` kind: ``budget``, ``invalid_reply``, ``timeout``, ...; or ``gate``, ``no_code``,
    ``honesty``) and ``reason`` (one line). ``rejected`` lists the gates' verdicts on the way."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: RoleName
    source: Literal["model", "offline", "rule"]
    fallback: bool = False
    kind: str = ""
    reason: str = ""
    calls: int = 0
    """Replies the model gave in this step (re-asks included)."""
    replayed: int = 0
    """Of those, replies given back by the record store."""
    rejected: list[str] = Field(default_factory=list)

    def lesson(self) -> str | None:
        """The lesson for the workflow's state when the offline agent took the step."""
        if not self.fallback:
            return None
        return (f"language model, {self.role.replace('_', ' ')}: the offline agent took this "
                f"step ({self.kind}: {self.reason})")


@dataclass
class Tally:
    """Replies counted over one step, re-asks and send-backs included."""

    calls: int = 0
    replayed: int = 0
    keys: list[str] = field(default_factory=list)


class Role:
    """A role's common part: the guarded model (budget and replay already applied, see
    `alphaloop.agents.llm.guard`), the `Blind` every request is sealed with, the record store
    that keeps each exchange's outcome, the seed, and the outcomes of its steps
    (`take_outcomes`)."""

    role: ClassVar[RoleName]

    def __init__(self, model: ChatModel, *, blind: Blind | None = None,
                 store: ExchangeStore | None = None, seed: int | None = None,
                 retries: int = 2) -> None:
        if not 0 <= retries <= 5:
            raise ValueError(f"retries must be in 0..5, got {retries}")
        self.model = model
        self.blind = blind or Blind()
        self.store = store
        self.seed = seed
        self.retries = retries
        self.outcomes: list[RoleOutcome] = []

    def take_outcomes(self) -> list[RoleOutcome]:
        """The outcomes of the steps since the last call, oldest first (then forgotten)."""
        out = list(self.outcomes)
        self.outcomes.clear()  # in place: a writer and its fixer share one list
        return out

    def _note(self, source: Literal["model", "offline", "rule"], tally: Tally | None = None, *,
              error: BaseException | None = None, kind: str = "", reason: str = "",
              rejected: Sequence[str] = ()) -> RoleOutcome:
        if error is not None:
            kind = kind or getattr(error, "kind", "") or type(error).__name__
            reason = reason or " ".join(str(error).split())
        outcome = RoleOutcome(role=self.role, source=source,
                              fallback=source == "offline" and bool(kind),
                              kind=kind, reason=reason, calls=tally.calls if tally else 0,
                              replayed=tally.replayed if tally else 0, rejected=list(rejected))
        self.outcomes.append(outcome)
        return outcome

    def _mark(self, key: str | None, outcome: str) -> None:
        if self.store is not None and key:
            self.store.set_outcome(key, outcome)

    # -- asking ------------------------------------------------------------------------------
    def ask_json(self, messages: Sequence[Message], reply_type: type[M], tally: Tally, *,
                 check: Callable[[M], None] | None = None, max_tokens: int = 1024) -> M:
        """A ``reply_type`` from the model (its JSON schema sent along), validated, then checked
        by ``check`` (which raises `ReplyInvalid` with the feedback). An invalid reply is
        answered with the exact error and asked again, at most ``retries`` times; then
        `InvalidReply`. `LLMError` of a call propagates."""
        schema = reply_type.model_json_schema()
        conversation = list(messages)
        feedback = ""
        for attempt in range(self.retries + 1):
            reply = self.model.complete(conversation, schema=schema, max_tokens=max_tokens,
                                        seed=self.seed)
            tally.calls += 1
            tally.replayed += int(reply.replayed)
            try:
                value = parse_reply(reply.text, reply_type)
                if check is not None:
                    check(value)
            except ReplyInvalid as exc:
                feedback = exc.feedback
                if reply.finish_reason == "length":
                    feedback = (f"the reply was cut off at {max_tokens} tokens; answer more "
                                f"briefly. {feedback}")
                self._mark(reply.key, f"invalid: {feedback}")
                if attempt == self.retries:
                    break
                conversation = self.blind.seal([
                    *conversation,
                    {"role": "assistant", "content": reply.text or "(empty reply)"},
                    {"role": "user", "content": repair_request(feedback, schema)}])
                continue
            self._mark(reply.key, "valid")
            return value
        first = feedback.splitlines()[0] if feedback else "no reply"
        raise InvalidReply(f"{self.model.spec} gave no valid {reply_type.__name__} in "
                           f"{self.retries + 1} replies (last: {first})", feedback=feedback,
                           attempts=self.retries + 1)

    def ask_code(self, messages: Sequence[Message], tally: Tally, *,
                 max_tokens: int = 3000) -> tuple[str, str | None]:
        """Strategy source from the model: accepted whenever the reply holds it in a
        ```python block defining ``generate_positions``, whatever else the reply holds.
        Otherwise asked again with what was missing, at most ``retries`` times; then
        `InvalidReply`. Returns the code and the exchange's record key (for the gates'
        verdict)."""
        conversation = list(messages)
        feedback = ""
        for attempt in range(self.retries + 1):
            reply = self.model.complete(conversation, max_tokens=max_tokens, seed=self.seed)
            tally.calls += 1
            tally.replayed += int(reply.replayed)
            if reply.key:
                tally.keys.append(reply.key)
            code = python_block(reply.text)
            if code is not None and _GENERATE.search(code):
                return code, reply.key
            if reply.finish_reason == "length":
                feedback = (f"the reply was cut off at {max_tokens} tokens before its ```python "
                            "block closed; write a shorter strategy")
            elif code is None:
                feedback = "the reply holds no ```python block"
            else:
                feedback = "the ```python block defines no generate_positions(data, ...)"
            self._mark(reply.key, f"invalid: {feedback}")
            if attempt == self.retries:
                break
            conversation = self.blind.seal([
                *conversation,
                {"role": "assistant", "content": reply.text or "(empty reply)"},
                {"role": "user", "content": f"Your reply was not usable: {feedback}. "
                                            f"{CODE_REPLY}"}])
        raise InvalidReply(f"{self.model.spec} gave no strategy in {self.retries + 1} replies "
                           f"(last: {feedback})", feedback=feedback, attempts=self.retries + 1)

