"""The TOOL_DEVELOPMENT phase: every available strategy checked once before the search.

Each strategy runs with its declared defaults in a confined worker on the in-sample bars,
with the look-ahead test (``tools_<name>`` tasks). A strategy that fails, or whose positions
change when later bars are cut off, is excluded from the workflow (``tools.json``) with a
lesson; one that hit the time or memory limit twice is retired.

A check already made by an earlier run on exactly the same inputs is not made again: its
verdict comes from the home's tool-check cache (`_toolcache`, which says what is cached and
why that is safe). The phase's outcome, ``tools.json`` included, is the same either way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from alphaloop.agents.development import VariantProposal
from alphaloop.data import fingerprint
from alphaloop.execution import BacktestTask
from alphaloop.workflow._toolcache import ToolCache, material
from alphaloop.workflow.state import utcnow

if TYPE_CHECKING:
    from alphaloop.workflow.orchestrator import Orchestrator

__all__ = ["ToolDevelopment"]

log = logging.getLogger(__name__)


class ToolDevelopment:
    """The phase, and the verdicts later phases read (`usable`), for one orchestrator."""

    def __init__(self, orch: Orchestrator) -> None:
        self.o = orch
        self._fingerprint: str | None = None
        self.from_cache: set[str] = set()
        """Strategies whose verdict the last `verdicts` took from the cache (no task)."""

    def _plan(self) -> tuple[list[str], dict[str, VariantProposal], dict[str, BacktestTask]]:
        dev = self.o.offline_developer
        names = sorted(dev.available())
        props = {n: dev.default_proposal(n) for n in names}
        return names, props, {n: self.o._task("tools", n, props[n]) for n in names}

    def run(self) -> None:
        """The phase: the verdicts, ``tools.json``, retirements and lessons, in ONE state
        write."""
        o = self.o
        names, props, tasks = self._plan()
        tools = self.verdicts(names, tasks)
        o._write_json("tools.json", tools)
        retired, lessons = o._retire(
            (
                (n, props[n].strategy_code, tasks[n].task_id)
                for n in names
                if not tools[n]["ok"] and n not in self.from_cache  # (a cached one ran fine)
            ),
            o.p.state.state.retired_strategies,
        )
        bad = sorted(n for n, v in tools.items() if not v["ok"] and n not in retired)
        for n in bad:
            if tools[n]["problem"] == "look-ahead bias":  # failed tasks are warned about already
                log.warning(
                    "strategy %s excluded: look-ahead bias (its positions change when later "
                    "bars are removed)",
                    n,
                )
        if bad:
            lessons.insert(
                0,
                "tool development: excluded "
                + ", ".join(f"{n} ({tools[n]['problem']})" for n in bad),
            )
        o._complete(
            current_phase="RESEARCH_SWARM",
            pending_action="INITIAL",
            retired_strategies=retired,
            lessons=lessons,
        )

    def verdicts(
        self, names: Sequence[str], tasks: Mapping[str, BacktestTask]
    ) -> dict[str, dict[str, Any]]:
        """``{name: {"ok", "problem"}}``: from the cache where it holds this very check,
        else by running the check (tasks not yet in the queue are enqueued; the queue keeps
        results across a crash, so a replay runs nothing twice)."""
        o = self.o
        cache = ToolCache(o.p.state.home)
        data = self.data_fingerprint()
        mats = {n: material(tasks[n], data) for n in names}
        known = {n: v for n in names if (v := cache.get(mats[n])) is not None}
        self.from_cache = set(known)
        todo = [tasks[n] for n in names if n not in known]
        if todo:
            o.p.queue.enqueue_batch(todo, exist_ok=True)
            o._drain()
        out = {n: known.get(n) or self._outcome(n) for n in names}
        if known:
            log.info("tool checks: %d of %d from the cache (%s)", len(known), len(names),
                     cache.path)
        at = utcnow().isoformat()
        for task in todo:
            cache.put(mats[task.strategy_name], out[task.strategy_name], at)
        cache.save(at)
        return out

    def _outcome(self, name: str) -> dict[str, Any]:
        """The verdict of ``tools_<name>`` from the queue."""
        q = self.o.p.queue
        task_id = f"tools_{name}"
        result = q.get_result(task_id)
        problem = (
            (q.get_error(task_id) or "failed")
            if result is None
            else ("look-ahead bias" if result.get("lookahead") else None)
        )
        return {"ok": problem is None, "problem": problem}

    def data_fingerprint(self) -> str:
        """The fingerprint of the in-sample bars the checks run on."""
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.o.in_sample)
        return self._fingerprint

    def usable(self) -> list[str]:
        """The strategies that passed, from ``tools.json`` (made again, from the cache or the
        queue, if it was removed by hand)."""
        o = self.o
        try:
            tools = o._read_json("tools.json")
        except FileNotFoundError:
            log.warning("%s missing; rebuilding it", o.dir / "tools.json")
            names, _, tasks = self._plan()
            tools = self.verdicts(names, tasks)
            o._write_json("tools.json", tools)
        return [n for n, v in tools.items() if v["ok"]]
