"""A task function that runs in a clean worker (``needs_clean_worker``), for the Dask tests.

The clean worker imports it by name, so it lives in a module of its own (not a test module).
"""

from __future__ import annotations

from typing import Any

from _tasks import mixed
from alphaloop.execution import BacktestTask


def clean_mixed(task: BacktestTask) -> dict[str, Any]:
    """`_tasks.mixed`, in a clean worker."""
    return mixed(task)


clean_mixed.needs_clean_worker = True  # type: ignore[attr-defined]
