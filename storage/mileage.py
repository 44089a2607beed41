"""Mileage for reimbursement: per rep and local day, the business km driven on duty, from the odometer.

Where the km come from. Distances are differences of the processed odometer marks
(``positions.odometer_m``, which follow the device's own odometer when its processing settings say
``use_device_odometer``), read with the summary report's rule (storage/reports.py ``_SUMMARY``): the
odometer at an instant is that after the last processed, unfiltered position at or before it (before
the device's first one, that of its first one). So a device's total for a day is, by construction,
exactly the summary report's distance for that device and day in the rep's zone.

- Business km of a device on a rep's local day: the sum over the rep's on-duty intervals of that day
  (``processors.working_hours.working_intervals`` over the rep's own calendar and zone, else the
  team's) of odometer(interval end) − odometer(interval start). A trip running past 17:00 is cut
  where the device was at 17:00. Personal km = total − business: reported, never paid. A rep with
  no calendar at all is always on duty (as ``working_intervals`` says), so all their km are business.
- One device per rep-day. A rep may carry a phone and a vehicle tracker (``user_devices``); in the
  same car both measure the same road, and adding them would pay it twice. The report cannot tell
  "same car" from "phone left in the office", so it takes the device with the most business km that
  day (then the most total km, then the lowest id): never more than the rep can have driven, and
  named in the row so a manager can see which one was paid. The others are listed as not counted.
- Evidence: the counted device's trips (closed ones, and the one under way from the processor state)
  that overlap an on-duty interval of the day, with the km and seconds of their on-duty part (a trip
  wholly on duty: its own odometer span; a cut one: the odometer at the cuts, by the rule above).
  ``driving_s`` is the sum of those seconds (analytics uses it as the rep's driving time). The
  day's business km are the odometer over the hours, not the sum of the trips: movement too short
  to make a trip (under 200 m) is still driven.
- Which days are listed: a reimbursement sheet lists working days, so every day on which the rep's
  calendar has on-duty hours appears, with 0 km when nothing moved (a visibly empty working day,
  not a silently missing one); any other day appears only when a device of the rep moved that day
  (weekend km show up as personal). A rep without a calendar would be "working" every day of the
  range, so for them only days with movement are listed.
- Positions the processing runner has not reached yet have no odometer mark and count when it has
  (as in the summary report, which shows them as ``pending``).
- Devices are those the rep carries now (``user_devices`` keeps no history): a device handed over
  mid-period counts for its current carrier over the whole period.

Everything is read in one REPEATABLE READ snapshot: the trips, the processor state and the odometer
probes agree with each other even while the processing runner writes.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg_pool import AsyncConnectionPool

from processors import motion
from processors.team_policy import TeamPolicy
from processors.working_hours import working_intervals
from storage.errors import StorageUnavailable
from storage.reports import DayWindow, day_windows

Interval = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class MileageTrip:
    """A trip of the counted device (whole, as stored) and the metres of its on-duty part that day."""

    device_id: int
    start_time: datetime
    end_time: datetime
    start_latitude: float
    start_longitude: float
    end_latitude: float
    end_longitude: float
    business_m: float
    # Seconds of the on-duty part that day.
    business_s: float = 0.0
    # The trip still under way (from the processor state): its end is the last fix so far.
    open: bool = False
    # The on-duty part that day: from the start of its first piece to the end of its last. Where
    # they differ from start_time/end_time, that end of the trip lay off duty.
    duty_start: datetime | None = None
    duty_end: datetime | None = None

    @property
    def starts_on_duty(self) -> bool:
        return self.duty_start == self.start_time

    @property
    def ends_on_duty(self) -> bool:
        return self.duty_end == self.end_time


@dataclass(frozen=True, slots=True)
class DeviceDistance:
    """A device of the rep that was not counted that day, with what it measured."""

    device_id: int
    business_m: float
    personal_m: float


@dataclass(frozen=True, slots=True)
class MileageDay:
    """``device_id``: the counted device (None: the rep carries none). ``total_m`` = business +
    personal, the summary report's distance of that device and day. ``working``: the rep's calendar
    has on-duty hours that day."""

    rep_id: int
    day: date
    device_id: int | None
    business_m: float
    personal_m: float
    driving_s: float
    trips: tuple[MileageTrip, ...]
    total_m: float = 0.0
    not_counted: tuple[DeviceDistance, ...] = ()
    working: bool = False


@dataclass(frozen=True, slots=True)
class MileageRep:
    """A rep in a report, with their team's mileage policy and the zone of their days."""

    id: int
    name: str
    team_id: int | None
    team_name: str | None
    time_zone: str
    rate: float
    currency: str


@dataclass(frozen=True, slots=True)
class _Rep:
    id: int
    calendar: Mapping[str, Sequence[Sequence[str]]]
    zone: str
    devices: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Trip:
    device_id: int
    start_time: datetime
    end_time: datetime
    start_latitude: float
    start_longitude: float
    end_latitude: float
    end_longitude: float
    start_odometer_m: float
    end_odometer_m: float
    open: bool


_REPS = """
SELECT u.id, coalesce(u.working_hours, t.working_hours, '{}'::jsonb),
       coalesce(u.time_zone, t.time_zone, 'UTC'),
       array(SELECT ud.device_id FROM user_devices ud WHERE ud.user_id = u.id ORDER BY ud.device_id)
FROM users u LEFT JOIN teams t ON t.id = u.team_id
WHERE u.id = ANY(%s::int8[])
ORDER BY u.id
"""

# Trips overlapping [from, to) per device: at most one begun before (a device's trips never overlap),
# then those begun inside; both along the (device_id, start_time) key, as in storage/reports.py.
_TRIPS = """
SELECT r.* FROM unnest(%(ids)s::int8[]) AS dev(id) CROSS JOIN LATERAL (
    (SELECT {cols} FROM trips WHERE device_id = dev.id AND start_time < %(from)s
     ORDER BY start_time DESC LIMIT 1)
    UNION ALL
    (SELECT {cols} FROM trips WHERE device_id = dev.id AND start_time >= %(from)s AND start_time < %(to)s)) r
WHERE r.end_time > %(from)s
ORDER BY r.device_id, r.start_time
""".format(cols="device_id, start_time, end_time, start_latitude, start_longitude, end_latitude,"
           " end_longitude, start_odometer_m, end_odometer_m")

_OPEN = """
SELECT device_id, state -> 'motion' FROM processing_state
WHERE device_id = ANY(%s::int8[]) AND state -> 'motion' ->> 'phase' = 'trip'
"""

# The odometer at each (device, instant): exactly the two index probes of the summary report's
# ``odo`` step, so the same instant gives the same number in both reports.
_ODOMETER = """
SELECT q.n, coalesce(
    (SELECT p.odometer_m FROM positions p
     WHERE p.device_id = q.d AND p.fix_time <= q.at AND p.filtered IS NULL AND p.odometer_m IS NOT NULL
     ORDER BY p.fix_time DESC, p.fingerprint DESC LIMIT 1),
    (SELECT p.odometer_m FROM positions p
     WHERE p.device_id = q.d AND p.fix_time > q.at AND p.filtered IS NULL AND p.odometer_m IS NOT NULL
     ORDER BY p.fix_time, p.fingerprint LIMIT 1))
FROM unnest(%(d)s::int8[], %(at)s::timestamptz[]) WITH ORDINALITY AS q(d, at, n)
"""

_REPORT_REPS = """
SELECT u.id, u.name, u.team_id, t.name, coalesce(u.time_zone, t.time_zone, 'UTC'), t.settings
FROM users u LEFT JOIN teams t ON t.id = u.team_id
WHERE u.role = 'rep' AND (%(all)s OR u.id = ANY(%(ids)s::int8[]))
  AND (%(team)s::int8 IS NULL OR u.team_id = %(team)s) AND (%(rep)s::int8 IS NULL OR u.id = %(rep)s)
ORDER BY u.id LIMIT %(limit)s
"""


class _Odometer:
    """The probes a report needs, asked first and answered by one query."""

    def __init__(self) -> None:
        self.wanted: dict[tuple[int, datetime], float | None] = {}

    def ask(self, device_id: int, *instants: datetime) -> None:
        for at in instants:
            self.wanted.setdefault((device_id, at), None)

    async def read(self, conn: psycopg.AsyncConnection[Any]) -> None:
        keys = list(self.wanted)
        cur = await conn.execute(_ODOMETER.encode(), {"d": [k[0] for k in keys], "at": [k[1] for k in keys]})
        for n, value in await cur.fetchall():
            self.wanted[keys[n - 1]] = value

    def between(self, device_id: int, a: datetime, b: datetime) -> float:
        """Metres from a to b; 0 without a processed position (as the summary report says)."""
        x, y = self.wanted[(device_id, a)], self.wanted[(device_id, b)]
        return y - x if x is not None and y is not None else 0.0


def _overlapping(trips: Sequence[_Trip], lo: datetime, hi: datetime) -> list[_Trip]:
    """Trips of one device (in time order, never overlapping, so their ends are in order too) that
    overlap [lo, hi)."""
    out = []
    for i in range(bisect_right(trips, lo, key=lambda x: x.end_time), len(trips)):
        if trips[i].start_time >= hi:
            break
        out.append(trips[i])
    return out


def _clipped(intervals: Sequence[Interval], lo: datetime, hi: datetime) -> list[Interval]:
    """Ordered, disjoint intervals cut to [lo, hi): the same as asking ``working_intervals`` for
    [lo, hi) alone, at a fraction of the cost when the calendar is read once for the whole range."""
    out = []
    for i in range(bisect_right(intervals, lo, key=lambda x: x[1]), len(intervals)):
        a, b = intervals[i]
        if a >= hi:
            break
        out.append((max(a, lo), min(b, hi)))
    return out


def _on_duty_parts(trip: _Trip, duty: Sequence[Interval]) -> list[Interval]:
    out = []
    for a, b in duty:
        lo, hi = max(trip.start_time, a), min(trip.end_time, b)
        if lo < hi:
            out.append((lo, hi))
    return out


def _trip_business_m(trip: _Trip, parts: Sequence[Interval], odometer: _Odometer) -> float:
    # A trip wholly on duty (most of them) is its own odometer span, which saves two index probes
    # per trip; only a trip cut by the hours is read at the cuts.
    if len(parts) == 1 and parts[0] == (trip.start_time, trip.end_time):
        return trip.end_odometer_m - trip.start_odometer_m
    return sum(odometer.between(trip.device_id, a, b) for a, b in parts)


@dataclass(slots=True)
class _Plan:
    """What one rep-day needs once the odometer is read."""

    rep: _Rep
    window: DayWindow
    duty: list[Interval]
    trips: dict[int, list[tuple[_Trip, list[Interval]]]]


async def mileage_days(pool: AsyncConnectionPool, rep_ids: Sequence[int], start: datetime,
                       end: datetime) -> list[MileageDay]:
    """The listed days (see the module docstring) of each rep in ``rep_ids`` over [start, end), by rep
    id then day, each day a local day of the rep's calendar zone cut to the range. Unknown ids give
    no rows."""
    try:
        async with pool.connection() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            # Index probes whose row guesses (unnest) would otherwise trigger JIT, as in the summary.
            await conn.execute("SET LOCAL jit = off")
            # Times come back in UTC (a fixed offset), as the calendar's intervals are: comparing,
            # hashing and subtracting them then never consults a zone's rules.
            await conn.execute("SET LOCAL TimeZone = 'UTC'")
            cur = await conn.execute(_REPS.encode(), (sorted(set(rep_ids)),))
            reps = [_Rep(i, cal or {}, zone, tuple(devs)) for i, cal, zone, devs in await cur.fetchall()]
            devices = sorted({d for r in reps for d in r.devices})
            by_device = await _trips(conn, devices, start, end)
            odometer = _Odometer()
            plans = [p for rep in reps for p in _plans(rep, start, end, by_device, odometer)]
            if odometer.wanted:
                await odometer.read(conn)
    except psycopg.OperationalError as exc:
        raise StorageUnavailable(str(exc)) from exc
    return [day for p in plans if (day := _day(p, odometer)) is not None]


async def _trips(conn: psycopg.AsyncConnection[Any], devices: list[int], start: datetime,
                 end: datetime) -> dict[int, list[_Trip]]:
    out: dict[int, list[_Trip]] = {d: [] for d in devices}
    cur = await conn.execute(_TRIPS.encode(), {"ids": devices, "from": start, "to": end})
    for d, a, b, lat0, lon0, lat1, lon1, odo0, odo1 in await cur.fetchall():
        out[d].append(_Trip(d, a, b, lat0, lon0, lat1, lon1, odo0, odo1, open=False))
    cur = await conn.execute(_OPEN.encode(), (devices,))
    for device_id, state in await cur.fetchall():
        t = motion.open_trip(motion.MotionState.from_json(state))
        if t is not None and t.end_time > start and t.start_time < end:
            out[device_id].append(_Trip(device_id, t.start_time, t.end_time, t.start_latitude,
                                        t.start_longitude, t.end_latitude, t.end_longitude,
                                        t.start_odometer_m, t.end_odometer_m, open=True))
    return out


def _plans(rep: _Rep, start: datetime, end: datetime, by_device: Mapping[int, list[_Trip]],
           odometer: _Odometer) -> list[_Plan]:
    duty = working_intervals(rep.calendar, rep.zone, start, end)
    return [_plan(rep, w, _clipped(duty, w.start, w.end), by_device, odometer)
            for w in day_windows(start, end, ZoneInfo(rep.zone))]


def _plan(rep: _Rep, w: DayWindow, duty: list[Interval], by_device: Mapping[int, list[_Trip]],
          odometer: _Odometer) -> _Plan:
    trips: dict[int, list[tuple[_Trip, list[Interval]]]] = {}
    for d in rep.devices:
        odometer.ask(d, w.start, w.end, *(x for i in duty for x in i))
        for t in _overlapping(by_device.get(d, []), w.start, w.end):
            if parts := _on_duty_parts(t, duty):
                trips.setdefault(d, []).append((t, parts))
                if parts != [(t.start_time, t.end_time)]:
                    odometer.ask(d, *(x for i in parts for x in i))
    return _Plan(rep, w, duty, trips)


def _day(p: _Plan, odometer: _Odometer) -> MileageDay | None:
    measured = []  # (business, total, device) per device
    for d in p.rep.devices:
        business = sum(odometer.between(d, a, b) for a, b in p.duty)
        measured.append((business, odometer.between(d, p.window.start, p.window.end), d))
    working = bool(p.rep.calendar) and bool(p.duty)
    if not working and not any(total > 0 for _, total, _ in measured):
        return None
    if not measured:
        return MileageDay(p.rep.id, p.window.day, None, 0.0, 0.0, 0.0, (), 0.0, (), working)
    business, total, device = max(measured, key=lambda m: (m[0], m[1], -m[2]))
    trips = tuple(MileageTrip(device, t.start_time, t.end_time, t.start_latitude, t.start_longitude,
                              t.end_latitude, t.end_longitude, _trip_business_m(t, parts, odometer),
                              sum((b - a).total_seconds() for a, b in parts), t.open,
                              parts[0][0], parts[-1][1])
                  for t, parts in p.trips.get(device, []))
    others = tuple(DeviceDistance(d, b, t - b) for b, t, d in measured if d != device)
    return MileageDay(p.rep.id, p.window.day, device, business, total - business,
                      sum(t.business_s for t in trips), trips, total, others, working)


async def mileage_reps(pool: AsyncConnectionPool, user_ids: frozenset[int] | None, *,
                       team_id: int | None = None, rep_id: int | None = None,
                       limit: int = 10_000) -> list[MileageRep]:
    """Users whose role is rep among ``user_ids`` (None: everyone), narrowed to a team and a rep,
    with their team's mileage rate and currency (defaults without a team), at most ``limit``."""
    try:
        async with pool.connection() as conn:
            cur = await conn.execute(_REPORT_REPS.encode(), {
                "all": user_ids is None, "ids": sorted(user_ids or ()), "team": team_id, "rep": rep_id,
                "limit": limit})
            rows = await cur.fetchall()
    except psycopg.OperationalError as exc:
        raise StorageUnavailable(str(exc)) from exc
    out = []
    for rid, name, team, team_name, zone, settings in rows:
        policy = TeamPolicy.from_settings(settings).mileage
        out.append(MileageRep(rid, name, team, team_name, zone, policy.rate, policy.currency))
    return out
