"""Position history of a device and the latest position of every device."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query

from api.deps import Caller, Deps
from api.schemas import PositionOut, PositionPage

router = APIRouter(tags=["positions"])

MAX_RANGE = timedelta(days=366)
_FROM = "ISO 8601 with a zone, inclusive; default: `to` minus 24 h"
_TO = "ISO 8601 with a zone, exclusive; default: now"


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise HTTPException(400, f"`{name}` needs a time zone, e.g. 2026-11-23T08:00:00Z or +01:00")
    return value


def _encode_cursor(row: dict[str, Any]) -> str:
    raw = f"{row['fix_time'].isoformat()}|{row['fingerprint']}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, fp = raw.split("|")
        parsed = datetime.fromisoformat(when)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed, int(fp)
    except ValueError as exc:
        raise HTTPException(400, "invalid cursor") from exc


def _out(row: dict[str, Any]) -> PositionOut:
    return PositionOut(**{k: v for k, v in row.items() if k != "fingerprint"})


@router.get("/devices/{device_id}/positions", response_model=PositionPage)
async def device_positions(
    device_id: int,
    d: Deps,
    _: Caller,
    start: Annotated[datetime | None, Query(alias="from", description=_FROM)] = None,
    end: Annotated[datetime | None, Query(alias="to", description=_TO)] = None,
    order: Annotated[Literal["asc", "desc"], Query(description="asc = oldest first")] = "desc",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> PositionPage:
    await d.devices.get(device_id)  # 404 for an unknown device, not an empty list
    end = _aware(end, "to") or datetime.now(UTC)
    start = _aware(start, "from") or end - timedelta(days=1)
    if start >= end:
        raise HTTPException(400, "`from` must be before `to`")
    if end - start > MAX_RANGE:
        raise HTTPException(400, "time range is longer than 366 days; page through shorter ranges")
    after = _decode_cursor(cursor) if cursor else None
    rows = await d.positions.history(device_id, start, end, limit=limit + 1,
                                     newest_first=order == "desc", after=after)
    more = len(rows) > limit
    rows = rows[:limit]
    return PositionPage(items=[_out(r) for r in rows],
                        next_cursor=_encode_cursor(rows[-1]) if more and rows else None)


@router.get("/positions/latest", response_model=list[PositionOut])
async def latest_positions(d: Deps, _: Caller) -> list[PositionOut]:
    return [_out(r) for r in await d.positions.latest()]
