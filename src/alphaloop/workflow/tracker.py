"""Experiment tracker: workflow -> experiment -> variant -> record, in SQLite and JSON lines.

Contract
--------
- Hierarchy: a workflow has experiments (one per strategy iteration, keyed by
  ``(research_iteration, strategy_iteration)``); an experiment has variants (``variant_id``,
  with an optional ``parent_variant_id``); a variant has records, one per backtest task
  (normally one in-sample record and, for the finalist, a holdout record).
- ``ExperimentRecord`` is frozen: attribute assignment raises, ``parameters`` / ``metrics`` /
  ``parameter_changes`` are read-only mappings, ``failed_criteria`` is a tuple. ``code_hash`` is
  the sha256 of ``strategy_code`` (computed when absent, verified when given). Non-finite metric
  values are stored as None (JSON has no NaN/Infinity).
- One record per task, ever: ``records.task_id`` is UNIQUE. ``log_record`` returns True when it
  stored the record and False (changing nothing) when the task already has one. Records are
  never updated or deleted (SQLite triggers abort any UPDATE/DELETE on ``records``).
- ``action_taken`` — the only fact learnt after a record is written (routing decides it after
  the gate) — is not written into records: ``log_record`` refuses a record whose
  ``action_taken`` is set. ``set_action(experiment_id, action, details)`` stores it once per
  experiment in the ``actions`` table (True when stored, False if the experiment already has an
  action). ``records()`` returns copies with ``action_taken`` filled from that table; the
  stored record is unchanged.
- Storage: SQLite ``<home>/workflows/<workflow_id>/tracker.db`` (one database per workflow, so a
  workflow directory is self-contained) is the source of truth. After each SQLite commit the
  same fact is appended as one JSON line to ``<home>/experiments/<experiment_id>.jsonl`` (the
  design's JSONL log), flushed and fsynced per line (backtests take seconds; one fsync each is
  noise). Lines carry ``"kind"``: ``"experiment"`` (header), ``"record"`` (the record's
  fields) or ``"action"``. If the process dies between the commit and the append, or an append
  fails, opening the tracker again reconciles: a torn last line is cut off and whatever SQLite
  has that the file lacks is appended. Lines the file has but SQLite lacks are reported and
  left alone (SQLite wins).
- ``read_jsonl(path)`` never fails on content: a last line without its newline (torn by a crash)
  is skipped silently; a corrupt line elsewhere is skipped with a warning naming the file and
  line number.
- Concurrency: one process (the orchestrator) writes; calls are serialised by a lock so
  threads may share a tracker. Other processes open it with ``readonly=True`` (no schema
  changes, no reconcile, mutators raise).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from alphaloop._sqlite import opening, problem, readonly_uri
from alphaloop.errors import ConfigError, HomeError
from alphaloop.workflow.state import finite_or_none, to_json_value, utcnow, workflow_dir

__all__ = [
    "ACTIONS",
    "Action",
    "Experiment",
    "ExperimentNode",
    "ExperimentRecord",
    "ExperimentTracker",
    "FrozenDict",
    "Sample",
    "VariantNode",
    "code_hash",
    "format_tree",
    "jsonl_path",
    "read_jsonl",
]

log = logging.getLogger(__name__)

Action = Literal[
    "TUNE_PARAMETERS", "FIX_BUG", "REFINE_ALGORITHM", "REFINE_RESEARCH", "ABANDON", "SUCCESS"
]
ACTIONS: tuple[str, ...] = get_args(Action)
Sample = Literal["in_sample", "holdout"]
TRACKER_DB = "tracker.db"


# --- values ----------------------------------------------------------------------------------


class FrozenDict(dict):  # type: ignore[type-arg]
    """A dict whose mutators raise ``TypeError``; pickles and copies as itself."""

    def _readonly(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("records are immutable; build a new record instead")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _readonly
    __ior__ = _readonly

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))


def _frozen_json(value: Mapping[str, Any]) -> FrozenDict:
    return FrozenDict(to_json_value(dict(value)))


def _frozen_metrics(value: dict[str, int | float | None]) -> FrozenDict:
    return FrozenDict(finite_or_none(value))


def _iso_or_none(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


JsonDict = Annotated[dict[str, Any], AfterValidator(_frozen_json)]
Metrics = Annotated[dict[str, int | float | None], AfterValidator(_frozen_metrics)]
DateText = Annotated[str | None, BeforeValidator(_iso_or_none)]


def _iso(moment: datetime) -> str:
    """ISO text in the form pydantic writes for UTC (``...Z``)."""
    return moment.isoformat().replace("+00:00", "Z")


def _now_text() -> str:
    return _iso(utcnow())


def code_hash(strategy_code: str) -> str:
    """sha256 hex digest of the strategy source (utf-8)."""
    return hashlib.sha256(strategy_code.encode("utf-8")).hexdigest()


# --- the record ------------------------------------------------------------------------------


class ExperimentRecord(BaseModel):
    """One backtest result: what ran (code, parameters, data), how it did (metrics, gate) and
    where it sits (workflow, experiment, variant, task). Frozen; see the module contract."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # identity and hierarchy
    record_id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1)
    workflow_id: str = Field(min_length=1)
    experiment_id: str = Field(min_length=1)
    variant_id: str = Field(min_length=1)
    parent_variant_id: str | None = None
    task_id: str = Field(min_length=1, description="Backtest task that produced the record")

    # the design's fields
    strategy_name: str
    strategy_code: str
    strategy_description: str = ""
    parameters: JsonDict = Field(default_factory=FrozenDict)
    metrics: Metrics = Field(default_factory=FrozenDict)
    gate_passed: bool = False
    gate_score: float | None = None
    failed_criteria: tuple[str, ...] = ()
    action_taken: str | None = Field(
        default=None, description="None when written; filled from the actions table on read")
    parameter_changes: JsonDict = Field(default_factory=FrozenDict)

    # when and how it ran
    created_at: AwareDatetime = Field(default_factory=utcnow)
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    duration_s: float | None = Field(default=None, ge=0.0)
    attempts: int = Field(default=1, ge=1)
    code_hash: str = ""
    error: str | None = Field(default=None, description="Why the backtest failed, if it did")
    sample: Sample = "in_sample"

    # the data it ran on
    ticker: str = Field(min_length=1)
    timeframe: str = "1d"
    start: DateText = None
    end: DateText = None
    data_path: str | None = None
    data_fingerprint: str | None = None
    eval_start: DateText = Field(
        default=None, description="First traded and measured bar (holdout runs); earlier bars "
        "only warm indicators up")
    commission: float = Field(default=0.001, ge=0.0)
    slippage_bps: float = Field(default=0.0, ge=0.0)
    borrow_bps: float = Field(default=0.0, ge=0.0)
    rebalance: Literal["change", "bar"] = "change"

    @model_validator(mode="before")
    @classmethod
    def _derive(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if not data.get("code_hash") and isinstance(data.get("strategy_code"), str):
                data["code_hash"] = code_hash(data["strategy_code"])
            started, finished = data.get("started_at"), data.get("finished_at")
            if (data.get("duration_s") is None and isinstance(started, datetime)
                    and isinstance(finished, datetime)):
                data["duration_s"] = max((finished - started).total_seconds(), 0.0)
        return data

    @model_validator(mode="after")
    def _check(self) -> ExperimentRecord:
        if self.code_hash != code_hash(self.strategy_code):
            raise ValueError("code_hash is not the sha256 of strategy_code; leave it empty "
                             "to have it computed")
        if self.error is not None and self.gate_passed:
            raise ValueError("a failed backtest (error set) cannot pass the gate")
        if self.started_at and self.finished_at and self.finished_at < self.started_at:
            raise ValueError("finished_at is before started_at")
        return self


class Experiment(BaseModel):
    """One experiment (a strategy iteration) and the routing action decided for it, if any."""

    model_config = ConfigDict(frozen=True)

    experiment_id: str
    workflow_id: str
    seq: int
    research_iteration: int
    strategy_iteration: int
    description: str = ""
    created_at: AwareDatetime
    n_records: int = 0
    action: str | None = None
    action_details: JsonDict | None = None
    decided_at: AwareDatetime | None = None


class VariantNode(BaseModel):
    """A variant of an experiment and its records, in write order."""

    model_config = ConfigDict(frozen=True)

    variant_id: str
    parent_variant_id: str | None = None
    records: tuple[ExperimentRecord, ...] = ()


class ExperimentNode(BaseModel):
    """An experiment with its variants (first-seen order) for ``alphaloop show``."""

    model_config = ConfigDict(frozen=True)

    experiment: Experiment
    variants: tuple[VariantNode, ...] = ()


# --- JSON lines ------------------------------------------------------------------------------


def jsonl_path(home: Path, experiment_id: str) -> Path:
    """``<home>/experiments/<experiment_id>.jsonl``."""
    return Path(home) / "experiments" / f"{experiment_id}.jsonl"


def _parse_jsonl(data: bytes, source: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    lines = data.split(b"\n")
    torn = lines.pop()  # b"" when the data ends with a newline
    if torn.strip():
        log.debug("%s: skipping torn last line (%d bytes, no newline)", source, len(torn))
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            log.warning("%s:%d: skipping corrupt line (%s)", source, number, exc)
            continue
        if not isinstance(value, dict):
            log.warning("%s:%d: skipping line that is not a JSON object", source, number)
            continue
        out.append(value)
    return out


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, in order; ``[]`` if the file does not exist.

    A last line without its newline (a write torn by a crash) is skipped; a corrupt line
    elsewhere is skipped with a warning naming its line number. Never raises on content.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    return _parse_jsonl(data, path)


def _dumps(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _append_lines(path: Path, lines: Iterable[str]) -> None:
    """Append complete lines and fsync; on failure cut the file back to where it was."""
    text = "".join(line + "\n" for line in lines)
    if not text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as fh:
        pos = fh.seek(0, os.SEEK_END)
        try:
            fh.write(text.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                fh.truncate(pos)
            raise


def _cut_torn_tail(path: Path, data: bytes) -> bytes:
    """Truncate ``path`` after its last newline; return the kept bytes."""
    if not data or data.endswith(b"\n"):
        return data
    keep = data.rfind(b"\n") + 1
    log.warning("%s: cutting torn last line (%d bytes) left by an interrupted write",
                path, len(data) - keep)
    with open(path, "r+b") as fh:
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    return data[:keep]


# --- the tracker -----------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    seq INTEGER PRIMARY KEY,
    experiment_id TEXT NOT NULL UNIQUE,
    workflow_id TEXT NOT NULL,
    research_iteration INTEGER NOT NULL,
    strategy_iteration INTEGER NOT NULL,
    description TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (research_iteration, strategy_iteration)
);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL UNIQUE,
    task_id TEXT NOT NULL UNIQUE,
    experiment_id TEXT NOT NULL REFERENCES experiments (experiment_id),
    variant_id TEXT NOT NULL,
    parent_variant_id TEXT,
    sample TEXT NOT NULL CHECK (sample IN ('in_sample', 'holdout')),
    gate_passed INTEGER NOT NULL,
    gate_score REAL,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_experiment ON records (experiment_id, sample, seq);
CREATE TRIGGER IF NOT EXISTS records_no_update BEFORE UPDATE ON records
    BEGIN SELECT RAISE(ABORT, 'records are immutable'); END;
CREATE TRIGGER IF NOT EXISTS records_no_delete BEFORE DELETE ON records
    BEGIN SELECT RAISE(ABORT, 'records are immutable'); END;
CREATE TABLE IF NOT EXISTS actions (
    experiment_id TEXT PRIMARY KEY REFERENCES experiments (experiment_id),
    action TEXT NOT NULL,
    details TEXT NOT NULL,
    decided_at TEXT NOT NULL
);
PRAGMA user_version = 1;
"""
_TABLES = ("experiments", "records", "actions")


class ExperimentTracker:
    """Records experiments, their backtest records and routing actions for one workflow.

    See the module docstring for the storage contract. Use as a context manager or call
    ``close()``.
    """

    def __init__(self, home: Path, workflow_id: str, *, readonly: bool = False,
                 existing: bool = False):
        """Open (or create) the tracker of ``workflow_id``. ``readonly`` opens an existing one
        for reading (``alphaloop show``); ``existing`` opens one for writing that must already
        hold records (a resumed workflow with experiments): never a new, empty file in place of
        a lost one.

        Raises:
            HomeError: (``readonly``/``existing``) the file is missing, empty or damaged; it
                cannot be rebuilt, so the message says to restore it or start again.
            ConfigError: the file cannot be opened for another reason (a lock, a bad id).
        """
        self.home = Path(home)
        self.workflow_id = workflow_id
        self.readonly = readonly
        self.db_path = workflow_dir(self.home, workflow_id) / TRACKER_DB
        self._lock = threading.RLock()
        if (readonly or existing) and not self.db_path.exists():
            raise self._unusable("missing")
        if readonly:
            # immutable when idle: reading leaves no -wal/-shm behind in the home
            uri = readonly_uri(self.db_path)
            self._conn = sqlite3.connect(uri, uri=True, isolation_level=None,
                                         check_same_thread=False, timeout=30)
            with opening(self._conn, self.db_path, "experiment tracker"):
                self._check()
            return
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.db_path, isolation_level=None,
                                     check_same_thread=False, timeout=30)
        with opening(self._conn, self.db_path, "experiment tracker"):
            if existing or self.db_path.stat().st_size:
                self._check(empty_ok=not existing)
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._conn.executescript(_SCHEMA)
        self.reconcile()

    def _check(self, *, empty_ok: bool = False) -> None:
        """Raise :class:`HomeError` if the open file is damaged or holds no tracker (an empty
        database is fine with ``empty_ok``: it becomes a new tracker)."""
        found = problem(self._conn, _TABLES)
        if found is not None and not (empty_ok and found == "empty"):
            self._conn.close()
            raise self._unusable(found)

    def _unusable(self, what: str) -> HomeError:
        fix = ("resume cannot rebuild them: restore the file from a backup or start the "
               "workflow again")
        if what == "missing":
            return HomeError(f"workflow {self.workflow_id} has no experiment records "
                             f"({self.db_path} is missing); {fix}")
        return HomeError(f"experiment records {self.db_path} are {what}; {fix}")

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ExperimentTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------------

    def start_experiment(self, *, research_iteration: int = 0, strategy_iteration: int = 0,
                         description: str = "") -> str:
        """The experiment of this ``(research_iteration, strategy_iteration)``, created if new.

        Idempotent: a resumed run calling it again for the same iteration gets the same id
        (and the first description). Ids are ``exp_<workflow suffix>_<NNN>``, unique across
        workflows because workflow ids are.
        """
        self._writable()
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT experiment_id FROM experiments WHERE research_iteration = ? AND "
                    "strategy_iteration = ?", (research_iteration, strategy_iteration)).fetchone()
                if row:
                    conn.execute("COMMIT")
                    return str(row[0])
                seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM experiments"
                                   ).fetchone()[0]
                suffix = self.workflow_id.removeprefix("workflow_")
                exp_id = f"exp_{suffix}_{seq:03d}"
                created = _now_text()
                conn.execute(
                    "INSERT INTO experiments VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (seq, exp_id, self.workflow_id, research_iteration, strategy_iteration,
                     description, created))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._append(exp_id, [self._experiment_line(self._experiment(exp_id))])
            return exp_id

    def log_record(self, record: ExperimentRecord) -> bool:
        """Store ``record``; True if stored, False if its task already has a record (nothing
        changes then). ``ValueError`` for a record of another workflow, of an unknown
        experiment, with ``action_taken`` set, or reusing another task's ``record_id``."""
        self._writable()
        if record.workflow_id != self.workflow_id:
            raise ValueError(f"record {record.record_id} belongs to workflow "
                             f"{record.workflow_id!r}, not {self.workflow_id!r}")
        if record.action_taken is not None:
            raise ValueError("action_taken is decided after the gate: log the record without "
                             "it and call set_action(experiment_id, action, details)")
        body = record.model_dump_json()
        with self._lock:
            if self._experiment_row(record.experiment_id) is None:
                raise ValueError(f"unknown experiment {record.experiment_id!r}; create it with "
                                 "start_experiment first")
            try:
                self._conn.execute(
                    "INSERT INTO records (record_id, task_id, experiment_id, variant_id, "
                    "parent_variant_id, sample, gate_passed, gate_score, created_at, body) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (record.record_id, record.task_id, record.experiment_id, record.variant_id,
                     record.parent_variant_id, record.sample, int(record.gate_passed),
                     record.gate_score, _iso(record.created_at), body))
            except sqlite3.IntegrityError as exc:
                if self._conn.execute("SELECT 1 FROM records WHERE task_id = ?",
                                      (record.task_id,)).fetchone():
                    return False
                raise ValueError(f"record {record.record_id} rejected: {exc}") from exc
            self._append(record.experiment_id, [_dumps({"kind": "record", **json.loads(body)})])
            return True

    def log_records(self, records: Iterable[ExperimentRecord]) -> list[bool]:
        """`log_record` for many records as ONE group commit: one SQLite transaction (one
        sync) and one append per experiment's JSON lines (one sync), whatever their number.
        Per record, True if stored and False if its task already had one; the same
        ``ValueError`` as `log_record` for a record it refuses, raised before anything of the
        batch is stored."""
        self._writable()
        records = list(records)
        for record in records:
            if record.workflow_id != self.workflow_id or record.action_taken is not None:
                self.log_record(record)  # raises its ValueError, stores nothing
        bodies = [r.model_dump_json() for r in records]
        stored: list[bool] = []
        lines: dict[str, list[str]] = {}
        with self._lock:
            for exp_id in dict.fromkeys(r.experiment_id for r in records):
                if self._experiment_row(exp_id) is None:
                    raise ValueError(f"unknown experiment {exp_id!r}; create it with "
                                     "start_experiment first")
            if not records:
                return stored
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                for record, body in zip(records, bodies, strict=True):
                    try:
                        conn.execute(
                            "INSERT INTO records (record_id, task_id, experiment_id, "
                            "variant_id, parent_variant_id, sample, gate_passed, gate_score, "
                            "created_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (record.record_id, record.task_id, record.experiment_id,
                             record.variant_id, record.parent_variant_id, record.sample,
                             int(record.gate_passed), record.gate_score,
                             _iso(record.created_at), body))
                    except sqlite3.IntegrityError as exc:
                        if conn.execute("SELECT 1 FROM records WHERE task_id = ?",
                                        (record.task_id,)).fetchone():
                            stored.append(False)
                            continue
                        raise ValueError(f"record {record.record_id} rejected: {exc}") from exc
                    stored.append(True)
                    lines.setdefault(record.experiment_id, []).append(
                        _dumps({"kind": "record", **json.loads(body)}))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            for exp_id, batch in lines.items():
                self._append(exp_id, batch)
            return stored

    def set_action(self, experiment_id: str, action: str,
                   details: Mapping[str, Any] | None = None) -> bool:
        """Store the routing action decided for ``experiment_id`` (once per experiment).

        True if stored; False if the experiment already has an action (nothing changes).
        ``details`` must be JSON serialisable (pydantic models are dumped).
        """
        self._writable()
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
        details_json = _dumps(to_json_value(dict(details or {})))
        decided = _now_text()
        with self._lock:
            if self._experiment_row(experiment_id) is None:
                raise ValueError(f"unknown experiment {experiment_id!r}")
            try:
                self._conn.execute("INSERT INTO actions VALUES (?, ?, ?, ?)",
                                   (experiment_id, action, details_json, decided))
            except sqlite3.IntegrityError:
                return False
            self._append(experiment_id, [self._action_line(experiment_id, action,
                                                           details_json, decided)])
            return True

    # -- reading ------------------------------------------------------------------------------

    def records(self, experiment_id: str | None = None, sample: Sample | None = "in_sample", *,
                with_actions: bool = True) -> list[ExperimentRecord]:
        """Records in write order, filtered by experiment (None = all) and sample (None =
        both). With ``with_actions`` each copy carries its experiment's action."""
        sql = "SELECT r.body, a.action FROM records r LEFT JOIN actions a USING (experiment_id)"
        where, args = [], []
        if experiment_id is not None:
            where.append("r.experiment_id = ?")
            args.append(experiment_id)
        if sample is not None:
            where.append("r.sample = ?")
            args.append(sample)
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY r.seq", args).fetchall()
        return [self._record(body, action if with_actions else None) for body, action in rows]

    def record_for_task(self, task_id: str) -> ExperimentRecord | None:
        """The record a task produced, if any (a resumed run skips tasks that have one)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT r.body, a.action FROM records r LEFT JOIN actions a "
                "USING (experiment_id) WHERE r.task_id = ?", (task_id,)).fetchone()
        return None if row is None else self._record(row[0], row[1])

    def counts(self) -> dict[str, int]:
        """How many records each sample has: ``{"in_sample": n, "holdout": m}``."""
        with self._lock:
            rows = self._conn.execute("SELECT sample, COUNT(*) FROM records GROUP BY sample")
            found = {str(sample): int(n) for sample, n in rows}
        return {"in_sample": found.get("in_sample", 0), "holdout": found.get("holdout", 0)}

    def experiments(self) -> list[Experiment]:
        """Every experiment of the workflow in creation order, with its action if decided."""
        with self._lock:
            ids = [r[0] for r in self._conn.execute(
                "SELECT experiment_id FROM experiments ORDER BY seq")]
            return [self._experiment(i) for i in ids]

    def get_action(self, experiment_id: str) -> tuple[str, dict[str, Any]] | None:
        """``(action, details)`` decided for the experiment, or None."""
        with self._lock:
            row = self._conn.execute("SELECT action, details FROM actions WHERE "
                                     "experiment_id = ?", (experiment_id,)).fetchone()
        return None if row is None else (row[0], json.loads(row[1]))

    def tree(self) -> list[ExperimentNode]:
        """Experiments -> variants -> records (all samples), for ``alphaloop show``."""
        nodes = []
        for exp in self.experiments():
            by_variant: dict[str, list[ExperimentRecord]] = {}
            for rec in self.records(exp.experiment_id, sample=None):
                by_variant.setdefault(rec.variant_id, []).append(rec)
            variants = tuple(
                VariantNode(variant_id=vid, parent_variant_id=recs[0].parent_variant_id,
                            records=tuple(recs))
                for vid, recs in by_variant.items())
            nodes.append(ExperimentNode(experiment=exp, variants=variants))
        return nodes

    # -- reconcile ----------------------------------------------------------------------------

    def reconcile(self) -> int:
        """Make every experiment's JSONL file hold what SQLite holds; return lines appended.

        Cuts a torn last line, then appends the missing header, records (write order) and
        action. Lines SQLite does not know are left in place and reported.
        """
        self._writable()
        appended = 0
        with self._lock:
            for exp in self.experiments():
                appended += self._reconcile_one(exp)
        if appended:
            log.warning("workflow %s: appended %d missing line(s) to experiment logs",
                        self.workflow_id, appended)
        return appended

    def _reconcile_one(self, exp: Experiment) -> int:
        path = jsonl_path(self.home, exp.experiment_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = b""
        data = _cut_torn_tail(path, data)
        lines = _parse_jsonl(data, path)
        kinds = {line.get("kind") for line in lines}
        logged = {line.get("record_id") for line in lines if line.get("kind") == "record"}
        missing: list[str] = []
        if "experiment" not in kinds:
            missing.append(self._experiment_line(exp))
        rows = self._conn.execute("SELECT record_id, body FROM records WHERE experiment_id = ? "
                                  "ORDER BY seq", (exp.experiment_id,)).fetchall()
        known = {rid for rid, _ in rows}
        missing += [_dumps({"kind": "record", **json.loads(body)})
                    for rid, body in rows if rid not in logged]
        if "action" not in kinds:
            row = self._conn.execute("SELECT action, details, decided_at FROM actions WHERE "
                                     "experiment_id = ?", (exp.experiment_id,)).fetchone()
            if row:
                missing.append(self._action_line(exp.experiment_id, *row))
        stray = logged - known
        if stray:
            log.warning("%s: %d record line(s) unknown to %s are ignored (SQLite is the source "
                        "of truth)", path, len(stray), self.db_path)
        _append_lines(path, missing)
        return len(missing)

    # -- internals ----------------------------------------------------------------------------

    def _writable(self) -> None:
        if self.readonly:
            raise ConfigError(f"experiment tracker of {self.workflow_id!r} is open read-only; "
                              "only the orchestrator running the workflow writes to it")

    def _append(self, experiment_id: str, lines: list[str]) -> None:
        path = jsonl_path(self.home, experiment_id)
        try:
            _append_lines(path, lines)
        except OSError as exc:
            log.warning("%s: append failed (%s); the line is safe in %s and is restored on the "
                        "next open", path, exc, self.db_path)

    def _experiment_row(self, experiment_id: str) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._conn.execute(
            "SELECT seq, experiment_id, workflow_id, research_iteration, strategy_iteration, "
            "description, created_at FROM experiments WHERE experiment_id = ?",
            (experiment_id,)).fetchone()
        return row

    def _experiment(self, experiment_id: str) -> Experiment:
        row = self._experiment_row(experiment_id)
        if row is None:
            raise ValueError(f"unknown experiment {experiment_id!r}")
        seq, exp_id, wid, research, strategy, description, created = row
        n = self._conn.execute("SELECT COUNT(*) FROM records WHERE experiment_id = ?",
                               (exp_id,)).fetchone()[0]
        act = self._conn.execute("SELECT action, details, decided_at FROM actions WHERE "
                                 "experiment_id = ?", (exp_id,)).fetchone()
        return Experiment(
            experiment_id=exp_id, workflow_id=wid, seq=seq, research_iteration=research,
            strategy_iteration=strategy, description=description, created_at=created,
            n_records=n, action=act[0] if act else None,
            action_details=json.loads(act[1]) if act else None,
            decided_at=act[2] if act else None)

    @staticmethod
    def _record(body: str, action: str | None) -> ExperimentRecord:
        rec = _parse_record(body)
        return rec.model_copy(update={"action_taken": action}) if action else rec

    @staticmethod
    def _experiment_line(exp: Experiment) -> str:
        return _dumps({"kind": "experiment",
                       **exp.model_dump(mode="json", include={
                           "experiment_id", "workflow_id", "seq", "research_iteration",
                           "strategy_iteration", "description", "created_at"})})

    @staticmethod
    def _action_line(experiment_id: str, action: str, details_json: str, decided: str) -> str:
        return _dumps({"kind": "action", "experiment_id": experiment_id, "action": action,
                       "details": json.loads(details_json), "decided_at": decided})


@lru_cache(maxsize=8192)
def _parse_record(body: str) -> ExperimentRecord:
    """A stored record's body, parsed once per process: the orchestrator reads the whole
    history several times a step, and validating it was a third of a campaign's own CPU.
    Records are frozen, and a body is never rewritten in place, so equal text is an equal
    record."""
    return ExperimentRecord.model_validate_json(body)


# --- text view -------------------------------------------------------------------------------


def _metric_text(metrics: Mapping[str, float | None], limit: int = 4) -> str:
    parts = [f"{k}={'n/a' if v is None else f'{v:.4g}'}" for k, v in list(metrics.items())[:limit]]
    return " ".join(parts)


def format_tree(nodes: Iterable[ExperimentNode]) -> str:
    """Plain-text rendering of ``ExperimentTracker.tree()``: one line per experiment, variant
    and record (sample, gate result and score or error, first metrics, task id)."""
    out: list[str] = []
    for node in nodes:
        exp = node.experiment
        action = exp.action or "(no action yet)"
        out.append(f"{exp.experiment_id}  research {exp.research_iteration} / strategy "
                   f"{exp.strategy_iteration}  -> {action}  ({len(node.variants)} variants, "
                   f"{exp.n_records} records)")
        for var in node.variants:
            parent = f" (from {var.parent_variant_id})" if var.parent_variant_id else ""
            out.append(f"  {var.variant_id}{parent}")
            for rec in var.records:
                if rec.error is not None:
                    result = f"ERROR {rec.error.splitlines()[0] if rec.error else ''}"
                elif rec.gate_passed:
                    result = "PASS"
                else:
                    failed = ",".join(rec.failed_criteria)
                    result = f"FAIL[{failed}]" if failed else "FAIL"
                score = "" if rec.gate_score is None else f" score={rec.gate_score:.4g}"
                metrics = _metric_text(rec.metrics)
                out.append(f"    {rec.sample:<9} {result}{score}  {metrics}  "
                           f"task={rec.task_id}".rstrip())
    return "\n".join(out)
