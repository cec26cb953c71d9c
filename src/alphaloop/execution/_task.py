"""The value objects of the execution layer: a task, its states, an attempt, a retry policy."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class TaskState(str, Enum):  # noqa: UP042 - the design's type; str(x) stays "TaskState.X"
    """Where a task is in its life. ``COMPLETED`` is final; ``FAILED`` is final until
    :meth:`TaskQueue.requeue_failed` gives the task a fresh set of attempts."""

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


class BacktestTask(BaseModel):
    """One backtest to run: a strategy variant on one instrument.

    Tasks carry references to data (ticker, timeframe, path), never the data itself; the worker
    loads (and caches) the bars.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    task_id: str = Field(min_length=1, description="Unique id of the task within its queue.")
    experiment_id: str = Field(description="Experiment the variant belongs to.")
    variant_id: str = Field(description="Strategy variant being tested.")
    strategy_code: str = Field(description="Python source of the strategy module.")
    strategy_parameters: dict[str, Any] = Field(default_factory=dict)
    ticker: str
    timeframe: str = "1d"
    priority: int = Field(default=0, description="Higher runs first; FIFO within a priority.")
    retry_count: int = Field(default=0, ge=0, description="Failed attempts so far (set by queue).")
    max_retries: int = Field(
        default=3,
        ge=1,
        description="Maximum number of attempts (design semantics: a failed attempt is "
        "re-queued while retry_count < max_retries, so 3 means at most 3 attempts).",
    )
    data_path: str | None = Field(default=None, description="Data folder; None = embedded sample.")
    adjust: bool = Field(
        default=True,
        description="Adjust a user file's OHLC by its 'Adj Close' column (False: --no-adjust).",
    )
    data_fingerprint: str | None = Field(
        default=None,
        description="The fingerprint (`alphaloop.data.fingerprint`) the bars loaded for this "
        "task must have, or the task fails (DataError). Set by the Dask backend when it runs "
        "the task on bars it shipped to the worker (`data_path` then names the worker's copy); "
        "None: the bars at `data_path` as they are.",
    )
    start: str | None = Field(default=None, description="First date (inclusive), ISO string.")
    end: str | None = Field(default=None, description="Last date (inclusive), ISO string.")
    commission: float = Field(default=0.001, ge=0.0)
    slippage_bps: float = Field(default=0.0, ge=0.0)
    borrow_bps: float = Field(default=0.0, ge=0.0, description="Annual fee on short notional.")
    rebalance: Literal["change", "bar"] = Field(
        default="change",
        description="Units held until the target changes, or a constant weight every bar.",
    )
    strategy_name: str = Field(default="strategy", description="Name used in errors/sandbox.")
    eval_start: str | None = Field(
        default=None,
        description="Trade and measure from this date on; earlier bars only warm indicators up "
        "(a holdout run).",
    )
    check_lookahead: bool = Field(
        default=False, description="Also check the positions for look-ahead (cut-point test)."
    )
    unconfined_ok: bool = Field(
        default=False,
        description="Where the kernel cannot confine strategy code (not Linux, no seccomp or "
        "Landlock), run it anyway, in a separate process with limits but without kernel "
        "confinement: only for library code or when the user passed --unconfined.",
    )

    @field_validator("task_id")
    @classmethod
    def _no_whitespace_only(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("task_id must not be blank; give every task a unique id")
        return v


class FailureKind(str, Enum):  # noqa: UP042 - stored as text
    """Whether another attempt at a failed task can succeed (the queue's retry decision)."""

    TRANSIENT = "transient"
    """May pass next time: a worker killed from outside, an error in alphaloop itself."""
    PERMANENT = "permanent"
    """Deterministic: the strategy code failed, was refused, or crashed; bad input. No retry."""
    LIMIT = "limit"
    """A timeout or the memory limit: one more attempt at most (`LIMIT_ATTEMPTS`)."""


LIMIT_ATTEMPTS = 2
"""Most attempts for a task whose attempts hit a limit (timeout, memory)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter between failed attempts.

    The n-th failure (n = 1, 2, ...) delays the next attempt by
    ``min(cap, base * factor ** (n - 1)) * (1 + jitter * U[0, 1))`` seconds.
    """

    base: float = 0.05
    """Delay after the first failure, seconds."""
    factor: float = 2.0
    """Growth per further failure."""
    cap: float = 30.0
    """Longest delay before jitter, seconds."""
    jitter: float = 0.5
    """Random extra fraction of the delay, in [0, 1]."""

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0:
            raise ValueError(
                f"RetryPolicy base/cap must be >= 0, got base={self.base} cap={self.cap}"
            )
        if self.factor < 1:
            raise ValueError(f"RetryPolicy factor must be >= 1, got {self.factor}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"RetryPolicy jitter must be within [0, 1], got {self.jitter}")

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before the attempt that follows ``failures`` failed attempts."""
        if failures <= 0:
            return 0.0
        d = min(self.cap, self.base * self.factor ** (failures - 1))
        r = (rng or random).random()
        return d * (1.0 + self.jitter * r)


@dataclass(frozen=True)
class Claim:
    """A task claimed by :meth:`TaskQueue.dequeue`: its id, the attempt number that owns it,
    and its JSON payload (parsed on first access of :attr:`task`).

    The attempt number must be handed back to ``mark_completed`` / ``mark_failed``; a report
    carrying an older attempt number is stale and is ignored.
    """

    task_id: str
    attempt: int
    payload: str = field(repr=False)
    retry_count: int = 0

    @cached_property
    def task(self) -> BacktestTask:
        """The task, with ``retry_count`` as recorded by the queue."""
        return BacktestTask.model_validate_json(self.payload).model_copy(
            update={"retry_count": self.retry_count}
        )


@dataclass(frozen=True)
class Attempt:
    """One recorded attempt at a task (immutable copy; the queue keeps the original)."""

    task_id: str
    number: int
    """Claim number; increases with every claim. Claims that were handed back before they
    started are not recorded, so numbers can skip."""
    outcome: str
    """``running``, ``completed``, ``failed`` or ``interrupted`` (stopped by a shutdown or an
    orchestrator crash; does not use up a retry)."""
    started_at: float
    finished_at: float | None
    worker_pid: int | None
    error: str | None
    traceback: str | None


@dataclass(frozen=True)
class RunSummary:
    """What one :meth:`Executor.run` did."""

    completed: int = 0
    """Tasks completed during this run."""
    failed_attempts: int = 0
    """Attempts that failed (exception, crash, timeout, memory)."""
    gave_up: int = 0
    """Tasks that used their last attempt and are now FAILED."""
    elapsed: float = 0.0
    """Wall seconds."""
    stopped: bool = False
    """``stop_when`` returned True before the queue was drained."""
    interrupted: bool = False
    """SIGINT/SIGTERM stopped the run; unfinished work is back in the queue."""
    signal: int | None = None
    """The signal that interrupted the run."""

    @property
    def exit_code(self) -> int:
        """Suggested process exit code: 0, or 128 + signal when interrupted."""
        if self.interrupted:
            return 128 + (self.signal or 2)
        return 0
