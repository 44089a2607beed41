"""``/api/stream``: live positions (with their marks) and events over a WebSocket.

Browsers cannot set headers on a WebSocket, so the token may also come as ``?token=``. A caller
hears only the devices in its scope (api.access): admins every device, managers their teams'
devices, reps their own. The scope is fixed when the stream opens: a device linked later needs a
reconnect. A device the caller sees only on duty (storage.privacy: a manager and a rep's device)
is heard only for positions and events at on-duty times, by the calendar as it was when the stream
opened.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect

from api.access import scope_of
from api.deps import ApiDeps
from api.live import LiveHub, Subscriber
from storage.privacy import duty_view

router = APIRouter(tags=["live"])

KINDS = frozenset({"position", "event"})
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013


def _hub(ws: WebSocket, deps: ApiDeps) -> LiveHub:
    hub: LiveHub | None = getattr(ws.app.state, "live", None)
    if hub is None:
        conninfo = deps.db().conninfo
        if not isinstance(conninfo, str):
            raise RuntimeError("the live stream needs a pool opened from a connection string")
        hub = ws.app.state.live = LiveHub(conninfo)
    return hub


@router.websocket("/stream")
async def stream(ws: WebSocket,
                 device: Annotated[list[int] | None, Query(description="device id; repeatable")] = None,
                 kind: Annotated[list[str] | None, Query(description="position and/or event")] = None,
                 token: Annotated[str | None, Query(description="API token, if not in the header")] = None,
                 ) -> None:
    deps: ApiDeps = ws.app.state.deps
    header = ws.headers.get("authorization", "")
    credential = token or (header[7:] if header.lower().startswith("bearer ") else "")
    owner = await deps.tokens.owner(credential) if credential else None
    if owner is None:
        await ws.close(POLICY_VIOLATION, "missing, invalid or revoked token")
        return
    kinds = frozenset(kind or KINDS)
    if not kinds <= KINDS:
        await ws.close(POLICY_VIOLATION, f"kind must be one of {sorted(KINDS)}")
        return
    scope = await scope_of(owner, deps.db())
    visible = scope.devices_filter()
    devices: set[int] | None = set(device) if device else None
    if visible is not None:
        devices = set(visible) if devices is None else devices & visible
    view = await duty_view(deps.db(), None if devices is None else sorted(devices),
                           everything=scope.everything, viewer=scope.user_id)
    hub = _hub(ws, deps)
    subscriber = Subscriber(devices, kinds, duty=view.clocks())
    await ws.accept()
    hub.subscribe(subscriber)
    try:
        await ws.send_json({"kind": "hello", "kinds": sorted(kinds),
                            "devices": None if devices is None else sorted(devices)})
        await _pump(ws, subscriber)
    except WebSocketDisconnect:
        pass
    finally:
        hub.unsubscribe(subscriber)


async def _pump(ws: WebSocket, subscriber: Subscriber) -> None:
    """Send until the client leaves (noticed by a concurrent receive) or falls too far behind."""
    closed = asyncio.create_task(_until_disconnect(ws))
    try:
        while True:
            message = asyncio.create_task(subscriber.queue.get())
            done, _ = await asyncio.wait({message, closed}, return_when=asyncio.FIRST_COMPLETED)
            if closed in done:
                message.cancel()
                return
            item = message.result()
            if item is None:
                await ws.close(TRY_AGAIN_LATER, "too slow to keep up; reconnect")
                return
            await ws.send_json(item)
    finally:
        closed.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
            await closed


async def _until_disconnect(ws: WebSocket) -> None:
    while True:
        if (await ws.receive())["type"] == "websocket.disconnect":
            return
