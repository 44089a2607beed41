"""Visit detection and reconciliation for one rep: from their stops, the customers they serve and
their visits of some local days, the changes that make the visits agree with the track.

Everything the detector owns is recomputed from the inputs on every run, so applying the decisions
and deciding again gives no changes, and a processing replay that replaced stops is handled by the
next run. The detector owns, per visit: ``detected_*``, the two reconciliation flags, the status
changes planned/approved/missed -> done (presence) and back (presence gone), planned/approved ->
missed (day over), and the existence of ``source = 'detected'`` visits.

Rules (documented choices):
- A stop *qualifies* at a customer when it lasts at least ``min_stop_minutes`` and its position
  lies within the customer's ``radius_m``. Its day is the rep's local date of its start.
- A stop belongs to one customer only (two shops in one building): the nearest qualifying customer
  that has a linkable plan of the rep that day, else the nearest qualifying customer (ties by id).
- Linkable plans: ``source = 'plan'`` with status planned, approved, done or missed (missed so that
  a late upload still proves the visit). Every linkable plan of the customer and day gets the
  longest stop it owns (ties: earliest start, lowest device id, nearest); without a plan, one visit with
  source 'detected' and status 'done' carries it (one per rep, customer and day).
- The detector remembers in ``status_before_detection`` what a plan was when presence made it
  done, so a replay that removes the stop (and no check-in was made) restores it.
- Missed: a plan still planned/approved with no check-in and no presence, once the local day
  plus ``grace`` is over and the rep's devices have no unprocessed position from before the day
  end (``behind_since``: the earliest unprocessed fix time of the rep's devices).
- A detected visit that lost its stop is deleted when nothing refers to it (no check-in, report,
  photo or check-in attempt), else kept with ``detected_*`` cleared.
- Off duty (outside the rep's working calendar) a stop links to a plan but never creates a
  detected visit: the calendar makes those hours private (working-hours privacy).
- Flags: 'presence_without_checkin' on a plan with presence and no check-in; 'checkin_without_presence'
  on a visit whose accepted check-in the track does not show near the customer (see
  :func:`_checkin_unsupported`). Other flags on a visit are kept as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from processors.geo import haversine_m
from processors.team_policy import TeamPolicy

CHECKIN_WITHOUT_PRESENCE = "checkin_without_presence"
PRESENCE_WITHOUT_CHECKIN = "presence_without_checkin"
OWN_FLAGS = (CHECKIN_WITHOUT_PRESENCE, PRESENCE_WITHOUT_CHECKIN)
LINKABLE = frozenset({"planned", "approved", "done", "missed"})
OPEN = frozenset({"planned", "approved"})
# Phones upload their buffer after a tunnel or a dead zone: a day is judged an hour after it ends.
MISSED_GRACE = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class StopSpan:
    device_id: int
    start: datetime
    end: datetime
    latitude: float
    longitude: float

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class Place:
    customer_id: int
    latitude: float
    longitude: float
    radius_m: float


@dataclass(frozen=True, slots=True)
class TrackPoint:
    time: datetime
    latitude: float
    longitude: float


@dataclass(frozen=True, slots=True)
class Detection:
    device_id: int | None  # None once the device is deleted (the visit keeps its times)
    start: datetime
    end: datetime
    distance_m: float


@dataclass(frozen=True, slots=True)
class VisitRow:
    """The detector's view of a visit row. ``referenced``: something besides the detector depends
    on it (a check-in, a report, a photo, a check-in attempt), so it is never deleted."""

    id: int
    customer_id: int
    day: date
    status: str
    source: str
    checkin_time: datetime | None = None
    detected: Detection | None = None
    flags: tuple[str, ...] = ()
    status_before_detection: str | None = None
    referenced: bool = False


@dataclass(frozen=True, slots=True)
class RepDays:
    """What one rep's days need. ``stops`` may include stops outside ``days`` (they serve the
    check-in cross-check); ``track``: the rep's unfiltered positions around each check-in."""

    zone: str
    days: frozenset[date]
    stops: Sequence[StopSpan]
    customers: Mapping[int, Place]
    visits: Sequence[VisitRow]
    track: Sequence[TrackPoint] = ()
    behind_since: datetime | None = None
    # The rep's working time around ``days`` (UTC intervals); None: no calendar, always on duty.
    on_duty: Sequence[tuple[datetime, datetime]] | None = None


@dataclass(frozen=True, slots=True)
class VisitUpdate:
    visit_id: int
    status: str
    status_before_detection: str | None
    detected: Detection | None
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NewVisit:
    customer_id: int
    day: date
    detected: Detection


@dataclass(frozen=True, slots=True)
class Decisions:
    updates: tuple[VisitUpdate, ...] = ()
    creates: tuple[NewVisit, ...] = ()
    deletes: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.updates or self.creates or self.deletes)


def day_bounds(day: date, zone: str) -> tuple[datetime, datetime]:
    """[start, end) of a local day as UTC instants (23 or 25 h long on a DST change)."""
    tz = ZoneInfo(zone)
    start = datetime.combine(day, time(), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def local_day(at: datetime, zone: str) -> date:
    return at.astimezone(ZoneInfo(zone)).date()


def decide(rep: RepDays, policy: TeamPolicy, now: datetime, grace: timedelta = MISSED_GRACE) -> Decisions:
    planned = {(v.customer_id, v.day) for v in rep.visits if v.source == "plan" and v.status in LINKABLE}
    # Off duty the rep's whereabouts are private: a stop then proves a planned visit (the plan says
    # it was work) but never creates a visit the manager would see.
    found = {key: d for key, d in _detections(rep, policy).items()
             if key in planned or _on_duty(d, rep.on_duty)}
    updates: list[VisitUpdate] = []
    deletes: list[int] = []
    kept_detected: set[tuple[int, date]] = set()
    for visit in sorted(rep.visits, key=lambda v: v.id):
        if visit.day not in rep.days:
            continue
        key = (visit.customer_id, visit.day)
        detection = found.get(key)
        if visit.source == "plan":
            target = _plan(visit, detection if visit.status in LINKABLE else None, rep, now, grace)
        elif key not in planned and detection is not None and key not in kept_detected:
            kept_detected.add(key)
            target = replace(visit, detected=detection)
        elif not visit.referenced and visit.checkin_time is None:
            deletes.append(visit.id)
            continue
        else:
            target = replace(visit, detected=None)
        target = replace(target, flags=_flags(target, rep, policy))
        if (target.status, target.status_before_detection, target.detected, target.flags) != (
                visit.status, visit.status_before_detection, visit.detected, visit.flags):
            updates.append(VisitUpdate(visit.id, target.status, target.status_before_detection,
                                       target.detected, target.flags))
    creates = [NewVisit(customer, day, detection) for (customer, day), detection in sorted(found.items())
               if (customer, day) not in planned and (customer, day) not in kept_detected]
    return Decisions(tuple(updates), tuple(creates), tuple(deletes))


def _plan(visit: VisitRow, detection: Detection | None, rep: RepDays, now: datetime,
          grace: timedelta) -> VisitRow:
    if detection is not None:
        if visit.status in OPEN or visit.status == "missed":
            return replace(visit, detected=detection, status="done", status_before_detection=visit.status)
        return replace(visit, detected=detection)
    out = replace(visit, detected=None)
    if visit.status_before_detection is not None:
        # Presence made this plan done and is gone now; a check-in since then keeps it done.
        if visit.status == "done" and visit.checkin_time is None:
            out = replace(out, status=visit.status_before_detection)
        out = replace(out, status_before_detection=None)
    if out.status in OPEN and out.checkin_time is None and _day_settled(out.day, rep, now, grace):
        out = replace(out, status="missed")
    return out


def _on_duty(d: Detection, on_duty: Sequence[tuple[datetime, datetime]] | None) -> bool:
    return on_duty is None or any(a < d.end and d.start < b for a, b in on_duty)


def _day_settled(day: date, rep: RepDays, now: datetime, grace: timedelta) -> bool:
    """Over, and every position of the rep from that day processed (none pending before its end)."""
    _, end = day_bounds(day, rep.zone)
    return now >= end + grace and (rep.behind_since is None or rep.behind_since >= end)


def _detections(rep: RepDays, policy: TeamPolicy) -> dict[tuple[int, date], Detection]:
    """The longest owned qualifying stop per (customer, day)."""
    min_s = policy.visit_detection.min_stop_minutes * 60.0
    planned = {(v.customer_id, v.day) for v in rep.visits if v.source == "plan" and v.status in LINKABLE}
    best: dict[tuple[int, date], Detection] = {}
    for stop in rep.stops:
        if stop.duration_s < min_s:
            continue
        day = local_day(stop.start, rep.zone)
        if day not in rep.days:
            continue
        near = [(d, c.customer_id) for c in rep.customers.values()
                if (d := haversine_m(stop.latitude, stop.longitude, c.latitude, c.longitude)) <= c.radius_m]
        if not near:
            continue
        with_plan = [n for n in near if (n[1], day) in planned]
        distance, customer = min(with_plan or near)
        candidate = Detection(stop.device_id, stop.start, stop.end, distance)
        key = (customer, day)
        if key not in best or _rank(candidate) < _rank(best[key]):
            best[key] = candidate
    return best


def _rank(d: Detection) -> tuple[float, datetime, int, float]:
    # A total order, so the evidence chosen never depends on the order stops were read in.
    return (-(d.end - d.start).total_seconds(), d.start, d.device_id or 0, d.distance_m)


def _flags(visit: VisitRow, rep: RepDays, policy: TeamPolicy) -> tuple[str, ...]:
    own = set()
    if visit.source == "plan" and visit.detected is not None and visit.checkin_time is None:
        own.add(PRESENCE_WITHOUT_CHECKIN)
    place = rep.customers.get(visit.customer_id)
    if visit.checkin_time is not None and place is not None and \
            _checkin_unsupported(visit.checkin_time, place, rep.stops, rep.track, policy):
        own.add(CHECKIN_WITHOUT_PRESENCE)
    others = tuple(f for f in visit.flags if f not in OWN_FLAGS)
    return others + tuple(f for f in OWN_FLAGS if f in own)


def _checkin_unsupported(at: datetime, place: Place, stops: Iterable[StopSpan], track: Iterable[TrackPoint],
                         policy: TeamPolicy) -> bool:
    """True when the rep's track around ``at`` (± track_window_s) has positions and none of them,
    nor any stop overlapping that window, lies within radius + track_tolerance_m of the customer.

    No position in the window is not a disagreement: a phone without a tracking app running or a
    tracker switched off says nothing about where the rep was, so it is not flagged."""
    window = timedelta(seconds=policy.checkin.track_window_s)
    reach = place.radius_m + policy.checkin.track_tolerance_m
    lo, hi = at - window, at + window
    points = [p for p in track if lo <= p.time <= hi]
    if not points:
        return False
    if any(haversine_m(p.latitude, p.longitude, place.latitude, place.longitude) <= reach for p in points):
        return False
    return not any(s.start <= hi and s.end >= lo
                   and haversine_m(s.latitude, s.longitude, place.latitude, place.longitude) <= reach
                   for s in stops)
