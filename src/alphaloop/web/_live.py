"""What the workflow page shows, read from the home as the workflow runs: a summary (phase,
counters, queue, workers, best so far, decisions) and one page of records at a time.

Everything comes from ``state.json`` (replaced atomically by the orchestrator) and the
workflow's ``tracker.db`` and ``queue.db``, read with read-only SQL (:mod:`._db`); a database
not there yet reads as empty, a locked one is retried and then reported as busy.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from alphaloop.web import _db
from alphaloop.web._home import Home
from alphaloop.workflow import explain
from alphaloop.workflow.document import plain
from alphaloop.workflow.liveness import effective_status
from alphaloop.workflow.state import WorkflowState

TRACKER_DB = "tracker.db"
QUEUE_DB = "queue.db"
MAX_LIMIT = 200
SORTS = {
    "new": "seq DESC",
    "old": "seq ASC",
    "score": "gate_score IS NULL, gate_score DESC, seq DESC",
}
SHOWN_METRICS = ("sharpe_ratio", "max_drawdown", "win_rate", "num_trades", "profit_factor")
_RECENT_EXPERIMENTS = 20


def _state(home: Home, wid: str) -> tuple[WorkflowState | None, str]:
    """The state and the status a user should read: INTERRUPTED for a RUNNING workflow whose
    process is gone (`workflow.liveness`)."""
    s, folder = home.state(wid), home.folder(wid)
    if s is None or folder is None:
        return None, ""
    return s, effective_status(s.status, folder)


def workflow_row(home: Home, wid: str) -> dict[str, Any] | None:
    """One line of the workflow list."""
    s, status = _state(home, wid)
    if s is None:
        return None
    best = s.best_strategy or {}
    return plain({
        "workflow_id": wid,
        "status": status,
        "status_text": explain.status_text(status, s.current_phase),
        "phase": s.current_phase,
        "phase_plain": explain.plain_phase(s.current_phase),
        "ticker": s.ticker,
        "timeframe": s.timeframe,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "best_name": best.get("name"),
        "best_score": best.get("gate_score"),
    })


def workflow_rows(home: Home) -> list[dict[str, Any]]:
    """The workflow list, newest first."""
    rows = [r for r in (workflow_row(home, w) for w in home.workflow_ids()) if r is not None]
    return sorted(rows, key=lambda r: (r["created_at"] or "", r["workflow_id"]), reverse=True)


def _queue(home: Home, wid: str, busy_budget: float) -> dict[str, int] | None:
    path = home.file(wid, QUEUE_DB)
    if path is None:
        return None

    def counts(conn: sqlite3.Connection) -> dict[str, int]:
        rows = conn.execute("SELECT state, COUNT(*) FROM tasks GROUP BY state").fetchall()
        return {str(state): int(n) for state, n in rows}

    try:
        found = _db.read(path, counts, budget=busy_budget)
    except sqlite3.DatabaseError:
        return None  # not a queue (yet): nothing to count
    return {k: found.get(k, 0) for k in ("queued", "in_progress", "completed", "failed")}


def _tracker(home: Home, wid: str, busy_budget: float) -> dict[str, Any]:
    path = home.file(wid, TRACKER_DB)
    empty: dict[str, Any] = {"in_sample": 0, "holdout": 0, "total": 0, "last_seq": 0,
                             "experiments": []}
    if path is None:
        return empty

    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        out = dict(empty)
        for sample, n, last in conn.execute(
                "SELECT sample, COUNT(*), MAX(seq) FROM records GROUP BY sample"):
            out[str(sample)] = int(n)
            out["last_seq"] = max(out["last_seq"], int(last or 0))
        out["total"] = out["in_sample"] + out["holdout"]
        out["experiments"] = conn.execute(
            "SELECT e.experiment_id, e.research_iteration, e.strategy_iteration, "
            "e.description, a.action, a.details, a.decided_at, "
            "(SELECT COUNT(*) FROM records r WHERE r.experiment_id = e.experiment_id) "
            "FROM experiments e LEFT JOIN actions a USING (experiment_id) "
            "ORDER BY e.seq DESC LIMIT ?", (_RECENT_EXPERIMENTS,)).fetchall()
        return out

    try:
        found = _db.read(path, read, budget=busy_budget)
    except sqlite3.DatabaseError:
        return empty  # created but no tables yet
    found["experiments"] = [_experiment(row) for row in found["experiments"]]
    return found


def _experiment(row: tuple[Any, ...]) -> dict[str, Any]:
    exp_id, research, strategy, description, action, details, decided, n = row
    try:
        info = json.loads(details) if details else {}
    except ValueError:
        info = {}
    return {
        "experiment_id": exp_id, "research_iteration": research,
        "strategy_iteration": strategy, "description": description, "records": n,
        "action": action, "decided_at": decided,
        "decision": None if action is None else explain.plain_decision(
            {"action": action, "reason": info.get("reason", ""), "details": info}),
    }


def summary(home: Home, wid: str, *, busy_budget: float = 3.0) -> dict[str, Any] | None:
    """Everything the workflow page follows, as plain JSON values; None if ``wid`` is not a
    workflow of the home. :class:`._db.Busy` if a database stays locked."""
    s, status = _state(home, wid)
    if s is None:
        return None
    queue = _queue(home, wid, busy_budget)
    records = _tracker(home, wid, busy_budget)
    best = s.best_strategy or {}
    running = queue["in_progress"] if queue else 0
    return plain({
        "workflow_id": wid,
        "status": status,
        "status_text": explain.status_text(status, s.current_phase),
        "failure_reason": s.failure_reason and explain.plain_reason(s.failure_reason),
        "phase": s.current_phase,
        "phase_plain": explain.plain_phase(s.current_phase),
        "ticker": s.ticker,
        "timeframe": s.timeframe,
        "directive": s.research_directive,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "revision": s.revision,
        "counters": {
            "strategy": [s.strategy_iteration, s.max_strategy_iterations],
            "research": [s.research_iteration, s.max_research_iterations],
            "total": [s.total_iterations, s.max_total_iterations],
        },
        "variants_tried": s.variants_tried,
        "holdout_looks": s.holdout_looks,
        "queue": queue,
        "workers": {"busy": min(running, s.max_parallel_workers),
                    "max": s.max_parallel_workers},
        "best": None if not best else {
            "name": best.get("name"),
            "parameters": best.get("parameters"),
            "gate_score": best.get("gate_score"),
            "experiment_id": best.get("experiment_id"),
            "variant_id": best.get("variant_id"),
            "metrics": s.best_metrics,
        },
        "gate_score_definition": explain.GATE_SCORE_DEFINITION,
        "criteria": sorted(f"{k} {v}" for k, v in s.quality_criteria.items()),
        "records": {k: records[k] for k in ("in_sample", "holdout", "total", "last_seq")},
        "experiments": records["experiments"],
        "lessons": [explain.plain_lesson(x) for x in s.lessons_learned[-5:]],
        "settings": home.settings(wid),
    })


def records_page(home: Home, wid: str, offset: int, limit: int, sort: str = "new",
                 sample: str | None = None, *, busy_budget: float = 3.0
                 ) -> dict[str, Any] | None:
    """Records ``offset .. offset + limit`` (``limit`` at most :data:`MAX_LIMIT`) in ``sort``
    order, with the total; never the whole table. None if ``wid`` is not a workflow."""
    if home.state(wid) is None:
        return None
    page: dict[str, Any] = {"offset": offset, "limit": limit, "sort": sort, "sample": sample,
                            "total": 0, "rows": []}
    path = home.file(wid, TRACKER_DB)
    if path is None:
        return page
    where, args = ("WHERE sample = ?", [sample]) if sample else ("", [])

    def read(conn: sqlite3.Connection) -> tuple[int, list[tuple[Any, ...]]]:
        total = conn.execute(f"SELECT COUNT(*) FROM records {where}", args).fetchone()[0]
        # order the small columns first, then fetch the bodies of one page only
        rows = conn.execute(
            "SELECT seq, sample, gate_passed, gate_score, body FROM records WHERE seq IN "
            f"(SELECT seq FROM records {where} ORDER BY {SORTS[sort]} LIMIT ? OFFSET ?) "
            f"ORDER BY {SORTS[sort]}", [*args, limit, offset]).fetchall()
        return int(total), rows

    try:
        page["total"], rows = _db.read(path, read, budget=busy_budget)
    except sqlite3.DatabaseError:
        return page
    page["rows"] = [_record(*row) for row in rows]
    return plain(page)


def _clip(text: object, n: int) -> str | None:
    if text is None:
        return None
    s = str(text)
    return s if len(s) <= n else s[: n - 1] + "…"


def _record(seq: int, sample: str, passed: int, score: float | None, body: str
            ) -> dict[str, Any]:
    try:
        r = json.loads(body)
    except ValueError:
        r = {}
    metrics = r.get("metrics") or {}
    params = r.get("parameters") or {}
    return {
        "seq": seq,
        "experiment_id": r.get("experiment_id"),
        "variant_id": r.get("variant_id"),
        "sample": sample,
        "strategy": _clip(r.get("strategy_name"), 120),
        "parameters": _clip(", ".join(f"{k}={v}" for k, v in params.items()), 200),
        "gate_passed": bool(passed),
        "gate_score": score,
        "metrics": {k: metrics.get(k) for k in SHOWN_METRICS},
        "failed": [_clip(explain.plain_criterion(str(f)), 160)
                   for f in dict.fromkeys(r.get("failed_criteria") or [])][:4],
        "error": _clip(r.get("error"), 200),
        "created_at": r.get("created_at"),
    }


__all__ = ["MAX_LIMIT", "SHOWN_METRICS", "SORTS", "records_page", "summary", "workflow_rows"]
