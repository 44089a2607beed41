"""Trips and stops on real drives, a parked receiver and a bus fleet, plus the invariants on any
input (hypothesis) and state that survives a restart.

What the data says is computed here independently of the processor: for the Reno drive, from the
speeds the Garmin reports (it reports 0.0 km/h when standing, so "standing" is a reported speed
below 3 km/h, and a silent gap between two standing fixes is standing time too); for the buses,
which report no speed, from runs of pings that stay near the run's first ping.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors import motion
from processors.fix import Fix
from processors.geo import haversine_m
from processors.motion import MotionParams
from processors.records import DEVICE_MOVING, DEVICE_STOPPED, Stop, Trip
from tests.processors.tracks import (
    PARKED,
    RENO,
    Params,
    Run,
    bus_fixes,
    check_timeline,
    nmea_fixes,
    pipeline,
    random_tracks,
    results,
)

STANDING_KMH = 3.0
DEFAULTS = MotionParams()


@cache
def reno() -> Run:
    return pipeline(nmea_fixes(RENO))


@cache
def reno_epochs() -> list[Fix]:
    return nmea_fixes(RENO, {"positions": "epoch"})


def standing_runs(fixes: list[Fix]) -> list[tuple[datetime, datetime]]:
    """Maximal runs of fixes reporting less than STANDING_KMH, first to last fix."""
    runs: list[tuple[datetime, datetime]] = []
    start: Fix | None = None
    previous: Fix | None = None
    for fix in fixes:
        standing = fix.speed_kmh is not None and fix.speed_kmh < STANDING_KMH
        if standing and start is None:
            start = fix
        elif not standing and start is not None and previous is not None:
            runs.append((start.time, previous.time))
            start = None
        previous = fix
    if start is not None and previous is not None:
        runs.append((start.time, previous.time))
    return runs


def seconds(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds()


def all_stops(run: Run) -> list[Stop]:
    return [*run.stops, *([run.open_stop] if run.open_stop else [])]


def all_trips(run: Run) -> list[Trip]:
    return [*run.trips, *([run.open_trip] if run.open_trip else [])]


def show(run: Run) -> None:
    for t in all_trips(run):
        print(f"trip {t.start_time:%H:%M:%S}-{t.end_time:%H:%M:%S} {t.distance_m:8.0f} m "
              f"{t.duration_s:5.0f} s max {t.max_speed_kmh:5.1f} avg {t.average_speed_kmh:5.1f} km/h")
    for s in all_stops(run):
        print(f"stop {s.start_time:%H:%M:%S}-{s.end_time:%H:%M:%S} {s.duration_s:5.0f} s")


# --- the Reno drive ----------------------------------------------------------------------------


def test_reno_stops_are_the_parking_periods_and_the_silent_gaps() -> None:
    run = reno()
    show(run)
    check_timeline(run, DEFAULTS)
    long_runs = [r for r in standing_runs(reno_epochs()) if seconds(*r) >= DEFAULTS.min_stop_duration_s]
    stops = all_stops(run)
    print("standing >= 180 s:", [(f"{a:%H:%M:%S}", seconds(a, b)) for a, b in long_runs])
    assert len(stops) == len(long_runs) >= 4
    for stop, (start, end) in zip(stops, long_runs, strict=True):
        # Arrival and departure within a minute of what the speeds say (a car creeping into or
        # out of a space moves less than the stop radius).
        assert abs(seconds(stop.start_time, start)) <= 60
        assert abs(seconds(stop.end_time, end)) <= 60


def test_reno_gaps_lie_inside_stops() -> None:
    run = reno()
    gaps = [(a.time, b.time) for a, b in pairwise(reno_epochs())
            if seconds(a.time, b.time) >= DEFAULTS.min_stop_duration_s]
    assert [seconds(*g) for g in gaps] == [798, 1250]
    for start, end in gaps:
        assert any(s.start_time <= start and end <= s.end_time for s in all_stops(run)), (start, end)


def test_reno_traffic_light_halts_are_not_stops() -> None:
    run = reno()
    halts = [r for r in standing_runs(reno_epochs()) if 10 <= seconds(*r) < 150]
    print(len(halts), "halts of 10-150 s")
    assert len(halts) >= 5
    inside_trips = [h for h in halts
                    if any(t.start_time <= h[0] and h[1] <= t.end_time for t in all_trips(run))]
    overlapping_stops = [h for h in halts
                         if any(s.start_time < h[1] and h[0] < s.end_time for s in all_stops(run))]
    print(len(inside_trips), "inside trips,", len(overlapping_stops), "next to a parking")
    # A halt either lies inside a trip or is the car creeping next to where it then parks.
    assert len(inside_trips) + len(overlapping_stops) == len(halts)
    assert len(inside_trips) >= len(halts) - len(all_stops(run))


def test_reno_trips_chain_with_stops() -> None:
    run = reno()
    epochs = reno_epochs()
    assert epochs[0].speed_kmh is not None and epochs[0].speed_kmh > 50
    last_standing = standing_runs(epochs)[-1]
    assert last_standing[1] != epochs[-1].time or seconds(*last_standing) < DEFAULTS.min_stop_duration_s
    # Moving at the start, not yet parked at the end: trip, stop, trip, ..., stop, open trip.
    assert run.open_trip is not None and run.open_stop is None
    trips = all_trips(run)
    assert len(trips) == len(run.stops) + 1
    for i, stop in enumerate(run.stops):
        assert trips[i].end_time == stop.start_time and stop.end_time == trips[i + 1].start_time
        assert trips[i].end_odometer_m == stop.odometer_m
    assert trips[0].start_time == epochs[0].time and trips[-1].end_time == epochs[-1].time
    assert trips[0].start_time.date() != trips[0].end_time.date()  # across UTC midnight
    # Nearly all the distance is driven in trips (a stop holds only creeping and the 44 m the car
    # moved during the 798 s silence).
    assert sum(t.distance_m for t in trips) >= 0.99 * run.odometer_m[-1]
    moving = [e for e in run.events if e.type == DEVICE_MOVING]
    stopped = [e for e in run.events if e.type == DEVICE_STOPPED]
    assert [e.time for e in moving] == [t.start_time for t in trips]
    assert [e.time for e in stopped] == [s.start_time for s in run.stops]


def test_reno_trip_speeds() -> None:
    run = reno()
    epochs = reno_epochs()
    for trip in all_trips(run):
        reported = [f.speed_kmh for f in epochs
                    if trip.start_time < f.time <= trip.end_time and f.speed_kmh is not None]
        assert trip.max_speed_kmh == pytest.approx(max(reported))
        assert trip.average_speed_kmh == pytest.approx(trip.distance_m / trip.duration_s * 3.6)
        assert 0 < trip.average_speed_kmh < trip.max_speed_kmh


def test_reno_long_silence_while_driving_ends_the_trip() -> None:
    """Cut 15 minutes of driving out of the first trip; with a no-data limit of 10 minutes the
    trip ends at the last fix before the cut and a new one starts after it, with no stop."""
    fixes = nmea_fixes(RENO)
    cut_from = fixes[0].time + timedelta(minutes=8)
    cut_to = cut_from + timedelta(minutes=15)
    kept = [f for f in fixes if not cut_from <= f.time < cut_to]
    params = Params(motion=MotionParams(no_data_s=600))
    run = pipeline(kept, params)
    check_timeline(run, params.motion)
    before = max(f.time for f in kept if f.time < cut_from)
    after = min(f.time for f in kept if f.time >= cut_to)
    assert run.trips[0].end_time == before
    assert any(t.start_time == after for t in all_trips(run))
    assert not any(s.start_time < after and before < s.end_time for s in all_stops(run))
    # With the default limit (an hour) the same silence is driving: one trip goes through it.
    through = pipeline(kept)
    assert any(t.start_time < before and after < t.end_time for t in all_trips(through))


def test_reno_state_survives_restarts() -> None:
    fixes = nmea_fixes(RENO)
    restarts = range(1, len(fixes), 97)
    assert results(pipeline(fixes, restart_at=restarts)) == results(reno())


# --- a parked receiver -------------------------------------------------------------------------


@pytest.mark.parametrize("positions", ["epoch", "sentence"])
def test_parked_receiver_makes_no_trip(positions: str) -> None:
    # Sentence mode: the decoder dates the log's very first GGA (before any RMC told the date)
    # with today's date, so one fix lies years after the rest; it is at the same place.
    run = pipeline(nmea_fixes(PARKED, {"positions": positions}))
    check_timeline(run, DEFAULTS)
    assert run.trips == [] and run.open_trip is None
    assert not any(e.type == DEVICE_MOVING for e in run.events)
    assert run.open_stop is not None and run.open_stop.duration_s >= 19 * 60


# --- buses -------------------------------------------------------------------------------------


def dwells(fixes: list[Fix], radius_m: float) -> list[tuple[datetime, datetime]]:
    """Maximal runs of pings within ``radius_m`` of the run's first ping."""
    out = []
    i = 0
    while i < len(fixes):
        j = i
        while j + 1 < len(fixes) and haversine_m(fixes[i].latitude, fixes[i].longitude,
                                                 fixes[j + 1].latitude, fixes[j + 1].longitude) <= radius_m:
            j += 1
        if j > i:
            out.append((fixes[i].time, fixes[j].time))
        i = j + 1
    return out


@cache
def bus_runs() -> dict[str, tuple[list[Fix], Run]]:
    return {bus: (fixes, pipeline(fixes)) for bus, fixes in bus_fixes().items()}


def test_buses_stop_only_where_they_stand_long() -> None:
    short = long = 0
    for bus, (fixes, run) in bus_runs().items():
        print("bus", bus, len(fixes), "pings")
        show(run)
        check_timeline(run, DEFAULTS)
        loose = dwells(fixes, 40)  # the longest reading of every dwell
        strict = dwells(fixes, 15)  # the shortest
        for stop in all_stops(run):
            assert any(seconds(*d) >= 150 and d[0] < stop.end_time and stop.start_time < d[1]
                       for d in loose), f"bus {bus}: {stop} is not a long dwell"
        for d in strict:
            if seconds(*d) >= DEFAULTS.min_stop_duration_s + 10:
                long += 1
                assert any(s.start_time <= d[0] and d[1] <= s.end_time for s in all_stops(run)), (bus, d)
        for d in dwells(fixes, 30):
            if seconds(*d) < 150:
                short += 1
                assert not any(s.start_time <= d[0] and d[1] <= s.end_time for s in all_stops(run)), (bus, d)
    print(short, "dwells under 150 s;", long, "over 190 s")
    assert long >= 3 and short > 20 * long  # the data: dwells are short, a few layovers are not


def test_buses_trips_are_sane() -> None:
    trips = 0
    for bus, (fixes, run) in bus_runs().items():
        fastest = max(haversine_m(a.latitude, a.longitude, b.latitude, b.longitude)
                      / seconds(a.time, b.time) * 3.6 for a, b in pairwise(fixes) if b.time > a.time)
        for trip in all_trips(run):
            trips += 1
            assert trip.max_speed_kmh <= fastest + 1e-9, bus
            assert 3 < trip.average_speed_kmh < 40, (bus, trip)  # city buses, halts included
        # Every ping is in the trip or stop that covers its time: nothing falls between.
        spans = [(t.start_time, t.end_time) for t in all_trips(run)] + \
                [(s.start_time, s.end_time) for s in all_stops(run)]
        first_span = min(s[0] for s in spans)
        assert all(any(a <= f.time <= b for a, b in spans) for f in fixes if f.time >= first_span), bus
    assert trips >= len(bus_runs())


# --- options -----------------------------------------------------------------------------------


def test_ignition_decides_when_the_device_reports_it() -> None:
    """A car park: the receiver's jitter wanders 60 m (more than the stop radius) while the
    engine is off. By position alone the wander breaks the stop; with ignition it holds."""
    base = reno_epochs()[0]
    fixes = []
    for i in range(40):  # 400 s, a fix every 10 s, 60 m out and back every 100 s
        east = 60.0 if (i // 5) % 2 else 0.0
        fixes.append(dataclasses.replace(base, time=base.time + timedelta(seconds=10 * i),
                                         longitude=base.longitude + east / 86_000, speed_kmh=0.0,
                                         ignition=False, key=i))
    by_position = pipeline(fixes)
    by_ignition = pipeline(fixes, Params(motion=MotionParams(use_ignition=True)))
    assert by_position.open_stop is None
    assert by_ignition.open_stop is not None and by_ignition.open_stop.duration_s == 390
    assert by_ignition.moving == [False] * 40


def test_min_trip_duration_is_traccars_other_way_to_confirm() -> None:
    fixes = nmea_fixes(RENO)
    params = Params(motion=MotionParams(min_trip_distance_m=1e9, min_trip_duration_s=60))
    run = pipeline(fixes, params)
    check_timeline(run, params.motion)
    assert [(t.start_time, t.end_time) for t in all_trips(run)] == \
        [(t.start_time, t.end_time) for t in all_trips(reno())]
    never = pipeline(fixes, Params(motion=MotionParams(min_trip_distance_m=1e9)))
    assert all_trips(never) == []


def test_params_from_mapping() -> None:
    p = MotionParams.from_mapping({"min_trip_distance_m": "500", "use_ignition": "true", "other": 1,
                                   "min_trip_duration_s": 300})
    assert (p.min_trip_distance_m, p.use_ignition, p.min_trip_duration_s) == (500.0, True, 300.0)
    assert MotionParams.from_mapping({}) == MotionParams()
    with pytest.raises(ValueError, match="min_stop_duration_s"):
        MotionParams.from_mapping({"min_stop_duration_s": "soon"})
    with pytest.raises(ValueError, match="use_ignition"):
        MotionParams.from_mapping({"use_ignition": "maybe"})


def _east(lat: float, lon: float, metres: float) -> tuple[float, float]:
    return lat, lon + metres / (111_320.0 * 0.6088)  # cos(52.5 deg): metres east at Amsterdam


def _steps(fixes: list[Fix]) -> tuple[motion.MotionState, list[bool]]:
    state, moving = motion.MotionState(), []
    for k, f in enumerate(fixes):
        state, now_moving, _ = motion.step(state, dataclasses.replace(f, key=k), 0.0, DEFAULTS)
        moving.append(now_moving)
    return state, moving


def test_pulling_away_at_driving_speed_is_moving_at_the_first_fix() -> None:
    # Driving east at 36 km/h, 40 s at a red light, then away: the first fix past the light that
    # reports driving speed is moving (a dispatcher sees "moving", not "stopped at 30 km/h").
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    lat, lon = 52.37, 4.89
    fixes = [Fix(t0 + timedelta(seconds=5 * k), *_east(lat, lon, 50.0 * k), speed_kmh=36.0)
             for k in range(6)]
    light = _east(lat, lon, 250.0)
    fixes += [Fix(t0 + timedelta(seconds=30 + 5 * k), *light, speed_kmh=0.0) for k in range(8)]
    away = Fix(t0 + timedelta(seconds=75), *_east(lat, lon, 290.0), speed_kmh=30.0)
    _, moving = _steps([*fixes, away])
    assert moving[:6] == [False, True, True, True, True, True]
    assert not any(moving[6:14])  # halted at the light
    assert moving[14] is True


@pytest.mark.parametrize("speed", [0.0, None, 3.0])
def test_one_far_fix_at_rest_speed_does_not_end_a_stop(speed: float | None) -> None:
    # Parked 10 minutes; one fix 120 m off that reports no driving speed is taken for a multipath
    # outlier (two in a row would be a departure): not moving, and the stop goes on.
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    here = (52.37, 4.89)
    parked = [Fix(t0 + timedelta(seconds=30 * k), *here, speed_kmh=0.0) for k in range(20)]
    jump = Fix(t0 + timedelta(seconds=600), *_east(*here, 120.0), speed_kmh=speed)
    back = [Fix(t0 + timedelta(seconds=630 + 30 * k), *here, speed_kmh=0.0) for k in range(3)]
    state, moving = _steps([*parked, jump, *back])
    assert not any(moving)
    stop = motion.open_stop(state)
    assert stop is not None and stop.start_time == t0 and motion.open_trip(state) is None


def test_open_trip_and_stop_of_a_new_device() -> None:
    state = motion.MotionState()
    assert motion.open_trip(state) is None and motion.open_stop(state) is None


# --- any input ---------------------------------------------------------------------------------


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(random_tracks(), st.sampled_from([MotionParams(), MotionParams(use_ignition=True),
                                  MotionParams(min_stop_duration_s=60, no_data_s=900)]))
def test_invariants_on_any_track(fixes: list[Fix], params: MotionParams) -> None:
    run = pipeline(fixes, Params(motion=params))
    check_timeline(run, params)


@PROPERTY
@given(random_tracks(), st.data())
def test_restart_anywhere_gives_the_same_results(fixes: list[Fix], data: st.DataObject) -> None:
    at = data.draw(st.sets(st.integers(0, max(0, len(fixes) - 1)), max_size=4))
    assert results(pipeline(fixes, restart_at=at)) == results(pipeline(fixes))
