"""``alphaloop run``, ``resume``, ``status`` and ``show``: the research loop from the terminal.

Exit codes: 0 a strategy passed, 1 the workflow ended without one, 2 bad input or a home folder
that cannot be used (read-only, full, a damaged file: the one-line message says what to do),
130 interrupted by Ctrl-C (SIGINT) and 143 by SIGTERM (state saved; ``alphaloop resume
WORKFLOW_ID`` carries on). ``status`` and ``show`` only read: they never create the home folder.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from alphaloop.cli import app, err_console
from alphaloop.cli._limits import (
    BorrowOpt,
    NoAdjustOpt,
    RebalanceOpt,
    UnconfinedOpt,
    check_confinement,
)
from alphaloop.cli._run_output import Display, final_status, llm_line, safe, summary
from alphaloop.errors import AlphaloopError
from alphaloop.workflow.explain import GATE_SCORE_DEFINITION, plain_decision
from alphaloop.workflow.explain import status_text as _status_text

HomeOpt = Annotated[
    str | None,
    typer.Option("--home", help="Run folder (default $ALPHALOOP_HOME or ./.alphaloop)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]
TaskTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--task-timeout",
        help="Wall seconds one backtest may run (default: derived from the measured task "
        "times, max(10 s, 50 x p95), at most 300 s).",
    ),
]
err = err_console


_safe = safe


def _out() -> Console:
    """Standard output; wide when piped so ids and lessons are not cut at 80 columns."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def _summary(console: Console, result: dict[str, Any], home: str) -> None:
    summary(console, result, home)


def _llm_of_state(s: Any) -> dict[str, Any] | None:
    """The ``llm`` object of a workflow from its state (None offline)."""
    kept = s.llm
    if not kept:
        return None
    provider, _, model = str(kept.get("spec", "")).partition(":")
    b = kept.get("budget") or {}
    return {"provider": provider, "model": model, "calls": b.get("calls", 0),
            "prompt_tokens": b.get("prompt_tokens", 0),
            "completion_tokens": b.get("completion_tokens", 0),
            "replayed_calls": b.get("replayed_calls", 0),
            "fallbacks": kept.get("fallbacks", 0),
            "rejected_strategies": kept.get("rejected_strategies", 0)}


_ROLES = {"You are the research agent.": "researcher",
          "You are the strategy writer.": "strategy writer",
          "You are the bug fixer.": "bug fixer",
          "You are the failure-analysis agent.": "failure analyst",
          "You are the trajectory-analysis agent.": "trajectory analyst"}


def _print_exchanges(console: Console, path: Any) -> None:
    """Every exchange in the workflow's record store, oldest first, under the step that
    asked it: the role, the request's last message, the reply and what became of it."""
    from alphaloop.agents.llm import ExchangeStore

    if not path.exists():
        console.print("no language-model exchanges (the workflow ran without --llm)")
        return
    with ExchangeStore(path) as store:
        exchanges = store.exchanges()
    step = None
    for x in exchanges:
        if x.step != step:
            step = x.step
            console.print(f"=== {_safe(step or 'step not recorded')}", markup=False,
                          highlight=False)
        system = next((m["content"] for m in x.messages if m["role"] == "system"), "")
        role = next((r for k, r in _ROLES.items() if k in system), "model")
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(x.created))
        head = f"--- exchange {x.id}, {role}, {x.spec}, {when} UTC"
        if x.reply is not None:
            head += (f", {x.reply.prompt_tokens} + {x.reply.completion_tokens} tokens, "
                     f"{x.reply.latency_s:.2f} s")
        console.print(head, markup=False, highlight=False)
        console.print(f"asked ({len(x.messages)} messages; the last):", markup=False,
                      highlight=False)
        console.print(_safe(x.messages[-1]["content"]), markup=False, highlight=False)
        if x.reply is not None:
            console.print("replied:", markup=False, highlight=False)
            console.print(_safe(x.reply.text), markup=False, highlight=False)
        else:
            console.print(f"failed: {_safe(x.error)}", markup=False, highlight=False)
        if x.outcome:
            console.print(f"outcome: {_safe(x.outcome)}", markup=False, highlight=False)


def _looks(tracker: Any, workflow_id: str, root: Any) -> dict[tuple[str, str], Any]:
    """Each holdout record's look, judged (`workflow.significance`), by (variant, sample)."""
    from alphaloop.workflow.api import workflow_alpha
    from alphaloop.workflow.significance import holdout_looks

    try:
        alpha = workflow_alpha(workflow_id, root)
    except AlphaloopError:  # no usable settings.json: the tree without the verdicts
        return {}
    return {(h.variant, "holdout"): h
            for h in holdout_looks(tracker.records(sample="holdout"), alpha)}


def _winner_metrics(metrics: Any) -> str:
    """The holdout numbers printed next to the winner."""
    shown = []
    for key in ("sharpe_ratio", "total_return", "max_drawdown", "num_trades"):
        value = metrics.get(key)
        text = "n/a" if value is None else str(value) if isinstance(value, int) else (
            f"{value:.4f}")
        shown.append(f"{key.removesuffix('_ratio')} {text}")
    return "holdout: " + ", ".join(shown)


def _finish(result: dict[str, Any], as_json: bool, home: str) -> None:
    if as_json:
        typer.echo(json.dumps(result, default=str))
    else:
        _summary(_out(), result, home)
    raise typer.Exit(0 if result["status"] == "SUCCESS" else 1)


class _Terminated(KeyboardInterrupt):
    """SIGTERM arrived while no executor was handling signals: unwinds like Ctrl-C (the
    state stays RUNNING at its last durable step) and exits 143."""


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """While the workflow runs, SIGTERM stops it the way Ctrl-C does instead of killing the
    process on the spot (the local pool takes both signals over while it runs a batch)."""

    def on_sigterm(signum: int, _frame: Any) -> None:
        raise _Terminated(signum)

    try:
        previous = signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread (tests): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Watched:
    """The executor, passing every call through, remembering which signal interrupted a batch
    (the exit code is 128 + that signal)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.signal: int | None = None

    def run(self, queue: Any, fn: Any, **kw: Any) -> Any:
        summary = self.inner.run(queue, fn, **kw)
        if getattr(summary, "interrupted", False) and summary.signal:
            self.signal = int(summary.signal)
        return summary

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _drive(
    fn: Any, executor: Any, workers: int, root: str, as_json: bool, **kw: Any
) -> None:
    """Run ``fn`` (run_workflow or resume_workflow) with the live display, close the
    executor, print the result and exit 0/1; Ctrl-C exits 130 and SIGTERM 143, after saying
    how to carry on."""
    # a terminal gets the live panel; anything else one plain line per phase and decision
    display = Display(err, workers, lines=not err.is_terminal)
    watched = _Watched(executor)
    try:
        with _sigterm_unwinds():
            if as_json or not err.is_terminal:
                result = _run_to_end(fn, display, watched, root, kw)
            else:
                # drawn at once, then redrawn 4 times a second whatever the workflow is doing
                with Live(display, console=err, refresh_per_second=4, auto_refresh=True):
                    result = _run_to_end(fn, display, watched, root, kw)
    except KeyboardInterrupt as exc:
        signum = watched.signal or (signal.SIGTERM if isinstance(exc, _Terminated) else
                                    signal.SIGINT)
        wid = _workflow_id(display, root, kw)
        hint = (f"state saved; `alphaloop resume {wid}` carries on" if wid else
                "before the workflow was created: nothing to resume, run it again")
        err.print(f"interrupted by {signal.Signals(signum).name}: {hint}",
                  markup=False, highlight=False, soft_wrap=True)
        sys.exit(128 + signum)
    finally:
        executor.close()
    _finish(result, as_json, root)


def _run_to_end(fn: Any, display: Display, executor: Any, root: str,
                kw: dict[str, Any]) -> dict[str, Any]:
    """``fn``'s result, with the last frame (or progress line) set to the final status, or to
    the interruption (an error says itself, in one line, elsewhere)."""
    try:
        result = fn(on_event=display, executor=executor, home=root, **kw)
    except KeyboardInterrupt:
        _last_frame(display, root, None, kw)
        raise
    _last_frame(display, root, result, kw)
    return result


def _workflow_id(display: Display, root: str, kw: dict[str, Any]) -> str | None:
    """The id of the workflow this process runs (None before one was created)."""
    from alphaloop.workflow.liveness import workflow_of_process

    wid = kw.get("workflow_id") or getattr(display.state, "workflow_id", None)
    if wid is None:  # interrupted before the workflow's first step: it recorded this process
        with contextlib.suppress(OSError):
            wid = workflow_of_process(Path(root))
    return wid


def _last_frame(display: Display, root: str, result: dict[str, Any] | None,
                kw: dict[str, Any]) -> None:
    """The panel's last frame (or last progress line): the final state and status, or that
    the run was interrupted."""
    from alphaloop.workflow.state import StateManager

    wid = result["workflow_id"] if result else _workflow_id(display, root, kw)
    state = None
    if wid is not None:
        with contextlib.suppress(Exception):  # a damaged home is reported by the caller
            state = StateManager.load(wid, root).state
    if result is not None:
        display.finish(state, final_status(result))
    elif state is not None:  # still RUNNING on disk: this process stops driving it
        status = "INTERRUPTED" if state.status == "RUNNING" else state.status
        display.finish(state, _status_text(status, state.current_phase))


@app.command()
def run(
    ticker: Annotated[
        str | None, typer.Option("--ticker", "-t", help="Ticker to research.")
    ] = None,
    tickers: Annotated[
        str | None,
        typer.Option("--tickers", help="A campaign: one workflow per ticker (A,B,C), one pool, "
                     "a deflated Sharpe over all their trials (docs/campaigns.md)."),
    ] = None,
    universe: Annotated[
        str | None,
        typer.Option("--universe", help="A campaign over the tickers in FILE, one per line."),
    ] = None,
    campaign_max_variants: Annotated[
        int | None,
        typer.Option("--campaign-max-variants", help="Stop a campaign after this many "
                     "variants in all (resumable)."),
    ] = None,
    campaign_max_minutes: Annotated[
        float | None,
        typer.Option("--campaign-max-minutes", help="Stop a campaign after this many minutes "
                     "(resumable)."),
    ] = None,
    directive: Annotated[
        str, typer.Option(help="Research directive, e.g. 'trend following'.")
    ] = "",
    gate: Annotated[
        list[str] | None,
        typer.Option(
            "--gate",
            help="Criterion like 'sharpe_ratio>=1.0' (repeatable); replaces the default "
            "gate (sharpe_ratio>=1, max_drawdown<=0.2, win_rate>=0.5, num_trades>=10).",
        ),
    ] = None,
    timeframe: Annotated[str, typer.Option(help="Bar size: 1h, 4h, 1d, 1w, 1mo.")] = "1d",
    variants: Annotated[int, typer.Option(help="Variants per iteration.")] = 8,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    backend: Annotated[str, typer.Option(help="local or dask.")] = "local",
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler address.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 0,
    data: Annotated[str | None, typer.Option("--data", help="CSV/Parquet file or folder.")] = None,
    strategies: Annotated[
        str | None, typer.Option("--strategies", help="Folder of your own strategy .py files.")
    ] = None,
    start: Annotated[str | None, typer.Option(help="First date.")] = None,
    end: Annotated[str | None, typer.Option(help="Last date.")] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
    task_timeout: TaskTimeoutOpt = None,
    unconfined: UnconfinedOpt = False,
    commission: Annotated[
        float,
        typer.Option(help="Commission, fraction of traded notional per side (0.001 = 0.1%)."),
    ] = 0.001,
    no_adjust: NoAdjustOpt = False,
    slippage_bps: Annotated[
        float, typer.Option("--slippage-bps", help="Slippage per side, basis points.")
    ] = 0.0,
    borrow_bps: BorrowOpt = 0.0,
    rebalance: RebalanceOpt = "change",
    alpha: Annotated[
        float,
        typer.Option(
            "--alpha",
            help="Significance level of the holdout test over all holdout looks: SUCCESS "
            "needs the holdout's probabilistic Sharpe ratio >= 1 - alpha/K at look K. "
            "1 switches the test off (unsafe: noise passes a loose gate).",
        ),
    ] = 0.05,
    max_holdout_looks: Annotated[
        int,
        typer.Option(
            "--max-holdout-looks",
            help="Holdout looks the workflow may take; once spent it ends FAILED.",
        ),
    ] = 10,
    min_trades: Annotated[
        int,
        typer.Option(
            "--min-trades",
            help="Evidence floor, whatever --gate says: a candidate needs at least this many "
            "trades in-sample and on the holdout, and a losing one among them (for a profit "
            "factor). Windows too short for that many trades are refused.",
        ),
    ] = 10,
    llm: Annotated[
        str | None,
        typer.Option(
            "--llm",
            help="PROVIDER:MODEL (openai:gpt-4o-mini, anthropic:claude-sonnet-4-5, "
            "ollama:llama3.1): language-model agents research, write new strategies and "
            "advise routing, each falling back to its offline agent (docs/llm.md). The key "
            "comes from OPENAI_API_KEY / ANTHROPIC_API_KEY and is never stored.",
        ),
    ] = None,
    llm_base_url: Annotated[
        str | None,
        typer.Option("--llm-base-url", help="Endpoint address (default: OPENAI_BASE_URL / "
                     "ANTHROPIC_BASE_URL, else the provider's)."),
    ] = None,
    llm_max_calls: Annotated[
        int, typer.Option("--llm-max-calls", help="Most model calls in the workflow.")
    ] = 100,
    llm_max_tokens: Annotated[
        int,
        typer.Option("--llm-max-tokens", help="Most prompt + completion tokens in the "
                     "workflow."),
    ] = 300_000,
) -> None:
    """Search for a strategy on TICKER until one passes the gate or the limits say stop;
    with --tickers or --universe, a campaign: one workflow per ticker through one pool."""
    from alphaloop.backtest.engine import check_costs
    from alphaloop.execution import resolve_home
    from alphaloop.workflow.api import make_executor, run_workflow
    from alphaloop.workflow.gate import QualityCriteria, check_min_trades
    from alphaloop.workflow.significance import ALPHA_OFF_WARNING, check_settings

    # --gate replaces the default gate as a whole, so any default criterion can be dropped;
    # the evidence floor (--min-trades) stays.
    criteria = QualityCriteria.from_expressions(gate) if gate else QualityCriteria.default()
    from alphaloop.cli._campaign import campaign_tickers

    universe_list = campaign_tickers(ticker, tickers, universe, campaign_max_variants,
                                      campaign_max_minutes)
    check_settings(alpha, max_holdout_looks)
    check_min_trades(min_trades)
    check_costs(commission, slippage_bps, borrow_bps, rebalance)  # before any worker starts
    if alpha >= 1.0:
        err.print(ALPHA_OFF_WARNING, markup=False, highlight=False, soft_wrap=True)
    # run_workflow creates the home folder once every input is checked (bad input leaves none)
    root = str(resolve_home(home, create=False))
    executor = make_executor(
        backend, workers=workers, scheduler=scheduler, task_timeout=task_timeout
    )
    if unconfined:
        check_confinement(True, [])  # the warning, on every run
    if universe_list is not None:
        from alphaloop.cli._campaign import run_campaign_command

        try:
            run_campaign_command(
                universe_list, home=root, workers=workers, executor=executor,
                as_json=as_json, max_variants=campaign_max_variants,
                max_minutes=campaign_max_minutes, research_directive=directive,
                quality_criteria=criteria, timeframe=timeframe, n_variants=variants,
                seed=seed, data_path=data, start=start, end=end, strategies_dir=strategies,
                unconfined=unconfined, alpha=alpha, max_holdout_looks=max_holdout_looks,
                min_trades=min_trades, commission=commission, slippage_bps=slippage_bps,
                borrow_bps=borrow_bps, rebalance=rebalance, adjust=not no_adjust,
                **({"llm": llm, "llm_base_url": llm_base_url, "llm_max_calls": llm_max_calls,
                    "llm_max_tokens": llm_max_tokens} if llm is not None else {}),
            )
        finally:
            executor.close()
        return
    _drive(
        run_workflow,
        executor,
        getattr(executor, "max_workers", workers or 1),
        root,
        as_json,
        ticker=ticker,
        research_directive=directive,
        quality_criteria=criteria,
        timeframe=timeframe,
        n_variants=variants,
        seed=seed,
        data_path=data,
        start=start,
        end=end,
        strategies_dir=strategies,
        unconfined=unconfined,
        alpha=alpha,
        max_holdout_looks=max_holdout_looks,
        min_trades=min_trades,
        commission=commission,
        slippage_bps=slippage_bps,
        borrow_bps=borrow_bps,
        rebalance=rebalance,
        adjust=not no_adjust,
        **({"llm": llm, "llm_base_url": llm_base_url, "llm_max_calls": llm_max_calls,
            "llm_max_tokens": llm_max_tokens} if llm is not None else {}),
    )


@app.command()
def resume(
    workflow_id: Annotated[str, typer.Argument(help="Workflow (or campaign) to finish.")],
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    backend: Annotated[str, typer.Option(help="local or dask.")] = "local",
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler address.")] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
    task_timeout: TaskTimeoutOpt = None,
    unconfined: UnconfinedOpt = False,
    commission: Annotated[
        float | None, typer.Option(help="Must be the workflow's own (kept with it).")
    ] = None,
    slippage_bps: Annotated[
        float | None,
        typer.Option("--slippage-bps", help="Must be the workflow's own (kept with it)."),
    ] = None,
    borrow_bps: Annotated[
        float | None,
        typer.Option("--borrow-bps", help="Must be the workflow's own (kept with it)."),
    ] = None,
    rebalance: Annotated[
        str | None, typer.Option(help="Must be the workflow's own (kept with it).")
    ] = None,
    campaign_max_variants: Annotated[
        int | None, typer.Option("--campaign-max-variants", help="A campaign's new variant "
                                 "limit (default: its own).")
    ] = None,
    campaign_max_minutes: Annotated[
        float | None, typer.Option("--campaign-max-minutes", help="A campaign's new "
                                   "wall-time limit (default: its own).")
    ] = None,
) -> None:
    """Finish an interrupted workflow and print the same result as `run`. Its gate, --alpha,
    --max-holdout-looks, --min-trades and costs are the ones it was started with: a spent
    holdout stays spent, and every variant is measured alike (a cost option given here must
    match the workflow's)."""
    from alphaloop.execution import resolve_home
    from alphaloop.workflow.api import make_executor, resume_workflow, workflow_alpha
    from alphaloop.workflow.significance import ALPHA_OFF_WARNING

    root = str(resolve_home(home, create=False))  # resuming never creates a home folder
    from alphaloop.workflow.campaign import is_campaign_id, read_campaign

    if is_campaign_id(workflow_id):
        from alphaloop.cli._campaign import run_campaign_command

        read_campaign(workflow_id, root)  # one line if there is no such campaign
        executor = make_executor(backend, workers=workers, scheduler=scheduler,
                                 task_timeout=task_timeout)
        try:
            run_campaign_command([], home=root, workers=workers, executor=executor,
                                 as_json=as_json, resume_id=workflow_id,
                                 max_variants=campaign_max_variants,
                                 max_minutes=campaign_max_minutes, unconfined=unconfined)
        finally:
            executor.close()
        return
    with contextlib.suppress(AlphaloopError):  # a missing workflow or file: resume says which
        if workflow_alpha(workflow_id, root) >= 1.0:
            err.print(ALPHA_OFF_WARNING, markup=False, highlight=False, soft_wrap=True)
    executor = make_executor(
        backend, workers=workers, scheduler=scheduler, task_timeout=task_timeout
    )
    if unconfined:
        check_confinement(True, [])  # the warning, on every run
    _drive(
        resume_workflow,
        executor,
        getattr(executor, "max_workers", 1),
        root,
        as_json,
        workflow_id=workflow_id,
        unconfined=unconfined,
        costs={"commission": commission, "slippage_bps": slippage_bps,
               "borrow_bps": borrow_bps, "rebalance": rebalance},
    )


@app.command()
def status(
    workflow_id: Annotated[str | None, typer.Argument(help="One workflow (default all).")] = None,
    home: HomeOpt = None,
) -> None:
    """Status of one workflow, or of every workflow in the home folder (which is only read:
    a missing one means no workflows)."""
    from alphaloop.execution import resolve_home
    from alphaloop.workflow.liveness import effective_status
    from alphaloop.workflow.state import StateManager, list_workflows, workflow_dir

    root = resolve_home(home, create=False)
    from alphaloop.workflow._campaign_ids import is_campaign_id

    if workflow_id and is_campaign_id(workflow_id):
        from alphaloop.cli._campaign import print_campaign
        from alphaloop.workflow.campaign import campaign_result

        print_campaign(campaign_result(workflow_id, root), _out())
        return
    if workflow_id:
        states = [StateManager.load(workflow_id, root).state]
    elif not root.is_dir():
        _out().print(f"no workflows in {_safe(root)} (the folder does not exist)", markup=False,
                     highlight=False)
        return
    else:
        states = list_workflows(root)
    if not states:
        _out().print(f"no workflows in {_safe(root)}", markup=False, highlight=False)
        return
    table = Table("workflow", "ticker", "status", "iterations (r/s/t)", "variants",
                  "best gate score", "updated")
    interrupted = []
    for s in states:
        best = (s.best_strategy or {}).get("gate_score")
        now = effective_status(s.status, workflow_dir(root, s.workflow_id))
        if now == "INTERRUPTED" or (now == "FAILED" and s.current_phase != "FAILED"):
            interrupted.append(s.workflow_id)
        table.add_row(
            escape(_safe(s.workflow_id)),
            escape(_safe(s.ticker)),
            escape(_status_text(now, s.current_phase)),
            f"{s.research_iteration}/{s.strategy_iteration}/{s.total_iterations}",
            str(s.variants_tried),
            "-" if best is None else f"{best:.3f}",
            s.updated_at.isoformat(timespec="seconds"),
        )
    out = _out()
    if not workflow_id:
        from alphaloop.cli._campaign import status_lines

        for line in status_lines(root):
            out.print(f"campaign {line}", markup=False, highlight=False)
    out.print(table)
    out.print(GATE_SCORE_DEFINITION, markup=False, highlight=False)
    for wid in interrupted:
        out.print(f"`alphaloop resume {_safe(wid)}` carries on", markup=False, highlight=False)


@app.command()
def show(
    workflow_id: Annotated[str, typer.Argument(help="Workflow to show.")],
    home: HomeOpt = None,
    llm: Annotated[
        bool,
        typer.Option("--llm", help="Print each language-model exchange (request, reply, "
                     "outcome) instead of the tree."),
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the whole workflow (state, settings, gate, "
                     "experiments, variants, records, holdout looks, result, lessons) as one "
                     "JSON document."),
    ] = False,
) -> None:
    """The experiment tree: each record's gate result and the action taken; the winner is
    marked, with its holdout metrics."""
    from rich.tree import Tree

    from alphaloop.execution import resolve_home
    from alphaloop.execution._home import storage_error
    from alphaloop.workflow.liveness import effective_status
    from alphaloop.workflow.state import StateManager
    from alphaloop.workflow.tracker import TRACKER_DB, ExperimentTracker

    root = resolve_home(home, create=False)  # showing never creates a home folder
    from alphaloop.workflow._campaign_ids import is_campaign_id

    if is_campaign_id(workflow_id):
        from alphaloop.workflow.campaign import campaign_result

        result = campaign_result(workflow_id, root)
        if as_json:
            typer.echo(json.dumps(result, default=str, indent=1))
        else:
            from alphaloop.cli._campaign import print_campaign

            print_campaign(result, _out())
        return
    if as_json:
        from alphaloop.workflow.document import workflow_document

        typer.echo(json.dumps(workflow_document(workflow_id, home), allow_nan=False,
                              indent=1))
        return
    st = StateManager.load(workflow_id, root)
    s = st.state
    best = s.best_strategy or {}
    winner = (best.get("experiment_id"), best.get("variant_id")) if best.get("code") else None
    if llm:
        from alphaloop.workflow.api import LLM_DB

        _print_exchanges(_out(), st.dir / LLM_DB)
        return
    summary = _llm_of_state(s)
    if summary is not None:
        _out().print(llm_line(summary), markup=False, highlight=False)
    tree = Tree(
        f"[bold]{escape(_safe(workflow_id))}[/] {escape(_safe(s.ticker))} "
        f"{escape(_safe(s.timeframe))} — "
        f"{escape(_status_text(effective_status(s.status, st.dir), s.current_phase))}"
    )
    if s.current_experiment_id is None and not (st.dir / TRACKER_DB).exists():
        _out().print(tree)  # no experiment yet: nothing recorded, nothing lost
        return
    try:
        tracker = ExperimentTracker(root, workflow_id, readonly=True)
    except sqlite3.Error as exc:  # reading a WAL file needs room for its -shm companion
        raise storage_error(exc, root, "show it again") or exc from None
    with tracker:
        looks = _looks(tracker, workflow_id, root)
        for node in tracker.tree():
            e = node.experiment
            branch = tree.add(
                f"{escape(_safe(e.experiment_id))} (research {e.research_iteration}, strategy "
                f"{e.strategy_iteration}) {escape(_safe(e.description))} -> "
                f"[bold]{escape(_safe(_decision_words(e.action, e.action_details)))}[/]"
            )
            for v in node.variants:
                for r in v.records:
                    verdict = (
                        "[red]error[/]"
                        if r.error
                        else "[green]PASS[/]"
                        if r.gate_passed
                        else "[yellow]fail[/]"
                    )
                    look = looks.get((f"{r.experiment_id}/{r.variant_id}", r.sample))
                    if look is not None:
                        psr = "n/a" if look.psr is None else f"{look.psr:.3f}"
                        tag = "" if look.passed or not look.gate_passed else (
                            "[yellow]below the evidence floor[/] " if not look.evidence_passed
                            else "[yellow]not significant[/] ")
                        verdict += (f" {tag}(look {look.look}: PSR {psr}, needs "
                                    f"{look.threshold:.3f})")
                    score = "-" if r.gate_score is None else f"{r.gate_score:.3f}"
                    params = ", ".join(f"{k}={v}" for k, v in r.parameters.items())
                    star = ""
                    if (e.experiment_id, v.variant_id) == winner:
                        star = " [bold green]★ winner[/]"
                        if r.sample == "holdout":
                            star += " " + escape(_winner_metrics(r.metrics))
                    leaf = branch.add(
                        f"{escape(_safe(v.variant_id))} {escape(f'[{r.sample}]')} "
                        f"{escape(_safe(f'{r.strategy_name}({params})'))} {verdict} "
                        f"score {score}{star}"
                    )
                    for why in (r.failed_criteria or ())[:4]:
                        leaf.add(f"[dim]{escape(_safe(why))}[/]")
                    if r.error:
                        leaf.add(f"[dim]{escape(_safe(r.error))}[/]")
    _out().print(tree)
    _out().print(GATE_SCORE_DEFINITION, markup=False, highlight=False)


def _decision_words(action: str | None, details: dict[str, Any] | None) -> str:
    """An experiment's routing action and its reason in words (``pending`` before one)."""
    if action is None:
        return "pending"
    return plain_decision({"action": action, "reason": (details or {}).get("reason", ""),
                           "details": details or {}})

