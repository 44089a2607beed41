"""Is this moment inside a weekly working calendar?

A calendar maps ``mon``..``sun`` to local ``[["HH:MM", "HH:MM"], ...]`` periods in an IANA zone
(shape checked in storage/calendars.py). An empty calendar means none was set: always on duty,
so a team that has not configured hours is not treated as never working. With any day set, a
day left out is a day off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _minutes(text: str) -> int:
    return int(text[:2]) * 60 + int(text[3:])


def on_duty(calendar: Mapping[str, Sequence[Sequence[str]]] | None, zone: str, at: datetime) -> bool:
    if not calendar:
        return True
    local = at.astimezone(ZoneInfo(zone))
    minute = local.hour * 60 + local.minute
    periods = calendar.get(DAYS[local.weekday()], ())
    return any(_minutes(start) <= minute < _minutes(end) for start, end in periods)
