"""The web view's ASGI app (Starlette): one page, its JSON, its event stream, the demo buttons.

    GET  /                 the page (static/index.html); ?token=T sets the cookie, then
                           redirects to / so the token leaves the address bar
    GET  /static/NAME      its script and style sheet
    GET  /favicon.ico      204 (none; the only route without the token)
    GET  /api/state        the page state and the event feed, as JSON (a look at most 1 s old,
                           waiting up to 3 s for one)
    GET  /api/events       server-sent events: "snapshot" first, then "update" (pools that
                           changed) and "feed" (event lines) as they happen
    POST /api/demo/kill    {"what": "process" | "worker_actor" | "pool", "pool", "worker_id"}:
                           only when the node runs with --web-demo-controls (404 otherwise)

Every route needs the node's token (``core.web_access``): 401 without one, 403 with a wrong
one. A thin shell: what the page shows is decided in ``core.web_page`` / ``core.web_feed``,
kept in the ``ViewHub``; a kill is done by the node's ``DemoControls`` in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from snakepit_actors.core.web_access import COOKIE_NAME, check_access
from snakepit_actors.errors import SnakepitError
from snakepit_actors.web.hub import ViewHub

#: The page's files (package data).
STATIC_DIR = Path(__file__).with_name("static")
_STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
#: Seconds between keep-alive comments on an idle event stream.
KEEPALIVE_S = 15.0
#: What a browser waits before reconnecting a dropped event stream (ms).
RECONNECT_MS = 1000
#: Event streams open at once, at most; one more is answered 503 (its browser retries).
MAX_VIEWERS = 32
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                               "form-action 'none'",
}

#: ``kill(what, pool, worker_id)`` -> a JSON-ready reply; raises SnakepitError if refused.
KillFn = Callable[[str, str, str], dict[str, Any]]


def build_app(hub: ViewHub, token: str, kill: KillFn | None = None,
              node_name: str = "", max_viewers: int = MAX_VIEWERS) -> Starlette:
    """The app serving ``hub`` to bearers of ``token``; ``kill`` enables the demo buttons;
    at most ``max_viewers`` event streams are open at once."""

    def denied(request: Request) -> Response | None:
        access = check_access(token, authorization=request.headers.get("authorization"),
                              cookie=request.cookies.get(COOKIE_NAME),
                              query=request.query_params.get("token"))
        if access.granted:
            return None
        headers = dict(_HEADERS)
        if access.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="snakepit"'
        return JSONResponse({"error": {"type": "AccessDenied", "message": access.reason}},
                            access.status, headers=headers)

    async def page(request: Request) -> Response:
        if (refused := denied(request)) is not None:
            return refused
        if "token" in request.query_params:  # first visit: the token becomes the cookie
            response: Response = RedirectResponse("/", 303, headers=_HEADERS)
            response.set_cookie(COOKIE_NAME, request.query_params["token"], httponly=True,
                                samesite="strict", path="/")
            return response
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html",
                            headers=_HEADERS)

    async def static(request: Request) -> Response:
        if (refused := denied(request)) is not None:
            return refused
        name = request.path_params["name"]
        if name not in _STATIC:
            return PlainTextResponse("not found", 404, headers=_HEADERS)
        return FileResponse(STATIC_DIR / name, media_type=_STATIC[name], headers=_HEADERS)

    async def state(request: Request) -> Response:
        if (refused := denied(request)) is not None:
            return refused
        await _fresh(hub)
        body = hub.snapshot() | {"demo_controls": kill is not None, "node_name": node_name}
        return JSONResponse(body, headers=_HEADERS)

    async def events(request: Request) -> Response:
        if (refused := denied(request)) is not None:
            return refused
        if hub.viewers >= max_viewers:
            return _error(503, "TooManyViewers", f"{hub.viewers} pages follow this node "
                          f"already (at most {max_viewers}); close one")
        return StreamingResponse(_stream(hub, kill is not None, node_name),
                                 media_type="text/event-stream",
                                 headers=_HEADERS | {"X-Accel-Buffering": "no"})

    async def demo_kill(request: Request) -> Response:
        if (refused := denied(request)) is not None:
            return refused
        if kill is None:
            return _error(404, "NotFound", "demo controls are off: start the node with "
                          "--web-demo-controls")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _error(415, "UnsupportedMediaType", "send the request as application/json")
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _error(400, "InvalidArguments", 'the body must be a JSON object like '
                          '{"what": "process", "pool": "default", "worker_id": "..."}')
        what, pool = str(body.get("what", "")), str(body.get("pool", ""))
        try:
            done = await run_in_threadpool(kill, what, pool, str(body.get("worker_id", "")))
        except SnakepitError as exc:
            return _error(409, type(exc).__name__, str(exc), exc.reason)
        return JSONResponse(done, headers=_HEADERS)

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204, headers=_HEADERS)

    return Starlette(
        routes=[Route("/", page), Route("/static/{name}", static),
                Route("/favicon.ico", no_icon),
                Route("/api/state", state), Route("/api/events", events),
                Route("/api/demo/kill", demo_kill, methods=["POST"])],
        middleware=[Middleware(TrustedHostMiddleware,  # a rebound DNS name is not this host
                               allowed_hosts=["127.0.0.1", "localhost"])])


def _error(status: int, kind: str, message: str, reason: str = "") -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message, "reason": reason}},
                        status, headers=_HEADERS)


async def _fresh(hub: ViewHub, max_age_s: float = 1.0, wait_s: float = 3.0) -> None:
    """Ask for a look at the node and, if the last one is older than ``max_age_s``, wait for
    the next (at most ``wait_s``: a stale state is better than no answer)."""
    loop = asyncio.get_running_loop()
    asked = loop.time()
    hub.asked(time.monotonic())
    while time.monotonic() - hub.published_at > max_age_s and loop.time() - asked < wait_s:
        await asyncio.sleep(0.05)


def sse(event: str, data: Any, event_id: int | None = None) -> bytes:
    """One server-sent event (``data`` as JSON on one line)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()


async def _stream(hub: ViewHub, demo_controls: bool, node_name: str) -> AsyncIterator[bytes]:
    """A viewer's event stream: the snapshot, then what the hub fans out, with keep-alive
    comments; it ends when the hub closes or drops the viewer (the browser reconnects)."""
    viewer, snapshot = hub.connect()
    try:
        yield f"retry: {RECONNECT_MS}\n\n".encode()
        yield sse("snapshot", snapshot | {"demo_controls": demo_controls,
                                          "node_name": node_name})
        while True:
            try:
                message = await asyncio.wait_for(viewer.queue.get(), KEEPALIVE_S)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if message is None or viewer.dropped:
                return
            kind, data = message
            yield sse(kind, data, data.get("seq") if kind == "feed" else None)
    finally:
        hub.disconnect(viewer)
