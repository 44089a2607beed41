"""Events (geofence enter/exit, overspeed, ...), filtered by device, type and time."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query

from api.deps import Caller, Deps
from api.schemas import BigInt, EventOut, EventPage
from storage.events import EventStore, StoredEvent

router = APIRouter(tags=["events"])

MAX_RANGE = timedelta(days=366)
_FROM = "ISO 8601 with a zone, inclusive; default: `to` minus 24 h"
_TO = "ISO 8601 with a zone, exclusive; default: now"
_DEVICE = "device id; repeat for several (default: every device)"
_TYPE = "event type, e.g. geofenceEnter; repeat for several (default: every type)"


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise HTTPException(422, f"`{name}` needs a time zone, e.g. 2026-11-23T08:00:00Z or +01:00")
    return value


def _encode_cursor(e: StoredEvent) -> str:
    raw = f"{e.time.isoformat()}|{e.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, event_id = raw.split("|")
        parsed = datetime.fromisoformat(when)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed, int(event_id)
    except ValueError as exc:  # binascii.Error and UnicodeDecodeError are ValueErrors too
        raise HTTPException(422, "invalid cursor") from exc


def _out(e: StoredEvent) -> EventOut:
    return EventOut(id=e.id, device_id=e.device_id, time=e.time, type=e.type, latitude=e.latitude,
                    longitude=e.longitude, geofence_id=e.geofence_id, attributes=e.attributes)


@router.get("/events", response_model=EventPage)
async def list_events(
    d: Deps,
    _: Caller,
    devices: Annotated[list[BigInt] | None, Query(alias="device", description=_DEVICE)] = None,
    types: Annotated[list[str] | None, Query(alias="type", description=_TYPE)] = None,
    start: Annotated[datetime | None, Query(alias="from", description=_FROM)] = None,
    end: Annotated[datetime | None, Query(alias="to", description=_TO)] = None,
    order: Annotated[Literal["asc", "desc"], Query(description="asc = oldest first")] = "desc",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> EventPage:
    end = _aware(end, "to") or datetime.now(UTC)
    start = _aware(start, "from") or end - timedelta(days=1)
    if start >= end:
        raise HTTPException(422, "`from` must be before `to`")
    if end - start > MAX_RANGE:
        raise HTTPException(422, "time range is longer than 366 days; page through shorter ranges")
    after = _decode_cursor(cursor) if cursor else None
    rows = await EventStore(d.db()).list(device_ids=devices, types=types, start=start, end=end,
                                         limit=limit + 1, after=after, newest_first=order == "desc")
    more = len(rows) > limit
    rows = rows[:limit]
    return EventPage(items=[_out(e) for e in rows], next_cursor=_encode_cursor(rows[-1]) if more else None)
