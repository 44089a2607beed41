"""Report queries: trips, stops, routes and daily summaries of one device or many.

Every report reads in one REPEATABLE READ transaction, so the closed trips and stops, the
position marks and the processor state (which holds the open trip or stop) are one snapshot:
a trip the runner closes meanwhile is counted once, either as open or as closed.

Distances per day come from the odometer marks, not from the trips: the odometer at a moment is
that after the last processed, unfiltered position at or before it (before the device's first
position, that of its first one), so a day's distance is the difference of two index probes and a
trip crossing midnight is split exactly where the device was at midnight.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from processors import motion
from processors.records import Stop, Trip
from storage.errors import NotFound, StorageUnavailable
from storage.privacy import within_sql


@dataclass(frozen=True, slots=True)
class DayWindow:
    """One local day of a report, cut to the report's range: [start, end)."""

    day: date
    start: datetime
    end: datetime


def _local_midnight(day: date, zone: tzinfo) -> datetime:
    """The first instant whose local date is ``day``: where midnight falls in a DST gap or is
    repeated, the instant the clock shows ``day`` for good."""
    options = sorted({datetime.combine(day, time(0), zone).replace(fold=f).astimezone(UTC) for f in (0, 1)})
    for t in options:
        if t.astimezone(zone).date() >= day:
            return t
    return options[-1]


def day_windows(start: datetime, end: datetime, zone: tzinfo) -> list[DayWindow]:
    """The local days of ``zone`` that [start, end) touches, each cut to the range (UTC times).
    A day a zone skipped (Samoa, 2011-12-30) does not appear. OverflowError at year 9999."""
    cursor, end = start.astimezone(UTC), end.astimezone(UTC)
    out: list[DayWindow] = []
    while cursor < end:
        day = cursor.astimezone(zone).date()
        stop = min(_local_midnight(day + timedelta(days=1), zone), end)
        out.append(DayWindow(day, cursor, stop))
        cursor = stop
    return out


@dataclass(frozen=True, slots=True)
class ReportTrip:
    trip: Trip
    open: bool


@dataclass(frozen=True, slots=True)
class ReportStop:
    stop: Stop
    open: bool


@dataclass(frozen=True, slots=True)
class RoutePosition:
    """A stored position with its marks (``odometer_m`` and ``moving`` None until processed)."""

    time: datetime
    latitude: float
    longitude: float
    speed_kmh: float | None
    course_deg: float | None
    altitude_m: float | None
    accuracy_m: float | None
    odometer_m: float | None
    filtered: str | None
    moving: bool | None
    attributes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DaySummary:
    """``day`` is None on a device's total row. ``pending``: positions in the window that the
    runner has not processed yet, so the distance does not include them yet."""

    day: date | None
    start: datetime
    end: datetime
    distance_m: float
    driving_s: float
    trips: int
    max_speed_kmh: float | None
    start_odometer_m: float | None
    end_odometer_m: float | None
    pending: int

    @property
    def average_speed_kmh(self) -> float | None:
        return self.distance_m / self.driving_s * 3.6 if self.driving_s > 0 else None


@dataclass(frozen=True, slots=True)
class DeviceSummary:
    device_id: int
    name: str
    processed_until: datetime | None
    days: list[DaySummary]
    total: DaySummary


def _overlaps(start: datetime, end: datetime, lo: datetime, hi: datetime) -> bool:
    """Overlaps [lo, hi); a zero-length record counts where it begins."""
    return start < hi and (end > lo or start >= lo)


# The records that overlap [from, to): at most one that began before (a device's trips never overlap,
# nor do its stops), then those that begin inside; both read along the (device_id, start_time) key.
_OVERLAPPING = """
SELECT * FROM (
    (SELECT {cols} FROM {table} WHERE device_id = %(id)s AND start_time < %(from)s
     ORDER BY start_time DESC LIMIT 1)
    UNION ALL
    (SELECT {cols} FROM {table} WHERE device_id = %(id)s AND start_time >= %(from)s AND start_time < %(to)s)
) r
WHERE r.end_time > %(from)s OR r.start_time >= %(from)s
ORDER BY start_time
"""
_TRIP_COLS = """start_time, end_time, start_latitude, start_longitude, end_latitude, end_longitude,
    distance_m, max_speed_kmh, average_speed_kmh, start_odometer_m, end_odometer_m"""
_STOP_COLS = "start_time, end_time, latitude, longitude, odometer_m"

_ROUTE = """
SELECT fix_time, latitude, longitude, speed_kmh, course_deg, altitude_m, accuracy_m,
       odometer_m, filtered, moving, attributes
FROM positions
WHERE device_id = %s AND fix_time >= %s AND fix_time < %s
  AND latitude BETWEEN -90 AND 90 AND longitude BETWEEN -180 AND 180{kept}{within}
ORDER BY fix_time, fingerprint
LIMIT %s
"""

# Per device: its name, how far it is processed, and its motion state when a trip is open.
_DEVICES = """
SELECT d.id, d.name, s.upto_time,
       CASE WHEN s.state -> 'motion' ->> 'phase' = 'trip' THEN s.state -> 'motion' END
FROM devices d LEFT JOIN processing_state s ON s.device_id = d.id
WHERE %(every)s OR d.id = ANY(%(ids)s::int8[]) OR d.group_id = ANY(%(groups)s::int8[])
ORDER BY d.id
"""

# All devices and days in one statement. Parameters: ids (devices), bounds (from, each local
# midnight inside the range, to), starts/ends (the day windows: bounds without the last/first),
# ndays, from, to, and the open trips (computed from the processor state) as parallel arrays.
_SUMMARY = """
WITH dev AS (SELECT unnest(%(ids)s::int8[]) AS id),
-- The odometer at each boundary: two index probes on positions (device_id, fix_time), the second
-- only for boundaries before the device's first processed position.
odo AS MATERIALIZED (
    SELECT dev.id AS device_id, b.n, coalesce(
        (SELECT p.odometer_m FROM positions p
         WHERE p.device_id = dev.id AND p.fix_time <= b.at AND p.filtered IS NULL AND p.odometer_m IS NOT NULL
         ORDER BY p.fix_time DESC, p.fingerprint DESC LIMIT 1),
        (SELECT p.odometer_m FROM positions p
         WHERE p.device_id = dev.id AND p.fix_time > b.at AND p.filtered IS NULL AND p.odometer_m IS NOT NULL
         ORDER BY p.fix_time, p.fingerprint LIMIT 1)) AS odometer_m
    FROM dev CROSS JOIN unnest(%(bounds)s::timestamptz[]) WITH ORDINALITY AS b(at, n)
),
odo_day AS (
    SELECT device_id, n, odometer_m, lead(odometer_m) OVER (PARTITION BY device_id ORDER BY n) AS next_m
    FROM odo
),
trip AS (
    SELECT r.* FROM dev CROSS JOIN LATERAL (
        (SELECT device_id, start_time, end_time, max_speed_kmh FROM trips
         WHERE device_id = dev.id AND start_time < %(from)s ORDER BY start_time DESC LIMIT 1)
        UNION ALL
        (SELECT device_id, start_time, end_time, max_speed_kmh FROM trips
         WHERE device_id = dev.id AND start_time >= %(from)s AND start_time < %(to)s)) r
    UNION ALL
    SELECT * FROM unnest(%(open_ids)s::int8[], %(open_starts)s::timestamptz[],
                         %(open_ends)s::timestamptz[], %(open_max)s::float8[])
),
-- A trip's piece in each day it touches; the days are found by binary search in the day starts.
piece AS (
    SELECT trip.*, g.n,
           greatest(trip.start_time, (%(starts)s::timestamptz[])[g.n]) AS a,
           least(trip.end_time, (%(ends)s::timestamptz[])[g.n]) AS b,
           (%(ends)s::timestamptz[])[g.n] AS day_end
    FROM trip CROSS JOIN LATERAL generate_series(
        greatest(width_bucket(trip.start_time, %(starts)s::timestamptz[]), 1),
        least(width_bucket(trip.end_time, %(starts)s::timestamptz[]), %(ndays)s)) AS g(n)
),
-- A trip wholly inside a day keeps its maximum; a piece takes the fastest report inside it.
trip_day AS (
    SELECT device_id, n, count(*) FILTER (WHERE start_time >= a) AS trips,
           sum(extract(epoch FROM b - a)) AS driving_s,
           max(CASE WHEN start_time >= a AND end_time <= b THEN max_speed_kmh
                    ELSE coalesce((SELECT max(p.speed_kmh)::float8 FROM positions p
                                   WHERE p.device_id = piece.device_id AND p.fix_time >= a AND p.fix_time <= b
                                     AND p.filtered IS NULL), max_speed_kmh) END) AS max_speed_kmh
    FROM piece
    WHERE (b > a OR start_time >= a) AND start_time < day_end
    GROUP BY device_id, n
),
-- Unprocessed positions all lie at or after the device's dirty marker: only that tail is read.
pend AS (
    SELECT d.device_id, x.n, x.pending
    FROM dev JOIN processing_dirty d ON d.device_id = dev.id
    CROSS JOIN LATERAL (
        SELECT width_bucket(p.fix_time, %(starts)s::timestamptz[]) AS n, count(*) AS pending
        FROM positions p
        WHERE p.device_id = d.device_id AND p.fix_time >= greatest(d.since_time, %(from)s)
          AND p.fix_time < %(to)s AND p.odometer_m IS NULL
          AND p.latitude IS NOT NULL AND p.longitude IS NOT NULL
        GROUP BY 1) x
)
SELECT o.device_id, o.n, o.odometer_m, o.next_m, coalesce(t.trips, 0), coalesce(t.driving_s, 0),
       t.max_speed_kmh, coalesce(pend.pending, 0)
FROM odo_day o
LEFT JOIN trip_day t USING (device_id, n)
LEFT JOIN pend USING (device_id, n)
WHERE o.n <= %(ndays)s
ORDER BY o.device_id, o.n
"""


class ReportTooLarge(Exception):
    """The report would have more rows than the caller allows."""


def _trip(r: Sequence[Any]) -> Trip:
    return Trip(*r[:11])


class ReportStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    @asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                # Reports are index probes; the planner's row guesses for them (generate_series,
                # unnest) are large enough to trigger JIT, which then costs more than the query.
                await conn.execute("SET LOCAL jit = off")
                yield conn
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(str(exc)) from exc

    async def trips(self, device_id: int, start: datetime, end: datetime) -> list[ReportTrip]:
        """Trips overlapping [start, end) in time order, the open one (if any) last."""
        async with self._snapshot() as conn:
            cur = await conn.execute(_OVERLAPPING.format(cols=_TRIP_COLS, table="trips").encode(),
                                     {"id": device_id, "from": start, "to": end})
            out = [ReportTrip(_trip(r), False) for r in await cur.fetchall()]
            state = await _motion_state(conn, device_id)
        current = motion.open_trip(state) if state else None
        if current is not None and _overlaps(current.start_time, current.end_time, start, end):
            out.append(ReportTrip(current, True))
        return out

    async def stops(self, device_id: int, start: datetime, end: datetime) -> list[ReportStop]:
        async with self._snapshot() as conn:
            cur = await conn.execute(_OVERLAPPING.format(cols=_STOP_COLS, table="stops").encode(),
                                     {"id": device_id, "from": start, "to": end})
            out = [ReportStop(Stop(*r), False) for r in await cur.fetchall()]
            state = await _motion_state(conn, device_id)
        current = motion.open_stop(state) if state else None
        if current is not None and _overlaps(current.start_time, current.end_time, start, end):
            out.append(ReportStop(current, True))
        return out

    async def route(self, device_id: int, start: datetime, end: datetime, *, include_filtered: bool,
                    limit: int, within: str | None = None) -> list[RoutePosition]:
        """Positions with a location in [start, end) in processing order, at most ``limit``;
        ``within``: a tstzmultirange literal the fix time must also lie in (the on-duty hours)."""
        sql = _ROUTE.format(kept="" if include_filtered else " AND filtered IS NULL",
                            within="" if within is None else f" AND {within_sql('fix_time')}")
        params = (device_id, start, end, limit) if within is None else (device_id, start, end, within, limit)
        async with self._snapshot() as conn:
            cur = await conn.execute(sql.encode(), params)
            return [RoutePosition(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10] or {})
                    for r in await cur.fetchall()]

    async def summary(self, windows: Sequence[DayWindow], *, device_ids: Sequence[int] = (),
                      group_ids: Sequence[int] = (), every: bool = False,
                      max_rows: int | None = None) -> list[DeviceSummary]:
        """Per device (every one, or those named and those in the groups named) and per window: one
        query for all devices and days. NotFound names devices or groups that do not exist;
        ReportTooLarge when devices × windows exceeds ``max_rows``."""
        if not windows:
            return []
        start, end = windows[0].start, windows[-1].end
        async with self._snapshot() as conn:
            await _check_exist(conn, device_ids, group_ids)
            cur = await conn.execute(_DEVICES.encode(), {"every": every, "ids": list(device_ids),
                                                         "groups": list(group_ids)})
            devices = await cur.fetchall()
            if max_rows is not None and len(devices) * len(windows) > max_rows:
                raise ReportTooLarge(f"{len(devices)} devices × {len(windows)} days"
                                     f" is more than {max_rows} rows")
            opened = [(r[0], t) for r in devices if r[3] is not None
                      and (t := motion.open_trip(motion.MotionState.from_json(r[3]))) is not None]
            starts = [w.start for w in windows]
            cur = await conn.execute(_SUMMARY.encode(), {
                "ids": [r[0] for r in devices], "bounds": [*starts, end], "starts": starts,
                "ends": [w.end for w in windows], "ndays": len(windows), "from": start, "to": end,
                "open_ids": [i for i, _ in opened], "open_starts": [t.start_time for _, t in opened],
                "open_ends": [t.end_time for _, t in opened],
                "open_max": [t.max_speed_kmh for _, t in opened]})
            rows = await cur.fetchall()
        by_device: dict[int, list[DaySummary]] = {r[0]: [] for r in devices}
        for device_id, n, odo, next_odo, trips, driving, max_kmh, pending in rows:
            w = windows[n - 1]
            distance = next_odo - odo if odo is not None and next_odo is not None else 0.0
            by_device[device_id].append(DaySummary(w.day, w.start, w.end, distance, float(driving), trips,
                                                   max_kmh, odo, next_odo, pending))
        return [DeviceSummary(r[0], r[1], r[2], days, _total(days)) for r in devices
                if (days := by_device[r[0]])]


def _total(days: Sequence[DaySummary]) -> DaySummary:
    speeds = [d.max_speed_kmh for d in days if d.max_speed_kmh is not None]
    return DaySummary(None, days[0].start, days[-1].end, sum(d.distance_m for d in days),
                      sum(d.driving_s for d in days), sum(d.trips for d in days), max(speeds, default=None),
                      days[0].start_odometer_m, days[-1].end_odometer_m, sum(d.pending for d in days))


async def _motion_state(conn: AsyncConnection, device_id: int) -> motion.MotionState | None:
    cur = await conn.execute("SELECT state -> 'motion' FROM processing_state WHERE device_id = %s",
                             (device_id,))
    row = await cur.fetchone()
    return motion.MotionState.from_json(row[0]) if row and row[0] else None


async def _check_exist(conn: AsyncConnection, device_ids: Sequence[int], group_ids: Sequence[int]) -> None:
    cur = await conn.execute(
        "SELECT array(SELECT x FROM unnest(%s::int8[]) x WHERE NOT EXISTS (SELECT FROM devices WHERE id = x)"
        " ORDER BY x), array(SELECT x FROM unnest(%s::int8[]) x"
        " WHERE NOT EXISTS (SELECT FROM device_groups WHERE id = x) ORDER BY x)",
        (list(device_ids), list(group_ids)))
    row = await cur.fetchone()
    assert row is not None
    missing = [f"device {x}" for x in row[0]] + [f"group {x}" for x in row[1]]
    if missing:
        raise NotFound(", ".join(missing))
