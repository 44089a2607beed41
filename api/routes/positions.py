"""Position history of a device and the latest position of every device."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from api.access import Visible, require_device, visible_devices
from api.deps import Deps
from api.schemas import PositionOut, PositionPage
from api.timerange import decode_cursor, encode_cursor, range_or_last_day

router = APIRouter(tags=["positions"])

_FROM = "ISO 8601 with a zone, inclusive; default: `to` minus 24 h"
_TO = "ISO 8601 with a zone, exclusive; default: now"


def _out(row: dict[str, Any]) -> PositionOut:
    return PositionOut(**{k: v for k, v in row.items() if k != "fingerprint"})


@router.get("/devices/{device_id}/positions", response_model=PositionPage)
async def device_positions(
    device_id: int,
    d: Deps,
    scope: Visible,
    start: Annotated[datetime | None, Query(alias="from", description=_FROM)] = None,
    end: Annotated[datetime | None, Query(alias="to", description=_TO)] = None,
    order: Annotated[Literal["asc", "desc"], Query(description="asc = oldest first")] = "desc",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> PositionPage:
    require_device(scope, device_id)  # an unseen device is answered like an unknown one
    await d.devices.get(device_id)  # 404 for an unknown device, not an empty list
    start, end = range_or_last_day(start, end)
    after = decode_cursor(cursor) if cursor else None
    rows = await d.positions.history(device_id, start, end, limit=limit + 1,
                                     newest_first=order == "desc", after=after)
    more = len(rows) > limit
    rows = rows[:limit]
    return PositionPage(items=[_out(r) for r in rows],
                        next_cursor=encode_cursor(rows[-1]["fix_time"], rows[-1]["fingerprint"])
                        if more and rows else None)


@router.get("/positions/latest", response_model=list[PositionOut])
async def latest_positions(d: Deps, scope: Visible) -> list[PositionOut]:
    """The newest position of every device the caller may see."""
    return [_out(r) for r in await d.positions.latest(visible_devices(scope, None))]
