"""How much work the local pool queues at each worker: pure functions, tested on their own.

Two questions decide it:

* **How deep** should a worker's backlog of claims be? Deep enough that it never waits for a
  round trip to the orchestrator, shallow enough that claims are not tied up at one worker:
  about ``batch_seconds`` of work at the measured task duration (:func:`batch_depth`).
* **How much of what is left** may one worker take near the end of the queue? Handing out
  the remainder in equal parts once leaves the workers finishing at different times (task
  durations vary), with one running a long backlog alone while the others idle. Guided
  self-scheduling (Polychronopoulos & Kuck, 1987) hands out shrinking pieces instead: a
  worker's backlog is capped at ``1 / (2 x workers)`` of the work left, so the last tasks go
  out one or two at a time and the workers finish together (:func:`guided_share`).
"""

from __future__ import annotations

MIN_DEPTH = 2
"""A worker holds at least this many claims (one running, one waiting), unless ``max_batch``
is smaller."""


def batch_depth(task_seconds: float | None, batch_seconds: float, max_batch: int) -> int:
    """Claims to keep queued at a worker: ~``batch_seconds`` of work at ``task_seconds`` per
    task, at least :data:`MIN_DEPTH`, at most ``max_batch`` (``MIN_DEPTH`` before any task
    has been measured)."""
    floor = min(MIN_DEPTH, max_batch)
    if task_seconds is None:
        return floor
    want = 1 + int(batch_seconds / max(task_seconds, 1e-6))
    return max(floor, min(max_batch, want))


def guided_share(ready: int, backlog: int, workers: int, depth: int) -> int:
    """The most claims one worker may hold, given ``ready`` unclaimed tasks, ``backlog``
    claims already held by the ``workers`` eligible workers and the normal ``depth``.

    ``depth`` while the queue holds at least a full round (``ready >= depth x workers``);
    then ``ceil((ready + backlog) / (2 x workers))``, never below :data:`MIN_DEPTH`.
    """
    if workers <= 1 or ready >= depth * workers:
        return depth
    return min(depth, max(MIN_DEPTH, -(-(ready + backlog) // (2 * workers))))
