"""Record/replay and the budget over the real SDKs and the scripted loopback server: a stored
exchange is answered without a request, failures are recorded but asked again, the budget
stops calls before a cap is passed, no key reaches the SQLite file, and ask_structured
repairs an invalid reply through the wire."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from _llm_server import (
    SECRET_ANTHROPIC,
    SECRET_OPENAI,
    LLMServer,
    anthropic_chat,
    error,
    openai_chat,
    openai_ok,
)
from alphaloop.agents.llm import (
    Budget,
    BudgetSpent,
    ChatReply,
    ExchangeStore,
    InvalidReply,
    LLMRejected,
    ReplayingChat,
    ask_structured,
    exchange_key,
    guard,
)
from alphaloop.errors import ConfigError

ASK = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Ping?"}]


class Ping(BaseModel):
    ok: bool


# every test runs with the keys and endpoints cleared (conftest: llm_env, server)
pytestmark = pytest.mark.usefixtures("llm_env")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ExchangeStore]:
    with ExchangeStore(tmp_path / "home" / "llm.db") as s:
        yield s


def test_a_stored_exchange_is_replayed_without_a_request(server: LLMServer,
                                                         store: ExchangeStore) -> None:
    model = ReplayingChat(openai_chat(server), store)
    first = model.complete(ASK, seed=1)
    again = model.complete(ASK, seed=1)
    assert len(server.requests) == 1
    assert (again.text, again.replayed, first.replayed) == (first.text, True, False)
    assert again.key == first.key == exchange_key("openai:scripted", ASK, None, 1)
    model.complete(ASK, seed=2)  # another seed, another question
    model.complete(ASK, schema=Ping.model_json_schema(), seed=1)  # another schema too
    assert len(server.requests) == 3
    [row] = [e for e in store.exchanges() if e.key == first.key]
    assert row.messages == ASK and row.reply is not None and row.reply.text == first.text
    assert row.reply.prompt_tokens == 20 and row.error is None and row.seed == 1


def test_a_reopened_store_replays_for_a_new_adapter(server: LLMServer, tmp_path: Path) -> None:
    path = tmp_path / "llm.db"
    with ExchangeStore(path) as store:
        ReplayingChat(anthropic_chat(server), store).complete(ASK)
    with ExchangeStore(path) as store:  # as after a crash and `resume`
        reply = ReplayingChat(anthropic_chat(server), store).complete(ASK)
        assert reply.replayed and len(server.requests) == 1


def test_failures_are_recorded_but_asked_again(server: LLMServer, store: ExchangeStore) -> None:
    model = ReplayingChat(openai_chat(server), store)
    server.push(error(403, "not for you"))
    with pytest.raises(LLMRejected):
        model.complete(ASK)
    assert model.complete(ASK).text == '{"ok": true}' and len(server.requests) == 2
    failed, succeeded = store.exchanges()
    assert failed.reply is None and failed.error is not None and "403" in failed.error
    assert succeeded.reply is not None and succeeded.key == failed.key


def test_no_key_reaches_the_record(server: LLMServer, tmp_path: Path) -> None:
    path = tmp_path / "llm.db"
    with ExchangeStore(path) as store:
        for make, secret in ((openai_chat, SECRET_OPENAI), (anthropic_chat, SECRET_ANTHROPIC)):
            model = ReplayingChat(make(server), store)
            server.push(error(401, f"Incorrect API key provided: {secret}",
                              anthropic=make is anthropic_chat))
            with pytest.raises(LLMRejected):
                model.complete(ASK)
            model.complete(ASK)
        assert len(store.exchanges()) == 4
        files = [p for p in tmp_path.iterdir() if p.name.startswith("llm.db")]
        assert len(files) >= 2  # the database and its WAL, read while open
        for secret in (SECRET_OPENAI, SECRET_ANTHROPIC):
            for f in files:
                data = f.read_bytes()
                assert secret.encode() not in data and secret[-12:].encode() not in data


def test_an_exchange_is_committed_when_recorded(tmp_path: Path) -> None:
    path = tmp_path / "llm.db"
    store = ExchangeStore(path)
    store.record("k", "openai:m", [{"role": "user", "content": "q"}], None, None, 9,
                 reply=ChatReply(text="kept"))
    with ExchangeStore(path) as other:  # another connection, the first still open
        found = other.find("k")
        assert found is not None and found.text == "kept" and found.replayed
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    store.close()


def test_a_file_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "llm.db"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ConfigError, match=r"llm\.db .*; (move it aside|restore)"):
        ExchangeStore(path)


# --------------------------------------------------------------------------- budget
def test_the_budget_stops_calls_before_a_cap_is_passed(server: LLMServer) -> None:
    budget = Budget(max_calls=10, max_tokens=1000)
    model = guard(openai_chat(server), budget=budget)
    server.push(*[openai_ok(prompt_tokens=300, completion_tokens=200)] * 3)
    model.complete(ASK, max_tokens=400)
    model.complete(ASK, max_tokens=400)
    with pytest.raises(BudgetSpent, match="1,000 of 1,000 tokens used"):
        model.complete(ASK, max_tokens=400)
    assert len(server.requests) == 2 and budget.tokens == 1000 and budget.calls == 2

    calls = Budget(max_calls=1)
    model = guard(openai_chat(server), budget=calls)
    model.complete(ASK)
    with pytest.raises(BudgetSpent, match="1 of 1 calls made"):
        model.complete([{"role": "user", "content": "another"}])
    assert len(server.requests) == 3


def test_a_replay_counts_like_the_original_but_costs_nothing(server: LLMServer,
                                                            store: ExchangeStore) -> None:
    first = Budget()
    guard(openai_chat(server), budget=first, store=store).complete(ASK)
    resumed = Budget()  # a resumed run whose state was saved before that call
    reply = guard(openai_chat(server), budget=resumed, store=store).complete(ASK)
    assert reply.replayed and len(server.requests) == 1
    assert resumed.to_dict() == {**first.to_dict(), "replayed_calls": 1}


def test_a_spent_budget_stops_the_repair_loop(server: LLMServer) -> None:
    budget = Budget(max_calls=2)
    server.push(openai_ok("no json"), openai_ok("still none"))
    with pytest.raises(BudgetSpent):
        ask_structured(guard(openai_chat(server), budget=budget), ASK, Ping)
    assert len(server.requests) == 2


# --------------------------------------------------------------------------- repair loop
def test_invalid_json_then_valid_through_the_wire(server: LLMServer,
                                                  store: ExchangeStore) -> None:
    server.push(openai_ok('Sure! {"ok": tru'), openai_ok('```json\n{"ok": true}\n```'))
    model = guard(openai_chat(server), store=store)
    assert ask_structured(model, ASK, Ping, store=store) == Ping(ok=True)
    assert len(server.requests) == 2
    repair = server.requests[1].body["messages"]
    assert repair[-2] == {"role": "assistant", "content": 'Sure! {"ok": tru'}
    assert "the reply is not valid JSON: Expecting" in repair[-1]["content"]
    invalid, valid = (e.outcome or "" for e in store.exchanges())
    assert invalid.startswith("invalid: the reply is not valid JSON") and valid == "valid"


def test_a_reply_that_never_validates_ends_in_invalid_reply(server: LLMServer) -> None:
    server.push(*[openai_ok('{"ok": "perhaps"}')] * 3)
    with pytest.raises(InvalidReply) as caught:
        ask_structured(openai_chat(server), ASK, Ping)
    assert len(server.requests) == 3
    assert "Input should be a valid boolean" in caught.value.feedback
    last = server.requests[2].body["messages"][-1]["content"]
    assert "1 validation error for Ping\nok\n  Input should be a valid boolean" in last


def test_a_cut_off_reply_is_asked_again(server: LLMServer) -> None:
    server.push(openai_ok('{"ok": tr', finish="length"), openai_ok('{"ok": false}'))
    assert ask_structured(openai_chat(server), ASK, Ping, max_tokens=8) == Ping(ok=False)
    assert "cut off at 8 tokens" in server.requests[1].body["messages"][-1]["content"]
