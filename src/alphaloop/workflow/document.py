"""A workflow read back from its home, never written: ``show --json``, ``export``, the report
and the dashboard all read it through here.

`workflow_document` is the whole workflow as one JSON-safe document (state, settings, gate,
experiments with their variants and records, holdout looks, the result and the lessons);
`export_source` is the winner's source with its tuned parameters as the ``PARAMETERS``
defaults (rewritten from the syntax tree, never run) under a comment saying where it came
from and the ``alphaloop backtest`` commands that reproduce its in-sample and holdout numbers.
"""

from __future__ import annotations

import json
import math
import shlex
import sqlite3
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from alphaloop.errors import ConfigError, clean_message

_SECRET_WORDS = ("key", "token", "secret", "password")


def plain(obj: Any) -> Any:
    """``obj`` as plain JSON values: NaN/inf become None, numpy scalars numbers, dates ISO."""
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [plain(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    item = getattr(obj, "item", None)  # a numpy scalar
    if callable(item):
        return plain(item())
    return str(obj)


def _no_secrets(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings without any value whose name says it is a credential (none is stored;
    this keeps it so)."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if any(word in str(key).lower() for word in _SECRET_WORDS):
            continue
        out[key] = _no_secrets(value) if isinstance(value, Mapping) else value
    return out


def read_workflow(workflow_id: str, home: str | None) -> dict[str, Any]:
    """State, settings, experiment tree and holdout looks of a workflow, opened read-only."""
    from alphaloop.execution import resolve_home
    from alphaloop.execution._home import storage_error
    from alphaloop.workflow.api import _read_settings
    from alphaloop.workflow.significance import holdout_looks
    from alphaloop.workflow.state import StateManager
    from alphaloop.workflow.tracker import TRACKER_DB, ExperimentTracker

    root = resolve_home(home, create=False)  # reading never creates a home folder
    st = StateManager.load(workflow_id, root)
    settings = _read_settings(st.dir)
    tree: list[Any] = []
    holdout: list[Any] = []
    if (st.dir / TRACKER_DB).exists():
        try:
            tracker = ExperimentTracker(root, workflow_id, readonly=True)
        except sqlite3.Error as exc:
            raise storage_error(exc, root, "try again") or exc from None
        with tracker:
            tree = tracker.tree()
            holdout = tracker.records(sample="holdout")
    looks = holdout_looks(holdout, float(settings.get("alpha", 0.05)),
                          int(settings.get("min_trades", 0)))
    return {"state": st.state, "settings": settings, "tree": tree, "looks": looks}


def winner(w: Mapping[str, Any]) -> dict[str, Any] | None:
    """The best variant: its in-sample record, its holdout record (None if it never reached
    the holdout) and its holdout look."""
    best = w["state"].best_strategy or {}
    if not best.get("code"):
        return None
    exp, vid = best.get("experiment_id"), best.get("variant_id")
    records = [r for n in w["tree"] if n.experiment.experiment_id == exp
               for v in n.variants if v.variant_id == vid for r in v.records]
    ins = next((r for r in records if r.sample == "in_sample"), None)
    out = next((r for r in records if r.sample == "holdout"), None)
    look = next((h for h in w["looks"] if h.variant == f"{exp}/{vid}"), None)
    return {"best": best, "in_sample": ins, "holdout": out, "look": look}


def bar_date(iso: str | None) -> str | None:
    """A bar's ISO time as a CLI date: the date alone for a daily bar (midnight)."""
    if iso is None:
        return None
    return iso[:10] if iso.endswith("T00:00:00") else iso


def workflow_document(workflow_id: str, home: str | None) -> dict[str, Any]:
    """The whole workflow as one document that ``json.dumps(allow_nan=False)`` accepts."""
    w = read_workflow(workflow_id, home)
    s, settings = w["state"], w["settings"]
    win = winner(w)
    key = None if win is None else (win["best"].get("experiment_id"),
                                    win["best"].get("variant_id"))
    experiments = []
    for node in w["tree"]:
        e = node.experiment
        experiments.append({
            **e.model_dump(mode="json"),
            "variants": [{
                "variant_id": v.variant_id,
                "parent_variant_id": v.parent_variant_id,
                "winner": (e.experiment_id, v.variant_id) == key,
                "records": [r.model_dump(mode="json") for r in v.records],
            } for v in node.variants],
        })
    result: dict[str, Any] = {
        "status": {"COMPLETED": "SUCCESS", "FAILED": "FAILED"}.get(s.status, s.status),
        "reason": s.failure_reason,
        "winner": None,
    }
    if win is not None:
        ins, out, look = win["in_sample"], win["holdout"], win["look"]
        result["winner"] = {
            "experiment_id": key[0] if key else None,
            "variant_id": key[1] if key else None,
            "strategy_name": win["best"].get("name"),
            "parameters": win["best"].get("parameters"),
            "gate_score": win["best"].get("gate_score"),
            "data_fingerprint": None if ins is None else ins.data_fingerprint,
            "in_sample": None if ins is None else [bar_date(ins.start), bar_date(ins.end)],
            "holdout": None if out is None else [bar_date(out.eval_start), bar_date(out.end)],
            "in_sample_metrics": None if ins is None else dict(ins.metrics),
            "holdout_metrics": None if out is None else dict(out.metrics),
            "significance": None if look is None else look.to_dict(),
        }
    doc = {
        "workflow_id": s.workflow_id,
        "state": s.model_dump(mode="json"),
        "settings": _no_secrets(settings),
        "gate": {
            "criteria": list(settings.get("criteria", [])),
            "min_trades": settings.get("min_trades"),
            "alpha": settings.get("alpha"),
            "max_holdout_looks": settings.get("max_holdout_looks"),
        },
        "experiments": experiments,
        "holdout_looks": [h.to_dict() for h in w["looks"]],
        "result": result,
        "lessons": list(s.lessons_learned),
    }
    return plain(doc)


# --- export ----------------------------------------------------------------------------------


def _tuned(raw: Mapping[str, Any], params: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``PARAMETERS`` (``raw``) with each tuned value as its default; a range is widened to
    hold a value the search scaled beyond it (a lookback in bars of another size)."""
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in raw.items()}
    for pname, value in params.items():
        spec = out.get(pname)
        if not isinstance(spec, dict):
            raise ConfigError(f"strategy {name!r} has no parameter {pname!r} to set; "
                              "its record and its source disagree")
        if "choices" not in spec and isinstance(value, int | float) and not isinstance(
                value, bool):
            if isinstance(spec.get("default"), float) and isinstance(value, int):
                value = float(value)
            spec["low"], spec["high"] = min(spec["low"], value), max(spec["high"], value)
            step = spec.get("step")
            if step and abs((value - spec["low"]) / step - round((value - spec["low"]) / step)
                            ) > 1e-9:
                del spec["step"]
        spec["default"] = value
    return out


def _line(text: object) -> str:
    return clean_message(text, limit=None)  # one line: a file's text cannot end the comment


def backtest_command(file: str, ins: Any, start: str | None, end: str | None,
             warmup: str | None, adjust: bool) -> str:
    args = ["alphaloop", "backtest", file, "--ticker", ins.ticker, "--timeframe", ins.timeframe]
    if ins.data_path:
        args += ["--data", ins.data_path]
    if warmup:
        args += ["--warmup-from", warmup]
    args += ["--start", start or "", "--end", end or "",
             "--commission", repr(ins.commission), "--slippage-bps", repr(ins.slippage_bps),
             "--borrow-bps", repr(ins.borrow_bps), "--rebalance", ins.rebalance]
    if not adjust:
        args.append("--no-adjust")
    return " ".join(shlex.quote(a) for a in args)


def reproduce_commands(file: str, ins: Any, out: Any, adjust: bool) -> dict[str, str | None]:
    """The ``alphaloop backtest`` commands that reproduce a variant's in-sample record ``ins``
    and its holdout record ``out`` (None: not run) from the exported ``file``."""
    return {
        "in_sample": backtest_command(file, ins, bar_date(ins.start), bar_date(ins.end), None,
                                      adjust),
        "holdout": None if out is None else backtest_command(
            file, out, bar_date(out.eval_start), bar_date(out.end), bar_date(out.start), adjust),
    }


def _metrics_lines(title: str, metrics: Mapping[str, Any] | None) -> list[str]:
    if not metrics:
        return [f"{title}: not run"]
    shown = ", ".join(f"{k}={v!r}" for k, v in metrics.items())
    return [f"{title}: {shown}"]


def export_source(workflow_id: str, home: str | None, file: str | None) -> str:
    """The winner's source, tuned parameters as defaults, under its provenance."""
    from alphaloop.backtest._source import inspect_source, with_parameters

    w = read_workflow(workflow_id, home)
    win = winner(w)
    if win is None or win["in_sample"] is None:
        raise ConfigError(f"workflow {workflow_id} has no best strategy to export "
                          f"(status {w['state'].status})")
    best, ins, out, look = win["best"], win["in_sample"], win["holdout"], win["look"]
    name = str(best.get("name") or "strategy")
    code = str(best["code"])
    raw = inspect_source(code, name).raw_parameters
    source = with_parameters(code, name, _tuned(raw, best.get("parameters") or {}, name))
    settings, s = w["settings"], w["state"]
    adjust = bool(settings.get("adjust", True))
    target = file or f"{name.replace('+', '_')}.py"
    status = {"COMPLETED": "SUCCESS"}.get(s.status, s.status)
    header = [
        f"Exported by `alphaloop export {workflow_id}`: the best strategy of the workflow.",
        f"workflow: {workflow_id} ({status})   variant: {best.get('experiment_id')}/"
        f"{best.get('variant_id')}   strategy: {name}",
        f"parameters (set as the PARAMETERS defaults): {json.dumps(best.get('parameters'))}",
        f"market: {ins.ticker} {ins.timeframe}   data: {ins.data_path or 'embedded sample'}   "
        f"adjust: {'yes' if adjust else 'no (--no-adjust)'}",
        f"data fingerprint (in-sample bars): {ins.data_fingerprint}",
        f"in-sample: {bar_date(ins.start)} .. {bar_date(ins.end)}",
        ("holdout: not run" if out is None else
         f"holdout: {bar_date(out.eval_start)} .. {bar_date(out.end)} (indicators warmed up from "
         f"{bar_date(out.start)}; data fingerprint {out.data_fingerprint})"),
        f"costs: commission={ins.commission!r} slippage_bps={ins.slippage_bps!r} "
        f"borrow_bps={ins.borrow_bps!r} rebalance={ins.rebalance}",
        f"gate: {'; '.join(settings.get('criteria', []))}   min_trades: "
        f"{settings.get('min_trades')}   alpha: {settings.get('alpha')}",
        f"gate score (in-sample): {best.get('gate_score')}",
        *_metrics_lines("in-sample metrics", dict(ins.metrics)),
        *_metrics_lines("holdout metrics", None if out is None else dict(out.metrics)),
    ]
    header.append("deflated_sharpe is the workflow's (in-sample: deflated over its trials; "
                  "holdout: the PSR); `backtest` prints every other metric")
    if look is not None:
        header.append(f"holdout look {look.look}: PSR {look.psr} (needed {look.threshold}), "
                      f"{look.verdict}")
    commands = reproduce_commands(target, ins, out, adjust)
    header += ["reproduce the in-sample numbers:", "  " + commands["in_sample"]]
    if commands["holdout"] is not None:
        header += ["reproduce the holdout numbers (indicators warm up on the in-sample bars):",
                   "  " + commands["holdout"]]
    comment = "".join(f"# {_line(h)}\n".replace("#  \n", "#\n") for h in header)
    return comment + "\n" + source


__all__ = ["backtest_command", "bar_date", "export_source", "plain", "read_workflow",
           "reproduce_commands", "winner", "workflow_document"]
