"""The visit detector's decisions, pure: which stops are visits, how plans are linked, done,
missed or restored, the reconciliation flags, and that deciding again after applying changes
nothing (hypothesis).

Times: D = Monday 2026-10-05; Amsterdam is UTC+2 (CEST) that day, so the local day D runs from
2026-10-04 22:00 to 2026-10-05 22:00 UTC.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.team_policy import TeamPolicy
from processors.visit_detect import (
    CHECKIN_WITHOUT_PRESENCE,
    PRESENCE_WITHOUT_CHECKIN,
    Decisions,
    Detection,
    Place,
    RepDays,
    StopSpan,
    TrackPoint,
    VisitRow,
    day_bounds,
    decide,
)

ZONE = "Europe/Amsterdam"
D = date(2026, 10, 5)
D_END = datetime(2026, 10, 5, 22, 0, tzinfo=UTC)
NOON = datetime(2026, 10, 5, 10, 0, tzinfo=UTC)
LAT, LON = 52.0, 4.0
M_LAT = 111_320.0
M_LON = 111_320.0 * math.cos(math.radians(LAT))
POLICY = TeamPolicy()


def haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    r = 6_371_008.8
    a = math.sin(math.radians(lat2 - lat1) / 2) ** 2 + math.cos(math.radians(lat1)) * math.cos(
        math.radians(lat2)) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


def at(east_m: float, north_m: float = 0.0) -> tuple[float, float]:
    return LAT + north_m / M_LAT, LON + east_m / M_LON


def shop(customer_id: int, east_m: float, radius_m: float = 100.0) -> Place:
    return Place(customer_id, *at(east_m), radius_m)


def stop(start: datetime, minutes: float, east_m: float, north_m: float = 0.0, device: int = 1) -> StopSpan:
    return StopSpan(device, start, start + timedelta(minutes=minutes), *at(east_m, north_m))


SHOPS = {1: shop(1, 0.0), 2: shop(2, 3000.0), 3: shop(3, 60.0)}


def rep_days(stops: list[StopSpan], visits: list[VisitRow], **kw: object) -> RepDays:
    return RepDays(ZONE, frozenset({D}), stops, SHOPS, visits, **kw)  # type: ignore[arg-type]


def applied(rep: RepDays, d: Decisions) -> RepDays:
    """What storage does with the decisions, on the detector's view of the rows."""
    rows = {v.id: v for v in rep.visits}
    for u in d.updates:
        rows[u.visit_id] = replace(rows[u.visit_id], status=u.status, detected=u.detected, flags=u.flags,
                                   status_before_detection=u.status_before_detection)
    for i in d.deletes:
        del rows[i]
    for n, c in enumerate(d.creates):
        new_id = 10_000 + n
        rows[new_id] = VisitRow(new_id, c.customer_id, c.day, "done", "detected", detected=c.detected)
    return replace(rep, visits=list(rows.values()))


def test_a_long_stop_at_a_customer_is_a_detected_visit() -> None:
    s = stop(NOON, 7, 0.0, 40.0)
    d = decide(rep_days([s], []), POLICY, NOON + timedelta(hours=1))
    assert d.updates == () and d.deletes == ()
    [new] = d.creates
    assert (new.customer_id, new.day, new.detected.device_id) == (1, D, 1)
    assert (new.detected.start, new.detected.end) == (s.start, s.end)
    assert new.detected.distance_m == pytest.approx(haversine(s.latitude, s.longitude, LAT, LON), abs=1e-6)


def test_short_or_distant_stops_are_not_visits() -> None:
    short = stop(NOON, 4.9, 0.0)
    outside = stop(NOON + timedelta(hours=1), 30, 0.0, 101.0)  # radius is 100 m
    assert not decide(rep_days([short, outside], []), POLICY, NOON)
    # The team's own threshold applies.
    lenient = TeamPolicy.from_settings({"visit_detection": {"min_stop_minutes": 4}})
    assert [c.customer_id for c in decide(rep_days([short], []), lenient, NOON).creates] == [1]


def test_the_day_is_the_reps_local_date_of_the_stop_start() -> None:
    # 22:30 UTC on D is 00:30 on D+1 in Amsterdam: not a visit of D.
    late = stop(D_END + timedelta(minutes=30), 10, 0.0)
    assert not decide(rep_days([late], []), POLICY, D_END)
    utc = replace(rep_days([late], []), zone="UTC")
    assert [c.day for c in decide(utc, POLICY, D_END).creates] == [D]
    assert day_bounds(D, ZONE) == (D_END - timedelta(days=1), D_END)


def test_the_longest_stop_of_the_day_is_the_evidence() -> None:
    stops = [stop(NOON, 6, 0.0), stop(NOON + timedelta(hours=2), 9, 10.0, device=2),
             stop(NOON + timedelta(hours=4), 8, 0.0)]
    [new] = decide(rep_days(stops, []), POLICY, NOON).creates
    assert (new.detected.start, new.detected.device_id) == (stops[1].start, 2)


def test_a_stop_near_two_customers_belongs_to_one() -> None:
    # 20 m from shop 1, 40 m from shop 3: the nearest, unless only the other one is planned.
    s = stop(NOON, 10, 20.0)
    assert [c.customer_id for c in decide(rep_days([s], []), POLICY, NOON).creates] == [1]
    plan = VisitRow(7, 3, D, "approved", "plan")
    d = decide(rep_days([s], [plan]), POLICY, NOON)
    assert d.creates == ()
    assert [(u.visit_id, u.status) for u in d.updates] == [(7, "done")]


def test_a_plan_takes_the_presence_and_is_flagged_without_checkin() -> None:
    s = stop(NOON, 7, 0.0)
    plan = VisitRow(5, 1, D, "planned", "plan", flags=("reused_photo",))
    d = decide(rep_days([s], [plan]), POLICY, NOON)
    assert d.creates == ()
    [u] = d.updates
    assert (u.visit_id, u.status, u.status_before_detection) == (5, "done", "planned")
    assert u.detected is not None
    assert (u.detected.device_id, u.detected.start, u.detected.end) == (1, s.start, s.end)
    assert u.detected.distance_m == pytest.approx(haversine(s.latitude, s.longitude, LAT, LON), abs=1e-6)
    assert u.flags == ("reused_photo", PRESENCE_WITHOUT_CHECKIN)  # other flags are kept
    checked_in = replace(plan, status="done", checkin_time=NOON + timedelta(minutes=2))
    [u] = decide(rep_days([s], [checked_in]), POLICY, NOON).updates
    assert (u.status, u.status_before_detection, u.flags) == ("done", None, ("reused_photo",))


def test_cancelled_plans_do_not_take_presence() -> None:
    s = stop(NOON, 7, 0.0)
    d = decide(rep_days([s], [VisitRow(5, 1, D, "cancelled", "plan")]), POLICY, NOON)
    assert d.updates == ()
    assert [c.customer_id for c in d.creates] == [1]


def test_an_open_plan_is_missed_after_day_end_and_grace_once_processed() -> None:
    plan = VisitRow(5, 2, D, "approved", "plan")
    assert not decide(rep_days([], [plan]), POLICY, D_END + timedelta(minutes=59))
    [u] = decide(rep_days([], [plan]), POLICY, D_END + timedelta(hours=1)).updates
    assert u.status == "missed"
    behind = rep_days([], [plan], behind_since=D_END - timedelta(seconds=1))
    assert not decide(behind, POLICY, D_END + timedelta(days=1))
    caught_up = rep_days([], [plan], behind_since=D_END)  # unprocessed positions of the next day only
    assert [u.status for u in decide(caught_up, POLICY, D_END + timedelta(hours=1)).updates] == ["missed"]
    checked_in = replace(plan, checkin_time=NOON)  # a check-in is not missed, even if its status lags
    assert not decide(rep_days([], [checked_in]), POLICY, D_END + timedelta(days=1))


def test_late_presence_turns_missed_done_and_a_lost_one_restores_it() -> None:
    s = stop(NOON, 7, 0.0)
    missed = VisitRow(5, 1, D, "missed", "plan")
    [u] = decide(rep_days([s], [missed]), POLICY, D_END + timedelta(days=1)).updates
    assert (u.status, u.status_before_detection) == ("done", "missed")
    done = VisitRow(5, 1, D, "done", "plan", detected=u.detected, flags=u.flags,
                    status_before_detection="approved")
    # A replay removed the stop: back to approved, and (day over) then missed.
    [u] = decide(rep_days([], [done]), POLICY, NOON).updates
    assert (u.status, u.status_before_detection, u.detected, u.flags) == ("approved", None, None, ())
    [u] = decide(rep_days([], [done]), POLICY, D_END + timedelta(hours=2)).updates
    assert u.status == "missed"
    # A check-in made meanwhile keeps it done.
    [u] = decide(rep_days([], [replace(done, checkin_time=NOON)]), POLICY, NOON).updates
    assert (u.status, u.status_before_detection) == ("done", None)


def test_a_detected_visit_without_evidence_goes_unless_referenced() -> None:
    old = VisitRow(9, 1, D, "done", "detected", detected=Detection(1, NOON, NOON + timedelta(minutes=7), 3.0))
    assert decide(rep_days([], [old]), POLICY, NOON).deletes == (9,)
    [u] = decide(rep_days([], [replace(old, referenced=True)]), POLICY, NOON).updates
    assert (u.visit_id, u.status, u.detected) == (9, "done", None)
    # A plan made later for the same customer and day takes the evidence over.
    s = stop(NOON, 7, 0.0)
    plan = VisitRow(10, 1, D, "approved", "plan")
    d = decide(rep_days([s], [replace(old, detected=None), plan]), POLICY, NOON)
    assert d.deletes == (9,) and d.creates == () and [u.visit_id for u in d.updates] == [10]


def test_a_checkin_is_judged_against_the_track_only_when_there_is_one() -> None:
    when = NOON + timedelta(minutes=3)
    visit = VisitRow(5, 2, D, "done", "plan", checkin_time=when)  # shop 2: 3 km east
    here = TrackPoint(when + timedelta(seconds=60), *at(0.0))
    [u] = decide(rep_days([], [visit], track=[here]), POLICY, NOON).updates
    assert u.flags == (CHECKIN_WITHOUT_PRESENCE,)
    assert not decide(rep_days([], [visit]), POLICY, NOON)  # no positions: no disagreement
    # Positions outside ±300 s are not the check-in's window.
    assert not decide(rep_days([], [visit], track=[replace(here, time=when + timedelta(seconds=301))]),
                      POLICY, NOON)
    # Within radius 100 + tolerance 100 m of the shop agrees; 201 m does not.
    near = TrackPoint(when, *at(3000.0 - 199.0))
    assert not decide(rep_days([], [visit], track=[here, near]), POLICY, NOON)
    far = TrackPoint(when, *at(3000.0 - 201.0))
    assert decide(rep_days([], [visit], track=[here, far]), POLICY, NOON)
    # A stop at the shop overlapping the window agrees too (a parked tracker sends little).
    # (That stop is long enough to be presence too: the flag is the only question here.)
    parked = stop(when - timedelta(minutes=20), 16, 3000.0)
    [u] = decide(rep_days([parked], [visit], track=[here]), POLICY, NOON).updates
    assert u.flags == ()


# --- Property: deciding again after applying the decisions changes nothing. ---

DAYS = (D, D + timedelta(days=1))
BASE = day_bounds(D, ZONE)[0]
STATUSES = ("planned", "approved", "rejected", "done", "missed", "cancelled")

stops_st = st.lists(st.builds(
    lambda minute, length, east, north, device: StopSpan(
        device, BASE + timedelta(minutes=minute), BASE + timedelta(minutes=minute + length),
        *at(east, north)),
    st.integers(0, 2 * 1440), st.integers(1, 20), st.sampled_from([0.0, 30.0, 60.0, 3000.0, 500.0]),
    st.integers(-150, 150).map(float), st.integers(1, 2)), max_size=8)

visit_st = st.builds(
    lambda customer, day, status, source, checkin, sbd, flags, referenced: (
        customer, day, status if source == "plan" else "done", source,
        None if checkin is None else BASE + timedelta(minutes=checkin), sbd, flags, referenced),
    st.sampled_from([1, 2, 3]), st.sampled_from(DAYS), st.sampled_from(STATUSES),
    st.sampled_from(["plan", "plan", "detected"]), st.none() | st.integers(0, 2 * 1440),
    st.sampled_from([None, "planned", "approved", "missed"]),
    st.sampled_from([(), ("reused_photo",), (PRESENCE_WITHOUT_CHECKIN,), (CHECKIN_WITHOUT_PRESENCE, "x")]),
    st.booleans())

track_st = st.lists(st.builds(
    lambda minute, east: TrackPoint(BASE + timedelta(minutes=minute), *at(east)),
    st.integers(0, 2 * 1440), st.sampled_from([0.0, 60.0, 1500.0, 3000.0])), max_size=10)


@given(stops_st, st.lists(visit_st, max_size=6), track_st, st.integers(0, 4 * 1440),
       st.none() | st.integers(0, 3 * 1440), st.sampled_from([ZONE, "UTC", "America/New_York"]))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_deciding_again_after_applying_changes_nothing(stops: list[StopSpan], raw: list[tuple[object, ...]],
                                                      track: list[TrackPoint], now_min: int,
                                                      behind_min: int | None, zone: str) -> None:
    visits: list[VisitRow] = []
    seen_detected: set[tuple[object, object]] = set()
    for n, (customer, day, status, source, checkin, sbd, flags, referenced) in enumerate(raw):
        if source == "detected":
            if (customer, day) in seen_detected:
                continue  # the unique index visits_detected_once
            seen_detected.add((customer, day))
        visits.append(VisitRow(n + 1, customer, day, status, source, checkin, None, flags,  # type: ignore[arg-type]
                               sbd, referenced))  # type: ignore[arg-type]
    rep = RepDays(zone, frozenset(DAYS), stops, SHOPS, visits, track,
                  None if behind_min is None else BASE + timedelta(minutes=behind_min))
    now = BASE + timedelta(minutes=now_min)
    first = decide(rep, POLICY, now)
    after = applied(rep, first)
    assert decide(after, POLICY, now) == Decisions()
    # At most one detected visit per customer and day, and none where a linkable plan exists.
    detected = [(v.customer_id, v.day) for v in after.visits if v.source == "detected"]
    assert len(detected) == len(set(detected))
    # Order of the inputs does not matter.
    assert decide(replace(rep, stops=stops[::-1], visits=visits[::-1]), POLICY, now) == first
