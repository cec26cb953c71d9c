"""How much work the local pool queues per worker: backlog depth and the end-of-queue share."""

from __future__ import annotations

import random
import statistics
from collections import deque
from collections.abc import Callable

import pytest

from alphaloop.execution._schedule import MIN_DEPTH, batch_depth, guided_share


def test_batch_depth_is_about_batch_seconds_of_work_within_bounds() -> None:
    assert batch_depth(None, 0.05, 64) == MIN_DEPTH  # nothing measured yet
    assert batch_depth(0.001, 0.05, 64) == 51  # 1 running + 50 ms of queued work
    assert batch_depth(0.0001, 0.05, 64) == 64  # capped at max_batch
    assert batch_depth(2.0, 0.05, 64) == MIN_DEPTH  # slow tasks: one running, one waiting
    assert batch_depth(0.001, 0.05, 1) == 1  # max_batch below the floor wins


def test_guided_share_is_the_full_depth_until_the_queue_runs_short() -> None:
    assert guided_share(ready=1000, backlog=0, workers=2, depth=64) == 64
    assert guided_share(ready=128, backlog=40, workers=2, depth=64) == 64
    assert guided_share(ready=5, backlog=3, workers=1, depth=64) == 64  # nobody to balance
    # then a quarter (1 / (2 x 2 workers)) of what is left, shrinking to the floor
    assert guided_share(ready=100, backlog=60, workers=2, depth=64) == 40
    assert guided_share(ready=20, backlog=8, workers=2, depth=64) == 7
    assert guided_share(ready=1, backlog=2, workers=2, depth=64) == MIN_DEPTH


ShareFn = Callable[[int, int, int, int], int]


def even_split(ready: int, backlog: int, workers: int, depth: int) -> int:
    """The rule guided self-scheduling replaced: the remainder in equal parts, once."""
    if ready >= depth * workers:
        return depth
    return -(-(ready + backlog) // workers)


def finish_spread(share: ShareFn, seed: int, n: int = 500, workers: int = 2) -> float:
    """Simulate the pool's top-up rule (a worker down to half the depth triggers a top-up
    of every worker to its share) with task durations of 0.5-1.5 units; return how far
    apart the workers finish, in units."""
    rng = random.Random(seed)
    durations = [rng.uniform(0.5, 1.5) for _ in range(n)]
    ready = deque(range(n))
    depth = 64
    backlog: list[deque[int]] = [deque() for _ in range(workers)]
    done_at = [0.0] * workers  # when the head task of each worker completes
    finished = [0.0] * workers

    def top_up(now: float) -> None:
        if min(len(b) for b in backlog) > depth // 2:
            return
        fair = share(len(ready), sum(len(b) for b in backlog), workers, depth)
        for w in sorted(range(workers), key=lambda i: len(backlog[i])):
            b = backlog[w]
            want = min(depth - len(b), max(1 if not b else 0, fair - len(b)))
            idle = not b
            for _ in range(max(0, want)):
                if ready:
                    b.append(ready.popleft())
            if idle and b:
                done_at[w] = now + durations[b[0]]

    top_up(0.0)
    while any(backlog):
        w = min((i for i in range(workers) if backlog[i]), key=lambda i: done_at[i])
        now = done_at[w]
        backlog[w].popleft()
        finished[w] = now
        if backlog[w]:
            done_at[w] = now + durations[backlog[w][0]]
        top_up(now)
    return max(finished) - min(finished)


@pytest.mark.parametrize("workers", [2, 3, 5])
def test_guided_shares_make_the_workers_finish_together(workers: int) -> None:
    guided = [finish_spread(guided_share, seed, workers=workers) for seed in range(20)]
    even = [finish_spread(even_split, seed, workers=workers) for seed in range(20)]
    # the last pieces are MIN_DEPTH (2) tasks: never more than two of the longest tasks apart
    assert max(guided) <= MIN_DEPTH * 1.5
    assert statistics.mean(guided) < statistics.mean(even) / 2
