"""Campaigns in the CLI: ``run --tickers/--universe``, and what ``status``, ``show`` and
``resume`` say about a campaign id (`alphaloop.workflow.campaign` does the work)."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alphaloop.errors import ConfigError
from alphaloop.workflow.explain import DEFLATED_SHARPE_IN_SAMPLE, plain_phase

_err = Console(stderr=True)


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


class _Lines:
    """One plain stderr line per workflow phase, prefixed with its ticker."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.last: dict[str, str] = {}

    def __call__(self, ticker: str, kind: str, info: dict[str, Any]) -> None:
        if self.quiet or kind != "phase":
            return
        phase = str(info.get("phase"))
        if self.last.get(ticker) != phase:
            self.last[ticker] = phase
            _err.print(f"{ticker}: {plain_phase(phase)}", markup=False, highlight=False)


def print_campaign(result: dict[str, Any], console: Console) -> None:
    """The campaign table, its deflated Sharpe over every trial, and what passed where."""
    status = result["status"]
    head = f"campaign {result['campaign_id']}: {status}"
    if result.get("reason"):
        head += f" ({result['reason']})"
    console.print(head, markup=False, highlight=False)
    table = Table("ticker", "status", "best strategy", "in-sample Sharpe", "holdout Sharpe",
                  "variants", "campaign DSR")
    for r in result["rows"]:
        ins, out = r.get("in_sample_metrics") or {}, r.get("holdout_metrics") or {}
        table.add_row(r["ticker"], r["status"], escape(str(r.get("best_strategy") or "-")),
                      _fmt(ins.get("sharpe_ratio")), _fmt(out.get("sharpe_ratio")),
                      _fmt(r.get("variants_tried")), _fmt(r.get("campaign_deflated_sharpe")))
    console.print(table)
    console.print(
        f"{result['passed']} of {len(result['rows'])} tickers passed. campaign DSR: "
        f"{DEFLATED_SHARPE_IN_SAMPLE.definition}; the trials here are all "
        f"{result['campaign_trials']} variants the campaign tried, on every ticker",
        markup=False, highlight=False)
    several = result.get("families_passed_on_several") or {}
    for family, tickers in several.items():
        console.print(f"passed on several tickers: {family} ({', '.join(tickers)})",
                      markup=False, highlight=False)
    for t, why in (result.get("errors") or {}).items():
        console.print(f"{t}: {why}", markup=False, highlight=False)
    if status in ("INTERRUPTED", "STOPPED"):
        console.print(f"`alphaloop resume {result['campaign_id']}` finishes its workflows",
                      markup=False, highlight=False)


def run_campaign_command(tickers: list[str], *, home: str | None, workers: int | None,
                         executor: Any, as_json: bool, resume_id: str | None = None,
                         max_variants: int | None = None, max_minutes: float | None = None,
                         **options: Any) -> None:
    """Run (or resume) a campaign with plain progress lines on stderr; exit 0 when every
    ticker finished, 1 when one failed or the campaign stopped, 130/143 on a signal."""
    from alphaloop.workflow.campaign import resume_campaign, run_campaign

    limits = {"max_variants": max_variants,
              "max_seconds": None if max_minutes is None else max_minutes * 60.0}
    lines = _Lines(quiet=False)  # stderr: a --json result on stdout stays clean
    if resume_id is not None:
        result = resume_campaign(resume_id, home=home, workers=workers, executor=executor,
                                 on_event=lines, unconfined=bool(options.get("unconfined")),
                                 **limits)
    else:
        result = run_campaign(tickers, home=home, workers=workers, executor=executor,
                              on_event=lines, **limits, **options)
    if as_json:
        print(json.dumps(result, default=str))
    else:
        out = Console() if Console().is_terminal else Console(width=200)
        print_campaign(result, out)
    if result["status"] == "INTERRUPTED" and str(result.get("reason", "")).startswith(
            "interrupted by signal"):
        sig = int(str(result["reason"]).rsplit(" ", 1)[-1] or signal.SIGINT)
        sys.exit(128 + sig)
    sys.exit(0 if result["status"] == "COMPLETED" else 1)


def status_lines(root: Path) -> list[str]:
    """One line per campaign in the home: id, tickers, how many finished and passed."""
    from alphaloop.workflow._campaign_ids import list_campaigns

    ids = list_campaigns(root)
    if not ids:
        return []  # (the campaign runner, numpy with it, is not imported for nothing)
    from alphaloop.workflow.campaign import campaign_result

    out = []
    for cid in ids:
        try:
            r = campaign_result(cid, root)
        except Exception as exc:  # a damaged campaign file must not hide the others
            out.append(f"{cid}  cannot be read ({exc})")
            continue
        finished = sum(row["status"] in ("SUCCESS", "FAILED") for row in r["rows"])
        out.append(f"{cid}  {r['status']}  {len(r['rows'])} tickers "
                   f"({', '.join(r['tickers'][:8])}{', ...' if len(r['tickers']) > 8 else ''})"
                   f"  finished {finished}  passed {r['passed']}")
    return out


def campaign_tickers(ticker: str | None, tickers: str | None, universe: str | None,
                     max_variants: int | None, max_minutes: float | None) -> list[str] | None:
    """The campaign's tickers, or None for a single-ticker run (one-line errors)."""
    from alphaloop.workflow.campaign import parse_universe

    if ticker and (tickers or universe):
        raise ConfigError("give --ticker for one workflow, or --tickers/--universe for a "
                          "campaign, not both")
    if not (tickers or universe):
        if not ticker:
            raise ConfigError("give --ticker T (one workflow) or --tickers A,B,C / --universe "
                              "FILE (a campaign)")
        if max_variants is not None or max_minutes is not None:
            raise ConfigError("--campaign-max-variants and --campaign-max-minutes are for "
                              "campaigns (--tickers or --universe)")
        return None
    return parse_universe(tickers, universe)


__all__ = ["campaign_tickers", "print_campaign", "run_campaign_command", "status_lines"]
