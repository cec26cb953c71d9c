"""Non-blocking CPU/memory sampling for resource-aware dispatch."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from typing import Protocol, runtime_checkable

import psutil


@runtime_checkable
class ResourceProbe(Protocol):
    """Reports machine load as fractions in [0, 1]. Must never block or sleep."""

    def sample(self, exclude_pids: Collection[int] = ()) -> tuple[float, float]:
        """``(cpu_fraction, memory_fraction)``; CPU used by ``exclude_pids`` (the pool's own
        workers) is left out, so a busy pool does not throttle itself."""
        ...


class PsutilProbe:
    """CPU and memory use from psutil, refreshed at most every ``min_interval`` seconds.

    Never sleeps: CPU is the busy share of all CPUs since the previous reading (deltas of
    ``psutil.cpu_times()``) minus the CPU time spent in the excluded processes (the pool's
    workers) and in this process over the same interval, so a busy pool does not throttle
    itself. Memory is system-wide ``virtual_memory().percent`` (the pool's own memory counts:
    it is what runs out).
    """

    def __init__(self, min_interval: float = 0.5) -> None:
        self.min_interval = min_interval
        self._me = psutil.Process()
        self._cpu_seen: dict[int, tuple[psutil.Process, float]] = {}
        self._at = time.monotonic()
        self._wall = time.time()
        self._sys = self._system_times()
        self._mine = self._proc_time(self._me)
        self._last = (0.0, psutil.virtual_memory().percent / 100.0)

    @staticmethod
    def _system_times() -> tuple[float, float]:
        t = psutil.cpu_times()
        total = sum(t)
        idle = t.idle + getattr(t, "iowait", 0.0)
        return total - idle, total

    @staticmethod
    def _proc_time(proc: psutil.Process) -> float:
        t = proc.cpu_times()
        return t.user + t.system

    def _own_delta(self, pids: Collection[int]) -> float:
        """CPU seconds the excluded processes used since the previous reading."""
        total = 0.0
        seen: dict[int, tuple[psutil.Process, float]] = {}
        for pid in pids:
            try:
                entry = self._cpu_seen.get(pid)
                if entry is None:
                    proc = psutil.Process(pid)
                    # born since the last reading: all its CPU time falls in this interval
                    before = 0.0 if proc.create_time() >= self._wall - 0.01 else None
                else:
                    proc, before = entry
                now = self._proc_time(proc)
                if before is not None:
                    total += max(0.0, now - before)
                seen[pid] = (proc, now)
            except psutil.Error:
                continue
        self._cpu_seen = seen
        return total

    def sample(self, exclude_pids: Collection[int] = ()) -> tuple[float, float]:
        now = time.monotonic()
        if now - self._at >= self.min_interval:
            busy, total = self._system_times()
            d_busy, d_total = busy - self._sys[0], total - self._sys[1]
            mine = self._proc_time(self._me)
            own = self._own_delta(exclude_pids) + max(0.0, mine - self._mine)
            cpu = max(0.0, d_busy - own) / d_total if d_total > 0 else 0.0
            self._last = (min(1.0, cpu), psutil.virtual_memory().percent / 100.0)
            self._sys, self._mine, self._at, self._wall = (busy, total), mine, now, time.time()
        return self._last


class ResourceGate:
    """Decides whether an additional task may start; logs only when the decision flips."""

    def __init__(
        self,
        probe: ResourceProbe,
        cpu_threshold: float,
        memory_threshold: float,
        logger: logging.Logger,
    ) -> None:
        for name, v in (("cpu_threshold", cpu_threshold), ("memory_threshold", memory_threshold)):
            if not 0.0 < v <= 1.0:
                raise ValueError(f"{name} must be a fraction in (0, 1], got {v}")
        self.probe = probe
        self.cpu_threshold = cpu_threshold
        self.memory_threshold = memory_threshold
        self.holding = False
        self._log = logger

    def reason(self, exclude_pids: Collection[int] = ()) -> str | None:
        """Why an additional task should not start now, or None."""
        cpu, mem = self.probe.sample(exclude_pids)
        if cpu > self.cpu_threshold:
            return f"CPU use {cpu:.0%} is above the {self.cpu_threshold:.0%} threshold"
        if mem > self.memory_threshold:
            return f"memory use {mem:.0%} is above the {self.memory_threshold:.0%} threshold"
        return None

    def open(self, exclude_pids: Collection[int] = ()) -> bool:
        """True if an additional task may start; logs once per change of mind."""
        why = self.reason(exclude_pids)
        if why is not None and not self.holding:
            self.holding = True
            self._log.info("holding back additional tasks: %s", why)
        elif why is None and self.holding:
            self.holding = False
            self._log.info("resources available again; resuming dispatch")
        return why is None
