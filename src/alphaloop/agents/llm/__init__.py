"""alphaloop.agents.llm: language models behind one small protocol.

:class:`ChatModel` (messages in, :class:`ChatReply` out) has two thin adapters over the
official SDKs, :class:`OpenAIChat` (OpenAI and every OpenAI-compatible server: Ollama, vLLM,
llama.cpp, LM Studio) and :class:`AnthropicChat`; :func:`parse_spec` makes one from
``PROVIDER:MODEL``. Above them, written once: retries (:class:`RetryPolicy`), the way JSON is
asked for and its fallbacks, tolerant reply parsing and repair (:func:`ask_structured`), the
:class:`Budget` and record/replay (:class:`ExchangeStore`, :class:`ReplayingChat`; stack
them with :func:`guard`). Any call may raise :class:`LLMError`: fall back to the offline
agent. Importing this package does not import the SDKs (``pip install 'alphaloop[llm]'``).
See ``docs/llm.md``.
"""

from alphaloop.agents.llm._adapter import DEFAULT_TIMEOUT, Adapter
from alphaloop.agents.llm._anthropic import AnthropicChat
from alphaloop.agents.llm._budget import DEFAULT_MAX_CALLS, DEFAULT_MAX_TOKENS, Budget, BudgetedChat
from alphaloop.agents.llm._check import CheckResult, check
from alphaloop.agents.llm._errors import (
    BudgetSpent,
    InvalidReply,
    LLMError,
    LLMRejected,
    LLMUnavailable,
    redact,
)
from alphaloop.agents.llm._openai import OLLAMA_URL, OpenAIChat
from alphaloop.agents.llm._parse import (
    ReplyInvalid,
    ask_structured,
    extract_json,
    extract_python,
    parse_reply,
)
from alphaloop.agents.llm._replay import (
    Exchange,
    ExchangeStore,
    ReplayingChat,
    exchange_key,
    guard,
)
from alphaloop.agents.llm._retry import RetryPolicy
from alphaloop.agents.llm._spec import PROVIDERS, parse_spec, split_spec
from alphaloop.agents.llm._types import ChatModel, ChatReply, Message, Mode

__all__ = [
    "DEFAULT_MAX_CALLS",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_TIMEOUT",
    "OLLAMA_URL",
    "PROVIDERS",
    "Adapter",
    "AnthropicChat",
    "Budget",
    "BudgetSpent",
    "BudgetedChat",
    "ChatModel",
    "ChatReply",
    "CheckResult",
    "Exchange",
    "ExchangeStore",
    "InvalidReply",
    "LLMError",
    "LLMRejected",
    "LLMUnavailable",
    "Message",
    "Mode",
    "OpenAIChat",
    "ReplayingChat",
    "ReplyInvalid",
    "RetryPolicy",
    "ask_structured",
    "check",
    "exchange_key",
    "extract_json",
    "extract_python",
    "guard",
    "parse_reply",
    "parse_spec",
    "redact",
    "split_spec",
]

# The roles (issue 9) and what they share, imported on first use: the roles bring in the
# offline developer (Optuna), which a provider check does not need.
_LAZY = {
    **dict.fromkeys(("BugFixer", "Candidate", "LLMFailureAnalyst", "LLMResearcher",
                     "LLMTrajectoryAnalyzer", "OfflineHypothesizer", "RoleOutcome",
                     "StrategyWriter", "WriterContext"), "alphaloop.agents.llm.roles"),
    **dict.fromkeys(("Blind", "HonestyError", "audit_request", "forbidden_terms"),
                    "alphaloop.agents.llm.prompts"),
    **dict.fromkeys(("GateVerdict", "check_static", "normalized_hash", "send_back",
                     "task_verdict"), "alphaloop.agents.llm.codegate"),
}
__all__ += sorted(_LAZY)


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
