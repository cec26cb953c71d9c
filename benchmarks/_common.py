"""What every benchmark script prints beside its numbers (they run as ``python
benchmarks/bench_x.py``, so this folder is on ``sys.path``)."""

from __future__ import annotations

from pathlib import Path


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages (``/proc/loadavg``), or ``n/a``."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:  # not Linux
        return "n/a"
