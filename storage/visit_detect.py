"""Reconciling one rep's visits with their track: load what the rep's local days need, let
processors/visit_detect.py decide, and write the decisions, all in one transaction per rep.

The rep is locked for the transaction (an advisory lock: the periodic job and a manual trigger
never interleave) and their visits of those days are locked row by row, so a check-in written at
the same moment is either seen here or waits and then applies on top. ``reconcile_rep`` is what
the periodic job (gateway/visit_job.py) and an API trigger call.

Customers the detector considers for a rep: those assigned to the rep, those of the rep's team
that nobody is assigned to (anyone of the team may serve them), and every customer the rep has a
visit with on those days (a manager may plan a visit to another rep's customer, and a visit keeps
its customer when the assignment changes later).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from processors import motion
from processors.team_policy import TeamPolicy
from processors.visit_detect import (
    MISSED_GRACE,
    Decisions,
    Detection,
    Place,
    RepDays,
    StopSpan,
    TrackPoint,
    VisitRow,
    day_bounds,
    decide,
    local_day,
)
from processors.working_hours import working_intervals
from storage.errors import NotFound, StorageUnavailable

_LOCK_SPACE = 1447646036  # advisory lock namespace of the visit detector (any fixed int4)
# Open plans older than the recent days still get judged (the job was down, processing was behind)
# but not without end: a plan left open for two months is left for a person to look at.
STALE_PLAN_DAYS = 62
# 0.03° of latitude is 3.3 km: more than the largest customer radius (3000 m).
_BOX_DEG = 0.03


@dataclass(frozen=True, slots=True)
class Rep:
    id: int
    team_id: int | None
    zone: str
    policy: TeamPolicy
    device_ids: list[int]
    working_hours: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    days: tuple[date, ...] = ()
    created: int = 0
    updated: int = 0
    deleted: int = 0


async def reconcile_rep(pool: AsyncConnectionPool, rep_id: int, now: datetime,
                        days: Collection[date] | None = None, *, recent_days: int = 3,
                        grace: timedelta = MISSED_GRACE) -> Outcome:
    """Reconcile the rep's visits of ``days`` (default: the last ``recent_days`` local days, today
    included, and older days that still have open plans). NotFound for an unknown user."""
    try:
        async with pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s, %s::int4)",
                               (_LOCK_SPACE, rep_id % 2_147_483_647))
            rep = await _rep(conn, rep_id)
            chosen = frozenset(days) if days is not None else await _recent_days(conn, rep, now, recent_days)
            if not chosen:
                return Outcome()
            decisions = decide(await load(conn, rep, chosen), rep.policy, now, grace)
            await _apply(conn, rep, decisions)
            return Outcome(tuple(sorted(chosen)), len(decisions.creates), len(decisions.updates),
                           len(decisions.deletes))
    except psycopg.OperationalError as exc:
        raise StorageUnavailable(str(exc)) from exc


async def reps_to_reconcile(pool: AsyncConnectionPool, now: datetime) -> list[int]:
    """Users carrying a device, and users with open plans up to today (a rep without a tracked
    device still has plans that must become missed)."""
    try:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT user_id FROM user_devices UNION SELECT rep_id FROM visits"
                " WHERE status IN ('planned', 'approved') AND source = 'plan' AND day <= %s ORDER BY 1",
                (now.date() + timedelta(days=1),))
            return [r[0] for r in await cur.fetchall()]
    except psycopg.OperationalError as exc:
        raise StorageUnavailable(str(exc)) from exc


async def _rep(conn: AsyncConnection, rep_id: int) -> Rep:
    cur = await conn.execute(
        "SELECT u.team_id, coalesce(u.time_zone, t.time_zone, 'UTC'), t.settings,"
        " array(SELECT device_id FROM user_devices d WHERE d.user_id = u.id ORDER BY device_id),"
        " coalesce(u.working_hours, t.working_hours)"
        " FROM users u LEFT JOIN teams t ON t.id = u.team_id WHERE u.id = %s", (rep_id,))
    row = await cur.fetchone()
    if row is None:
        raise NotFound("user not found")
    try:
        policy = TeamPolicy.from_settings(row[2])
    except ValueError:
        policy = TeamPolicy()  # settings are checked when saved; an old bad value falls back to defaults
    return Rep(rep_id, row[0], row[1], policy, list(row[3]), row[4])


async def _recent_days(conn: AsyncConnection, rep: Rep, now: datetime, recent: int) -> frozenset[date]:
    today = local_day(now, rep.zone)
    first = today - timedelta(days=recent - 1)
    cur = await conn.execute(
        "SELECT DISTINCT day FROM visits WHERE rep_id = %s AND status IN ('planned', 'approved')"
        " AND source = 'plan' AND day < %s AND day >= %s",
        (rep.id, first, today - timedelta(days=STALE_PLAN_DAYS)))
    stale = {r[0] for r in await cur.fetchall()}
    return frozenset({first + timedelta(days=i) for i in range(recent)} | stale)


async def load(conn: AsyncConnection, rep: Rep, days: frozenset[date]) -> RepDays:
    """The detector's inputs for ``days``; the visits are locked until the transaction ends."""
    window = timedelta(seconds=rep.policy.checkin.track_window_s)
    bounds = [day_bounds(d, rep.zone) for d in days]
    lo, hi = min(b[0] for b in bounds) - window, max(b[1] for b in bounds) + window
    visits = await _visits(conn, rep.id, days)
    stops = await _stops(conn, rep.device_ids, lo, hi)
    min_s = rep.policy.visit_detection.min_stop_minutes * 60.0
    long_stops = [s for s in stops if s.duration_s >= min_s]
    customers = await _customers(conn, rep, long_stops, {v.customer_id for v in visits})
    checkins = [v.checkin_time for v in visits if v.checkin_time is not None]
    track = await _track(conn, rep.device_ids, [(t - window, t + window) for t in checkins])
    cur = await conn.execute("SELECT min(since_time) FROM processing_dirty WHERE device_id = ANY(%s)",
                             (rep.device_ids,))
    row = await cur.fetchone()
    on_duty = working_intervals(rep.working_hours, rep.zone, lo, hi) if rep.working_hours else None
    return RepDays(rep.zone, days, stops, customers, visits, track, row[0] if row else None, on_duty)


async def _visits(conn: AsyncConnection, rep_id: int, days: frozenset[date]) -> list[VisitRow]:
    cur = await conn.execute(
        "SELECT v.id, v.customer_id, v.day, v.status, v.source, coalesce(v.checkin_fix_time, v.checkin_at),"
        " v.detected_device_id, v.detected_start, v.detected_end, v.detected_distance_m, v.flags,"
        " v.status_before_detection,"
        " v.checkin_at IS NOT NULL OR EXISTS (SELECT 1 FROM visit_reports r WHERE r.visit_id = v.id)"
        " OR EXISTS (SELECT 1 FROM visit_photos p WHERE p.visit_id = v.id)"
        " OR EXISTS (SELECT 1 FROM checkin_attempts a WHERE a.visit_id = v.id)"
        " FROM visits v WHERE v.rep_id = %s AND v.day = ANY(%s) ORDER BY v.id FOR UPDATE OF v",
        (rep_id, sorted(days)))
    return [VisitRow(r[0], r[1], r[2], r[3], r[4], r[5], _detection(r[6:10]), tuple(r[10] or ()), r[11],
                     bool(r[12])) for r in await cur.fetchall()]


def _detection(r: Sequence[Any]) -> Detection | None:
    device_id, start, end, distance = r
    if start is None or end is None:
        return None
    return Detection(device_id, start, end, float(distance or 0.0))


async def _stops(conn: AsyncConnection, device_ids: list[int], lo: datetime, hi: datetime) -> list[StopSpan]:
    """Stored stops overlapping [lo, hi), and each device's stop still open (the rep is there now)."""
    cur = await conn.execute(
        "SELECT device_id, start_time, end_time, latitude, longitude FROM stops"
        " WHERE device_id = ANY(%s) AND start_time < %s AND end_time >= %s ORDER BY device_id, start_time",
        (device_ids, hi, lo))
    found = {(r[0], r[1]): StopSpan(*r) for r in await cur.fetchall()}
    cur = await conn.execute(
        "SELECT device_id, state -> 'motion' FROM processing_state WHERE device_id = ANY(%s)", (device_ids,))
    for device_id, state in await cur.fetchall():
        current = motion.open_stop(motion.MotionState.from_json(state)) if state else None
        if current is not None and current.start_time < hi and current.end_time >= lo:
            found.setdefault((device_id, current.start_time), StopSpan(
                device_id, current.start_time, current.end_time, current.latitude, current.longitude))
    return [found[k] for k in sorted(found)]


async def _customers(conn: AsyncConnection, rep: Rep, stops: Sequence[StopSpan],
                     visit_customers: Collection[int]) -> dict[int, Place]:
    # The box narrows served customers to those near a long enough stop (index on lat/lon);
    # the exact radius test is the detector's.
    cur = await conn.execute(
        "SELECT c.id, c.latitude, c.longitude, c.radius_m FROM customers c"
        " WHERE c.id = ANY(%(visited)s) OR ((c.assigned_rep_id = %(rep)s"
        "  OR (c.assigned_rep_id IS NULL AND c.team_id = %(team)s)) AND EXISTS ("
        "  SELECT 1 FROM unnest(%(lats)s::float8[], %(lons)s::float8[]) AS s(lat, lon)"
        "  WHERE c.latitude BETWEEN s.lat - %(box)s AND s.lat + %(box)s"
        "  AND abs(c.longitude - s.lon) <= %(box)s / greatest(cos(radians(s.lat)), 0.01)))",
        {"visited": sorted(visit_customers), "rep": rep.id, "team": rep.team_id, "box": _BOX_DEG,
         "lats": [s.latitude for s in stops], "lons": [s.longitude for s in stops]})
    return {r[0]: Place(*r) for r in await cur.fetchall()}


async def _track(conn: AsyncConnection, device_ids: list[int],
                 windows: Sequence[tuple[datetime, datetime]]) -> list[TrackPoint]:
    """The rep's accepted (or not yet processed) positions inside any of the windows."""
    if not windows or not device_ids:
        return []
    cur = await conn.execute(
        "SELECT DISTINCT p.fix_time, p.latitude, p.longitude"
        " FROM unnest(%s::timestamptz[], %s::timestamptz[]) AS w(lo, hi)"
        " JOIN positions p ON p.device_id = ANY(%s) AND p.fix_time BETWEEN w.lo AND w.hi"
        " WHERE p.filtered IS NULL AND p.latitude IS NOT NULL AND p.longitude IS NOT NULL"
        " ORDER BY p.fix_time",
        ([w[0] for w in windows], [w[1] for w in windows], device_ids))
    return [TrackPoint(*r) for r in await cur.fetchall()]


async def _apply(conn: AsyncConnection, rep: Rep, decisions: Decisions) -> None:
    async with conn.cursor() as cur:
        if decisions.updates:
            await cur.executemany(
                "UPDATE visits SET status = %s, status_before_detection = %s, detected_device_id = %s,"
                " detected_start = %s, detected_end = %s, detected_distance_m = %s, flags = %s,"
                " updated_at = now() WHERE id = %s",
                [(u.status, u.status_before_detection, *_columns(u.detected), list(u.flags), u.visit_id)
                 for u in decisions.updates])
        if decisions.creates:
            # The rep is locked and their visits read, so the unique index only guards a bug here.
            await cur.executemany(
                "INSERT INTO visits (customer_id, rep_id, team_id, day, status, source, detected_device_id,"
                " detected_start, detected_end, detected_distance_m)"
                " VALUES (%s, %s, %s, %s, 'done', 'detected', %s, %s, %s, %s)"
                " ON CONFLICT (rep_id, customer_id, day) WHERE source = 'detected' DO NOTHING",
                [(c.customer_id, rep.id, rep.team_id, c.day, *_columns(c.detected))
                 for c in decisions.creates])
        if decisions.deletes:
            await cur.execute("DELETE FROM visits WHERE id = ANY(%s)", (list(decisions.deletes),))


def _columns(d: Detection | None) -> tuple[Any, ...]:
    if d is None:
        return (None, None, None, None)
    return (d.device_id, d.start, d.end, d.distance_m)
