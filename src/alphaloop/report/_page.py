"""The report as one HTML page: the content of a `Report`, the inline style and script, the
charts as inline SVG. Nothing in it refers to anything outside the file; its
Content-Security-Policy forbids the browser to fetch anything.

Every text that comes from the home (names, parameters, reasons, the strategy's source) is
escaped; the variants go in a JSON block whose ``</`` is escaped so it cannot close it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from alphaloop.report import _charts
from alphaloop.report._gather import ROW_FIELDS, GateRow, Report
from alphaloop.report._script import JS
from alphaloop.report._style import CSS
from alphaloop.workflow import explain

__all__ = ["render"]

_CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "img-src data:; base-uri 'none'; form-action 'none'")
_PERCENT = {"total_return", "cagr", "annual_volatility", "max_drawdown", "win_rate",
            "avg_trade_return", "exposure"}


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _value(metric: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if metric in _PERCENT:
        return f"{value * 100:.2f}%"
    if metric in ("num_trades", "max_drawdown_duration"):
        return f"{value:.0f}"
    return f"{value:.3f}"


def _margin(row: GateRow, value: float | None) -> str:
    m = row.margin(value)
    if m is None:
        return ""
    text = _value(row.metric, abs(m))
    return f"{'+' if m >= 0 else '-'}{text}"


def _mark(passed: bool | None) -> str:
    if passed is None:
        return ""
    return '<span class="ok">pass</span>' if passed else '<span class="no">fail</span>'


# --- sections --------------------------------------------------------------------------------


def _head(r: Report) -> str:
    best = r.best or {}
    name = best.get("name")
    status = r.status
    words = explain.status_text(status, r.phase)
    if status == "SUCCESS":
        look = r.look or {}
        sentence = (f"{_e(name)} passed the gate in-sample and on the holdout"
                    f"{_look_clause(look)}.")
    elif status == "FAILED" and name:
        sentence = f"No strategy passed. The best candidate was {_e(_label(best))}: "
        sentence += _e(_best_fate(r)) + "."
    elif status == "FAILED":
        sentence = "No strategy passed, and no candidate was measured."
    else:
        sentence = f"The workflow is {_e(explain.plain_status(status))}" + (
            f"; the best so far is {_e(_label(best))}." if name else "; nothing measured yet.")
    why = ""
    if r.reason and status != "SUCCESS":
        why = f'<p>Why it stopped: {_e(explain.plain_reason(r.reason))}.</p>'
    directive = f" &middot; directive: &ldquo;{_e(r.directive)}&rdquo;" if r.directive else ""
    state = "" if status in ("SUCCESS", "FAILED") else f'<p class="muted">{_e(words)}</p>'
    ranges = ""
    if r.in_sample_range:
        ranges = f"in-sample {r.in_sample_range[0]} .. {r.in_sample_range[1]}"
        if r.holdout_range:
            ranges += f", holdout {r.holdout_range[0]} .. {r.holdout_range[1]}"
    return f"""<header>
<h1>{_e(r.workflow_id)}</h1>
<p class="muted">{_e(r.ticker)} {_e(r.timeframe)} &middot; {_e(ranges)}{directive}
&middot; started {_e(r.created)}, last update {_e(r.updated)}</p>
<p class="verdict"><span class="badge {_e(status)}">{_e(status)}</span>{sentence}</p>
{state}{why}
<nav><a href="#gate">gate</a><a href="#charts">charts</a><a href="#trajectory">trajectory</a>
<a href="#tree">experiments</a><a href="#variants">variants</a><a href="#strategy">strategy</a>
{'<a href="#llm">language model</a>' if r.llm else ''}</nav>
</header>"""


def _label(best: Mapping[str, Any]) -> str:
    params = ", ".join(f"{k}={v}" for k, v in (best.get("parameters") or {}).items())
    return f"{best.get('name')}({params})"


def _look_clause(look: Mapping[str, Any]) -> str:
    if not look:
        return ""
    return "; " + explain.holdout_psr_text(look.get("psr"), int(look.get("look") or 0),
                                           float(look.get("threshold") or 0.0))


def _best_fate(r: Report) -> str:
    criteria = list(r.settings.get("criteria") or [])
    if r.failed:
        return "in-sample, " + explain.failure_sentence(r.failed, criteria=criteria)
    if r.look:
        verdict = r.look.get("verdict")
        if verdict == "failed the gate" and r.holdout_metrics is not None:
            from alphaloop.workflow.gate import evaluate

            g = evaluate(r.holdout_metrics, criteria or None,
                         min_trades=int(r.settings.get("min_trades") or 0))
            return ("it passed in-sample, but on the holdout "
                    + explain.failure_sentence(g.failed_criteria, criteria=criteria))
        return f"it passed in-sample, but it {verdict} on the holdout" + _look_clause(r.look)
    return "it passed in-sample but never reached the holdout"


def _gate(r: Report) -> str:
    if not r.gate_rows:
        return '<h2 id="gate">The gate</h2><p>No candidate was measured.</p>'
    held = r.holdout_metrics is not None
    rows = []
    for g in r.gate_rows:
        what = f"{explain.plain_metric(g.metric)} {g.op} {_value(g.metric, g.threshold)}"
        if g.floor:
            what = ("evidence floor: " + (f"at least {g.threshold:.0f} trades"
                    if g.metric == "num_trades" else "a losing trade (a profit factor)"))
        rows.append(
            f"<tr><td>{_e(what)}<br><span class=def>{_e(g.name)}</span></td>"
            f"<td class=num>{_value(g.metric, g.in_sample)} {_mark(g.in_sample_passed)}</td>"
            f"<td class=num>{_margin(g, g.in_sample)}</td>"
            + (f"<td class=num>{_value(g.metric, g.holdout)} {_mark(g.holdout_passed)}</td>"
               f"<td class=num>{_margin(g, g.holdout)}</td>" if held else "")
            + f"<td class=num>{_e(g.op)} {_value(g.metric, g.threshold)}</td></tr>")
    ho = "<th class=num>holdout</th><th class=num>margin</th>" if held else ""
    score = (r.best or {}).get("gate_score")
    look = r.look or {}
    psr = look.get("psr") if look else (r.holdout_metrics or {}).get("deflated_sharpe")
    at_gate = ("" if r.deflated_at_gate is None else
               f" When this variant was gated, over the trials tried until then, it was "
               f"{r.deflated_at_gate:.3f}.")
    out_text = "not run: the best candidate never reached the holdout"
    if look:
        k, threshold = look.get("look"), float(look.get("threshold") or 0.0)
        out_text = (f"look {k} of at most {r.settings.get('max_holdout_looks')} (alpha "
                    f"{r.settings.get('alpha')}); " + (
                        f"needs {threshold:.3f} = 1 - alpha/{k}" if threshold
                        else "significance test off (--alpha 1)"))
    n_looks = f"{r.holdout_looks} holdout look{'s' if r.holdout_looks != 1 else ''}"
    figures = (
        _figure(explain.DEFLATED_SHARPE_IN_SAMPLE, r.deflated_in_sample,
                f"over {r.trials} trials", at_gate)
        + _figure(explain.DEFLATED_SHARPE_HOLDOUT, psr, f"{n_looks} in the workflow",
                  f" This one: {out_text}."))
    st = r.settings
    costs = (f"{r.variants_tried} variants tried; costs: commission {st.get('commission')} "
             f"per side, slippage {st.get('slippage_bps')} bps, borrow {st.get('borrow_bps')} "
             f"bps a year, positions {st.get('rebalance')}; evidence floor --min-trades "
             f"{st.get('min_trades')}.")
    intro = ("Holdout: the bars after the in-sample window, never seen by the search. "
             if held else "")
    return f"""<h2 id="gate">The gate</h2>
<p class="muted">{intro}Margin: how far the value is on the passing side of the threshold
(negative: a miss).</p>
<table class="gate"><thead><tr><th>criterion</th><th class=num>in-sample</th>
<th class=num>margin</th>{ho}<th class=num>threshold</th></tr></thead>
<tbody>{''.join(rows)}</tbody></table>
<p>Gate score of the best candidate: {'n/a' if score is None else f'{score:.3f}'}.
<span class=def>{_e(explain.GATE_SCORE_DEFINITION)}.</span></p>
<div class="figures">{figures}</div>
<p class="muted">{_e(costs)}</p>"""


def _figure(term: explain.Term, value: float | None, count: str, more: str) -> str:
    shown = "n/a" if value is None else f"{value:.3f}"
    return (f'<div class="figure"><div>{_e(term.label)}</div><b>{shown}</b> '
            f'<span class=muted>{_e(count)}</span>'
            f"<p class=def>{_e(term.definition)}.{_e(more)}</p></div>")


def _charts_section(r: Report) -> str:
    c = r.curves
    head = '<h2 id="charts">The best candidate, bar by bar</h2>'
    if c is None:
        return head + f'<p class="note-box">No charts: {_e(r.curves_note or "no candidate")}.</p>'
    name = (r.best or {}).get("name", "strategy")
    holdout = ("" if c.boundary is None else
               " The holdout starts flat, as the workflow measured it.")
    equity = _charts.line_chart(
        "Equity: the best candidate against buy and hold", c.dates,
        [_charts.Line(f"{name}", c.equity, "#1d4ed8"),
         _charts.Line("buy and hold", c.buy_hold, "#9ca3af")], boundary=c.boundary)
    under = _charts.line_chart(
        "Underwater: the fall from the last peak", c.dates,
        [_charts.Line("drawdown", c.underwater, "#b91c1c", fill=True)], percent=True,
        boundary=c.boundary, height=200)
    price = _charts.price_chart(f"Trades on the close of {r.ticker}", c.dates, c.close,
                                c.trades, c.boundary)
    heat = _charts.heatmap("Monthly returns of the best candidate (%)", c.monthly)
    total = f"{c.in_sample_total_return * 100:.2f}%"
    if c.holdout_total_return is not None:
        total += f" in-sample, {c.holdout_total_return * 100:.2f}% on the holdout"
    return f"""{head}
<p class="muted">Run again for this report in the same confined process as the workflow's
backtests, on the same bars and costs: total return {_e(total)}.{holdout}</p>
<h3>Equity (growth of 1) against buy and hold</h3>{equity}
<h3>Underwater: the fall from the last peak</h3>
<p class="muted">The peak restarts at the holdout's first bar, so each part's deepest point is
that part's max drawdown.</p>{under}
<h3>Trades on the price</h3>
<p class="muted">&#9650; long entry, &#9660; short entry, &#9675; exit (at the next bar's open
after the signal).</p>{price}
<h3>Monthly returns</h3>{heat}"""


def _trajectory(r: Report) -> str:
    chart = _charts.trajectory_chart(
        "Best gate score per experiment", [e.best_score for e in r.experiments],
        [e.research_iteration for e in r.experiments])
    lessons = "".join(f"<li>{_e(explain.plain_lesson(x))}</li>" for x in r.lessons)
    return f"""<h2 id="trajectory">The trajectory</h2>
<p class="def">{_e(explain.GATE_SCORE_DEFINITION)}.</p>
{chart or '<p>No experiment yet.</p>'}
<h3>Lessons</h3>{f'<ol>{lessons}</ol>' if lessons else '<p>None yet.</p>'}"""


def _tree(r: Report) -> str:
    by_research: dict[int, list[int]] = {}
    for i, e in enumerate(r.experiments):
        by_research.setdefault(e.research_iteration, []).append(i)
    parts = []
    for research, members in by_research.items():
        exps = [r.experiments[i] for i in members]
        scores = [e.best_score for e in exps if e.best_score is not None]
        best = f"best gate score {max(scores):.3f}" if scores else "no score"
        items = []
        for i in members:
            e = r.experiments[i]
            decision = (explain.plain_decision({"action": e.action, "reason": e.reason,
                                                "details": e.details})
                        if e.action else "not decided yet")
            score = "n/a" if e.best_score is None else f"{e.best_score:.3f}"
            failed = ("" if not e.best_failed else
                      "<li>its best failed: " + _e(explain.failure_sentence(
                          e.best_failed, criteria=r.settings.get("criteria"))) + "</li>")
            items.append(
                f"<details><summary>experiment {e.seq} (strategy round "
                f"{e.strategy_iteration}): {_e(_described(e.description))} &rarr; "
                f"<b>{_e(explain.plain_action(e.action) if e.action else 'pending')}</b>"
                f"</summary><ul><li>{e.n_variants} variants; best gate score {score}: "
                f"{_e(e.best_label)}</li>{failed}<li>decision: {_e(decision)}</li>"
                f'<li><a href="#variants" data-experiment="{i}">its variants in the table'
                f"</a></li></ul></details>")
        parts.append(f"<details open><summary><b>research iteration {research}</b>: "
                     f"{len(members)} experiments, {best}</summary>{''.join(items)}</details>")
    return (f'<h2 id="tree">The experiments</h2><p class="muted">Research iteration &rarr; '
            f'experiment &rarr; variants.</p><div class="tree">{"".join(parts)}</div>')


def _described(description: str) -> str:
    """An experiment's description with the action that made it in words (``TUNE_PARAMETERS:
    2 variants`` -> ``tuning the parameters: 2 variants``)."""
    head, sep, rest = description.partition(": ")
    if sep and head.isupper() and head.replace("_", "").isalpha():
        return f"{explain.plain_action(head)}: {rest}"
    return description


def _variants(r: Report) -> str:
    payload = {
        "fields": list(ROW_FIELDS),
        "experiments": [[e.seq, e.research_iteration,
                         explain.plain_action(e.action) if e.action else "pending"]
                        for e in r.experiments],
        "strategies": list(r.strategies),
        "rows": [list(row) for row in r.rows],
    }
    text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    text = text.replace("</", "<\\/").replace("<!--", "<\\!--")
    options = "".join(f'<option value="{i}">experiment {e.seq}</option>'
                      for i, e in enumerate(r.experiments))
    heads = [("experiment", "exp.", True), ("research", "research", True),
             ("variant", "variant", False), ("strategy", "strategy", False),
             ("parameters", "parameters", False), ("gate_score", "gate score", True),
             ("verdict", "in-sample", False), ("sharpe_ratio", "Sharpe", True),
             ("total_return", "return", True), ("max_drawdown", "max DD", True),
             ("win_rate", "win rate", True), ("num_trades", "trades", True),
             ("holdout", "holdout", False), ("failed", "failed", False),
             ("action", "then", False)]
    th = "".join(f'<th data-key="{k}"{" class=num" if n else ""}>{_e(label)}</th>'
                 for k, label, n in heads)
    return f"""<h2 id="variants">The variants</h2>
<p class="muted">In-sample results of every variant. Click a column to sort; type to filter.</p>
<div class="controls">
<input type="search" id="variants-search" aria-label="filter the variants"
 placeholder="filter: strategy, parameter, failed criterion ...">
<select id="variants-verdict" aria-label="verdict"><option value="all">all verdicts</option>
<option value="1">passed</option><option value="0">failed</option>
<option value="-1">error</option></select>
<select id="variants-experiment" aria-label="experiment">
<option value="all">all experiments</option>{options}</select>
<button id="variants-prev" type="button">&larr; previous</button>
<button id="variants-next" type="button">next &rarr;</button>
<span id="variants-status" class="muted"></span></div>
<div class="scroll"><table id="variants-table"><thead><tr>{th}</tr></thead><tbody></tbody>
</table></div>
<script type="application/json" id="variants-data">{text}</script>"""


def _strategy(r: Report) -> str:
    best = r.best
    if not best or not best.get("code"):
        return '<h2 id="strategy">The best strategy</h2><p>None yet.</p>'
    params = "".join(f"<tr><td>{_e(k)}</td><td>{_e(json.dumps(v))}</td></tr>"
                     for k, v in (best.get("parameters") or {}).items())
    cmds = []
    for key, title in (("in_sample", "in-sample"), ("holdout", "holdout")):
        cmd = r.commands.get(key)
        if cmd:
            cmds.append(f"<p>Reproduce the {title} numbers:</p><pre><code>{_e(cmd)}</code></pre>")
    name = str(best.get("name") or "strategy").replace("+", "_")
    prints = f"{r.data_fingerprint or 'n/a'} (in-sample bars)"
    if r.holdout_fingerprint:
        prints += f"; {r.holdout_fingerprint} (the holdout run's bars, warm-up included)"
    return f"""<h2 id="strategy">The best strategy</h2>
<dl class="facts"><dt>strategy</dt><dd>{_e(best.get('name'))}</dd>
<dt>variant</dt><dd>{_e(best.get('experiment_id'))}/{_e(best.get('variant_id'))}</dd>
<dt>data fingerprint</dt><dd>{_e(prints)}</dd>
<dt>description</dt><dd>{_e(best.get('description') or '')}</dd></dl>
<h3>Parameters</h3><table><thead><tr><th>name</th><th>value</th></tr></thead><tbody>{params}</tbody></table>
<h3>Reproduce</h3>
<p>First write the strategy with its tuned parameters as defaults:</p>
<pre><code>{_e(f'alphaloop export {r.workflow_id} -o {name}.py')}</code></pre>
{''.join(cmds)}
<h3>Source</h3><pre><code>{_e(best.get('code'))}</code></pre>"""


def _llm(r: Report) -> str:
    if not r.llm:
        return ""
    b = r.llm.get("budget") or {}
    rows = [("model", f"{r.llm.get('provider')}:{r.llm.get('model')}"),
            ("calls", f"{b.get('calls', 0)} ({b.get('replayed_calls', 0)} replayed on resume)"
                      + (f" of at most {b['max_calls']}" if b.get("max_calls") else "")),
            ("prompt tokens", f"{b.get('prompt_tokens', 0):,}"),
            ("completion tokens", f"{b.get('completion_tokens', 0):,}"
             + (f" (at most {b['max_tokens']:,} in all)" if b.get("max_tokens") else "")),
            ("fallbacks to the offline agents", str(r.llm.get("fallbacks", 0))),
            ("written strategies rejected", str(r.llm.get("rejected_strategies", 0)))]
    body = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows)
    return (f'<h2 id="llm">Language model</h2><dl class="facts">{body}</dl>'
            f'<p class="muted">Each exchange: <code>alphaloop show {_e(r.workflow_id)} --llm'
            "</code></p>")


def render(r: Report) -> str:
    """The whole page of ``r``."""
    sections: Sequence[str] = (_head(r), _gate(r), _charts_section(r), _trajectory(r),
                               _tree(r), _variants(r), _strategy(r), _llm(r))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>alphaloop report {_e(r.workflow_id)}</title>
<style>{CSS}</style></head>
<body><main>
{''.join(sections)}
<p class="muted">Written by <code>alphaloop report {_e(r.workflow_id)}</code> from the home
folder, which it only reads.</p>
</main><script>{JS}</script></body></html>
"""
