"""Listening: the address is bound here first (so a bad host or a port in use is a one-line
error before anything starts, and port 0 picks a free one), then uvicorn serves the app on
that socket until Ctrl-C (`serve`) or until the ``with`` block ends (`running`, for tests
and embedding)."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alphaloop.errors import ConfigError


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; :class:`ConfigError` naming the option and
    the fix when the address cannot be used."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"--port must be a number from 0 to 65535, got {port!r} (0 picks a "
                          "free port)")
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"--host {host!r} is not an address of this machine ({why}); pass "
                          "--host 127.0.0.1 (this machine only) or one of its addresses"
                          ) from None
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        why = (exc.strerror or str(exc)).lower()
        raise ConfigError(f"cannot listen on {host}:{port} ({why}); pick another --port or "
                          "--host") from None
    return sock


def is_loopback(sock: socket.socket) -> bool:
    """Whether ``sock`` listens on this machine only (127.0.0.0/8 or ::1)."""
    return ipaddress.ip_address(sock.getsockname()[0]).is_loopback


def url(sock: socket.socket) -> str:
    """``http://host:port/`` of the listening socket."""
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def exposure_warning(sock: socket.socket) -> str | None:
    """The warning line for a socket reachable from other machines; None on loopback."""
    if is_loopback(sock):
        return None
    host, port = sock.getsockname()[:2]
    return (f"warning: listening on {host}:{port}, beyond this machine: anyone who can reach "
            "it can read every workflow in the home; use --host 127.0.0.1 to keep it local")


def _server(home: Path, sock: socket.socket, busy_budget: float):  # type: ignore[no-untyped-def]
    import uvicorn

    from alphaloop.web.app import create_app

    app = create_app(home, loopback_only=is_loopback(sock), busy_budget=busy_budget)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            server_header=False, date_header=False)
    return uvicorn.Server(config)


def serve(home: Path, sock: socket.socket) -> None:
    """Serve the dashboard of ``home`` on ``sock`` until Ctrl-C (SIGINT) or SIGTERM."""
    _server(home, sock, 3.0).run(sockets=[sock])


@contextmanager
def running(home: Path, host: str = "127.0.0.1", port: int = 0, *,
            busy_budget: float = 3.0) -> Iterator[str]:
    """The dashboard of ``home`` served from a thread while the block runs; yields its URL.
    Requests made at once wait in the socket's backlog until the server takes them."""
    sock = bind(host, port)
    server = _server(home, sock, busy_budget)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="alphaloop-dashboard", daemon=True)
    thread.start()
    try:
        yield url(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


__all__ = ["bind", "exposure_warning", "is_loopback", "running", "serve", "url"]
