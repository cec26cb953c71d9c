"""``alphaloop report``: one self-contained HTML page per workflow (built by
:mod:`alphaloop.report`), written to a file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alphaloop.cli import app
from alphaloop.errors import ConfigError


@app.command()
def report(
    workflow_id: Annotated[str, typer.Argument(help="Workflow to report on.")],
    home: Annotated[
        str | None,
        typer.Option("--home", help="Run folder (default $ALPHALOOP_HOME or ./.alphaloop)."),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="HTML file to write (default WORKFLOW_ID.html)."),
    ] = None,
) -> None:
    """Write one HTML page about the workflow: the verdict and the gate, the best candidate's
    equity, drawdown, trades and monthly returns, the experiments and every variant, and the
    commands that reproduce its numbers. It requests nothing outside the file and only reads
    the home folder."""
    from alphaloop.report import render_report

    target = Path(output or f"{workflow_id}.html")
    if target.is_dir() or not target.parent.is_dir():  # said before the work, not after
        what = "is a folder" if target.is_dir() else f"folder {target.parent} does not exist"
        raise ConfigError(f"cannot write {target} ({what}); choose another -o FILE")
    text = render_report(workflow_id, home)
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {target} ({(exc.strerror or str(exc)).lower()}); "
                          "choose another -o FILE") from None
    typer.echo(f"wrote {target} ({len(text.encode('utf-8')) / 1e6:.2f} MB)", err=True)


__all__ = ["report"]
