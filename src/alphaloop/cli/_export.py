"""``alphaloop export``: the winner's source with its tuned parameters as defaults, under a
comment saying where it came from (built by :mod:`alphaloop.workflow.document`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alphaloop.cli import app
from alphaloop.errors import ConfigError


@app.command()
def export(
    workflow_id: Annotated[str, typer.Argument(help="Workflow whose best strategy to export.")],
    home: Annotated[
        str | None,
        typer.Option("--home", help="Run folder (default $ALPHALOOP_HOME or ./.alphaloop)."),
    ] = None,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
) -> None:
    """Write the workflow's best strategy, with its tuned parameters as defaults and a header
    saying where it came from and how to reproduce its in-sample and holdout numbers."""
    from alphaloop.workflow.document import export_source

    text = export_source(workflow_id, home, output)
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {output} ({(exc.strerror or str(exc)).lower()})"
                          ) from None
    typer.echo(f"wrote {output}", err=True)


__all__ = ["export"]
