"""The local pool's resource probe: CPU used outside this process's whole tree of processes.

`PsutilProbe` leaves out the CPU of the processes it is given (the pool's workers) and of this
process. Since strategy code runs in confined processes, most of a task's CPU is spent in
processes the pool does not know: the strategy processes each worker forks, the blind worker
started beside it and the blind strategy process it forks per look-ahead check (about 110 ms
of CPU each for a refined strategy). Counted as someone else's load, that CPU closed the
pool's resource gate whenever both workers ran such tasks, and one worker sat idle with
tasks queued (a campaign spent 13% of two cores idle).

`PoolProbe` counts as its own the CPU of this process and of every process descended from it,
live or already reaped: the sum over the tree of each process's own CPU plus that of the
children it has reaped. A process that ends moves its CPU into its parent's reaped-children
count, so the sum is continuous and its growth between two readings is exactly the tree's
CPU in between (a descendant born and reaped between two readings included). Listing the
tree costs ~0.3 ms (the tree's entries in ``/proc``), at most once per ``min_interval``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Collection

import psutil

from alphaloop.execution._probe import PsutilProbe

__all__ = ["PoolProbe", "tree_cpu_seconds"]


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _all_time(proc: psutil.Process) -> float:
    """CPU seconds of ``proc`` and of the children it has reaped."""
    t = proc.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def _linux_tree(pid: int) -> float | None:
    """`tree_cpu_seconds` from ``/proc`` alone, visiting only the tree (``task/*/children``
    lists a process's children; psutil's `children` reads every process on the machine):
    about ten times cheaper. None where ``/proc`` cannot answer."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                stat = f.read()
            for tid in os.listdir(f"/proc/{p}/task"):  # children are listed per thread
                with open(f"/proc/{p}/task/{tid}/children", "rb") as f:
                    todo.extend(int(c) for c in f.read().split())
        except FileNotFoundError:  # ended meanwhile: its parent's reaped count has it
            if p == pid:
                return None
            continue
        except OSError:
            return None
        fields = stat[stat.rindex(b")") + 2 :].split()
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / _TICK


def tree_cpu_seconds(root: psutil.Process) -> float:
    """CPU seconds used so far by ``root`` and every process descended from it, those already
    reaped by a process of the tree included."""
    fast = _linux_tree(root.pid) if sys.platform.startswith("linux") else None
    if fast is not None:
        return fast
    total = _all_time(root)
    for proc in root.children(recursive=True):
        try:
            total += _all_time(proc)
        except psutil.Error:  # ended meanwhile: its parent's reaped count has it, or will
            continue
    return total


class PoolProbe(PsutilProbe):
    """`PsutilProbe` whose excluded CPU is this process's whole tree (see the module doc);
    ``exclude_pids`` is ignored (the pool's workers are part of the tree)."""

    def __init__(self, min_interval: float = 0.5) -> None:
        super().__init__(min_interval)
        self._tree = tree_cpu_seconds(self._me)

    def sample(self, exclude_pids: Collection[int] = ()) -> tuple[float, float]:
        now = time.monotonic()
        if now - self._at >= self.min_interval:
            busy, total = self._system_times()
            d_busy, d_total = busy - self._sys[0], total - self._sys[1]
            tree = tree_cpu_seconds(self._me)
            own = max(0.0, tree - self._tree)
            cpu = max(0.0, d_busy - own) / d_total if d_total > 0 else 0.0
            self._last = (min(1.0, cpu), psutil.virtual_memory().percent / 100.0)
            self._sys, self._tree, self._at = (busy, total), tree, now
        return self._last
