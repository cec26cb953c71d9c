"""Reading replies: JSON or a Python strategy out of whatever text surrounds it, validated
by a pydantic model; and :func:`ask_structured`, which asks again with the exact validation
error when a reply does not validate. Pure functions, but for ``ask_structured``."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from alphaloop.agents.llm._errors import InvalidReply
from alphaloop.agents.llm._schema import schema_instruction
from alphaloop.agents.llm._types import ChatModel, Message, check_messages

if TYPE_CHECKING:
    from alphaloop.agents.llm._replay import ExchangeStore

M = TypeVar("M", bound=BaseModel)

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:\n[ \t]*```|```)", re.DOTALL)


class ReplyInvalid(ValueError):
    """A reply that does not hold what was asked; ``feedback`` is the text to send back."""

    def __init__(self, feedback: str) -> None:
        super().__init__(feedback)
        self.feedback = feedback


def _blocks(text: str) -> list[tuple[str, str]]:
    """Every fenced block of ``text`` as ``(language, body)``, in order."""
    return [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text)]


def extract_json(text: str) -> Any:
    """The JSON value a reply holds: the whole text, else a fenced block (``json`` ones
    first), else the first ``{...}`` that parses, scanning from the left. Reasoning in
    ``<think>`` tags is skipped. Raises :class:`ReplyInvalid` saying what was wrong: no JSON
    at all, or the parser's error at the first ``{`` or ``[``."""
    text = _THINK.sub("", text).strip()
    if not text:
        raise ReplyInvalid("the reply was empty; reply with the JSON object")
    blocks = _blocks(text)
    fenced = [b for lang, b in blocks if lang == "json"] + [b for lang, b in blocks
                                                            if lang != "json"]
    for candidate in (text, *fenced):
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            pass
    decoder, error = json.JSONDecoder(), None
    for match in re.finditer(r"[{\[]", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError as exc:
            error = error or exc
            continue
        if isinstance(value, dict):
            return value
    if error is None:
        raise ReplyInvalid("the reply holds no JSON object; reply with the JSON object only")
    raise ReplyInvalid(f"the reply is not valid JSON: {error.msg} at line {error.lineno} "
                       f"column {error.colno}")


def validation_feedback(exc: ValidationError) -> str:
    """Pydantic's own error text for ``exc``, without its documentation links."""
    lines = str(exc).splitlines()
    return "\n".join(ln for ln in lines if not ln.strip().startswith("For further information"))


def parse_reply(text: str, model: type[M]) -> M:
    """``text``'s JSON validated as ``model``; :class:`ReplyInvalid` with the exact error."""
    value = extract_json(text)
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise ReplyInvalid(validation_feedback(exc)) from None


def extract_python(text: str) -> str | None:
    """The strategy source in a reply: the ```` ```python ```` block (or an untagged one)
    defining ``generate_positions``, else the first ```` ```python ```` block; None when
    there is none (an unclosed block, i.e. a cut-off reply, does not count)."""
    blocks = [(lang, body) for lang, body in _blocks(_THINK.sub("", text))
              if lang in ("python", "py", "python3", "")]
    for _, body in blocks:
        if re.search(r"^\s*def\s+generate_positions\s*\(", body, re.MULTILINE):
            return body.strip("\n") + "\n"
    tagged = [body for lang, body in blocks if lang]
    return tagged[0].strip("\n") + "\n" if tagged else None


def ask_structured(model: ChatModel, messages: Sequence[Message], reply_type: type[M], *,
                   retries: int = 2, max_tokens: int = 1024, seed: int | None = None,
                   store: ExchangeStore | None = None) -> M:
    """Ask ``model`` for a ``reply_type`` (its JSON schema sent along) and validate the reply.
    An invalid one is answered with the exact validation error, and the model asked again, at
    most ``retries`` times; then :class:`InvalidReply`. With ``store``, each recorded
    exchange gets its outcome (``valid`` / ``invalid: ...``). Errors of the call itself
    (:class:`LLMError`) propagate at once."""
    schema = reply_type.model_json_schema()
    conversation = check_messages(messages)
    feedback = ""
    for attempt in range(retries + 1):
        reply = model.complete(conversation, schema=schema, max_tokens=max_tokens, seed=seed)
        try:
            value = parse_reply(reply.text, reply_type)
        except ReplyInvalid as exc:
            feedback = exc.feedback
            if reply.finish_reason == "length":
                feedback = (f"the reply was cut off at {max_tokens} tokens; answer more "
                            f"briefly. {feedback}")
            if store is not None and reply.key:
                store.set_outcome(reply.key, f"invalid: {feedback}")
            if attempt == retries:
                break
            conversation = [*conversation,
                            {"role": "assistant", "content": reply.text or "(empty reply)"},
                            {"role": "user", "content": repair_request(feedback, schema)}]
            continue
        if store is not None and reply.key:
            store.set_outcome(reply.key, "valid")
        return value
    first = feedback.splitlines()[0] if feedback else "no reply"
    raise InvalidReply(f"{model.spec} gave no valid {reply_type.__name__} in {retries + 1} "
                       f"replies (last: {first}); the offline agent takes this step",
                       feedback=feedback, attempts=retries + 1)


def repair_request(feedback: str, schema: dict[str, Any]) -> str:
    """The message that asks again after an invalid reply."""
    return (f"Your reply was not valid:\n{feedback}\n\nAnswer again. "
            + schema_instruction(schema))
