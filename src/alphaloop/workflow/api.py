"""Assemble the parts and run a workflow: `run_workflow` (the design's entry point) and
`resume_workflow`.

This is the one place that picks the default parts — the local process pool (or Dask), the
offline agents, the library strategies plus any user strategies — and hands them to the
`Orchestrator`. Settings a resume needs are kept in the workflow folder (``settings.json``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alphaloop import _sqlite
from alphaloop.agents.development import OptunaDeveloper, VariantProposal
from alphaloop.agents.failure import RuleBasedFailureAnalyst
from alphaloop.agents.research import ResearchSwarm
from alphaloop.agents.trajectory import RuleBasedTrajectoryAdvisor
from alphaloop.backtest.engine import REBALANCE, check_costs
from alphaloop.backtest.strategy import Strategy, library_names, load_strategy
from alphaloop.errors import ConfigError, HomeError, StrategyError
from alphaloop.execution import (
    QUEUE_FILENAME,
    Executor,
    LocalPool,
    TaskQueue,
    TaskState,
    resolve_home,
)
from alphaloop.execution._home import storage_error
from alphaloop.execution._jail import require_kernel
from alphaloop.execution.task_runner import run_task
from alphaloop.workflow._llm_roles import LLMSetup
from alphaloop.workflow.gate import DEFAULT_MIN_TRADES, QualityCriteria, check_min_trades
from alphaloop.workflow.liveness import PROCESS_FILE, process_record, record_process
from alphaloop.workflow.orchestrator import (
    Event,
    Orchestrator,
    Parts,
    WorkflowResult,
    split_bars,
)
from alphaloop.workflow.routing import RoutingEngine
from alphaloop.workflow.significance import (
    DEFAULT_ALPHA,
    DEFAULT_MAX_HOLDOUT_LOOKS,
    check_settings,
)
from alphaloop.workflow.state import StateManager, workflow_dir
from alphaloop.workflow.tracker import ExperimentTracker

__all__ = [
    "SETTINGS_FILE",
    "load_strategies",
    "make_executor",
    "resume_workflow",
    "run_workflow",
    "workflow_alpha",
]

log = logging.getLogger(__name__)

SETTINGS_FILE = "settings.json"
"""The settings a resume needs that the state does not hold (criteria, variants, costs, user
strategies), in the workflow folder."""

MAX_WORKERS = 256
"""Most worker processes `make_executor` starts (more is a typo, not a machine)."""

_START_AGAIN = "restore it from a backup or start the workflow again"


def load_strategies(strategies_dir: str | None) -> dict[str, Strategy]:
    """The library strategies plus every usable ``*.py`` in `strategies_dir`.

    Each file is read, never run (`load_strategy`: the static sandbox rules, the literal
    ``PARAMETERS``, the signature); its code runs only in confined workers, where the
    tool-development phase excludes one that fails at run time. A file that cannot be used (a
    sandbox rule, a malformed ``PARAMETERS``, no ``generate_positions``, a name that clashes
    with a library strategy) is left out with one warning naming it and the reason, once per
    process and file version. `ConfigError` if the folder is missing or nothing usable is left.
    """
    out = {name: load_strategy(name) for name in library_names()}
    if strategies_dir:
        folder = Path(strategies_dir)
        if not folder.is_dir():
            raise ConfigError(
                f"--strategies {strategies_dir}: not a folder; give a folder of strategy .py files"
            )
        # files named _*.py are helpers, not strategies (as `strategies check DIR` skips them)
        for path in sorted(f for f in folder.glob("*.py") if not f.name.startswith("_")):
            try:
                if path.stem in out:
                    raise StrategyError(
                        f"name '{path.stem}' clashes with a library strategy; rename the file"
                    )
                out[path.stem] = load_strategy(path)
            except StrategyError as exc:
                _warn_excluded(path, str(exc))
    if not out:
        raise ConfigError(f"no usable strategy (--strategies {strategies_dir})")
    return out


_WARNED: set[tuple[str, str]] = set()


def _warn_excluded(path: Path, reason: str) -> None:
    """One warning per file and reason in this process (a run reads the folder twice)."""
    if (str(path), reason) not in _WARNED:
        _WARNED.add((str(path), reason))
        log.warning("--strategies: excluded %s: %s", path, reason)


def make_executor(
    backend: str = "local",
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    task_timeout: float | None = None,
) -> Executor:
    """A `LocalPool` of `workers` processes, or a `DaskBackend` on `scheduler`.
    ``task_timeout`` None: derived from measured task times (local), 300 s (Dask).

    The local pool's workers start here, without waiting for them: each is a new interpreter
    that needs about a second (numpy, pandas, numba's kernels) before it serves, and started
    now that second overlaps the caller's own set-up (reading the data and the strategies,
    the tool checks' cache, research, the first proposals) instead of following it. Closing
    the pool before they served ends them at once."""
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"--workers must be between 1 and {MAX_WORKERS}, got {workers}")
    if task_timeout is not None and not task_timeout > 0:
        raise ConfigError(
            f"--task-timeout must be a positive number of seconds, got {task_timeout:g}"
        )
    if backend == "local":
        pool = LocalPool(max_workers=workers, task_timeout=task_timeout)
        pool.start(run_task)
        return pool
    if backend == "dask":
        if not scheduler:
            raise ConfigError("--backend dask needs --scheduler tcp://HOST:PORT")
        from alphaloop.execution.dask_backend import DaskBackend

        return DaskBackend(address=scheduler, task_timeout=task_timeout or 300.0)
    raise ConfigError(f"unknown backend {backend!r}; use local or dask")


def _assemble(
    state: StateManager,
    settings: Mapping[str, Any],
    executor: Executor,
    on_event: Event | None,
    *,
    resuming: bool = False,
    unconfined: bool = False,
) -> Orchestrator:
    home = state.home
    wid = state.state.workflow_id
    strategies = load_strategies(settings.get("strategies_dir"))
    user = [s.name for s in strategies.values() if not s.is_library]
    llm = settings.get("llm")
    if llm:  # code a model writes is not the library's: it runs confined, like a user's
        user.append(f"written by {llm['spec']}")
    if not unconfined:
        require_kernel(user)
    # A resumed workflow that has experiments must find its records: an empty tracker made in
    # place of a lost one would silently drop them (and the holdout looks) from the search.
    tracker = ExperimentTracker(
        home, wid, existing=resuming and state.state.current_experiment_id is not None
    )
    if resuming:
        _check_records(tracker, state)
    queue = _open_queue(workflow_dir(home, wid) / QUEUE_FILENAME) if resuming else TaskQueue(
        workflow_dir(home, wid) / QUEUE_FILENAME
    )
    parts = Parts(
        state=state,
        tracker=tracker,
        queue=queue,
        executor=executor,
        task_fn=run_task,
        swarm=ResearchSwarm(),
        developer=OptunaDeveloper(strategies),
        router=RoutingEngine(state, RuleBasedFailureAnalyst(), RuleBasedTrajectoryAdvisor()),
        criteria=QualityCriteria.coerce(settings["criteria"]),
        n_variants=int(settings.get("n_variants", 8)),
        commission=float(settings.get("commission", 0.001)),
        slippage_bps=float(settings.get("slippage_bps", 0.0)),
        # absent: started before they existed, when no borrow was charged and the engine
        # held a constant weight; resuming such a workflow keeps its model
        borrow_bps=float(settings.get("borrow_bps", 0.0)),
        rebalance=str(settings.get("rebalance", "bar")),
        alpha=float(settings.get("alpha", DEFAULT_ALPHA)),
        max_holdout_looks=int(settings.get("max_holdout_looks", DEFAULT_MAX_HOLDOUT_LOOKS)),
        adjust=bool(settings.get("adjust", True)),
        # a workflow started before the evidence floor existed has none (its records were
        # judged without it)
        min_trades=int(settings.get("min_trades", 0)),
        # without kernel confinement, alphaloop's own code (the library and the refinements
        # it writes) still runs; a user's code only with --unconfined
        unconfined_ok=unconfined or not user,
        llm=_llm_setup(state, llm) if llm else None,
    )
    return Orchestrator(parts, on_event=on_event)


def _llm_setup(state: StateManager, llm: Mapping[str, Any]) -> LLMSetup:
    """The workflow's language model (``settings.json``'s ``llm``): the adapter, its budget
    (continued from the state on a resume) and the record store ``llm.db`` in the workflow's
    folder, stacked by `guard`."""
    from alphaloop.agents.llm import Budget, ExchangeStore, guard, parse_spec

    adapter = parse_spec(llm["spec"], base_url=llm.get("base_url"))
    kept = (state.state.llm or {}).get("budget")
    budget = (Budget.from_dict(kept) if isinstance(kept, dict) else
              Budget(int(llm.get("max_calls", 100)), int(llm.get("max_tokens", 300_000))))
    store = ExchangeStore(state.dir / LLM_DB)
    return LLMSetup(spec=adapter.spec, model=guard(adapter, budget=budget, store=store),
                    budget=budget, store=store)


LLM_DB = "llm.db"
"""The record store of a workflow's language-model exchanges, in its folder."""


def check_llm(spec: str, base_url: str | None = None) -> None:
    """One tiny call (`alphaloop llm check`'s) before a workflow is created: an unreachable
    endpoint, a rejected key or an unknown model is a one-line error naming the fix."""
    from alphaloop.agents.llm import check

    check(spec, base_url=base_url)


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
    borrow_bps: float = 0.0,
    rebalance: str = "change",
    executor: Executor | None = None,
    on_event: Event | None = None,
    unconfined: bool = False,
    alpha: float = DEFAULT_ALPHA,
    max_holdout_looks: int = DEFAULT_MAX_HOLDOUT_LOOKS,
    adjust: bool = True,
    min_trades: int = DEFAULT_MIN_TRADES,
    llm: str | None = None,
    llm_base_url: str | None = None,
    llm_max_calls: int = 100,
    llm_max_tokens: int = 300_000,
    campaign: str | None = None,
) -> WorkflowResult:
    """Run a new workflow to its end and return its result (see `Orchestrator.result`).

    ``campaign``: the id of the campaign (`alphaloop.workflow.campaign`) the workflow belongs
    to, kept in its settings.

    ``llm`` (``PROVIDER:MODEL``, optional): the language-model roles take part (docs/llm.md),
    within ``llm_max_calls`` calls and ``llm_max_tokens`` tokens, at ``llm_base_url`` if
    given; the endpoint is checked with one tiny call before anything is created. Kept with
    the workflow (never a key): `resume_workflow` uses the same model and continues the count.

    ``alpha``: significance level of the holdout test over all looks (`workflow.significance`;
    1 switches it off, unsafe); ``max_holdout_looks``: looks the workflow may take before it
    ends FAILED. ``min_trades``: the evidence floor, trades a candidate needs in-sample and
    on the holdout (with a losing one among them) whatever the gate; a split whose windows are
    too short for that many trades of a daily-bar strategy is refused (`ConfigError`). All
    three are kept with the workflow: `resume_workflow` cannot change them.
    ``adjust=False`` uses a user file's prices as given, ignoring its 'Adj Close' column
    (``--no-adjust``); kept with the workflow too, as are the costs (``commission``,
    ``slippage_bps``, ``borrow_bps``) and the engine's position model (``rebalance``: units
    held, "change", or constant weight, "bar"; `alphaloop.backtest.engine`).

    ``unconfined``: where the kernel cannot confine strategy code, run the user's strategies
    anyway (unsafe; otherwise `ConfinementError` before anything is created). Library code
    and the refinements alphaloop writes from it run either way.

    ``on_event(kind, info)`` is called with ``"phase"``, ``"state"``, ``"decision"`` and
    ``"result"`` events; a ``"result"`` event carries the queue's counts per state and comes
    at most every ``PROGRESS_SECONDS`` (0.1 s) while a batch runs, and once when it ends.

    Raises:
        HomeError: the home folder cannot be written (read-only, full): before the workflow
            exists (nothing is left behind; run again), or later (the message names the
            workflow; ``resume_workflow`` carries on once the disk is fixed).
    """
    criteria = QualityCriteria.coerce(quality_criteria)
    if not 1 <= n_variants <= 256:
        raise ConfigError(f"--variants must be between 1 and 256, got {n_variants}")
    check_settings(alpha, max_holdout_looks)
    check_min_trades(min_trades)
    # one line naming the cost that cannot be right
    check_costs(commission, slippage_bps, borrow_bps, rebalance)
    settings = {
        "criteria": criteria.to_expressions(),
        "n_variants": n_variants,
        "strategies_dir": strategies_dir,
        "commission": commission,
        "slippage_bps": slippage_bps,
        "borrow_bps": borrow_bps,
        "rebalance": rebalance,
        "alpha": alpha,
        "max_holdout_looks": max_holdout_looks,
        "min_trades": min_trades,
        "adjust": adjust,
    }
    if campaign is not None:
        settings["campaign"] = campaign
    if llm is not None:
        if llm_max_calls < 0 or llm_max_tokens < 0:
            raise ConfigError("--llm-max-calls and --llm-max-tokens must be >= 0")
        from alphaloop.agents.llm._spec import split_spec

        split_spec(llm)
        settings["llm"] = {"spec": llm.strip(), "base_url": llm_base_url,
                           "max_calls": llm_max_calls, "max_tokens": llm_max_tokens}
    # fail on bad data, dates or user strategies before creating anything
    split_bars(ticker, timeframe, data_path, start, end, in_sample_fraction, adjust=adjust,
               min_trades=min_trades)
    strategies = load_strategies(strategies_dir)
    if not unconfined:
        require_kernel([s.name for s in strategies.values() if not s.is_library]
                       + ([f"written by {llm}"] if llm is not None else []))
    if llm is not None:
        check_llm(llm, llm_base_url)
    # only now, with every input checked, is the home folder created
    root = resolve_home(None if home is None else str(home))
    try:
        # settings.json is written before the state: a workflow with a state always has it
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
            # which process runs it: `alphaloop status` tells RUNNING from INTERRUPTED
            files={SETTINGS_FILE: json.dumps(settings, indent=1), PROCESS_FILE: process_record()},
        )
    except OSError as exc:
        err = storage_error(exc, root, "run again", elsewhere=True) or HomeError(
            f"cannot create a workflow in home folder {root} ({_why(exc)}); pass --home (or "
            "set ALPHALOOP_HOME) to a folder you can write, then run again"
        )
        raise err from exc
    return _run(state, settings, executor, on_event, unconfined=unconfined)


def _run(
    state: StateManager,
    settings: Mapping[str, Any],
    executor: Executor | None,
    on_event: Event | None,
    *,
    resuming: bool = False,
    unconfined: bool = False,
) -> WorkflowResult:
    """Run the assembled orchestrator; a pool made here (none given) is closed here. A write
    that fails for lack of space or permission becomes a one-line `HomeError` saying that
    ``alphaloop resume`` carries on: every write before it is durable and consistent."""
    own = executor is None
    executor = executor or LocalPool()
    wid = state.state.workflow_id
    orchestrator = None
    try:
        if resuming:  # this process drives it now (a new run recorded itself at creation)
            record_process(state.dir)
        orchestrator = _assemble(
            state, settings, executor, on_event, resuming=resuming, unconfined=unconfined
        )
        if resuming:
            _requeue_lost_tasks(orchestrator)
        return orchestrator.run()
    except (OSError, sqlite3.Error) as exc:
        err = storage_error(exc, state.home, f"`alphaloop resume {wid}` carries on")
        if (err is None and isinstance(exc, OSError) and exc.filename is not None
                and Path(os.fsdecode(exc.filename)).is_relative_to(state.dir)):
            # a workflow file the run needs and cannot rebuild (research_<n>.json and
            # tools.json are regenerated; a lost <exp>_proposals.json is not)
            err = HomeError(
                f"workflow file {exc.filename} cannot be used ({_why(exc)}); resume cannot "
                f"rebuild it: {_START_AGAIN}"
            )
        if err is None:
            raise
        raise err from exc
    finally:
        if orchestrator is not None and orchestrator.p.llm is not None:
            orchestrator.p.llm.store.close()
        if own:
            executor.close()


def resume_workflow(
    workflow_id: str,
    *,
    home: str | Path | None = None,
    executor: Executor | None = None,
    on_event: Event | None = None,
    unconfined: bool = False,
    costs: Mapping[str, object] | None = None,
) -> WorkflowResult:
    """Finish an interrupted workflow (or return the result of a finished one);
    ``unconfined`` as in `run_workflow` (it is not remembered: say it again).

    ``costs`` (``commission``, ``slippage_bps``, ``borrow_bps``, ``rebalance``), when given,
    must be the ones the workflow was started with (`ConfigError` otherwise): its variants are
    compared with one another, so they are all measured alike.

    The home folder is never created here. What each damaged file means:

    - ``queue.db`` missing, emptied or damaged: rebuilt. A damaged file is kept as
      ``queue.db.damaged-<time>``; every task the workflow still needs (each one with a record
      in the tracker, and the current experiment's variants) is queued again and run. Backtests
      are deterministic, so the workflow ends as it would have.
    - ``tracker.db`` (the experiment records, routing actions and holdout looks) or
      ``settings.json`` missing or damaged: `HomeError`; they cannot be rebuilt, so the file
      must be restored or the workflow started again.

    Raises:
        HomeError: a file that cannot be rebuilt is missing or damaged, or the home folder
            cannot be written (resume again once it can).
        ConfigError: no such workflow, or its state file is unreadable.
    """
    root = resolve_home(None if home is None else str(home), create=False)
    state = StateManager.load(workflow_id, root)
    settings = _read_settings(workflow_dir(root, workflow_id))
    _same_costs(workflow_id, settings, costs or {})
    if state.state.status == "FAILED" and state.state.current_phase != "FAILED":
        # Interrupted by an exception or a signal, not abandoned by routing: carry on.
        try:
            state.update(status="RUNNING", failure_reason=None)
        except OSError as exc:
            err = storage_error(exc, root, f"`alphaloop resume {workflow_id}` carries on")
            if err is None:
                raise
            raise err from exc
    return _run(state, settings, executor, on_event, resuming=True, unconfined=unconfined)


_COST_DEFAULTS: dict[str, object] = {
    "commission": 0.001, "slippage_bps": 0.0, "borrow_bps": 0.0, "rebalance": "bar",
}
"""What a workflow without the key in its settings was measured with (the defaults of the
time: before --borrow-bps and --rebalance existed, no borrow and a constant weight)."""


def _same_costs(workflow_id: str, settings: Mapping[str, Any],
                given: Mapping[str, object]) -> None:
    for key, value in given.items():
        if value is None:
            continue
        kept = settings.get(key, _COST_DEFAULTS[key])
        if value != kept:
            flag = "--" + key.replace("_", "-")
            raise ConfigError(
                f"workflow {workflow_id} was started with {flag} {kept}; its costs cannot "
                f"change on resume (its variants would not compare): drop {flag}, or start "
                "a new run"
            )


# --- damaged files ---------------------------------------------------------------------------


def _why(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()


def _read_settings(folder: Path) -> dict[str, Any]:
    """The workflow's ``settings.json``, checked; `HomeError` naming the file if it is
    missing or not what `run_workflow` wrote (nothing else holds the user strategies folder,
    so it cannot be rebuilt)."""
    path = folder / SETTINGS_FILE
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
        problem = _settings_problem(settings)
    except FileNotFoundError:
        problem = "missing"
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        problem = f"unreadable ({first})"
    if problem:
        raise HomeError(
            f"settings file {path} is {problem}; resume cannot rebuild it: {_START_AGAIN}"
        )
    return dict(settings)


def _settings_problem(settings: Any) -> str | None:
    if not isinstance(settings, dict):
        return "not a JSON object"
    criteria = settings.get("criteria")
    if not isinstance(criteria, list) or not all(isinstance(c, str) for c in criteria):
        return "damaged (no list of gate criteria)"
    try:
        QualityCriteria.coerce(criteria)
    except ConfigError as exc:
        return f"damaged (criteria: {exc})"
    n = settings.get("n_variants", 8)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 256:
        return "damaged (n_variants is not a count from 1 to 256)"
    folder = settings.get("strategies_dir")
    if folder is not None and not isinstance(folder, str):
        return "damaged (strategies_dir is not a folder name)"
    if settings.get("rebalance", "bar") not in REBALANCE:
        return "damaged (rebalance is not 'change' or 'bar')"
    for key in ("commission", "slippage_bps", "borrow_bps"):
        value = settings.get(key, 0.0)
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value) or value < 0):
            return f"damaged ({key} is not a number >= 0)"
    alpha = settings.get("alpha", DEFAULT_ALPHA)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha <= 1:
        return "damaged (alpha is not a probability in (0, 1])"
    looks = settings.get("max_holdout_looks", DEFAULT_MAX_HOLDOUT_LOOKS)
    if isinstance(looks, bool) or not isinstance(looks, int) or looks < 1:
        return "damaged (max_holdout_looks is not a count >= 1)"
    if "min_trades" in settings:  # absent: started before the evidence floor existed
        trades = settings["min_trades"]
        if isinstance(trades, bool) or not isinstance(trades, int) or trades < 1:
            return "damaged (min_trades is not a count >= 1)"
    if not isinstance(settings.get("adjust", True), bool):
        return "damaged (adjust is not true or false)"
    llm = settings.get("llm")
    if llm is not None and not (
            isinstance(llm, dict) and isinstance(llm.get("spec"), str)
            and isinstance(llm.get("base_url"), str | None)
            and all(isinstance(llm.get(k, 0), int) and not isinstance(llm.get(k, 0), bool)
                    and llm.get(k, 0) >= 0 for k in ("max_calls", "max_tokens"))):
        return "damaged (llm is not a model spec with its caps)"
    return None


def workflow_alpha(workflow_id: str, home: str | Path | None = None) -> float:
    """The significance level a workflow was started with (the CLI warns on every run and
    resume of one with the test off)."""
    root = resolve_home(None if home is None else str(home), create=False)
    return float(_read_settings(workflow_dir(root, workflow_id)).get("alpha", DEFAULT_ALPHA))


def _check_records(tracker: ExperimentTracker, state: StateManager) -> None:
    """`HomeError` if the tracker holds less than the state says was recorded (a copy older
    than the state, e.g. restored from a backup): the search would go on without them."""
    s = state.state
    counts = tracker.counts()
    known = {e.experiment_id for e in tracker.experiments()}
    short = None
    if s.current_experiment_id is not None and s.current_experiment_id not in known:
        short = f"no experiment {s.current_experiment_id}"
    elif counts["in_sample"] < s.variants_tried:
        short = f"{counts['in_sample']} in-sample records, the state counts {s.variants_tried}"
    elif counts["holdout"] < s.holdout_looks:
        short = f"{counts['holdout']} holdout records, the state counts {s.holdout_looks}"
    if short:
        tracker.close()
        raise HomeError(
            f"experiment records {tracker.db_path} are older than the workflow ({short}); "
            f"resume cannot rebuild them: restore a newer copy or start the workflow again"
        )


_QUEUE_TABLES = ("tasks",)


def _open_queue(path: Path) -> TaskQueue:
    """The workflow's queue for a resume. A file that SQLite cannot read (truncated,
    overwritten) or that holds no queue is moved aside as ``queue.db.damaged-<time>`` with its
    ``-wal``/``-shm`` companions, and a new, empty queue takes its place; missing tasks are
    queued again by :func:`_requeue_lost_tasks`."""
    problem = _sqlite.file_problem(path, _QUEUE_TABLES) if path.exists() else None
    if problem is not None and problem != "empty":
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside = path.with_name(f"{path.name}.damaged-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{path}{suffix}")
            if src.exists():
                os.replace(src, Path(f"{aside}{suffix}"))
        log.warning("%s of workflow %s is %s: kept as %s; rebuilding it", path.name,
                    path.parent.name, problem, aside.name)
    return TaskQueue(path)


def _requeue_lost_tasks(orch: Orchestrator) -> None:
    """Queue again, and run, every task the workflow still reads that its queue lacks: the
    task of each record in the tracker (the best variant's result gives the deflated Sharpe
    ratio) and of each variant of the current experiment. None are missing unless the queue
    was lost or damaged; then they are rebuilt from the records and the proposals, and as
    backtests are deterministic, the results are the ones the lost queue held."""
    p = orch.p
    wanted: dict[str, Any] = {}
    for r in p.tracker.records(sample=None):
        task = orch._task(r.experiment_id, r.variant_id, orch._proposal(r),
                          holdout=r.sample == "holdout")
        if task.task_id == r.task_id:
            wanted[task.task_id] = task
    exp_id = p.state.state.current_experiment_id
    proposals = orch.dir / f"{exp_id}_proposals.json"
    if exp_id is not None and proposals.exists():
        for i, d in enumerate(json.loads(proposals.read_text(encoding="utf-8"))):
            task = orch._task(exp_id, f"v{i:02d}", VariantProposal(**d))
            wanted.setdefault(task.task_id, task)
    lost, unfinished = [], 0
    for task_id, task in wanted.items():
        try:
            unfinished += p.queue.state(task_id) in (TaskState.QUEUED, TaskState.IN_PROGRESS)
        except KeyError:
            lost.append(task)
    if lost:
        log.warning("%s of workflow %s lacks %d task(s): queued again", p.queue.path.name,
                    p.state.state.workflow_id, len(lost))
        p.queue.enqueue_batch(lost, exist_ok=True)
    if lost or unfinished:  # (a rebuild interrupted before its tasks ran left some queued)
        orch._drain()
