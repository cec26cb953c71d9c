"""``alphaloop report``: one self-contained HTML page per workflow.

`render_report` reads the workflow from its home (never writing it), runs the best candidate
again in the confined strategy process for its equity, drawdown, trades and monthly returns,
and returns the page: the verdict and the gate, the two deflated Sharpe figures, the charts
(inline SVG), the trajectory and lessons, the experiment tree, a sortable and filterable
table of the variants, the best strategy's source with the commands that reproduce its
numbers, and the language model's usage. The page requests nothing outside itself.

Modules: `_gather` (what the page shows, read into a `Report`), `_replay` (the curves),
`_charts` (SVG), `_page` (the HTML), `_style` and `_script` (its CSS and its one script).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["render_report"]


def render_report(workflow_id: str, home: str | Path | None) -> str:
    """The report of ``workflow_id`` in ``home`` (None: ``$ALPHALOOP_HOME`` or
    ``./.alphaloop``) as one HTML page. Raises `alphaloop.errors.ConfigError` (`HomeError`)
    naming the problem for an unknown workflow or a home that does not exist."""
    from alphaloop.execution._host import Host

    host = Host().start()  # first: the clean worker imports while the workflow is read
    try:
        from alphaloop.report._gather import gather
        from alphaloop.report._page import render

        return render(gather(workflow_id, None if home is None else str(home), host))
    finally:
        host.close()

