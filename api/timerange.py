"""Time ranges and keyset cursors as every list and report route reads them.

A range is [from, to) in ISO 8601 with a zone (a time without one is ambiguous: 422), at most
366 days, so one request never scans years. A cursor is the (time, id) of the last row of the
previous page, opaque to clients.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from fastapi import HTTPException

MAX_RANGE = timedelta(days=366)
DEFAULT_SPAN = timedelta(days=1)
ZONE = "`{name}` needs a time zone, e.g. 2026-11-23T08:00:00Z or +01:00"


def checked_range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """Both times in UTC, or 422 naming the problem."""
    for name, value in (("from", start), ("to", end)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise HTTPException(422, ZONE.format(name=name))
        try:
            value.astimezone(UTC)
        except OverflowError as exc:
            raise HTTPException(422, f"`{name}` is out of range") from exc
    if end <= start:
        raise HTTPException(422, "`to` must be after `from`")
    if end - start > MAX_RANGE:
        raise HTTPException(422, "the range is longer than 366 days; ask for shorter ranges")
    return start.astimezone(UTC), end.astimezone(UTC)


def range_or_last_day(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """For lists: ``to`` defaults to now and ``from`` to a day before ``to``."""
    if end is not None and (end.tzinfo is None or end.utcoffset() is None):
        raise HTTPException(422, ZONE.format(name="to"))
    end = end if end is not None else datetime.now(UTC)
    return checked_range(start if start is not None else end - DEFAULT_SPAN, end)


def encode_cursor(time: datetime, key: int) -> str:
    return base64.urlsafe_b64encode(f"{time.isoformat()}|{key}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, key = raw.split("|")
        parsed = datetime.fromisoformat(when)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed, int(key)
    except ValueError as exc:  # binascii.Error and UnicodeDecodeError are ValueErrors too
        raise HTTPException(422, "invalid cursor") from exc
