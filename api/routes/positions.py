"""Position history of a device and the latest position of every device.

A viewer who sees a rep's device only on duty (storage.privacy: a manager) gets only positions
whose fix time is inside the rep's working hours, in the history and in "latest" alike.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from api.access import Visible, require_device, visible_devices
from api.deps import Deps
from api.schemas import PositionOut, PositionPage
from api.timerange import decode_cursor, encode_cursor, range_or_last_day
from storage.privacy import duty_view, multirange

router = APIRouter(tags=["positions"])

_FROM = "ISO 8601 with a zone, inclusive; default: `to` minus 24 h"
_TO = "ISO 8601 with a zone, exclusive; default: now"
# How far back "latest" looks for an on-duty position of a device seen only on duty.
LATEST_ON_DUTY_LOOKBACK = timedelta(days=31)


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
    view = await duty_view(d.db(), [device_id], everything=scope.everything, viewer=scope.user_id)
    duty = view.intervals(device_id, start, end)
    rows = [] if duty == [] else await d.positions.history(
        device_id, start, end, limit=limit + 1, newest_first=order == "desc", after=after,
        within=None if duty is None else multirange(duty))
    more = len(rows) > limit
    rows = rows[:limit]
    return PositionPage(items=[_out(r) for r in rows],
                        next_cursor=encode_cursor(rows[-1]["fix_time"], rows[-1]["fingerprint"])
                        if more and rows else None)


@router.get("/positions/latest", response_model=list[PositionOut])
async def latest_positions(d: Deps, scope: Visible) -> list[PositionOut]:
    """The newest position of every device the caller may see (of a device seen only on duty,
    the newest one on duty within the last 31 days)."""
    ids = visible_devices(scope, None)
    view = await duty_view(d.db(), ids, everything=scope.everything, viewer=scope.user_id)
    rows = await d.positions.latest(ids if not view.restricted else
                                    [x for x in ids or () if not view.limits(x)])
    now = datetime.now(UTC)
    limited, lows, highs, ranges = [], [], [], []
    for device_id in sorted(view.restricted):
        duty = view.intervals(device_id, now - LATEST_ON_DUTY_LOOKBACK, now)
        if duty:
            limited.append(device_id)
            lows.append(duty[0][0])
            highs.append(duty[-1][1])
            ranges.append(multirange(duty))
    if limited:
        rows += await d.positions.latest_within(limited, lows, highs, ranges)
        rows.sort(key=lambda r: r["device_id"])
    return [_out(r) for r in rows]
