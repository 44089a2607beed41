"""Events (geofence enter/exit, overspeed, ...), filtered by device, type and time.

Of a device the caller sees only on duty (storage.privacy: a manager looking at a rep's device),
only events at on-duty times are listed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api.access import Visible, visible_devices
from api.deps import Deps
from api.schemas import BigInt, EventOut, EventPage
from api.timerange import decode_cursor, encode_cursor, range_or_last_day
from storage.events import EventStore, StoredEvent
from storage.privacy import duty_view

router = APIRouter(tags=["events"])

MAX_RANGE = timedelta(days=366)
_FROM = "ISO 8601 with a zone, inclusive; default: `to` minus 24 h"
_TO = "ISO 8601 with a zone, exclusive; default: now"
_DEVICE = "device id; repeat for several (default: every device the caller may see)"
_TYPE = "event type, e.g. geofenceEnter; repeat for several (default: every type)"


def _out(e: StoredEvent) -> EventOut:
    return EventOut(id=e.id, device_id=e.device_id, time=e.time, type=e.type, latitude=e.latitude,
                    longitude=e.longitude, geofence_id=e.geofence_id, attributes=e.attributes)


@router.get("/events", response_model=EventPage)
async def list_events(
    d: Deps,
    scope: Visible,
    devices: Annotated[list[BigInt] | None, Query(alias="device", description=_DEVICE)] = None,
    types: Annotated[list[str] | None, Query(alias="type", description=_TYPE)] = None,
    start: Annotated[datetime | None, Query(alias="from", description=_FROM)] = None,
    end: Annotated[datetime | None, Query(alias="to", description=_TO)] = None,
    order: Annotated[Literal["asc", "desc"], Query(description="asc = oldest first")] = "desc",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> EventPage:
    start, end = range_or_last_day(start, end)
    after = decode_cursor(cursor) if cursor else None
    # Devices the caller may not see drop out, as unknown ids do.
    ids = visible_devices(scope, devices)
    view = await duty_view(d.db(), ids, everything=scope.everything, viewer=scope.user_id)
    rows = await EventStore(d.db()).list(device_ids=ids, types=types, start=start, end=end, limit=limit + 1,
                                         after=after, newest_first=order == "desc",
                                         within=view.multiranges(start, end) if view.restricted else None)
    more = len(rows) > limit
    rows = rows[:limit]
    return EventPage(items=[_out(e) for e in rows],
                     next_cursor=encode_cursor(rows[-1].time, rows[-1].id) if more else None)
