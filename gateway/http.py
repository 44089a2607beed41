"""HTTP device ingest (OsmAnd / Traccar Client on port 5055) and the in-loop uvicorn runner.

The phone gets 200 only after its positions are durable; 400 for a request we cannot read,
403 for a device that is not registered, 503 while we cannot tell (database away and the
device not cached), so the app keeps its buffer and retries.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Generator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from gateway.ingest import Ingest
from gateway.session import DeviceSession
from protocols.base import Protocol

log = logging.getLogger("fieldtrack.gateway.http")

MAX_BODY = 1 << 20


class InLoopServer(uvicorn.Server):
    """uvicorn sharing our event loop with other servers: the process owns the signal handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def server_for(app: Starlette, host: str, port: int) -> InLoopServer:
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on",
                            access_log=False, loop="none")
    return InLoopServer(config)


_STATUS: dict[str, tuple[int, str]] = {
    "ok": (200, ""),
    "malformed": (400, "malformed request\n"),
    "unidentified": (400, "no device id in the request\n"),
    "refused": (403, "device not registered\n"),
    "unavailable": (503, "storage unavailable, retry later\n"),
    "error": (500, "positions not stored, retry later\n"),
}


def _frame_of(request: Request, body: bytes) -> bytes:
    """What the OsmAnd decoder reads: the POST body when there is one, else the request target."""
    if body.strip():
        return body
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return target.encode("latin-1", "replace")


Identity = Callable[[Request], str | None]


def owntracks_identity(request: Request) -> str | None:
    """OwnTracks HTTP mode names the device in X-Limit-U / X-Limit-D: ``<user>/<device>``, the same
    id its MQTT topic gives."""
    user, device = request.headers.get("x-limit-u"), request.headers.get("x-limit-d")
    return f"{user}/{device}" if user and device else None


def ingest_app(protocol: Protocol, ingest: Ingest, *, identity: Identity | None = None,
               ok_body: bytes = b"", ok_type: str = "text/plain") -> Starlette:
    """``identity`` reads the device id from the request when the payload may lack it; ``ok_body``
    is what a stored request answers (OwnTracks expects a JSON list of friends: ``[]``)."""

    async def receive(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_BODY:
            return PlainTextResponse("request too large\n", status_code=413)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return PlainTextResponse("request too large\n", status_code=413)
        peer = f"{request.client.host}:{request.client.port}" if request.client else "?"
        session = DeviceSession(protocol, ingest, "http", peer, max_errors=1)
        if identity is not None:
            session.session.unique_id = identity(request)
        outcome = await session.on_frame(_frame_of(request, body))
        status, text = _STATUS["unidentified" if outcome.empty and identity is None else outcome.status]
        if status == 200:
            return Response(ok_body, status_code=200, media_type=ok_type if ok_body else None)
        return PlainTextResponse(text, status_code=status)

    return Starlette(routes=[Route("/{path:path}", receive, methods=["GET", "POST", "PUT"])])


def add_owntracks(app: Starlette, protocol: Protocol, ingest: Ingest) -> None:
    """OwnTracks HTTP mode on ``app`` (the API): the app's URL may be ``/owntracks`` itself or any
    path under it (the OwnTracks recorder's ``/owntracks/pub``). The bare path gets a route of its
    own: the mount alone answers it with a redirect to ``/owntracks/``, and whether a phone's HTTP
    client repeats its POST there is up to the client."""
    receiver = ingest_app(protocol, ingest, identity=owntracks_identity, ok_body=b"[]",
                          ok_type="application/json")
    app.mount("/owntracks", receiver)
    app.router.routes.append(Route("/owntracks", receiver, methods=["GET", "POST", "PUT"]))
