"""The dashboard's Starlette application: read-only pages and JSON over one home folder.

Routes: ``/`` (the workflows), ``/w/{id}`` (one workflow, kept live by its script),
``/w/{id}/report`` (the HTML report, rendered in memory), ``/api/workflows``,
``/api/w/{id}/summary``, ``/api/w/{id}/records?offset=&limit=&sort=&sample=`` (one page, at
most 200 rows) and ``/static/{name}`` (the two package files, by name). A workflow id is
resolved only through the home's allow-list (:class:`._home.Home`); anything else is a 404
page. A database that stays locked is a 503 the page retries; any other error is a plain 500
page, never a traceback.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alphaloop.web import _live, _pages
from alphaloop.web._db import Busy
from alphaloop.web._home import Home
from alphaloop.web._report import NotReady, Reports

log = logging.getLogger(__name__)

ASSETS = {"dashboard.js": "text/javascript; charset=utf-8",
          "dashboard.css": "text/css; charset=utf-8"}
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
CSP = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'none'")
REPORT_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
              "img-src data: blob:; font-src data:; base-uri 'none'; form-action 'none'")
DEFAULT_LIMIT = 50


class _Guard:
    """Refuses a request whose Host is not this machine while the server listens on
    loopback only (a web page cannot reach it by DNS rebinding), and adds the security
    headers to every response."""

    def __init__(self, app: ASGIApp, loopback_only: bool):
        self.app = app
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.loopback_only and not _loopback_host(scope):
            await Response("bad Host header: this dashboard answers only on this machine\n",
                           status_code=400, media_type="text/plain")(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                have = {k.lower() for k, _ in headers}
                for k, v in ((b"content-security-policy", CSP.encode()),
                             (b"x-content-type-options", b"nosniff"),
                             (b"referrer-policy", b"no-referrer"),
                             (b"x-frame-options", b"DENY"),
                             (b"cache-control", b"no-store")):
                    if k not in have:
                        headers.append((k, v))
                message = {**message, "headers": headers}
            await send(message)

        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send_with_headers(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:  # the error page went out already: no traceback in the log
            if not started:
                raise
            log.debug("dashboard: %s after its error page: %s", scope.get("path"), exc)


def _loopback_host(scope: Scope) -> bool:
    host = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), "")
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name.lower() in LOOPBACK_NAMES


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPException(400, f"{name} must be a whole number from {low} to {high}") from None
    if not low <= value <= high:
        raise HTTPException(400, f"{name} must be a whole number from {low} to {high}")
    return value


def create_app(home: Path, *, loopback_only: bool = True, busy_budget: float = 3.0
               ) -> ASGIApp:
    """The dashboard over ``home`` (read-only; the folder need not exist yet).
    ``loopback_only`` refuses requests naming another host; ``busy_budget`` is how long a
    locked database is retried before the request answers 503."""
    h = Home(home)
    reports = Reports(h)
    static = {name: (resources.files("alphaloop.web").joinpath("static", name).read_bytes(),
                     kind) for name, kind in ASSETS.items()}

    def index(request: Request) -> Response:
        return HTMLResponse(_pages.index(_live.workflow_rows(h)))

    def api_workflows(request: Request) -> Response:
        return JSONResponse({"workflows": _live.workflow_rows(h)})

    def _summary(request: Request) -> dict[str, Any]:
        s = _live.summary(h, request.path_params["wid"], busy_budget=busy_budget)
        if s is None:
            raise HTTPException(404, f"no workflow {request.path_params['wid']} in this home")
        return s

    def workflow(request: Request) -> Response:
        return HTMLResponse(_pages.workflow(_summary(request)))

    def api_summary(request: Request) -> Response:
        return JSONResponse(_summary(request))

    def api_records(request: Request) -> Response:
        wid = request.path_params["wid"]
        offset = _int(request, "offset", 0, 0, 10**9)
        limit = _int(request, "limit", DEFAULT_LIMIT, 1, _live.MAX_LIMIT)
        sort = request.query_params.get("sort") or "new"
        sample = request.query_params.get("sample") or None
        if sort not in _live.SORTS:
            raise HTTPException(400, f"sort must be one of {', '.join(_live.SORTS)}")
        if sample not in (None, "in_sample", "holdout"):
            raise HTTPException(400, "sample must be in_sample or holdout")
        page = _live.records_page(h, wid, offset, limit, sort, sample, busy_budget=busy_budget)
        if page is None:
            raise HTTPException(404, f"no workflow {wid} in this home")
        return JSONResponse(page)

    def report(request: Request) -> Response:
        wid = request.path_params["wid"]
        if h.folder(wid) is None:
            raise HTTPException(404, f"no workflow {wid} in this home")
        try:
            text = reports.html(wid)
        except NotReady as exc:
            return HTMLResponse(_pages.message(
                "report not ready", f"There is no report for {wid} yet: {exc}. It appears "
                "here once the workflow has something to show.", back=f"/w/{wid}"))
        return HTMLResponse(text, headers={"content-security-policy": REPORT_CSP})

    def asset(request: Request) -> Response:
        found = static.get(request.path_params["name"])
        if found is None:
            raise HTTPException(404, "no such file")
        return Response(found[0], media_type=found[1])

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        text = str(exc.detail)
        if exc.status_code == 404 and text == "Not Found":
            text = "no such page in this dashboard"
        return _error(request, exc.status_code, text)

    async def busy(request: Request, exc: Exception) -> Response:
        return _error(request, 503, "the workflow's database is busy; retrying",
                      headers={"retry-after": "1"})

    async def crash(request: Request, exc: Exception) -> Response:
        log.warning("dashboard: %s failed: %s: %s", request.url.path, type(exc).__name__, exc)
        return _error(request, 500, "this page could not be read; see the dashboard's log")

    routes = [
        Route("/", index),
        Route("/api/workflows", api_workflows),
        Route("/w/{wid}", workflow),
        Route("/w/{wid}/report", report),
        Route("/api/w/{wid}/summary", api_summary),
        Route("/api/w/{wid}/records", api_records),
        Route("/static/{name}", asset),
    ]
    app = Starlette(routes=routes, exception_handlers={
        HTTPException: http_error, Busy: busy, Exception: crash})
    return _Guard(app, loopback_only)


def _error(request: Request, status: int, text: str, headers: dict[str, str] | None = None
           ) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": text, "busy": status == 503}, status_code=status,
                            headers=headers)
    title = {404: "not found", 503: "busy"}.get(status, "error" if status >= 500 else
                                                  "bad request")
    return HTMLResponse(_pages.message(title, text), status_code=status, headers=headers)


__all__ = ["create_app"]
