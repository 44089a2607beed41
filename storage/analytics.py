"""Visit analytics per rep and per team for a period [start, end): the first set of field-sales figures.

Definitions (off-duty time is left out of every *time* figure; counts are business records and are
counted whatever the hour they happened at):

- A visit belongs to the period when its ``day`` (the rep's local date) begins inside it: the local
  midnight of the day, in the rep's zone, lies in [start, end). Ranges from local midnight to local
  midnight therefore hold whole days, and consecutive periods never count a day twice.
- planned: source ``plan``, status neither rejected nor cancelled. done, missed, cancelled, rejected:
  by status (any source). open: plans still planned/approved. unplanned_detected: source ``detected``.
- check-in success rate: accepted / all ``checkin`` attempts on the period's visits (None: no attempt).
- on duty: the rep's working intervals (``processors.working_hours.working_intervals`` over the rep's
  own calendar and zone, else the team's). A rep with no calendar at all would be "on duty" round the
  clock, which makes idle time meaningless, so for them each local day counts from the first to the
  last position of their devices that day (stretched to cover a visit's presence and a trip).
- presence of a done visit: check-in to check-out when checked out, else the detected stop; none
  otherwise. Only its on-duty part inside the period counts.
- time at customers: the union of those presences (two visits at once count once), less any part
  that the rep's trips (those the mileage report counts) show as driving. driving: ``driving_s`` of
  ``storage.mileage.mileage_days`` (on-duty trip time of the device counted that day), and business
  km from the same rows, so analytics and the mileage report agree. idle: on duty and neither, never
  below 0.
- average visit duration: mean on-duty presence over the done visits that have one (> 0 s).
- customers covered: distinct customers with a done visit; assigned: customers assigned to the rep
  (for a team: the team's customers), both limited to the customers the caller may see;
  assigned_covered: the assigned ones among the covered.
- km per visit: business km (mileage_days) / done visits; None without a done visit.

Visits, attempts, spans and customers are read in one REPEATABLE READ snapshot; the mileage figures
in the mileage report's own (a runner writing meanwhile can move a trip between the two reads).

Team totals add up their reps' rows (reps grouped by their current team) and recompute the rates
from the sums; covered is the distinct union and assigned the team's customers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg_pool import AsyncConnectionPool

from processors.working_hours import working_intervals
from storage.customers import CustomerAccess
from storage.errors import StorageUnavailable
from storage.mileage import mileage_days
from storage.reports import day_windows

Interval = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class Figures:
    planned: int = 0
    done: int = 0
    missed: int = 0
    open: int = 0
    cancelled: int = 0
    rejected: int = 0
    unplanned_detected: int = 0
    checkin_attempts: int = 0
    checkins_accepted: int = 0
    on_duty_s: float = 0.0
    at_customers_s: float = 0.0
    driving_s: float = 0.0
    idle_s: float = 0.0
    timed_visits: int = 0
    visit_time_s: float = 0.0  # sum of each timed visit's own presence (overlaps counted per visit)
    business_m: float = 0.0
    covered: frozenset[int] = frozenset()
    assigned: frozenset[int] = frozenset()

    @property
    def checkin_success_rate(self) -> float | None:
        return self.checkins_accepted / self.checkin_attempts if self.checkin_attempts else None

    @property
    def average_visit_s(self) -> float | None:
        return self.visit_time_s / self.timed_visits if self.timed_visits else None

    @property
    def km_per_visit(self) -> float | None:
        return self.business_m / 1000.0 / self.done if self.done else None

    @property
    def assigned_covered(self) -> int:
        return len(self.covered & self.assigned)


_SUMMED = ("planned", "done", "missed", "open", "cancelled", "rejected", "unplanned_detected",
           "checkin_attempts", "checkins_accepted", "on_duty_s", "at_customers_s", "driving_s", "idle_s",
           "timed_visits", "visit_time_s", "business_m")


def total(parts: Iterable[Figures], assigned: frozenset[int]) -> Figures:
    """Sums of the parts, the union of what they covered, and the given assigned set."""
    rows = list(parts)
    sums: dict[str, Any] = {k: sum(getattr(r, k) for r in rows) for k in _SUMMED}
    covered = frozenset().union(*(r.covered for r in rows))
    return Figures(**sums, covered=covered, assigned=assigned)


@dataclass(frozen=True, slots=True)
class RepRow:
    rep_id: int
    name: str
    team_id: int | None
    calendar: str  # "own", "team" or "none" (first to last position of each day)
    figures: Figures


@dataclass(frozen=True, slots=True)
class TeamRow:
    team_id: int
    name: str
    reps: int
    figures: Figures


@dataclass(frozen=True, slots=True)
class Analytics:
    reps: list[RepRow]
    teams: list[TeamRow]
    total: Figures


@dataclass(slots=True)
class _Rep:
    id: int
    name: str
    team_id: int | None
    calendar: dict[str, Any]
    zone: str
    kind: str
    first_day: date = date.min
    end_day: date = date.min
    presences: list[Interval] = field(default_factory=list)  # one per done visit that has one
    spans: list[Interval] = field(default_factory=list)


class TooManyReps(ValueError):
    """More reps than one answer may hold."""


# ---------------------------------------------------------------- interval arithmetic (sorted, merged)

def union(intervals: Iterable[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for a, b in sorted(i for i in intervals if i[0] < i[1]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def intersect(xs: Sequence[Interval], ys: Sequence[Interval]) -> list[Interval]:
    out: list[Interval] = []
    i = j = 0
    while i < len(xs) and j < len(ys):
        a, b = max(xs[i][0], ys[j][0]), min(xs[i][1], ys[j][1])
        if a < b:
            out.append((a, b))
        if xs[i][1] < ys[j][1]:
            i += 1
        else:
            j += 1
    return out


def seconds(intervals: Iterable[Interval]) -> float:
    return sum((b - a).total_seconds() for a, b in intervals)


def first_day_from(at: datetime, zone: ZoneInfo) -> date:
    """The first local day whose midnight is at or after ``at``."""
    day = at.astimezone(zone).date()
    return day if datetime.combine(day, time(), zone) >= at else day + timedelta(days=1)


# ---------------------------------------------------------------- queries

_REPS = """
SELECT u.id, u.name, u.team_id, coalesce(u.working_hours, t.working_hours, '{}'::jsonb),
       coalesce(u.time_zone, t.time_zone, 'UTC'), u.working_hours IS NOT NULL
FROM users u LEFT JOIN teams t ON t.id = u.team_id
WHERE u.role = 'rep' AND (%(all)s OR u.id = ANY(%(ids)s))
  AND (%(team)s::int8 IS NULL OR u.team_id = %(team)s) AND (%(rep)s::int8 IS NULL OR u.id = %(rep)s)
ORDER BY u.id LIMIT %(limit)s
"""
_PERIOD = "unnest(%(ids)s::int8[], %(first)s::date[], %(end)s::date[]) AS r(id, first_day, end_day)"
_IN_PERIOD = "v.rep_id = r.id AND v.day >= r.first_day AND v.day < r.end_day"
_COUNTS = f"""
SELECT v.rep_id,
       count(*) FILTER (WHERE v.source = 'plan' AND v.status NOT IN ('rejected', 'cancelled')),
       count(*) FILTER (WHERE v.status = 'done'), count(*) FILTER (WHERE v.status = 'missed'),
       count(*) FILTER (WHERE v.source = 'plan' AND v.status IN ('planned', 'approved')),
       count(*) FILTER (WHERE v.status = 'cancelled'), count(*) FILTER (WHERE v.status = 'rejected'),
       count(*) FILTER (WHERE v.source = 'detected')
FROM {_PERIOD} JOIN visits v ON {_IN_PERIOD} GROUP BY v.rep_id
"""
_ATTEMPTS = f"""
SELECT v.rep_id, count(*), count(*) FILTER (WHERE a.accepted)
FROM {_PERIOD} JOIN visits v ON {_IN_PERIOD}
JOIN checkin_attempts a ON a.visit_id = v.id AND a.kind = 'checkin' GROUP BY v.rep_id
"""
_DONE = f"""
SELECT v.rep_id, v.customer_id, v.checkin_at, v.checkout_at, v.detected_start, v.detected_end
FROM {_PERIOD} JOIN visits v ON {_IN_PERIOD} AND v.status = 'done'
"""
# First and last located, unfiltered position of each local day over the devices the rep carries:
# two probes along the positions key per device and day, not a scan of the day's positions.
_SPANS = """
SELECT w.rep, min(f.first), max(f.last)
FROM unnest(%s::int8[], %s::timestamptz[], %s::timestamptz[]) AS w(rep, lo, hi)
JOIN user_devices ud ON ud.user_id = w.rep
CROSS JOIN LATERAL (
    SELECT (SELECT p.fix_time FROM positions p WHERE {located} ORDER BY p.fix_time LIMIT 1) AS first,
           (SELECT p.fix_time FROM positions p WHERE {located} ORDER BY p.fix_time DESC LIMIT 1) AS last) f
WHERE f.first IS NOT NULL
GROUP BY w.rep, w.lo
""".format(located="p.device_id = ud.device_id AND p.fix_time >= w.lo AND p.fix_time < w.hi"
                  " AND p.latitude IS NOT NULL AND p.filtered IS NULL")


def _presence(checkin: datetime | None, checkout: datetime | None, start: datetime | None,
              end: datetime | None) -> Interval | None:
    if checkin is not None and checkout is not None and checkin < checkout:
        return checkin, checkout
    if start is not None and end is not None and start < end:
        return start, end
    return None


async def _customer_sets(conn: psycopg.AsyncConnection[Any], column: str, ids: Sequence[int],
                         access: CustomerAccess) -> dict[int, frozenset[int]]:
    cond, params = access.condition()
    cur = await conn.execute(f"SELECT {column}, array_agg(id) FROM customers WHERE {column} = ANY(%s)"
                             f" AND {cond} GROUP BY {column}".encode(), (list(ids), *params))
    return {key: frozenset(found) for key, found in await cur.fetchall()}


async def visit_analytics(pool: AsyncConnectionPool, start: datetime, end: datetime, *,
                          user_ids: frozenset[int] | None, access: CustomerAccess, team_id: int | None = None,
                          rep_id: int | None = None, max_reps: int = 1000) -> Analytics:
    """``user_ids``: the people the caller sees (None: everyone). TooManyReps beyond ``max_reps``."""
    try:
        async with pool.connection() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            reps, counts, sets = await _load(conn, start, end, user_ids, access, team_id, rep_id, max_reps)
        driven = await _mileage(pool, [r.id for r in reps], start, end)
    except psycopg.OperationalError as exc:
        raise StorageUnavailable(str(exc)) from exc
    rows = [RepRow(r.id, r.name, r.team_id, r.kind,
                   _timed(r, start, end, driven.get(r.id, _Driven()), counts.get(r.id, Figures()),
                          sets)) for r in reps]
    teams = sorted({r.team_id for r in reps if r.team_id is not None})
    team_rows = [TeamRow(t, sets.team_names.get(t, ""), sum(1 for r in rows if r.team_id == t),
                         total((r.figures for r in rows if r.team_id == t),
                               sets.team_customers.get(t, frozenset()))) for t in teams]
    everyone = total((r.figures for r in rows),
                     frozenset().union(*(r.figures.assigned for r in rows), *sets.team_customers.values()))
    return Analytics(rows, team_rows, everyone)


@dataclass(slots=True)
class _Sets:
    covered: dict[int, set[int]] = field(default_factory=dict)
    assigned: dict[int, frozenset[int]] = field(default_factory=dict)
    team_customers: dict[int, frozenset[int]] = field(default_factory=dict)
    team_names: dict[int, str] = field(default_factory=dict)


async def _load(conn: psycopg.AsyncConnection[Any], start: datetime, end: datetime,
                user_ids: frozenset[int] | None, access: CustomerAccess, team_id: int | None,
                rep_id: int | None, max_reps: int) -> tuple[list[_Rep], dict[int, Figures], _Sets]:
    cur = await conn.execute(_REPS.encode(), {"all": user_ids is None, "ids": sorted(user_ids or ()),
                                              "team": team_id, "rep": rep_id, "limit": max_reps + 1})
    # An empty calendar means "always on duty" to working_intervals; here it means "no calendar".
    reps = [_Rep(i, name, team, cal or {}, zone, ("own" if own else "team") if cal else "none")
            for i, name, team, cal, zone, own in await cur.fetchall()]
    if len(reps) > max_reps:
        raise TooManyReps(f"more than {max_reps} reps")
    by_id = {r.id: r for r in reps}
    for r in reps:
        z = ZoneInfo(r.zone)
        r.first_day, r.end_day = first_day_from(start, z), first_day_from(end, z)
    ids = [r.id for r in reps]
    period = {"ids": ids, "first": [r.first_day for r in reps],
              "end": [r.end_day for r in reps]}
    counts: dict[int, Figures] = {}
    cur = await conn.execute(_COUNTS.encode(), period)
    for rid, *n in await cur.fetchall():
        counts[rid] = Figures(*n)
    cur = await conn.execute(_ATTEMPTS.encode(), period)
    for rid, attempts, accepted in await cur.fetchall():
        counts[rid] = replace(counts.get(rid, Figures()), checkin_attempts=attempts,
                              checkins_accepted=accepted)
    sets = _Sets()
    cur = await conn.execute(_DONE.encode(), period)
    for rid, customer, *times in await cur.fetchall():
        sets.covered.setdefault(rid, set()).add(customer)
        if (p := _presence(*times)) is not None:
            by_id[rid].presences.append(p)
    days = [(r.id, w.start, w.end) for r in reps if r.kind == "none"
            for w in day_windows(start, end, ZoneInfo(r.zone))]
    cur = await conn.execute(_SPANS.encode(), tuple(list(column) for column in zip(*days, strict=True))
                             if days else ([], [], []))
    for rid, first, last in await cur.fetchall():
        by_id[rid].spans.append((first, last))
    sets.assigned = await _customer_sets(conn, "assigned_rep_id", ids, access)
    teams = sorted({r.team_id for r in reps if r.team_id is not None})
    sets.team_customers = await _customer_sets(conn, "team_id", teams, access)
    cur = await conn.execute("SELECT id, name FROM teams WHERE id = ANY(%s)", (teams,))
    sets.team_names = dict(await cur.fetchall())
    return reps, counts, sets


@dataclass(slots=True)
class _Driven:
    business_m: float = 0.0
    driving_s: float = 0.0
    trips: list[Interval] = field(default_factory=list)  # whole trips of the counted device


async def _mileage(pool: AsyncConnectionPool, rep_ids: Sequence[int], start: datetime, end: datetime
                   ) -> dict[int, _Driven]:
    """Business metres, on-duty driving seconds and the trips behind them, from the mileage
    report's own days (the same device per day, the same on-duty cut)."""
    out: dict[int, _Driven] = {}
    if not rep_ids:
        return out
    for day in await mileage_days(pool, rep_ids, start, end):
        driven = out.setdefault(day.rep_id, _Driven())
        driven.business_m += day.business_m
        driven.driving_s += day.driving_s
        driven.trips += [(t.start_time, t.end_time) for t in day.trips]
    return out


def _timed(r: _Rep, start: datetime, end: datetime, driven: _Driven, counts: Figures, sets: _Sets) -> Figures:
    period = [(start, end)]
    presences = [part for x in r.presences for part in intersect([x], period)]
    trips = intersect(union(driven.trips), period)
    if r.kind == "none":
        duty = union([*r.spans, *presences, *trips])
    else:
        duty = working_intervals(r.calendar, r.zone, start, end)
    present = intersect(union(presences), duty)
    # What the track shows as driving is driving, even inside a check-in to check-out span.
    at_customers = seconds(present) - seconds(intersect(present, intersect(trips, duty)))
    per_visit = [s for s in (seconds(intersect([p], duty)) for p in presences) if s > 0]
    on_duty = seconds(duty)
    return replace(counts, on_duty_s=on_duty, at_customers_s=at_customers, driving_s=driven.driving_s,
                   idle_s=max(0.0, on_duty - at_customers - driven.driving_s), timed_visits=len(per_visit),
                   visit_time_s=sum(per_visit), business_m=driven.business_m,
                   covered=frozenset(sets.covered.get(r.id, ())),
                   assigned=sets.assigned.get(r.id, frozenset()))

