"""Record and replay: every exchange with a model kept in SQLite, and a stored reply given
back instead of asking again.

An exchange's key is the SHA-256 of its model spec, messages, schema and seed, so the same
question of the same model is answered from the store. Failed calls are recorded too (for
reading) but never replayed. One transaction per exchange, WAL journal, ``synchronous=FULL``:
a crash loses at most the exchange in flight. Nothing but the exchange is written: no key,
no address, no header.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from alphaloop._sqlite import opening, problem
from alphaloop.agents.llm._budget import Budget, BudgetedChat
from alphaloop.agents.llm._errors import LLMError
from alphaloop.agents.llm._types import (
    STRUCTURED_MODES,
    ChatModel,
    ChatReply,
    Message,
    check_messages,
)
from alphaloop.errors import ConfigError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS exchanges (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    spec TEXT NOT NULL,
    created REAL NOT NULL,
    messages TEXT NOT NULL,
    schema TEXT,
    seed INTEGER,
    max_tokens INTEGER NOT NULL,
    text TEXT,
    finish_reason TEXT,
    mode TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    usage_reported INTEGER,
    latency_s REAL,
    error TEXT,
    outcome TEXT,
    step TEXT
);
CREATE INDEX IF NOT EXISTS exchanges_key ON exchanges (key);
PRAGMA user_version = 1;
"""


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def exchange_key(spec: str, messages: Sequence[Message], schema: dict[str, Any] | None,
                 seed: int | None) -> str:
    """The SHA-256 (hex) of the model spec, the messages, the schema and the seed."""
    payload = {"spec": spec, "messages": [[m["role"], m["content"]] for m in messages],
               "schema": schema, "seed": seed}
    return hashlib.sha256(_canonical(payload).encode()).hexdigest()


class Exchange(BaseModel):
    """One recorded exchange, as read back (frozen)."""

    model_config = ConfigDict(frozen=True)

    id: int
    key: str
    spec: str
    created: float
    messages: list[dict[str, str]]
    reply_schema: dict[str, Any] | None = None
    seed: int | None
    max_tokens: int
    reply: ChatReply | None
    """None when the call failed (see ``error``)."""
    error: str | None
    outcome: str | None
    """What the caller made of the reply (``valid``, ``invalid: ...``, a gate's verdict)."""
    step: str | None = None
    """The caller's step when it was recorded (`ExchangeStore.step`), e.g. a workflow phase."""


class ExchangeStore:
    """The exchanges of one workflow, in the SQLite file ``path`` (created if missing).
    Thread-safe. A file that is not a store is a one-line :class:`ConfigError`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                     timeout=30)
        with opening(self._conn, self.path, "language-model record"):
            found = problem(self._conn, ["exchanges"])
            if found not in (None, "empty"):
                raise ConfigError(f"language-model record {self.path} is {found}; move it "
                                  "aside or give another file")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.executescript(_SCHEMA)
            columns = {r[1] for r in self._conn.execute("PRAGMA table_info(exchanges)")}
            if "step" not in columns:  # a store written before exchanges had a step
                self._conn.execute("ALTER TABLE exchanges ADD COLUMN step TEXT")
        self.step: str | None = None
        """Written with every exchange recorded from now on (the workflow's phase), so a
        conversation can be read step by step; not part of the key."""

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ExchangeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def find(self, key: str) -> ChatReply | None:
        """The first successful reply recorded under ``key``, marked replayed; else None."""
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_REPLY} FROM exchanges WHERE key = ? AND error IS NULL "
                "ORDER BY id LIMIT 1", (key,)).fetchone()
        return None if row is None else _reply(row, replayed=True)

    def record(self, key: str, spec: str, messages: Sequence[Message],
               schema: dict[str, Any] | None, seed: int | None, max_tokens: int,
               reply: ChatReply | None = None, error: str | None = None) -> None:
        """Write one exchange (a reply, or the error that ended the call) in a transaction."""
        r = reply
        row = (key, spec, time.time(), _canonical(list(messages)),
               None if schema is None else _canonical(schema), seed, max_tokens,
               r and r.text, r and r.finish_reason, r and r.mode, r and r.prompt_tokens,
               r and r.completion_tokens, None if r is None else int(r.usage_reported),
               r and r.latency_s, error, self.step)
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "INSERT INTO exchanges (key, spec, created, messages, schema, seed, "
                    "max_tokens, text, finish_reason, mode, prompt_tokens, completion_tokens, "
                    "usage_reported, latency_s, error, step) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def set_outcome(self, key: str, outcome: str) -> None:
        """Note what became of the latest reply recorded under ``key``."""
        with self._lock:
            self._conn.execute(
                "UPDATE exchanges SET outcome = ? WHERE id = (SELECT max(id) FROM exchanges "
                "WHERE key = ? AND error IS NULL)", (outcome, key))

    def exchanges(self) -> list[Exchange]:
        """Every exchange, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT id, created, messages, schema, seed, max_tokens, error, outcome, step, "
                f"{_REPLY} FROM exchanges ORDER BY id").fetchall()
        return [Exchange(id=r[0], key=r[9], spec=r[10], created=r[1],
                         messages=json.loads(r[2]),
                         reply_schema=None if r[3] is None else json.loads(r[3]), seed=r[4],
                         max_tokens=r[5], error=r[6], outcome=r[7], step=r[8],
                         reply=None if r[6] is not None else _reply(r[9:], replayed=False))
                for r in rows]


_REPLY = ("key, spec, text, finish_reason, mode, prompt_tokens, completion_tokens, "
          "usage_reported, latency_s")


def _reply(row: Sequence[Any], *, replayed: bool) -> ChatReply:
    key, spec, text, finish, mode, prompt, completion, reported, latency = row
    return ChatReply(text=text, finish_reason=finish, mode=mode, prompt_tokens=prompt,
                     completion_tokens=completion, usage_reported=bool(reported),
                     latency_s=latency, structured=mode in STRUCTURED_MODES, spec=spec,
                     replayed=replayed, key=key)


class ReplayingChat:
    """``inner`` with a memory: a question asked before (same key) gets its recorded reply
    without a request; any other is asked, recorded and answered. Failed calls are recorded
    with their (key-free) error and raised."""

    def __init__(self, inner: ChatModel, store: ExchangeStore) -> None:
        self.inner = inner
        self.store = store
        self.spec = inner.spec

    def __repr__(self) -> str:
        return f"ReplayingChat({self.inner!r}, {str(self.store.path)!r})"

    def complete(self, messages: Sequence[Message], *, schema: dict[str, Any] | None = None,
                 max_tokens: int = 1024, seed: int | None = None) -> ChatReply:
        msgs = check_messages(messages)
        key = exchange_key(self.spec, msgs, schema, seed)
        stored = self.store.find(key)
        if stored is not None:
            return stored
        try:
            reply = self.inner.complete(msgs, schema=schema, max_tokens=max_tokens, seed=seed)
        except LLMError as exc:
            self.store.record(key, self.spec, msgs, schema, seed, max_tokens,
                              error=f"{type(exc).__name__}: {exc}")
            raise
        reply = reply.model_copy(update={"key": key})
        self.store.record(key, self.spec, msgs, schema, seed, max_tokens, reply=reply)
        return reply


def guard(model: ChatModel, *, budget: Budget | None = None,
          store: ExchangeStore | None = None) -> ChatModel:
    """``model`` wrapped in the right order: the budget outermost (a replayed reply counts
    as its original did), then record/replay."""
    if store is not None:
        model = ReplayingChat(model, store)
    if budget is not None:
        model = BudgetedChat(model, budget)
    return model
