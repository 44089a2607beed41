"""Is this moment inside a weekly working calendar?

A calendar maps ``mon``..``sun`` to local ``[["HH:MM", "HH:MM"], ...]`` periods in an IANA zone
(shape checked in storage/calendars.py). An empty calendar means none was set: always on duty,
so a team that has not configured hours is not treated as never working. With any day set, a
day left out is a day off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _minutes(text: str) -> int:
    return int(text[:2]) * 60 + int(text[3:])


def on_duty(calendar: Mapping[str, Sequence[Sequence[str]]] | None, zone: str, at: datetime) -> bool:
    """Inside a period of the local day before, of or after ``at``, each period read as the instants
    ``_instant`` gives (so this agrees with ``working_intervals`` on DST days too)."""
    if not calendar:
        return True
    tz = ZoneInfo(zone)
    day = at.astimezone(tz).date()
    for d in (day - timedelta(days=1), day, day + timedelta(days=1)):
        midnight = datetime.combine(d, time(), tzinfo=tz)
        for first, final in calendar.get(DAYS[d.weekday()], ()):
            if _instant(midnight, _minutes(first), tz) <= at < _instant(midnight, _minutes(final), tz):
                return True
    return False


def working_intervals(calendar: Mapping[str, Sequence[Sequence[str]]] | None, zone: str,
                      start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The on-duty parts of [start, end) as ordered, non-touching UTC intervals.

    Local times are turned into instants day by day in the zone, so a working day keeps its local
    hours across a DST change (a period in a skipped or repeated hour follows ``zoneinfo``'s fold=0
    reading). A period ending at 24:00 that meets the next day's 00:00 is one interval.
    """
    if end <= start:
        return []
    if not calendar:
        return [(start, end)]
    tz = ZoneInfo(zone)
    out: list[tuple[datetime, datetime]] = []
    day = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date()
    while day <= last:
        midnight = datetime.combine(day, time(), tzinfo=tz)
        for first, final in calendar.get(DAYS[day.weekday()], ()):
            a = _instant(midnight, _minutes(first), tz)
            b = _instant(midnight, _minutes(final), tz)
            a, b = max(a, start), min(b, end)
            if a >= b:
                continue
            if out and out[-1][1] >= a:
                out[-1] = (out[-1][0], max(out[-1][1], b))
            else:
                out.append((a, b))
        day += timedelta(days=1)
    return out


def _instant(midnight: datetime, minutes: int, tz: ZoneInfo) -> datetime:
    """The first instant the zone's clock shows this wall time or later: "08:00" stays 08:00 local
    on a DST day; a time shown twice (clocks going back) is its first showing; a time the clock
    jumps over (clocks going forward) is the jump."""
    wall = midnight.replace(tzinfo=None) + timedelta(minutes=minutes)
    later = wall.replace(tzinfo=tz).astimezone(UTC)  # fold=0: the earlier of two showings
    if later.astimezone(tz).replace(tzinfo=None) == wall:
        return later
    earlier = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)  # the jump lies in (earlier, later]
    while later - earlier > timedelta(seconds=1):
        mid = earlier + timedelta(seconds=(later - earlier).total_seconds() // 2)
        if mid.astimezone(tz).replace(tzinfo=None) >= wall:
            later = mid
        else:
            earlier = mid
    return later
