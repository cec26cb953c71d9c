"""The dashboard's HTML pages: small server-rendered shells (every value escaped) that the
page's script then keeps up to date from the JSON API."""

from __future__ import annotations

from html import escape
from typing import Any

from alphaloop.workflow import explain


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def layout(title: str, body: str, *, page: str, wid: str = "") -> str:
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{_e(title)} · alphaloop</title>"
        "<link rel=\"icon\" href=\"data:,\">"
        "<link rel=\"stylesheet\" href=\"/static/dashboard.css\">"
        "<script src=\"/static/dashboard.js\" defer></script></head>"
        f"<body data-page=\"{_e(page)}\" data-wid=\"{_e(wid)}\">"
        "<header><a class=\"brand\" href=\"/\">alphaloop dashboard</a>"
        "<span id=\"conn\" class=\"conn\" role=\"status\"></span></header>"
        f"<main>{body}</main></body></html>\n"
    )


def _workflow_tr(r: dict[str, Any]) -> str:
    score = r.get("best_score")
    return (
        f"<tr><td><a href=\"/w/{_e(r['workflow_id'])}\">{_e(r['workflow_id'])}</a></td>"
        f"<td><span class=\"status s-{_e(r['status'])}\">{_e(r['status'])}</span></td>"
        f"<td>{_e(r['phase_plain'])}</td><td>{_e(r['ticker'])} {_e(r['timeframe'])}</td>"
        f"<td>{_e(r.get('best_name') or '')}</td>"
        f"<td class=\"num\">{'' if score is None else _e(f'{score:.3f}')}</td>"
        f"<td>{_e((r.get('created_at') or '')[:19].replace('T', ' '))}</td></tr>"
    )


def index(rows: list[dict[str, Any]]) -> str:
    body = (
        "<h1>Workflows</h1>"
        f"<p id=\"empty\" class=\"note\"{' hidden' if rows else ''}>No workflows in this home "
        "yet. Start one with <code>alphaloop run --ticker GOOG</code>; it appears here.</p>"
        "<table id=\"workflows\" class=\"grid\"><thead><tr><th>workflow</th><th>status</th>"
        "<th>phase</th><th>market</th><th>best so far</th><th>gate score</th>"
        "<th>started (UTC)</th></tr></thead>"
        f"<tbody>{''.join(_workflow_tr(r) for r in rows)}</tbody></table>"
    )
    return layout("workflows", body, page="index")


def workflow(s: dict[str, Any]) -> str:
    wid = s["workflow_id"]
    body = (
        f"<h1><span id=\"wid\">{_e(wid)}</span> "
        f"<span id=\"status\" class=\"status s-{_e(s['status'])}\">{_e(s['status'])}</span></h1>"
        f"<p class=\"sub\"><span id=\"market\">{_e(s['ticker'])} {_e(s['timeframe'])}</span> · "
        + (f"<span id=\"directive\">{_e(s['directive'])}</span> · " if s["directive"] else "")
        +
        f"<a id=\"report-link\" href=\"/w/{_e(wid)}/report\">report</a></p>"
        "<p id=\"status-text\" class=\"note\"></p>"
        "<section class=\"cards\">"
        "<div class=\"card\"><h2>phase</h2>"
        f"<p id=\"phase\" class=\"big\" data-phase=\"{_e(s['phase'])}\">{_e(s['phase_plain'])}"
        f"</p><small id=\"phase-code\" class=\"code\">{_e(s['phase'])}</small></div>"
        "<div class=\"card\"><h2>iterations</h2><dl id=\"counters\" class=\"kv\"></dl></div>"
        "<div class=\"card\"><h2>task queue</h2><dl id=\"queue\" class=\"kv\"></dl></div>"
        "<div class=\"card\"><h2>workers</h2><p id=\"workers\" class=\"big\"></p>"
        "<small>busy / allowed</small></div>"
        "<div class=\"card wide\"><h2>best so far</h2><div id=\"best\"><p class=\"note\">"
        "none yet</p></div>"
        f"<p id=\"gate-def\" class=\"def\">{_e(explain.GATE_SCORE_DEFINITION)}</p></div>"
        "</section>"
        "<section><h2>decisions</h2><ol id=\"decisions\" class=\"decisions\"></ol></section>"
        "<section><h2>records <span id=\"records-total\" data-total=\""
        f"{_e(s['records']['total'])}\">{_e(s['records']['total'])}</span></h2>"
        "<div class=\"controls\"><label>order <select id=\"sort\">"
        "<option value=\"new\">newest first</option><option value=\"score\">best gate score"
        "</option><option value=\"old\">oldest first</option></select></label>"
        "<label>sample <select id=\"sample\"><option value=\"\">all</option>"
        "<option value=\"in_sample\">in-sample</option><option value=\"holdout\">holdout"
        "</option></select></label>"
        "<button id=\"prev\" type=\"button\">previous</button>"
        "<span id=\"page-label\"></span>"
        "<button id=\"next\" type=\"button\">next</button></div>"
        "<table id=\"records\" class=\"grid\"><thead><tr><th>#</th><th>experiment / variant"
        "</th><th>sample</th><th>strategy</th><th>parameters</th><th>gate score</th>"
        "<th>Sharpe</th><th>max drawdown</th><th>win rate</th><th>trades</th>"
        "<th>why it failed</th></tr></thead><tbody></tbody></table></section>"
        "<section><h2>lessons</h2><ul id=\"lessons\"></ul></section>"
    )
    return layout(wid, body, page="workflow", wid=wid)


def message(title: str, text: str, *, back: str = "/") -> str:
    body = (f"<h1>{_e(title)}</h1><p class=\"note\" id=\"message\">{_e(text)}</p>"
            f"<p><a href=\"{_e(back)}\">back</a></p>")
    return layout(title, body, page="message")


__all__ = ["index", "layout", "message", "workflow"]
