"""The queue file's tables, and the upgrade of files written by earlier versions.

Layout (``PRAGMA user_version = 2``):

* ``tasks``: one small row per task with everything that changes (state, attempt, retries,
  owner, times, last error). Claims and outcomes rewrite only these rows.
* ``payloads``: the task's JSON (strategy source included, a few KB), written once at enqueue
  and only read afterwards.
* ``results``: the result's JSON, written once, when the task completes.
* ``attempts``: one row per attempt (outcome, times, worker, error, traceback).

Keeping the large, write-once texts out of ``tasks`` is what makes a claim or a completion
cheap: version 1 kept them inline, so every state change rewrote ~3 KB rows and split pages
(SQLite work per claimed and completed task 16 µs, against 11 µs now, measured in isolation).

Indexes are partial where the queue asks one question: ``ix_tasks_ready`` holds QUEUED
tasks in claim order, ``ix_tasks_running`` the IN_PROGRESS ones (crash recovery, emptiness).
A partial index is used only when a query's WHERE visibly implies the index's, so queries
that need one spell the state as a literal and pin the index with ``INDEXED BY``.
"""

from __future__ import annotations

import sqlite3

from alphaloop.errors import ConfigError
from alphaloop.execution._task import TaskState

VERSION = 2

_Q, _P, _C, _F = (s.value for s in TaskState)

_TABLES = f"""
CREATE TABLE IF NOT EXISTS tasks (
    seq          INTEGER PRIMARY KEY,
    task_id      TEXT    NOT NULL UNIQUE,
    priority     INTEGER NOT NULL,
    state        TEXT    NOT NULL,
    attempt      INTEGER NOT NULL DEFAULT 0,
    retry_count  INTEGER NOT NULL DEFAULT 0,
    max_retries  INTEGER NOT NULL,
    not_before   REAL    NOT NULL DEFAULT 0,
    owner        TEXT,
    error        TEXT,
    enqueued_at  REAL    NOT NULL,
    updated_at   REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_tasks_ready ON tasks(priority DESC, seq) WHERE state = '{_Q}';
CREATE INDEX IF NOT EXISTS ix_tasks_running ON tasks(seq) WHERE state = '{_P}';
CREATE TABLE IF NOT EXISTS payloads (
    seq          INTEGER PRIMARY KEY,
    payload      TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    seq          INTEGER PRIMARY KEY,
    result       TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS attempts (
    task_id      TEXT    NOT NULL,
    number       INTEGER NOT NULL,
    outcome      TEXT    NOT NULL,
    started_at   REAL    NOT NULL,
    finished_at  REAL,
    worker_pid   INTEGER,
    error        TEXT,
    traceback    TEXT,
    PRIMARY KEY (task_id, number)
) WITHOUT ROWID
"""

_TASK_COLUMNS = (
    "seq, task_id, priority, state, attempt, retry_count, max_retries, not_before, owner,"
    " error, enqueued_at, updated_at"
)

READY_SEQS = (
    f"SELECT seq FROM tasks INDEXED BY ix_tasks_ready WHERE state = '{_Q}' AND not_before <= ?"
    " ORDER BY priority DESC, seq LIMIT ?"
)
"""The next ready tasks in claim order (params: now, limit), read straight off
``ix_tasks_ready``; without the literal state and ``INDEXED BY`` the planner sorts every
queued row on each claim (O(queue length) per claim)."""

RUNNING = f"FROM tasks INDEXED BY ix_tasks_running WHERE state = '{_P}'"
"""FROM clause of the IN_PROGRESS tasks, through ``ix_tasks_running``."""


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def prepare(conn: sqlite3.Connection, path: object) -> None:
    """Create the tables, or upgrade a version-1 file, inside the caller's transaction.

    Raises:
        ConfigError: the file was written by a newer alphaloop (its layout is unknown here).
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > VERSION:
        raise ConfigError(
            f"queue {path} has layout version {version}, newer than this alphaloop "
            f"understands ({VERSION}); upgrade alphaloop or use another --home"
        )
    cols = {r[1] for r in conn.execute("PRAGMA table_info(tasks)")}
    if "payload" in cols:  # version 1: payload and result inline in tasks
        conn.execute("ALTER TABLE tasks RENAME TO tasks_v1")
        conn.execute("DROP INDEX IF EXISTS ix_tasks_ready")
        conn.execute("DROP INDEX IF EXISTS ix_tasks_state")
        for stmt in _statements(_TABLES):
            conn.execute(stmt)
        conn.execute(f"INSERT INTO tasks ({_TASK_COLUMNS}) SELECT {_TASK_COLUMNS} FROM tasks_v1")
        conn.execute("INSERT INTO payloads (seq, payload) SELECT seq, payload FROM tasks_v1")
        conn.execute(
            "INSERT INTO results (seq, result) SELECT seq, result FROM tasks_v1"
            f" WHERE state = '{_C}' AND result IS NOT NULL"
        )
        conn.execute("DROP TABLE tasks_v1")
    else:
        for stmt in _statements(_TABLES):
            conn.execute(stmt)
    if version != VERSION:
        conn.execute(f"PRAGMA user_version = {VERSION}")
