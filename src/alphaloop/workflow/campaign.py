"""Campaigns: one workflow per ticker of a universe, sharing one pool, judged together.

A campaign is a file, ``<home>/campaigns/<campaign_id>.json`` (its tickers, the options of
`run_workflow` its workflows share, its limits), written before any workflow exists; each
workflow keeps the campaign id in its own settings, so membership is durable from the moment
a workflow is. The workflows run side by side, each orchestrator in a thread of its own
(their work is waiting on the pool, proposing and writing records), all draining their own
durable queues through one executor (`alphaloop.execution._shared`): no ticker waits for
another to finish.

The campaign's result is read back from the workflows (`campaign_result`): a row per ticker,
and the best variant of each deflated by the Sharpe ratios of **every** variant the campaign
tried, on every ticker — that is how many were tried. Strategy families that passed on more
than one ticker are named.

Limits: ``max_variants`` (variants tried in all) and ``max_seconds`` (wall time) stop the
campaign as Ctrl-C stops a run: every unfinished workflow stays resumable, and
``resume_campaign`` goes on (with new limits, if given).
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from alphaloop._sqlite import read_only
from alphaloop.errors import AlphaloopError, ConfigError
from alphaloop.execution import LocalPool, resolve_home
from alphaloop.execution._base import Executor
from alphaloop.execution._shared import QueueMux, SharedExecutor, drive
from alphaloop.execution.task_runner import run_task
from alphaloop.workflow._campaign_ids import (
    CAMPAIGNS_DIR,
    is_campaign_id,
    list_campaigns,
)
from alphaloop.workflow._dsr import deflated_sharpe_from_moments

logger = logging.getLogger(__name__)

MAX_TICKERS = 500

Event = Callable[[str, str, dict[str, Any]], None]
"""``on_event(ticker, kind, info)``: a workflow's events (`run_workflow`), with its ticker."""


def campaign_path(home: Path, campaign_id: str) -> Path:
    return home / CAMPAIGNS_DIR / f"{campaign_id}.json"


def parse_universe(tickers: str | None, universe: str | None) -> list[str]:
    """The campaign's tickers from ``--tickers A,B,C`` or ``--universe FILE`` (one per line;
    blank lines and ``#`` comments ignored), upper-cased, in order, each once."""
    if bool(tickers) == bool(universe):
        raise ConfigError("give the campaign's tickers with --tickers A,B,C or --universe FILE "
                          "(one of them)")
    if universe:
        try:
            text = Path(universe).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or str(exc)
            raise ConfigError(f"cannot read universe file {universe} ({why.lower()}); give a "
                              "text file with one ticker per line") from None
        raw = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    else:
        raw = [t.strip() for t in str(tickers).split(",")]
    out: list[str] = []
    for t in raw:
        if t and t.upper() not in out:
            out.append(t.upper())
    if not out:
        raise ConfigError(f"{'--universe ' + universe if universe else '--tickers'} names no "
                          "ticker; give at least one")
    if len(out) > MAX_TICKERS:
        raise ConfigError(f"a campaign takes at most {MAX_TICKERS} tickers, got {len(out)}")
    return out


def _write_json(path: Path, doc: Mapping[str, Any]) -> None:
    """Atomically (write, fsync, rename, fsync the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_campaign(campaign_id: str, home: str | Path | None = None) -> dict[str, Any]:
    root = resolve_home(None if home is None else str(home), create=False)
    path = campaign_path(root, campaign_id)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no campaign {campaign_id} in home folder {root}; `alphaloop status` "
                          "lists the campaigns there") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"campaign file {path} cannot be read ({exc}); the workflows it "
                          "ran are still in `alphaloop status`") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("tickers"), list):
        raise ConfigError(f"campaign file {path} is damaged (no ticker list)")
    doc["home"] = str(root)
    return doc


def members(home: Path, campaign_id: str) -> dict[str, str]:
    """``ticker -> workflow id`` of the campaign's workflows that exist (the newest one per
    ticker)."""
    out: dict[str, str] = {}
    folder = home / "workflows"
    if not folder.is_dir():
        return out
    for d in sorted(folder.iterdir()):
        try:
            settings = json.loads((d / "settings.json").read_text(encoding="utf-8"))
            state = json.loads((d / "state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(settings, dict) and settings.get("campaign") == campaign_id:
            out[str(state.get("ticker", "")).upper()] = d.name
    return out


class _Limits:
    """The campaign's ``stop_when``: wall time and variants tried in all (read from the
    members' states at most twice a second)."""

    def __init__(self, home: Path, campaign_id: str, max_variants: int | None,
                 max_seconds: float | None) -> None:
        self.home, self.cid = home, campaign_id
        self.max_variants, self.max_seconds = max_variants, max_seconds
        self.t0 = time.monotonic()
        self._next = 0.0
        self.hit: str | None = None

    def variants(self) -> int:
        total = 0
        for wid in members(self.home, self.cid).values():
            try:
                state = json.loads((self.home / "workflows" / wid / "state.json").read_text())
                total += int(state.get("variants_tried", 0))
            except (OSError, ValueError):
                continue
        return total

    def __call__(self) -> bool:
        now = time.monotonic()
        if self.max_seconds is not None and now - self.t0 >= self.max_seconds:
            self.hit = f"wall-time limit of {self.max_seconds:g} s reached"
            return True
        if self.max_variants is not None and now >= self._next:
            self._next = now + 0.5
            n = self.variants()
            if n >= self.max_variants:
                self.hit = f"variant limit reached ({n} of {self.max_variants} tried)"
                return True
        return False


def _check_limits(max_variants: int | None, max_seconds: float | None) -> None:
    if max_variants is not None and max_variants < 1:
        raise ConfigError(f"--campaign-max-variants must be at least 1, got {max_variants}")
    if max_seconds is not None and not max_seconds > 0:
        raise ConfigError(f"--campaign-max-minutes must be positive, got {max_seconds / 60:g}")


def run_campaign(
    tickers: Sequence[str],
    *,
    home: str | Path | None = None,
    workers: int | None = None,
    executor: Executor | None = None,
    max_variants: int | None = None,
    max_seconds: float | None = None,
    on_event: Event | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Run one workflow per ticker (``options``: `run_workflow`'s keywords, shared by all)
    through one pool, and return `campaign_result`. Every ticker's data is checked before
    anything is created."""
    from alphaloop.workflow.gate import QualityCriteria
    from alphaloop.workflow.orchestrator import split_bars

    _check_limits(max_variants, max_seconds)
    options = dict(options)
    if options.get("quality_criteria") is not None:  # kept as text in the campaign file
        options["quality_criteria"] = QualityCriteria.coerce(
            options["quality_criteria"]).to_expressions()
    tickers = [t.upper() for t in tickers]
    if not tickers:
        raise ConfigError("a campaign needs at least one ticker")
    # a pool of our own starts now: its workers import (about a second) while every ticker's
    # data is checked and the workflows research, as `make_executor` starts a run's
    pool = None if executor is not None else LocalPool(max_workers=workers)
    try:
        if pool is not None:
            pool.start(run_task)
        for t in tickers:  # one line naming the ticker whose data cannot be used
            split_bars(t, options.get("timeframe", "1d"), options.get("data_path"),
                       options.get("start"), options.get("end"),
                       options.get("in_sample_fraction", 0.7),
                       adjust=options.get("adjust", True),
                       min_trades=options.get("min_trades", 0))
        root = resolve_home(None if home is None else str(home))
        cid = "campaign_" + datetime.now(UTC).strftime("%Y%m%d_%H%M%S_") + secrets.token_hex(3)
        _write_json(campaign_path(root, cid), {
            "campaign_id": cid,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "tickers": tickers,
            "options": options,
            "limits": {"max_variants": max_variants, "max_seconds": max_seconds},
        })
    except BaseException:
        if pool is not None:
            pool.close()
        raise
    return _drive(root, cid, tickers, {}, options, workers, executor, max_variants,
                  max_seconds, on_event, own_pool=pool)


def resume_campaign(
    campaign_id: str,
    *,
    home: str | Path | None = None,
    workers: int | None = None,
    executor: Executor | None = None,
    max_variants: int | None = None,
    max_seconds: float | None = None,
    on_event: Event | None = None,
    unconfined: bool = False,
) -> dict[str, Any]:
    """Finish every unfinished workflow of a campaign (and start those of tickers whose
    workflow was never created), through one pool; limits as given now (None: the
    campaign's own)."""
    doc = read_campaign(campaign_id, home)
    root = Path(doc["home"])
    limits = doc.get("limits") or {}
    max_variants = limits.get("max_variants") if max_variants is None else max_variants
    max_seconds = limits.get("max_seconds") if max_seconds is None else max_seconds
    _check_limits(max_variants, max_seconds)
    options = dict(doc.get("options") or {})
    options["unconfined"] = unconfined or bool(options.get("unconfined"))
    return _drive(root, campaign_id, list(doc["tickers"]), members(root, campaign_id), options,
                  workers, executor, max_variants, max_seconds, on_event)


def _drive(root: Path, cid: str, tickers: list[str], existing: Mapping[str, str],
           options: Mapping[str, Any], workers: int | None, executor: Executor | None,
           max_variants: int | None, max_seconds: float | None,
           on_event: Event | None, own_pool: LocalPool | None = None) -> dict[str, Any]:
    from alphaloop.workflow.api import resume_workflow, run_workflow

    own = executor is None
    pool = executor or own_pool or LocalPool(max_workers=workers)
    n_workers = int(getattr(pool, "max_workers", workers or 1) or 1)
    mux = QueueMux(len(tickers))
    errors: dict[str, str] = {}
    t0 = time.monotonic()

    def member(ticker: str) -> None:
        def event(kind: str, info: dict[str, Any]) -> None:
            if on_event is not None:
                on_event(ticker, kind, info)

        shared = SharedExecutor(mux, ticker, n_workers)
        try:
            wid = existing.get(ticker)
            if wid is not None:
                resume_workflow(wid, home=root, executor=shared, on_event=event,
                                unconfined=bool(options.get("unconfined")))
            else:
                run_workflow(ticker, home=root, executor=shared, on_event=event,
                             campaign=cid, **options)
        except KeyboardInterrupt:
            pass  # its state says where it stopped: resume carries on
        except AlphaloopError as exc:
            errors[ticker] = str(exc)
        except Exception as exc:  # a bug in one workflow must not take the others down
            logger.exception("campaign %s: the workflow of %s failed", cid, ticker)
            errors[ticker] = f"{type(exc).__name__}: {exc}"
        finally:
            mux.thread_done()

    limits = _Limits(root, cid, max_variants, max_seconds)
    threads = [threading.Thread(target=member, args=(t,), name=f"campaign-{t}", daemon=True)
               for t in tickers]
    for th in threads:
        th.start()
    summary = None
    signum: int | None = None
    try:
        summary = drive(pool, mux, run_task, stop_when=limits)
        signum = summary.signal if summary.interrupted else None
    except KeyboardInterrupt:  # an executor that lets Ctrl-C through: stopped all the same
        signum = int(signal.SIGINT)
    finally:
        if summary is None:  # the pool itself failed: the members must not wait forever
            mux.halt(None)
        for th in threads:
            th.join()
        mux.close_all()
        if own:
            pool.close()
    result = campaign_result(cid, root)
    for row in result["rows"]:  # every member thread has ended: none of them runs any more
        if row["status"] == "RUNNING":
            row["status"] = "INTERRUPTED"
    result["elapsed_seconds"] = round(time.monotonic() - t0, 3)
    result["errors"] = errors
    if signum is not None:
        result["status"] = "INTERRUPTED"
        result["reason"] = f"interrupted by signal {signum}"
    elif limits.hit is not None:
        result["status"] = "STOPPED"
        result["reason"] = limits.hit
    return result


# -- the result ---------------------------------------------------------------------------------


def _trials_and_best(root: Path, wid: str) -> tuple[list[float], float, dict[str, Any] | None]:
    """A workflow's in-sample trials (annualised Sharpe, undefined = 0), its bars per year,
    and its best variant's stored result (moments) or None."""
    from alphaloop.data import bars_per_year
    from alphaloop.workflow.document import read_workflow
    from alphaloop.workflow.orchestrator import split_bars

    w = read_workflow(wid, str(root))
    s = w["state"]
    trials = []
    for node in w["tree"]:
        for v in node.variants:
            for r in v.records:
                if r.sample == "in_sample" and r.metrics:
                    x = r.metrics.get("sharpe_ratio")
                    trials.append(float(x) if x is not None and math.isfinite(x) else 0.0)
    try:
        bars, _ = split_bars(s.ticker, s.timeframe, s.data_path, s.start, s.end,
                             s.in_sample_fraction, adjust=bool(w["settings"].get("adjust", True)))
        bpy = float(bars_per_year(s.timeframe, bars.index))
    except AlphaloopError:
        bpy = float(bars_per_year(s.timeframe))
    best = s.best_strategy or {}
    result = None
    qpath = root / "workflows" / wid / "queue.db"
    if best and qpath.exists():  # read only: `status` and `show` never write the home
        with closing(read_only(qpath)) as conn:
            row = conn.execute(
                "SELECT r.result FROM tasks t JOIN results r USING (seq) WHERE t.task_id = ?"
                " AND t.state = 'completed'",
                (f"{best.get('experiment_id')}_{best.get('variant_id')}",)).fetchone()
        result = json.loads(row[0]) if row and row[0] else None
    return trials, bpy, result


def campaign_result(campaign_id: str, home: str | Path | None = None) -> dict[str, Any]:
    """The campaign read back: a row per ticker (status, best strategy, in-sample and holdout
    metrics, the workflow's own deflated Sharpe and the campaign's), the trials counted,
    and the strategy families that passed on more than one ticker."""
    from alphaloop.workflow.document import workflow_document
    from alphaloop.workflow.liveness import effective_status

    doc = read_campaign(campaign_id, home)
    root = Path(doc["home"])
    ids = members(root, campaign_id)
    per: dict[str, tuple[list[float], float, dict[str, Any] | None]] = {}
    for t, wid in ids.items():
        try:
            per[t] = _trials_and_best(root, wid)
        except AlphaloopError as exc:
            logger.warning("campaign %s: %s cannot be read (%s)", campaign_id, wid, exc)
    per_bar = [x / math.sqrt(bpy) for trials, bpy, _ in per.values() for x in trials]
    n_trials = len(per_bar)
    var = float(np.var(per_bar, ddof=1)) if n_trials > 1 else 0.0
    rows, passed_by_family = [], {}
    for t in doc["tickers"]:
        wid = ids.get(t)
        if wid is None:
            rows.append({"ticker": t, "workflow_id": None, "status": "NOT STARTED"})
            continue
        wdoc = workflow_document(wid, str(root))
        win = wdoc["result"]["winner"] or {}
        status = effective_status(wdoc["state"]["status"], root / "workflows" / wid)
        res = per.get(t, ([], 252.0, None))[2]
        cdsr = None
        if res and res.get("moments") and n_trials:
            sharpe, n_obs, skew, kurt = res["moments"]
            try:
                cdsr = deflated_sharpe_from_moments(sharpe, int(n_obs), skew, kurt, n_trials,
                                                    var)
            except ValueError:
                cdsr = None
        family = (win.get("strategy_name") or "").split("+")[0] or None
        ok = wdoc["result"]["status"] == "SUCCESS"
        if ok and family:
            passed_by_family.setdefault(family, []).append(t)
        rows.append({
            "ticker": t,
            "workflow_id": wid,
            "status": "SUCCESS" if ok else status,
            "reason": wdoc["result"].get("reason"),
            "best_strategy": win.get("strategy_name"),
            "family": family,
            "parameters": win.get("parameters"),
            "in_sample_metrics": win.get("in_sample_metrics"),
            "holdout_metrics": win.get("holdout_metrics"),
            "variants_tried": wdoc["state"].get("variants_tried", 0),
            "campaign_deflated_sharpe": cdsr,
        })
    done = all(r["status"] in ("SUCCESS", "FAILED") for r in rows)
    return {
        "campaign_id": campaign_id,
        "status": "COMPLETED" if done else "INTERRUPTED",
        "reason": None,
        "tickers": list(doc["tickers"]),
        "limits": doc.get("limits"),
        "rows": rows,
        "campaign_trials": n_trials,
        "passed": sum(r["status"] == "SUCCESS" for r in rows),
        "families_passed_on_several": {f: ts for f, ts in passed_by_family.items()
                                       if len(ts) > 1},
    }


__all__ = ["campaign_result", "is_campaign_id", "list_campaigns", "members", "parse_universe",
           "read_campaign", "resume_campaign", "run_campaign"]
