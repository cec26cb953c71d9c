"""``alphaloop dashboard``: the live local web view of a home folder (:mod:`alphaloop.web`)."""

from __future__ import annotations

from typing import Annotated

import typer

from alphaloop.cli import app
from alphaloop.errors import ConfigError


@app.command()
def dashboard(
    home: Annotated[
        str | None,
        typer.Option("--home", help="Run folder (default $ALPHALOOP_HOME or ./.alphaloop)."),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; beyond 127.0.0.1 anyone who "
                          "can reach it reads your workflows (a warning says so).")
    ] = "127.0.0.1",
    port: Annotated[
        str, typer.Option("--port", help="Port to listen on (0 picks a free one).")
    ] = "8765",
) -> None:
    """Serve a live, read-only web view of the workflows in the home until Ctrl-C."""
    from alphaloop.execution import resolve_home
    from alphaloop.web.server import bind, exposure_warning, serve, url

    try:
        number = int(port)
    except ValueError:
        raise ConfigError(f"--port must be a number from 0 to 65535, got {port!r}") from None
    root = resolve_home(home, create=False)  # the dashboard never creates or writes the home
    sock = bind(host, number)
    warning = exposure_warning(sock)
    if warning:
        typer.echo(warning, err=True)
    typer.echo(f"alphaloop dashboard: {url(sock)}  (home {root}; read-only; Ctrl-C to stop)")
    try:
        serve(root, sock)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    typer.echo("dashboard stopped", err=True)


__all__ = ["dashboard"]
