"""JSON schemas as the endpoints want them, and the instruction that carries a schema in the
prompt when the endpoint cannot take it."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from alphaloop.agents.llm._types import Message


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` in the form strict structured output accepts: every object with
    ``properties`` closed (``additionalProperties: false``) and all its properties required,
    ``default`` values dropped. Validation of the reply still uses the original model, so
    a field with a default simply arrives filled in."""

    def walk(node: Any, names: bool = False) -> Any:
        if isinstance(node, list):
            return [walk(n) for n in node]
        if not isinstance(node, dict):
            return node
        if names:  # the keys of "properties" are field names, not keywords
            return {k: walk(v) for k, v in node.items()}
        out = {k: walk(v, names=k in ("properties", "$defs", "definitions"))
               for k, v in node.items() if k != "default"}
        if isinstance(out.get("properties"), dict):
            out["required"] = list(out["properties"])
            out.setdefault("additionalProperties", False)
        return out

    result = walk(copy.deepcopy(schema))
    return result if isinstance(result, dict) else {}


def schema_name(schema: dict[str, Any]) -> str:
    """A name for ``schema`` as OpenAI wants one (``[A-Za-z0-9_-]{1,64}``): its title or
    ``reply``."""
    title = str(schema.get("title") or "reply")
    return re.sub(r"[^A-Za-z0-9_-]", "_", title)[:64] or "reply"


def schema_instruction(schema: dict[str, Any]) -> str:
    """The sentence that asks for JSON following ``schema`` in the prompt."""
    return ("Reply with one JSON object, and nothing else, that follows this JSON schema:\n"
            + json.dumps(schema, separators=(",", ":"), sort_keys=True))


def with_instruction(messages: list[Message], schema: dict[str, Any]) -> list[Message]:
    """``messages`` with :func:`schema_instruction` appended to the system message (one is
    added first if there is none)."""
    text = schema_instruction(schema)
    if messages and messages[0]["role"] == "system":
        first: Message = {"role": "system", "content": f"{messages[0]['content']}\n\n{text}"}
        return [first, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]
