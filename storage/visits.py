"""Visit plans, their approval, and check-in / check-out with every attempt recorded.

Who sees a visit (``VisitAccess``; an unseen id is a 404 exactly like an unknown one): admins all,
managers the visits of the reps they see and of the teams they manage, reps their own. Who may act:
a rep plans for themself (``planned``, waiting for approval) and cancels or reschedules while it is
planned; a manager of the visit's team or an admin plans (``approved`` at once), approves, rejects,
cancels and reschedules. Only the visit's own rep checks in and out.

A check-in or check-out attempt is always written to ``checkin_attempts``, refused ones too, in
the same transaction as the visit's update, with the visit row locked so two attempts at once are
judged one after the other. The judging is ``processors.checkin``; this module loads its evidence:
the customer, the team's policy, the rep's last position before the fix and their track around it
from every device they carry (positions the processors filtered left out).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from processors.checkin import (
    TELEPORT_HORIZON_S,
    Place,
    SubmittedFix,
    TrackPoint,
    Verdict,
    is_mock,
    verify_checkin,
    verify_checkout,
)
from processors.team_policy import CheckinPolicy, TeamPolicy
from storage.db import transaction
from storage.errors import Conflict, NotFound, StorageError

OPEN = ("planned", "approved")
_RESCHEDULE = ("day", "window_start", "window_end", "purpose")
# A window may reach this far beyond the rep's local day (a night shift, an early start).
WINDOW_SLACK = timedelta(hours=12)
TRACK_LIMIT = 5000  # positions in one check-in window: 10 min at 1 Hz from several devices


@dataclass(frozen=True, slots=True)
class Visit:
    id: int
    customer_id: int
    rep_id: int
    team_id: int | None
    day: date
    window_start: datetime | None
    window_end: datetime | None
    purpose: str | None
    status: str
    source: str
    created_by: int | None
    reviewed_by: int | None
    reviewed_at: datetime | None
    review_note: str | None
    checkin_at: datetime | None
    checkin_fix_time: datetime | None
    checkin_latitude: float | None
    checkin_longitude: float | None
    checkin_accuracy_m: float | None
    checkin_distance_m: float | None
    checkout_at: datetime | None
    checkout_fix_time: datetime | None
    checkout_latitude: float | None
    checkout_longitude: float | None
    checkout_distance_m: float | None
    dwell_s: float | None
    detected_device_id: int | None
    detected_start: datetime | None
    detected_end: datetime | None
    detected_distance_m: float | None
    flags: list[str]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Attempt:
    id: int
    visit_id: int
    user_id: int | None
    kind: str
    at: datetime
    fix_time: datetime | None
    latitude: float | None
    longitude: float | None
    accuracy_m: float | None
    mock: bool
    accepted: bool
    reason: str | None
    detail: dict[str, Any]
    rep_id: int
    customer_id: int
    team_id: int | None


_VISIT = ", ".join(f"v.{f.name}" for f in fields(Visit))
_ATTEMPT_OWN = ", ".join(f"a.{f.name}" for f in fields(Attempt)[:13])  # the attempt's own columns
_ATTEMPT = _ATTEMPT_OWN + ", v.rep_id, v.customer_id, v.team_id"


class VisitInvalid(ValueError):
    """Well-formed values that do not fit (unknown rep or customer, a window off the day): 422."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{w}: {p}" for w, p in problems))
        self.problems = list(problems)


class NotAllowed(StorageError):
    """The caller sees the visit but may not do this to it: 403."""


@dataclass(frozen=True, slots=True)
class VisitAccess:
    everything: bool = False
    user_id: int | None = None
    role: str = "rep"
    rep_ids: frozenset[int] = frozenset()  # visits of these reps are seen
    managed_team_ids: frozenset[int] = frozenset()  # visits of these teams are seen and managed

    def condition(self) -> tuple[str, list[Any]]:
        if self.everything:
            return "true", []
        return ("(v.rep_id = ANY(%s) OR v.team_id = ANY(%s))",
                [list(self.rep_ids), list(self.managed_team_ids)])

    def manages(self, team_id: int | None) -> bool:
        return self.everything or (self.role == "manager" and team_id in self.managed_team_ids)


@dataclass(frozen=True, slots=True)
class VisitFilters:
    rep_id: int | None = None
    team_id: int | None = None
    customer_id: int | None = None
    status: str | None = None
    day_from: date | None = None
    day_to: date | None = None  # inclusive
    flagged: bool | None = None


@dataclass(frozen=True, slots=True)
class AttemptFilters:
    start: datetime
    end: datetime
    accepted: bool | None = None
    rep_id: int | None = None
    team_id: int | None = None


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    visit: Visit
    attempt: Attempt
    verdict: Verdict
    # The visit is not in a state for this (a check-out without a check-in): the API's 409.
    state_conflict: bool = False


def zone_of(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ValueError, OSError):  # checked on save; a zone removed from tzdata since falls back
        return ZoneInfo("UTC")


def window_problems(day: date, zone: ZoneInfo, start: datetime | None, end: datetime | None
                    ) -> list[tuple[str, str]]:
    """A window's bounds lie within the rep's local day, give or take WINDOW_SLACK, start first."""
    first = datetime.combine(day, time(), zone) - WINDOW_SLACK
    last = datetime.combine(day + timedelta(days=1), time(), zone) + WINDOW_SLACK
    out = [(k, f"must be within 12 h of the rep's local day {day} ({zone.key})")
           for k, v in (("window_start", start), ("window_end", end))
           if v is not None and not first <= v <= last]
    if start is not None and end is not None and start >= end:
        out.append(("window_end", "must be after window_start"))
    return out


def _policy(settings: Any) -> CheckinPolicy:
    try:
        return TeamPolicy.from_settings(settings if isinstance(settings, dict) else None).checkin
    except ValueError:  # checked when the team is saved; defaults rather than a failed check-in
        return CheckinPolicy()


class VisitStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    def _tx(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return transaction(self.pool)

    @staticmethod
    async def _dicts(conn: AsyncConnection, sql: str, params: Sequence[Any] | Mapping[str, Any]
                     ) -> builtins.list[dict[str, Any]]:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql.encode(), params)
            return await cur.fetchall()

    async def _visible(self, conn: AsyncConnection, visit_id: int, access: VisitAccess, *,
                       lock: bool) -> Visit:
        cond, params = access.condition()
        found = await self._dicts(conn, f"SELECT {_VISIT} FROM visits v WHERE v.id = %s AND {cond}"
                                  + (" FOR UPDATE" if lock else ""), [visit_id, *params])
        if not found:
            raise NotFound(f"visit {visit_id}")
        return Visit(**found[0])

    async def _rep(self, conn: AsyncConnection, rep_id: int) -> dict[str, Any] | None:
        found = await self._dicts(conn, "SELECT u.id, u.role, u.team_id, COALESCE(u.time_zone, t.time_zone)"
                                  " AS zone FROM users u LEFT JOIN teams t ON t.id = u.team_id"
                                  " WHERE u.id = %s", [rep_id])
        return found[0] if found else None

    async def _set(self, conn: AsyncConnection, visit_id: int, values: Mapping[str, Any]) -> Visit:
        sets = ", ".join(f"{k} = %({k})s" for k in values)
        found = await self._dicts(conn, f"UPDATE visits v SET {sets}, updated_at = now() WHERE v.id = %(id)s"
                                  f" RETURNING {_VISIT}", {**values, "id": visit_id})
        return Visit(**found[0])

    async def create(self, values: Mapping[str, Any], access: VisitAccess, customer_condition: str,
                     customer_params: Sequence[Any]) -> Visit:
        """``values``: customer_id, rep_id, day, window_start, window_end, purpose. The customer must
        be one the caller sees (``customer_condition`` on ``customers``, from CustomerAccess)."""
        async with self._tx() as conn:
            rep = await self._rep(conn, values["rep_id"])
            if access.role == "rep" and not access.everything and values["rep_id"] != access.user_id:
                raise NotAllowed("a rep plans visits only for themself")
            seen = rep is not None and (access.everything or rep["id"] == access.user_id
                                        or rep["team_id"] in access.managed_team_ids)
            if rep is None or not seen:
                raise VisitInvalid([("rep_id", f"unknown rep {values['rep_id']}")])
            if rep["role"] != "rep":
                raise VisitInvalid([("rep_id", f"user {rep['id']} is a {rep['role']}, not a rep")])
            found = await self._dicts(conn, "SELECT id FROM customers WHERE id = %s AND "
                                      + customer_condition, [values["customer_id"], *customer_params])
            problems = [] if found else [("customer_id", f"unknown customer {values['customer_id']}")]
            problems += window_problems(values["day"], zone_of(rep["zone"]), values.get("window_start"),
                                        values.get("window_end"))
            if problems:
                raise VisitInvalid(problems)
            row = {k: values.get(k) for k in ("customer_id", "rep_id", "day", "window_start", "window_end",
                                               "purpose")}
            row |= {"team_id": rep["team_id"], "created_by": access.user_id,
                    "status": "planned" if access.role == "rep" and not access.everything else "approved"}
            found = await self._dicts(conn, f"INSERT INTO visits AS v ({', '.join(row)}) VALUES"
                                      f" ({', '.join(f'%({k})s' for k in row)}) RETURNING {_VISIT}", row)
        return Visit(**found[0])

    async def get(self, visit_id: int, access: VisitAccess) -> Visit:
        async with self._tx() as conn:
            return await self._visible(conn, visit_id, access, lock=False)

    async def list(self, access: VisitAccess, filters: VisitFilters, *, limit: int,
                   after: tuple[date, int] | None = None) -> builtins.list[Visit]:
        """Ordered by (day, id); ``after``: the (day, id) of the last row of the previous page."""
        cond, params = access.condition()
        where, args = [cond], list(params)
        for sql, value in (("v.rep_id = %s", filters.rep_id), ("v.team_id = %s", filters.team_id),
                           ("v.customer_id = %s", filters.customer_id), ("v.status = %s", filters.status),
                           ("v.day >= %s", filters.day_from), ("v.day <= %s", filters.day_to)):
            if value is not None:
                where.append(sql)
                args.append(value)
        if filters.flagged is not None:
            where.append("cardinality(v.flags) > 0" if filters.flagged else "cardinality(v.flags) = 0")
        if after is not None:
            where.append("(v.day, v.id) > (%s, %s)")
            args += list(after)
        async with self._tx() as conn:
            found = await self._dicts(conn, f"SELECT {_VISIT} FROM visits v WHERE {' AND '.join(where)}"
                                      " ORDER BY v.day, v.id LIMIT %s", [*args, limit])
        return [Visit(**r) for r in found]

    async def update(self, visit_id: int, changes: Mapping[str, Any], access: VisitAccess) -> Visit:
        """Reschedules (day, window_start, window_end, purpose) a planned or approved visit. A rep's
        new day or window for an approved visit sends it back for approval."""
        async with self._tx() as conn:
            old = await self._visible(conn, visit_id, access, lock=True)
            is_rep = not access.everything and old.rep_id == access.user_id
            if not (is_rep or access.manages(old.team_id)):
                raise NotAllowed(f"only the rep or a manager of the team may change visit {visit_id}")
            if old.status not in OPEN:
                raise Conflict(f"visit {visit_id} is {old.status}; only a planned or approved visit "
                               "can be changed")
            values = {k: v for k, v in changes.items() if k in _RESCHEDULE}
            merged = {k: values.get(k, getattr(old, k)) for k in ("day", "window_start", "window_end")}
            rep = await self._rep(conn, old.rep_id)
            problems = window_problems(merged["day"], zone_of(rep["zone"] if rep else None),
                                       merged["window_start"], merged["window_end"])
            if problems:
                raise VisitInvalid(problems)
            moved = any(k in values and values[k] != getattr(old, k) for k in merged)
            if is_rep and not access.manages(old.team_id) and old.status == "approved" and moved:
                values["status"] = "planned"
            return await self._set(conn, visit_id, values) if values else old

    async def review(self, visit_id: int, action: str, access: VisitAccess, note: str | None = None) -> Visit:
        """``action``: approve, reject or cancel (see the module docstring for who and when)."""
        async with self._tx() as conn:
            old = await self._visible(conn, visit_id, access, lock=True)
            manager = access.manages(old.team_id)
            own = not access.everything and old.rep_id == access.user_id
            if action != "cancel" and not manager:
                raise NotAllowed(f"only a manager of the visit's team may {action} visit {visit_id}")
            if action == "cancel" and not manager:
                if not own:
                    raise NotAllowed(f"only the rep or a manager of the team may cancel visit {visit_id}")
                if old.status == "approved":
                    raise NotAllowed(f"visit {visit_id} is approved; only a manager can cancel it now")
            allowed = OPEN if action == "cancel" else ("planned",)
            if old.status not in allowed:
                raise Conflict(f"visit {visit_id} is {old.status}; only a {' or '.join(allowed)} visit "
                               f"can be {'cancelled' if action == 'cancel' else action + 'd'}")
            status = {"approve": "approved", "reject": "rejected", "cancel": "cancelled"}[action]
            return await self._set(conn, visit_id, {"status": status, "reviewed_by": access.user_id,
                                                    "reviewed_at": datetime.now(UTC), "review_note": note})

    async def check(self, visit_id: int, kind: str, fix: SubmittedFix, access: VisitAccess, *,
                    device_id: int | None = None, now: datetime | None = None) -> CheckOutcome:
        """Judges and records a ``checkin`` or ``checkout`` attempt; the outcome says whether it was
        accepted (the visit is updated) or refused (it is not). Both are committed."""
        now = now or datetime.now(UTC)
        async with self._tx() as conn:
            visit = await self._visible(conn, visit_id, access, lock=True)
            if access.user_id is None or access.user_id != visit.rep_id:
                raise NotAllowed(f"only the visit's rep may {kind.replace('check', 'check ')} "
                                 f"visit {visit_id}")
            if device_id is not None and not await self._dicts(
                    conn, "SELECT 1 FROM user_devices WHERE user_id = %s AND device_id = %s",
                    [visit.rep_id, device_id]):
                raise VisitInvalid([("device_id",
                                     f"device {device_id} is not carried by rep {visit.rep_id}")])
            ctx = (await self._dicts(conn, "SELECT c.latitude, c.longitude, c.radius_m, s.settings,"
                                     " COALESCE(u.time_zone, t.time_zone) AS zone FROM customers c, users u"
                                     " LEFT JOIN teams t ON t.id = u.team_id"
                                     " LEFT JOIN teams s ON s.id = %s WHERE c.id = %s AND u.id = %s",
                                     [visit.team_id, visit.customer_id, visit.rep_id]))[0]
            place = Place(ctx["latitude"], ctx["longitude"], ctx["radius_m"])
            policy = _policy(ctx["settings"])
            verdict, conflict = await self._judge(conn, kind, visit, place, fix, now, policy,
                                                  zone_of(ctx["zone"]))
            if device_id is not None:
                verdict.detail["device_id"] = device_id
            attempt = await self._record(conn, visit, kind, fix, verdict, now)
            if verdict.accepted:
                visit = await self._set(conn, visit_id, self._changes(visit, kind, fix, verdict, now))
        return CheckOutcome(visit, attempt, verdict, conflict)

    async def _judge(self, conn: AsyncConnection, kind: str, visit: Visit, place: Place, fix: SubmittedFix,
                     now: datetime, policy: CheckinPolicy, zone: ZoneInfo) -> tuple[Verdict, bool]:
        if kind == "checkout":
            if visit.checkin_at is None or visit.checkout_at is not None:
                said = "has no check-in" if visit.checkin_at is None else "is already checked out"
                return Verdict(False, "bad_state", {"message": f"visit {visit.id} {said}"}), True
            assert visit.checkin_fix_time is not None
            if fix.time < visit.checkin_fix_time:
                said = f"the check-out fix is older than the check-in fix ({visit.checkin_fix_time:%H:%M:%S})"
                return Verdict(False, "bad_state", {"message": said}), False
            return verify_checkout(place, fix, now, policy), False
        # A visit the detector already made done from the rep's stop (the rep stopped five minutes
        # before tapping check-in) still takes its check-in: presence and check-in then agree.
        by_presence = visit.status == "done" and visit.checkin_at is None and visit.detected_start is not None
        if visit.status not in OPEN and not by_presence:
            said = f"visit {visit.id} is {visit.status}; only a planned or approved visit can be checked in"
            return Verdict(False, "bad_state", {"message": said}), False
        local = fix.time.astimezone(zone).date()
        if local != visit.day:
            said = f"the visit is planned for {visit.day}, but the fix is from {local} in the rep's zone " \
                   f"({zone.key})"
            return Verdict(False, "bad_state", {"message": said, "visit_day": str(visit.day),
                                                "fix_day": str(local)}), False
        previous, track = await self._evidence(conn, visit.rep_id, fix.time, policy.track_window_s)
        return verify_checkin(place, fix, now, policy, previous, track), False

    async def _evidence(self, conn: AsyncConnection, rep_id: int, at: datetime, window_s: float
                        ) -> tuple[TrackPoint | None, builtins.list[TrackPoint]]:
        """The rep's last position before ``at`` (within the teleport horizon: anything older is
        ignored by the check anyway) and their positions within ``window_s`` of it."""
        devices = "SELECT device_id FROM user_devices WHERE user_id = %(rep)s"
        # Not yet processed positions have no filter mark: invalid ones are left out here too, and
        # a status report stamped with the last known location ("outdated") is no fix at that time.
        kept = ("p.filtered IS NULL AND p.valid AND p.latitude IS NOT NULL AND p.longitude IS NOT NULL"
                " AND p.attributes->'outdated' IS DISTINCT FROM 'true'::jsonb")
        args = {"rep": rep_id, "at": at, "horizon": timedelta(seconds=TELEPORT_HORIZON_S),
                "window": timedelta(seconds=window_s), "limit": TRACK_LIMIT}
        # Per device, the index (device_id, fix_time) finds its last position in one probe.
        last = await self._dicts(conn, f"SELECT q.* FROM ({devices}) d CROSS JOIN LATERAL"
                                 " (SELECT p.device_id, p.fix_time, p.latitude, p.longitude, p.attributes"
                                 " FROM positions p WHERE p.device_id = d.device_id AND p.fix_time < %(at)s"
                                 f" AND p.fix_time >= %(at)s - %(horizon)s AND {kept}"
                                 " ORDER BY p.fix_time DESC LIMIT 1) q"
                                 " ORDER BY q.fix_time DESC LIMIT 1", args)
        near = await self._dicts(conn, "SELECT p.device_id, p.fix_time, p.latitude, p.longitude, p.attributes"
                                 f" FROM positions p WHERE p.device_id IN ({devices})"
                                 " AND p.fix_time BETWEEN %(at)s - %(window)s AND %(at)s + %(window)s"
                                 f" AND {kept} ORDER BY p.fix_time LIMIT %(limit)s", args)

        def point(r: dict[str, Any]) -> TrackPoint:
            return TrackPoint(r["fix_time"], r["latitude"], r["longitude"], is_mock(r["attributes"]),
                              r["device_id"])
        return (point(last[0]) if last else None), [point(r) for r in near]

    async def _record(self, conn: AsyncConnection, visit: Visit, kind: str, fix: SubmittedFix,
                      verdict: Verdict, now: datetime) -> Attempt:
        found = await self._dicts(
            conn, "INSERT INTO checkin_attempts AS a (visit_id, user_id, kind, at, fix_time, latitude,"
            " longitude, accuracy_m, mock, accepted, reason, detail)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            f" RETURNING {_ATTEMPT_OWN}",
            [visit.id, visit.rep_id, kind, now, fix.time, fix.latitude, fix.longitude, fix.accuracy_m,
             fix.mock, verdict.accepted, verdict.reason, Jsonb(verdict.detail)])
        return Attempt(**found[0], rep_id=visit.rep_id, customer_id=visit.customer_id, team_id=visit.team_id)

    @staticmethod
    def _changes(visit: Visit, kind: str, fix: SubmittedFix, verdict: Verdict, now: datetime
                 ) -> dict[str, Any]:
        distance = verdict.detail.get("distance_m")
        if kind == "checkin":
            return {"status": "done", "checkin_at": now, "checkin_fix_time": fix.time,
                    "checkin_latitude": fix.latitude, "checkin_longitude": fix.longitude,
                    "checkin_accuracy_m": fix.accuracy_m, "checkin_distance_m": distance}
        assert visit.checkin_fix_time is not None
        far = verdict.detail.get("far") and "checkout_far" not in visit.flags
        flags = [*visit.flags, "checkout_far"] if far else visit.flags
        return {"checkout_at": now, "checkout_fix_time": fix.time, "checkout_latitude": fix.latitude,
                "checkout_longitude": fix.longitude, "checkout_distance_m": distance, "flags": flags,
                "dwell_s": (fix.time - visit.checkin_fix_time).total_seconds()}

    async def attempts(self, access: VisitAccess, *, visit_id: int | None = None,
                       filters: AttemptFilters | None = None, limit: int,
                       after: tuple[datetime, int] | None = None) -> builtins.list[Attempt]:
        """Of one visit (NotFound when unseen), or by ``filters``; ordered by (at, id)."""
        cond, params = access.condition()
        where, args = [cond], list(params)
        if visit_id is not None:
            where.append("v.id = %s")
            args.append(visit_id)
        if filters is not None:
            where += ["a.at >= %s", "a.at < %s"]
            args += [filters.start, filters.end]
            for sql, value in (("a.accepted = %s", filters.accepted), ("v.rep_id = %s", filters.rep_id),
                               ("v.team_id = %s", filters.team_id)):
                if value is not None:
                    where.append(sql)
                    args.append(value)
        if after is not None:
            where.append("(a.at, a.id) > (%s, %s)")
            args += list(after)
        async with self._tx() as conn:
            if visit_id is not None:
                await self._visible(conn, visit_id, access, lock=False)
            found = await self._dicts(conn, f"SELECT {_ATTEMPT} FROM checkin_attempts a JOIN visits v"
                                      f" ON v.id = a.visit_id WHERE {' AND '.join(where)}"
                                      " ORDER BY a.at, a.id LIMIT %s", [*args, limit])
        return [Attempt(**r) for r in found]
