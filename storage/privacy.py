"""Working hours as privacy: whose data a viewer sees only on duty, and when "on duty" is.

A device's calendar is that of the user carrying it (``user_devices``): their own
``working_hours``/``time_zone`` when set, else their team's. A device nobody carries, or whose
carrier has no calendar (empty: always on duty), is never restricted.

Who is restricted is decided by the viewer: admins see everything, the carrier sees all of
their own data, and anyone else who may see the device (a manager of the carrier's team) sees
only what happened on duty. All on-duty tests here go through ``working_intervals`` so a filter
in SQL (a ``tstzmultirange`` of those intervals) and one in Python give the same answer.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from processors.team_policy import TeamPolicy
from processors.working_hours import working_intervals
from storage.errors import StorageUnavailable

Interval = tuple[datetime, datetime]

# One query for any number of devices; the rep's calendar wins over the team's, as in dispatch.
_CALENDARS = """
SELECT ud.device_id, u.id, coalesce(u.working_hours, t.working_hours, '{}'::jsonb),
       coalesce(u.time_zone, t.time_zone, 'UTC'), t.settings
FROM user_devices ud JOIN users u ON u.id = ud.user_id LEFT JOIN teams t ON t.id = u.team_id
"""


@dataclass(frozen=True, slots=True)
class DeviceCalendar:
    device_id: int
    user_id: int
    working_hours: Mapping[str, Sequence[Sequence[str]]]
    time_zone: str
    store_off_hours: bool

    def intervals(self, start: datetime, end: datetime) -> list[Interval]:
        return working_intervals(self.working_hours, self.time_zone, start, end)

    def on_duty(self, at: datetime) -> bool:
        return bool(self.intervals(at, at + timedelta(microseconds=1)))


class DutyClock:
    """``on_duty`` for a stream of nearby instants (live messages, ingest): the intervals of a
    window around the last instant asked are kept, so most answers are a binary search."""

    WINDOW = timedelta(days=1)

    def __init__(self, calendar: DeviceCalendar) -> None:
        self.calendar = calendar
        self._lo: datetime | None = None
        self._hi: datetime | None = None
        self._starts: list[datetime] = []
        self._ends: list[datetime] = []

    def on_duty(self, at: datetime) -> bool:
        if not self.calendar.working_hours:
            return True
        if self._lo is None or self._hi is None or not self._lo <= at < self._hi:
            self._lo, self._hi = at - self.WINDOW, at + self.WINDOW
            found = self.calendar.intervals(self._lo, self._hi)
            self._starts, self._ends = [a for a, _ in found], [b for _, b in found]
        i = bisect_right(self._starts, at) - 1
        return i >= 0 and at < self._ends[i]


@dataclass(frozen=True, slots=True)
class DutyView:
    """The devices a viewer sees only on duty (``restricted``); every other device is seen whole."""

    restricted: Mapping[int, DeviceCalendar]

    def limits(self, device_id: int) -> bool:
        return device_id in self.restricted

    def intervals(self, device_id: int, start: datetime, end: datetime) -> list[Interval] | None:
        """What of [start, end) the viewer may see of this device; None: all of it."""
        calendar = self.restricted.get(device_id)
        return None if calendar is None else calendar.intervals(start, end)

    def on_duty(self, device_id: int, at: datetime) -> bool:
        calendar = self.restricted.get(device_id)
        return calendar is None or calendar.on_duty(at)

    def clocks(self) -> dict[int, DutyClock]:
        return {d: DutyClock(c) for d, c in self.restricted.items()}

    def multiranges(self, start: datetime, end: datetime) -> tuple[list[int], list[str]]:
        """Parallel arrays for SQL (``unnest(%s::int8[], %s::text[]::tstzmultirange[])``)."""
        ids = sorted(self.restricted)
        return ids, [multirange(self.restricted[d].intervals(start, end)) for d in ids]


UNRESTRICTED = DutyView({})


def within_sql(column: str, multirange_param: str = "%s") -> str:
    """``column`` inside a tstzmultirange parameter, as a condition the planner does not count on.

    The planner's estimate for ``<@`` a multirange is far too small (a month of positions:
    560 rows guessed, 67,000 real), so it reads the whole table and sorts instead of walking the
    (device_id, fix_time) index in order, 350 ms instead of 15 ms for a page of 1,000 (measured
    on PostgreSQL 15, 270,000 positions a device). Wrapped in ``coalesce`` it is an opaque filter
    on the ordered index scan.
    """
    return f"coalesce({column} <@ {multirange_param}::tstzmultirange, false)"


def multirange(intervals: Sequence[Interval]) -> str:
    """A ``tstzmultirange`` literal of [a, b) intervals; ``{}`` (empty) matches nothing."""
    return "{" + ",".join(f'["{a.isoformat()}","{b.isoformat()}")' for a, b in intervals) + "}"


def _policy(settings: Any) -> bool:
    try:
        return TeamPolicy.from_settings(settings).store_off_hours
    except ValueError:
        # Settings are checked when saved; an old bad value keeps the default (store) rather
        # than silently dropping positions.
        return True


async def device_calendars(pool: AsyncConnectionPool,
                           device_ids: Sequence[int] | None = None) -> dict[int, DeviceCalendar]:
    """The calendar and off-hours policy of each carried device among ``device_ids`` (None:
    every carried device); a device nobody carries is absent."""
    sql = _CALENDARS + ("" if device_ids is None else " WHERE ud.device_id = ANY(%s::int8[])")
    try:
        async with pool.connection() as conn:
            cur = await conn.execute(sql.encode(), () if device_ids is None else (list(device_ids),))
            rows = await cur.fetchall()
    except psycopg.OperationalError as exc:
        raise StorageUnavailable(str(exc)) from exc
    return {device: DeviceCalendar(device, user, hours or {}, zone, _policy(settings))
            for device, user, hours, zone, settings in rows}


# For each piece [lo, hi] of a trip cut at the edges of working hours (cap: the end of that
# working interval, exclusive), the first and last processed, unfiltered position inside it and the
# top speed there: the place and odometer of the cut trip at its cut ends.
_PIECE_ENDS = """
SELECT w.k, f.fix_time, f.latitude, f.longitude, f.odometer_m,
       l.fix_time, l.latitude, l.longitude, l.odometer_m, top.speed
FROM unnest(%(lo)s::timestamptz[], %(hi)s::timestamptz[], %(cap)s::timestamptz[]) WITH ORDINALITY
     AS w(lo, hi, cap, k)
CROSS JOIN LATERAL (
    SELECT fix_time, latitude, longitude, odometer_m FROM positions
    WHERE device_id = %(id)s AND fix_time >= w.lo AND fix_time <= w.hi AND fix_time < w.cap
      AND filtered IS NULL AND odometer_m IS NOT NULL
    ORDER BY fix_time, fingerprint LIMIT 1) f
CROSS JOIN LATERAL (
    SELECT fix_time, latitude, longitude, odometer_m FROM positions
    WHERE device_id = %(id)s AND fix_time >= w.lo AND fix_time <= w.hi AND fix_time < w.cap
      AND filtered IS NULL AND odometer_m IS NOT NULL
    ORDER BY fix_time DESC, fingerprint DESC LIMIT 1) l
CROSS JOIN LATERAL (
    SELECT max(speed_kmh)::float8 AS speed FROM positions
    WHERE device_id = %(id)s AND fix_time >= w.lo AND fix_time <= w.hi AND fix_time < w.cap
      AND filtered IS NULL) top
"""


@dataclass(frozen=True, slots=True)
class PieceEnd:
    """A processed position at one end of an on-duty piece of a trip."""

    time: datetime
    latitude: float
    longitude: float
    odometer_m: float


@dataclass(frozen=True, slots=True)
class PieceEnds:
    first: PieceEnd
    last: PieceEnd
    max_speed_kmh: float | None


def on_duty_pieces(start: datetime, end: datetime,
                   intervals: Sequence[Interval]) -> list[tuple[datetime, datetime, datetime]]:
    """The parts of a record [start, end] (end inclusive: a trip ends at its last fix) inside the
    intervals, as (from, to, end of that interval)."""
    out = []
    for a, b in intervals:
        lo, hi = max(start, a), min(end, b)
        # A zero-length piece of a longer record shows nothing; a zero-length record is kept
        # where it lies on duty.
        if lo < hi or (start == end and a <= start < b):
            out.append((lo, hi, b))
    return out


async def piece_ends(pool: AsyncConnectionPool, device_id: int,
                     pieces: Sequence[tuple[datetime, datetime, datetime]]) -> list[PieceEnds | None]:
    """For each (lo, hi, cap): the first and last processed, unfiltered position with
    ``lo <= fix_time <= hi`` and ``fix_time < cap``, and the top speed there; None where none."""
    if not pieces:
        return []
    try:
        async with pool.connection() as conn:
            cur = await conn.execute(_PIECE_ENDS.encode(), {
                "id": device_id, "lo": [p[0] for p in pieces], "hi": [p[1] for p in pieces],
                "cap": [p[2] for p in pieces]})
            rows = await cur.fetchall()
    except psycopg.OperationalError as exc:
        raise StorageUnavailable(str(exc)) from exc
    found = {r[0]: PieceEnds(PieceEnd(*r[1:5]), PieceEnd(*r[5:9]), r[9]) for r in rows}
    return [found.get(k) for k in range(1, len(pieces) + 1)]


async def duty_view(pool: AsyncConnectionPool, device_ids: Sequence[int] | None, *, everything: bool,
                    viewer: int | None) -> DutyView:
    """What ``viewer`` (a user id; None for a token without a user) sees only on duty among
    ``device_ids``. Admins (``everything``) see all, without a query."""
    if everything or (device_ids is not None and not device_ids):
        return UNRESTRICTED
    found = await device_calendars(pool, device_ids)
    return DutyView({d: c for d, c in found.items() if c.user_id != viewer and c.working_hours})
