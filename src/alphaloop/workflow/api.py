"""Assemble the parts and run a workflow: `run_workflow` (the design's entry point) and
`resume_workflow`.

This is the one place that picks the default parts — the local process pool (or Dask), the
offline agents, the library strategies plus any user strategies — and hands them to the
`Orchestrator`. Settings a resume needs are kept in the workflow folder (``settings.json``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alphaloop.agents.development import OptunaDeveloper
from alphaloop.agents.failure import RuleBasedFailureAnalyst
from alphaloop.agents.research import ResearchSwarm
from alphaloop.agents.trajectory import RuleBasedTrajectoryAdvisor
from alphaloop.backtest.strategy import Strategy, library_names, load_strategy
from alphaloop.errors import ConfigError
from alphaloop.execution import QUEUE_FILENAME, Executor, LocalPool, TaskQueue, resolve_home
from alphaloop.execution.task_runner import run_task
from alphaloop.workflow.gate import QualityCriteria
from alphaloop.workflow.orchestrator import (
    Event,
    Orchestrator,
    Parts,
    WorkflowResult,
    split_bars,
)
from alphaloop.workflow.routing import RoutingEngine
from alphaloop.workflow.state import StateManager, atomic_write_text, workflow_dir
from alphaloop.workflow.tracker import ExperimentTracker

__all__ = ["load_strategies", "make_executor", "resume_workflow", "run_workflow"]


def load_strategies(strategies_dir: str | None) -> dict[str, Strategy]:
    """The library strategies plus every ``*.py`` in `strategies_dir` (checked by the sandbox).

    Loading executes only a module's definitions under the sandbox; a strategy's
    ``generate_positions`` runs in workers (the tool-development phase checks each one there).
    """
    out = {name: load_strategy(name) for name in library_names()}
    if strategies_dir:
        folder = Path(strategies_dir)
        if not folder.is_dir():
            raise ConfigError(
                f"--strategies {strategies_dir}: not a folder; give a folder of strategy .py files"
            )
        for path in sorted(folder.glob("*.py")):
            if path.stem in out:
                raise ConfigError(
                    f"{path}: name '{path.stem}' clashes with a library strategy; rename the file"
                )
            out[path.stem] = load_strategy(str(path))
    return out


def make_executor(
    backend: str = "local", *, workers: int | None = None, scheduler: str | None = None
) -> Executor:
    """A `LocalPool` of `workers` processes, or a `DaskBackend` on `scheduler`."""
    if backend == "local":
        return LocalPool(max_workers=workers)
    if backend == "dask":
        if not scheduler:
            raise ConfigError("--backend dask needs --scheduler tcp://HOST:PORT")
        from alphaloop.execution.dask_backend import DaskBackend

        return DaskBackend(address=scheduler)
    raise ConfigError(f"unknown backend {backend!r}; use local or dask")


def _assemble(
    state: StateManager, settings: Mapping[str, Any], executor: Executor, on_event: Event | None
) -> Orchestrator:
    home = state.home
    wid = state.state.workflow_id
    strategies = load_strategies(settings.get("strategies_dir"))
    parts = Parts(
        state=state,
        tracker=ExperimentTracker(home, wid),
        queue=TaskQueue(workflow_dir(home, wid) / QUEUE_FILENAME),
        executor=executor,
        task_fn=run_task,
        swarm=ResearchSwarm(),
        developer=OptunaDeveloper(strategies),
        router=RoutingEngine(state, RuleBasedFailureAnalyst(), RuleBasedTrajectoryAdvisor()),
        criteria=QualityCriteria.coerce(settings["criteria"]),
        n_variants=int(settings.get("n_variants", 8)),
        commission=float(settings.get("commission", 0.001)),
        slippage_bps=float(settings.get("slippage_bps", 0.0)),
    )
    return Orchestrator(parts, on_event=on_event)


def run_workflow(
    ticker: str,
    research_directive: str = "",
    quality_criteria: QualityCriteria | Mapping[str, float] | list[str] | None = None,
    timeframe: str = "1d",
    *,
    home: str | Path | None = None,
    n_variants: int = 8,
    seed: int = 0,
    data_path: str | None = None,
    start: str | None = None,
    end: str | None = None,
    strategies_dir: str | None = None,
    in_sample_fraction: float = 0.7,
    commission: float = 0.001,
    slippage_bps: float = 0.0,
    executor: Executor | None = None,
    on_event: Event | None = None,
) -> WorkflowResult:
    """Run a new workflow to its end and return its result (see `Orchestrator.result`).

    ``on_event(kind, info)`` is called with ``"phase"``, ``"state"``, ``"decision"`` and
    ``"result"`` events; a ``"result"`` event carries the queue's counts per state and comes
    at most every ``PROGRESS_SECONDS`` (0.1 s) while a batch runs, and once when it ends.
    """
    criteria = QualityCriteria.coerce(quality_criteria)
    if not 1 <= n_variants <= 256:
        raise ConfigError(f"--variants must be between 1 and 256, got {n_variants}")
    root = resolve_home(None if home is None else str(home))
    settings = {
        "criteria": criteria.to_expressions(),
        "n_variants": n_variants,
        "strategies_dir": strategies_dir,
        "commission": commission,
        "slippage_bps": slippage_bps,
    }
    # fail on bad data, dates or user strategies before creating anything
    split_bars(ticker, timeframe, data_path, start, end, in_sample_fraction)
    load_strategies(strategies_dir)
    state = StateManager.create(
        root,
        research_directive=research_directive,
        ticker=ticker.upper(),
        quality_criteria=criteria.to_dict(),
        timeframe=timeframe,
        seed=seed,
        data_path=data_path,
        start=start,
        end=end,
        in_sample_fraction=in_sample_fraction,
        max_parallel_workers=getattr(executor, "max_workers", 1) if executor else 1,
    )
    folder = workflow_dir(root, state.state.workflow_id)
    atomic_write_text(folder / "settings.json", json.dumps(settings, indent=1))
    return _run(state, settings, executor, on_event)


def _run(
    state: StateManager,
    settings: Mapping[str, Any],
    executor: Executor | None,
    on_event: Event | None,
) -> WorkflowResult:
    """Run the assembled orchestrator; a pool made here (none given) is closed here."""
    own = executor is None
    executor = executor or LocalPool()
    try:
        return _assemble(state, settings, executor, on_event).run()
    finally:
        if own:
            executor.close()


def resume_workflow(
    workflow_id: str,
    *,
    home: str | Path | None = None,
    executor: Executor | None = None,
    on_event: Event | None = None,
) -> WorkflowResult:
    """Finish an interrupted workflow (or return the result of a finished one)."""
    root = resolve_home(None if home is None else str(home))
    state = StateManager.load(workflow_id, root)
    if state.state.status == "FAILED" and state.state.current_phase != "FAILED":
        # Interrupted by an exception or a signal, not abandoned by routing: carry on.
        state.update(status="RUNNING", failure_reason=None)
    settings = json.loads((workflow_dir(root, workflow_id) / "settings.json").read_text())
    return _run(state, settings, executor, on_event)
