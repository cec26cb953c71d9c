"""Workflow state: the orchestrator's single source of truth, persisted atomically.

Contract
--------
- ``WorkflowState`` holds every field of the design's schema (identification, phase, research
  context, quality criteria, iteration counters and limits, experiments, results, lessons,
  resources, status) plus what a killed run needs to resume: ``seed``, ``in_sample_fraction``,
  the data spec (``data_path``, ``start``, ``end``), ``holdout_looks``, ``variants_tried``, the
  routing decision waiting to be carried out (``pending_action`` + ``pending_action_details``),
  the strategies retired for hitting a resource limit twice (``retired_strategies``),
  ``step`` (orchestrator steps completed) and ``revision`` (bumped on every write).
- ``StateManager`` owns one workflow's state file, ``<home>/workflows/<workflow_id>/state.json``.
  Every change is validated, then written atomically (temporary file in the same directory,
  flush + fsync, ``os.replace``, directory fsync) and only then becomes the in-memory state: the
  file and the manager never disagree, and a run killed at any instant resumes from its last
  completed write. A temporary file left by a crash is ignored by readers and removed by the
  next writer's first write.
- Counter rules are the design's: ``increment_strategy_iteration`` adds one to
  ``strategy_iteration`` and ``total_iterations``; ``increment_research_iteration`` adds one to
  ``research_iteration`` and ``total_iterations`` and resets ``strategy_iteration`` to 0;
  ``check_iteration_limits`` tests total, then strategy, then research, each with ``>=``.
- Steps are crash-safe transitions: ``complete_step`` writes ``step += 1``, the step's field
  changes, its lessons (``lessons=``) and one counter increment (``advance="strategy"`` or
  ``"research"``, the same rules as the two mutators above) in ONE atomic write. A run killed
  before that write replays the whole step; one killed after it never replays any of it, so a
  counter is never incremented twice and a lesson never appended twice. The orchestrator uses
  only ``complete_step`` to leave a phase; the single-purpose mutators stay for the design's
  API and for tests.
- Concurrency: exactly one orchestrator process drives a workflow. The manager is not a lock;
  it only detects a second writer (the revision on disk moved under it) and refuses to
  overwrite, raising ``ConfigError``. Readers (``load``, ``list_workflows``) may run any time:
  they always see a complete file.
- ``StateManager.state`` returns a deep copy; change the state only through the manager.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import math
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
)

from alphaloop.errors import ConfigError

__all__ = [
    "PHASES",
    "STATUSES",
    "Advance",
    "Phase",
    "StateManager",
    "Status",
    "WorkflowState",
    "atomic_write_text",
    "finite_or_none",
    "list_workflows",
    "new_workflow_id",
    "state_path",
    "to_json_value",
    "utcnow",
    "workflow_dir",
]

log = logging.getLogger(__name__)

Phase = Literal[
    "INITIALIZATION",
    "TOOL_DEVELOPMENT",
    "RESEARCH_SWARM",
    "STRATEGY_DEVELOPMENT",
    "BACKTESTING",
    "QUALITY_GATE",
    "COMPLETED",
    "FAILED",
]
Status = Literal["RUNNING", "PAUSED", "COMPLETED", "FAILED"]
Advance = Literal["strategy", "research"]
PHASES: tuple[str, ...] = get_args(Phase)
STATUSES: tuple[str, ...] = get_args(Status)

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]

STATE_FILE = "state.json"
_TMP_PREFIX = ".state.json."
_TMP_SUFFIX = ".tmp"
SCHEMA_VERSION = 1


def _json_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def to_json_value(value: Any) -> Any:
    """``value`` as plain JSON types: pydantic models dumped, numpy scalars/arrays, dates,
    paths, sets and tuples converted; non-finite floats become None. ``ValueError`` if
    something cannot be represented."""
    try:
        text = json.dumps(value, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"value must be JSON serialisable: {exc}") from exc
    return json.loads(text, parse_constant=lambda _: None)


def finite_or_none(
    values: dict[str, int | float | None],
) -> dict[str, int | float | None]:
    """Metric values with NaN/Infinity replaced by None (JSON cannot hold them)."""
    return {k: (v if v is None or math.isfinite(v) else None) for k, v in values.items()}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (never the naive ``datetime.utcnow()``)."""
    return datetime.now(UTC)


# --- workflow ids ----------------------------------------------------------------------------

_id_lock = threading.Lock()
_issued_second = ""
_issued: set[str] = set()


def new_workflow_id(now: datetime | None = None) -> str:
    """A fresh id ``workflow_YYYYMMDD_HHMMSS_<6 hex>`` (UTC time, random suffix).

    Ids issued by this process are unique even within one second (a colliding suffix is drawn
    again). Across processes the random suffix makes a clash unlikely, and
    ``StateManager.create`` claims the workflow directory exclusively, drawing again if it
    already exists.
    """
    global _issued_second
    stamp = (now or utcnow()).astimezone(UTC).strftime("%Y%m%d_%H%M%S")
    with _id_lock:
        if stamp != _issued_second:
            _issued_second = stamp
            _issued.clear()
        while True:
            wid = f"workflow_{stamp}_{secrets.token_hex(3)}"
            if wid not in _issued:
                _issued.add(wid)
                return wid


JsonObject = Annotated[dict[str, JsonValue], BeforeValidator(to_json_value)]
MetricValues = Annotated[dict[str, int | float | None], AfterValidator(finite_or_none)]


# --- the state -------------------------------------------------------------------------------


class WorkflowState(BaseModel):
    """Complete state of one workflow (design: "WorkflowState Schema").

    Field names, phases, statuses and limit defaults (5 strategy, 3 research, 15 total
    iterations) are the design's. Timestamps are timezone-aware UTC. Unknown fields are
    rejected, so a typo never silently becomes state.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    schema_version: int = SCHEMA_VERSION

    # Identification
    workflow_id: str = Field(min_length=1, description="Unique workflow ID")
    created_at: AwareDatetime = Field(default_factory=utcnow)
    updated_at: AwareDatetime = Field(default_factory=utcnow)

    # Current phase
    current_phase: Phase = "INITIALIZATION"

    # Research context
    research_directive: str = Field(description="User's research objective")
    ticker: str = Field(min_length=1, description="Target ticker symbol")
    timeframe: str = Field(default="1d", description="Timeframe for analysis")

    # Quality criteria: metric name -> threshold
    quality_criteria: dict[str, FiniteFloat] = Field(description="Quality gate thresholds")

    # Iteration counters and limits
    strategy_iteration: int = Field(default=0, ge=0)
    research_iteration: int = Field(default=0, ge=0)
    total_iterations: int = Field(default=0, ge=0)
    max_strategy_iterations: int = Field(default=5, ge=1)
    max_research_iterations: int = Field(default=3, ge=1)
    max_total_iterations: int = Field(default=15, ge=1)

    # Experiments
    current_experiment_id: str | None = None
    active_variants: list[str] = Field(default_factory=list)

    # Results (metric values may be None: a metric that is undefined for the run)
    best_strategy: JsonObject | None = None
    best_metrics: MetricValues | None = None

    # Lessons learned
    lessons_learned: list[str] = Field(default_factory=list)

    # Resource management
    max_parallel_workers: int = Field(default=5, ge=1)
    current_active_workers: int = Field(default=0, ge=0)

    # Status
    status: Status = "RUNNING"
    failure_reason: str | None = None

    # --- what resuming needs (not in the design's sketch) ---
    seed: int | None = Field(default=None, description="Seed of every random choice")
    in_sample_fraction: float = Field(default=0.7, gt=0.0, lt=1.0,
                                      description="Leading share of bars used in-sample")
    data_path: str | None = Field(default=None, description="Market data dir; None = sample")
    start: str | None = Field(default=None, description="First bar date (ISO), None = all")
    end: str | None = Field(default=None, description="Last bar date (ISO), None = all")
    holdout_looks: int = Field(default=0, ge=0, description="Times the holdout was evaluated")
    variants_tried: int = Field(default=0, ge=0, description="Variants backtested so far")
    pending_action: str | None = Field(
        default=None, description="Routing decision taken but not yet carried out")
    pending_action_details: JsonObject = Field(default_factory=dict)
    retired_strategies: dict[str, str] = Field(
        default_factory=dict,
        description="Strategy family -> sha256 of the code that hit the time or memory limit "
        "on two attempts; a retired family (or code) is never proposed again in the workflow")
    llm: JsonObject | None = Field(
        default=None, description="With --llm: the language-model budget (caps and counts, "
        "`Budget.to_dict`), fallbacks and rejected strategies so far; None offline")
    step: int = Field(default=0, ge=0, description="Orchestrator steps completed")
    revision: int = Field(default=0, ge=0, description="Bumped on every persisted write")


# --- files -----------------------------------------------------------------------------------


def workflow_dir(home: Path, workflow_id: str) -> Path:
    """``<home>/workflows/<workflow_id>`` (the id must be a plain file name)."""
    if not workflow_id or "/" in workflow_id or "\\" in workflow_id or workflow_id in (".", ".."):
        raise ConfigError(f"invalid workflow id {workflow_id!r}: use a plain name like "
                          "workflow_20260101_120000_abc123")
    return Path(home) / "workflows" / workflow_id


def state_path(home: Path, workflow_id: str) -> Path:
    """``<home>/workflows/<workflow_id>/state.json``."""
    return workflow_dir(home, workflow_id) / STATE_FILE


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> bool:
    """Replace ``path`` with ``text`` atomically; True once the new content is durable.

    Writes a temporary file in the same directory, flushes and fsyncs it, ``os.replace``-s it
    over ``path`` and fsyncs the directory. Readers see the old file or the new one, never a
    mix. On any error the temporary file is removed, ``path`` is untouched and the error
    propagates (nothing is swallowed).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_TMP_SUFFIX)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return True


def _read_state(path: Path) -> WorkflowState:
    try:
        return WorkflowState.model_validate_json(path.read_bytes())
    except (OSError, ValidationError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"workflow state {path} is unreadable ({first}); restore it from a "
                          "backup or remove the workflow directory") from exc


def _known_ids(home: Path) -> list[str]:
    root = Path(home) / "workflows"
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob(f"*/{STATE_FILE}"))


def list_workflows(home: Path) -> list[WorkflowState]:
    """Every workflow under ``home``, oldest first. Unreadable state files are skipped with a
    warning (one bad workflow must not hide the others)."""
    states = []
    for wid in _known_ids(home):
        try:
            states.append(_read_state(state_path(home, wid)))
        except ConfigError as exc:
            log.warning("skipping workflow %s: %s", wid, exc)
    return sorted(states, key=lambda s: (s.created_at, s.workflow_id))


# --- the manager -----------------------------------------------------------------------------

_IMMUTABLE = frozenset({"workflow_id", "created_at", "updated_at", "revision", "schema_version"})


class StateManager:
    """Owns and persists one workflow's state (design: "StateManager").

    ``StateManager(workflow_id, home)`` opens an existing workflow (``ConfigError`` naming the
    id and listing the known ones if there is none). ``StateManager(workflow_id, home,
    initial=state)`` creates it from ``initial`` (``ConfigError`` if it already exists).
    ``StateManager.create(home, ...)`` makes a new id and creates the workflow.

    Every mutator validates the change, persists it atomically and only then updates the
    in-memory state; it returns True when something changed (False for a no-op, e.g. the
    phase already set). A failed write raises and leaves both disk and memory unchanged.
    """

    def __init__(self, workflow_id: str, home: Path, *, initial: WorkflowState | None = None):
        self.workflow_id = workflow_id
        self.home = Path(home)
        self.dir = workflow_dir(self.home, workflow_id)
        self.state_file = self.dir / STATE_FILE
        self._cleaned = False
        if initial is None:
            if not self.state_file.exists():
                known = _known_ids(self.home)
                listing = ", ".join(known) if known else "none"
                raise ConfigError(f"no workflow {workflow_id!r} under {self.home} (known: "
                                  f"{listing}); pass one of the known ids or start a new run")
            self._state = _read_state(self.state_file)
            if self._state.workflow_id != workflow_id:
                raise ConfigError(f"{self.state_file} holds workflow "
                                  f"{self._state.workflow_id!r}, not {workflow_id!r}; the "
                                  "directory was renamed — rename it back")
            return
        if initial.workflow_id != workflow_id:
            raise ConfigError(f"initial state is for {initial.workflow_id!r}, not "
                              f"{workflow_id!r}; build it with workflow_id={workflow_id!r}")
        if self.state_file.exists():
            raise ConfigError(f"workflow {workflow_id!r} already exists under {self.home}; "
                              "open it with StateManager.load to resume")
        self.dir.mkdir(parents=True, exist_ok=True)
        first = initial.model_copy(deep=True)
        first.revision = 0
        self._state = first
        self._write(first.model_copy(deep=True))

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def load(cls, workflow_id: str, home: Path) -> StateManager:
        """Open an existing workflow to resume it; ``ConfigError`` (listing known ids) if absent."""
        return cls(workflow_id, home)

    @classmethod
    def create(cls, home: Path, *, research_directive: str, ticker: str,
               quality_criteria: dict[str, float], files: Mapping[str, str] | None = None,
               **fields: Any) -> StateManager:
        """Create a workflow with a fresh id; ``fields`` are any other ``WorkflowState``
        fields (timeframe, limits, seed, ...). The workflow directory is claimed exclusively,
        so two processes never get the same id.

        ``files`` (name -> text, e.g. ``{"settings.json": ...}``) are written atomically into
        the new directory BEFORE its state file: a workflow that has a state always has them,
        however the creating process dies. If one cannot be written the directory is removed
        and the error propagates."""
        home = Path(home)
        (home / "workflows").mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            wid = new_workflow_id()
            folder = workflow_dir(home, wid)
            try:
                os.mkdir(folder)
            except FileExistsError:
                continue
            try:
                state = WorkflowState(workflow_id=wid, research_directive=research_directive,
                                      ticker=ticker, quality_criteria=quality_criteria, **fields)
            except ValidationError as exc:
                os.rmdir(folder)
                raise ConfigError(f"invalid workflow settings: {_first_error(exc)}") from exc
            try:
                for name, text in (files or {}).items():
                    if name == STATE_FILE or Path(name).name != name:
                        raise ConfigError(f"cannot create workflow file {name!r}: give a plain "
                                          f"file name other than {STATE_FILE}")
                    atomic_write_text(folder / name, text)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            return cls(wid, home, initial=state)
        raise ConfigError(f"could not claim a new workflow directory under {home}/workflows; "
                          "check that it is writable")

    # -- reading ------------------------------------------------------------------------------

    @property
    def state(self) -> WorkflowState:
        """A deep copy of the current state (mutating it changes nothing)."""
        return self._state.model_copy(deep=True)

    def check_iteration_limits(self) -> tuple[bool, str]:
        """``(exceeded, reason)``: total, then strategy, then research limit, each with ``>=``
        (the design's order and wording); ``(False, "")`` when within all limits."""
        s = self._state
        if s.total_iterations >= s.max_total_iterations:
            return True, "Total iteration limit exceeded"
        if s.strategy_iteration >= s.max_strategy_iterations:
            return True, "Strategy iteration limit exceeded"
        if s.research_iteration >= s.max_research_iterations:
            return True, "Research iteration limit exceeded"
        return False, ""

    # -- the design's mutators ----------------------------------------------------------------

    def save(self) -> bool:
        """Persist the current state again (bumps ``updated_at`` and ``revision``)."""
        return self._commit({}, force=True)

    def update_phase(self, phase: Phase) -> bool:
        """Set ``current_phase``; False if it already was ``phase``."""
        return self._commit({"current_phase": phase})

    def increment_strategy_iteration(self) -> bool:
        """``strategy_iteration += 1`` and ``total_iterations += 1``."""
        return self._commit(_advance(self._state, "strategy"))

    def increment_research_iteration(self) -> bool:
        """``research_iteration += 1``, ``total_iterations += 1``, ``strategy_iteration = 0``."""
        return self._commit(_advance(self._state, "research"))

    def add_lesson_learned(self, lesson: str) -> bool:
        """Append ``lesson`` to ``lessons_learned`` (duplicates are kept, as in the design)."""
        return self._commit({"lessons_learned": [*self._state.lessons_learned, lesson]})

    def update_best_strategy(self, strategy: dict[str, Any],
                             metrics: dict[str, float | None]) -> bool:
        """Replace ``best_strategy`` and ``best_metrics`` (the caller decides what is best)."""
        return self._commit({"best_strategy": strategy, "best_metrics": metrics})

    # -- resume helpers -----------------------------------------------------------------------

    def update(self, **changes: Any) -> bool:
        """Set any other fields at once (status, failure_reason, current_experiment_id,
        active_variants, ...), validated; unknown names raise ``ConfigError`` with a
        suggestion. ``workflow_id``, ``created_at``, ``updated_at``, ``revision`` are not
        settable."""
        _check_names(changes)
        return self._commit(changes)

    def set_pending_action(self, action: str, details: dict[str, Any] | None = None) -> bool:
        """Record a routing decision before acting on it, so a resumed run carries it out."""
        return self._commit({"pending_action": action, "pending_action_details": details or {}})

    def clear_pending_action(self) -> bool:
        """Forget the pending action once its effects are persisted."""
        return self._commit({"pending_action": None, "pending_action_details": {}})

    def complete_step(self, *, lessons: Sequence[str] = (), advance: Advance | None = None,
                      **changes: Any) -> bool:
        """``step += 1`` together with everything the step decided, in ONE atomic write.

        ``changes`` are field values (next phase, pending action, best strategy, ...);
        ``lessons`` are appended to ``lessons_learned``; ``advance`` applies one counter
        increment by the design's rules (``"strategy"``: as ``increment_strategy_iteration``,
        ``"research"``: as ``increment_research_iteration``). The step's results and the fact
        that it finished become durable at the same instant, so a step replayed after a crash
        (the write never happened) cannot repeat an increment or a lesson.
        """
        for name in ("step", "lessons_learned"):
            if name in changes:
                raise ConfigError(f"complete_step sets {name!r} itself; do not pass it "
                                  "(use lessons=[...] to add lessons)")
        _check_names(changes)
        if isinstance(lessons, str):
            raise ConfigError("complete_step lessons must be a list of strings, not a string")
        s = self._state
        counters: dict[str, Any] = {}
        if advance is not None:
            counters = _advance(s, advance)
            clash = sorted(set(counters) & set(changes))
            if clash:
                raise ConfigError(f"complete_step with advance={advance!r} sets {clash[0]!r} "
                                  "itself; do not pass it")
        extra = {"lessons_learned": [*s.lessons_learned, *lessons]} if lessons else {}
        return self._commit({**changes, **counters, **extra, "step": s.step + 1})

    # -- internals ----------------------------------------------------------------------------

    def _commit(self, changes: dict[str, Any], *, force: bool = False) -> bool:
        current = self._state
        data = current.model_dump()
        if not force and all(data.get(k) == _plain(v) for k, v in changes.items()):
            return False
        data.update(changes)
        data["updated_at"] = max(utcnow(), current.updated_at)
        data["revision"] = current.revision + 1
        try:
            new = WorkflowState.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"invalid workflow state change: {_first_error(exc)}") from exc
        self._check_not_moved()
        self._write(new)
        self._state = new
        return True

    def _write(self, state: WorkflowState) -> None:
        if not self._cleaned:  # only the writer removes leftovers: readers never race it
            self._clean_temp_files()
            self._cleaned = True
        atomic_write_text(self.state_file, state.model_dump_json(indent=2) + "\n")

    def _check_not_moved(self) -> None:
        """Refuse to overwrite a state that another writer changed under us."""
        try:
            raw = json.loads(self.state_file.read_bytes())
            on_disk = int(raw.get("revision", -1))
        except (OSError, ValueError, AttributeError, TypeError):
            return  # unreadable/missing: our write repairs it
        if on_disk != self._state.revision:
            raise ConfigError(f"workflow {self.workflow_id!r} was changed by another process "
                              f"(revision {on_disk} on disk, {self._state.revision} here); only "
                              "one orchestrator may drive a workflow — stop the other one and "
                              "resume with StateManager.load")

    def _clean_temp_files(self) -> None:
        for tmp in self.dir.glob(f"{_TMP_PREFIX}*{_TMP_SUFFIX}"):
            log.info("removing temporary file left by an interrupted write: %s", tmp)
            with contextlib.suppress(OSError):
                tmp.unlink()


def _check_names(changes: dict[str, Any]) -> None:
    for name in changes:
        if name in _IMMUTABLE:
            raise ConfigError(f"workflow field {name!r} is managed by StateManager and "
                              "cannot be set")
        if name not in WorkflowState.model_fields:
            close = difflib.get_close_matches(name, list(WorkflowState.model_fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown workflow field {name!r}{hint}")


def _advance(s: WorkflowState, kind: Advance) -> dict[str, int]:
    """The counter changes of one iteration of ``kind`` (the design's rules)."""
    if kind == "strategy":
        return {"strategy_iteration": s.strategy_iteration + 1,
                "total_iterations": s.total_iterations + 1}
    if kind == "research":
        return {"research_iteration": s.research_iteration + 1,
                "total_iterations": s.total_iterations + 1,
                "strategy_iteration": 0}
    raise ConfigError(f"unknown iteration kind {kind!r}; use 'strategy' or 'research'")


def _plain(value: Any) -> Any:
    return value.model_dump() if isinstance(value, BaseModel) else value


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "state"
    return f"{where}: {err.get('msg', 'invalid')}"
