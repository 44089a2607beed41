"""Geofence enter/exit: hysteresis on a parked receiver, a real drive, dwell, state round trips.

Real logs are decoded by the project's NMEA decoder through ``tests/processors/tracks.py`` with
``positions="epoch"``: one fix per receiver epoch (RMC, GGA and GLL of one second merged), as a
geofence sees a device that reports once a second. Expected events come from :func:`oracle`, a
plain hysteresis over distances computed independently with haversine (``test_fences.expected``).
"""

from __future__ import annotations

import itertools
import json
import statistics
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from processors.fences import Fence, FenceIndex, fence_from_geojson, fence_to_geojson
from processors.fix import Fix
from processors.geo import haversine_m
from processors.geofences import GeofenceParams, GeofenceState, inside, step
from processors.records import GEOFENCE_ENTER, GEOFENCE_EXIT, Event
from tests.processors.test_fences import M_PER_DEG, expected, haversine, offset, samples, square
from tests.processors.tracks import PARKED, RENO, nmea_fixes

MARGIN = GeofenceParams().hysteresis_m


def run(fixes: Sequence[Fix], index: FenceIndex, params: GeofenceParams | None = None,
        allowed: Collection[int] | None = None) -> list[Event]:
    params = params or GeofenceParams()
    state, out = GeofenceState(), []
    for fix in fixes:
        state, events = step(state, fix, index, params, allowed)
        out.extend(events)
    return out


def oracle(fixes: Sequence[Fix], distances: Sequence[float], enter_at: float, exit_at: float,
           fence_id: int) -> list[tuple[datetime, str, int]]:
    """Hysteresis without dwell: enter at d ≤ enter_at, exit at d > exit_at."""
    out, now_in = [], False
    for fix, d in zip(fixes, distances, strict=True):
        if (d > exit_at) if now_in else (d <= enter_at):
            now_in = not now_in
            out.append((fix.time, GEOFENCE_ENTER if now_in else GEOFENCE_EXIT, fence_id))
    return out


def summary(events: Sequence[Event], fence_id: int | None = None) -> list[tuple[datetime, str, int]]:
    return [(e.time, e.type, e.geofence_id or 0) for e in events if fence_id in (None, e.geofence_id)]


def check_alternation(events: Sequence[Event]) -> None:
    """Per fence: enter, exit, enter, ... in increasing time; overall in time order."""
    assert [e.time for e in events] == sorted(e.time for e in events)
    for fid in {e.geofence_id for e in events}:
        mine = [e for e in events if e.geofence_id == fid]
        assert [e.type for e in mine] == [GEOFENCE_ENTER, GEOFENCE_EXIT] * (len(mine) // 2) + \
            [GEOFENCE_ENTER] * (len(mine) % 2)
        assert all(a.time < b.time for a, b in itertools.pairwise(mine))


# --- a receiver parked for 20 minutes on a fence edge ---------------------------------------------


@pytest.fixture(scope="module")
def parked() -> list[Fix]:
    fixes = nmea_fixes(PARKED, {"positions": "epoch"})
    assert len(fixes) == 1201 and all(f.valid for f in fixes)
    return fixes


def median_of(fixes: Sequence[Fix]) -> tuple[float, float]:
    return statistics.median(f.latitude for f in fixes), statistics.median(f.longitude for f in fixes)


def edge_circle(fixes: Sequence[Fix], fence_id: int, deeper_m: float = 0.0) -> tuple[Fence, list[float]]:
    """A circle centred 100 m north of the median position whose edge runs through it (plus
    ``deeper_m`` of radius), and the signed distances of every fix by haversine."""
    lat, lon = median_of(fixes)
    clat = lat + 100 / M_PER_DEG
    # 5 cm more than the median's distance: no fix sits exactly on the edge (the log's resolution
    # is 0.0001' = 18 cm north-south).
    radius = haversine_m(clat, lon, lat, lon) + 0.05 + deeper_m
    fence = fence_from_geojson(fence_id, {"type": "Point", "coordinates": [lon, clat]}, radius_m=radius)
    return fence, [haversine_m(clat, lon, f.latitude, f.longitude) - radius for f in fixes]


def edge_square(fixes: Sequence[Fix], fence_id: int) -> tuple[Fence, list[float]]:
    """A 200 m square whose south edge runs east-west through the median position, so the
    receiver's north-south jitter (its larger one) crosses it."""
    lat, lon = median_of(fixes)
    corners = [(0, -100), (0, 100), (200, 100), (200, -100), (0, -100)]
    ring = [offset(lat, lon, n + 0.05, e) for n, e in corners]
    fence = fence_from_geojson(fence_id, {"type": "Polygon", "coordinates": [ring]})
    feature = fence_to_geojson(fence)
    return fence, [expected(feature, f.latitude, f.longitude) for f in fixes]


def test_parked_on_the_edge_does_not_flap(parked: list[Fix]) -> None:
    circle, d_circle = edge_circle(parked, 1)
    poly, d_poly = edge_square(parked, 2)
    # The receiver strays 22 m from its median, always within the 25 m band around both edges:
    # with the defaults it neither enters nor exits, so there is not even an initial enter.
    for d in (d_circle, d_poly):
        assert 20 < max(abs(x) for x in d) < MARGIN - 0.5
    assert run(parked, FenceIndex([circle, poly])) == []


def test_parked_on_the_edge_would_flap_without_hysteresis(parked: list[Fix]) -> None:
    circle, d_circle = edge_circle(parked, 1)
    poly, d_poly = edge_square(parked, 2)
    events = run(parked, FenceIndex([circle, poly]), GeofenceParams(hysteresis_m=0))
    check_alternation(events)
    # Inside means d ≤ 0 (ray casting decides the polygon's side exactly).
    assert summary(events, 1) == oracle(parked, d_circle, 0.0, 0.0, 1)
    assert summary(events, 2) == oracle(parked, d_poly, 0.0, 0.0, 2)
    assert len(summary(events, 1)) > 10 and len(summary(events, 2)) > 10


def test_parked_inside_gives_one_enter_and_no_exit(parked: list[Fix]) -> None:
    """Radius 15 m beyond the median: the device sits 15 ± 22 m inside. It enters once, at the
    first fix 25 m inside, and never gets 25 m outside."""
    circle, d = edge_circle(parked, 3, deeper_m=15)
    events = run(parked, FenceIndex([circle]))
    first = next(i for i, x in enumerate(d) if x <= -MARGIN)
    assert max(d) < MARGIN
    assert summary(events) == [(parked[first].time, GEOFENCE_ENTER, 3)]
    assert (events[0].latitude, events[0].longitude) == (parked[first].latitude, parked[first].longitude)


# --- a real drive near Reno -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def reno() -> list[Fix]:
    return nmea_fixes(RENO, {"positions": "epoch"})


CORRIDOR_FROM, CORRIDOR_TO, DRIVE_BY = 300, 800, 3700  # fix numbers: a road stretch, a fast pass


def reno_fences(fixes: Sequence[Fix]) -> tuple[list[Fence], int]:
    """A 100 m corridor along 17 min of the route, a 150 m square around the place where the
    car stood longest (the receiver was off for 21 min there), a 50 m circle it drove through
    at 103 km/h. Also the number of the fix before the longest gap."""
    line = [[f.longitude, f.latitude] for f in fixes[CORRIDOR_FROM : CORRIDOR_TO + 1 : 5]]
    gap = max(range(len(fixes) - 1), key=lambda k: fixes[k + 1].time - fixes[k].time)
    park, fast = fixes[gap], fixes[DRIVE_BY]
    lot = square(park.latitude, park.longitude, 75)
    return [fence_from_geojson(1, {"type": "LineString", "coordinates": line}, width_m=100),
            fence_from_geojson(2, {"type": "Polygon", "coordinates": [lot]}),
            fence_from_geojson(3, {"type": "Point", "coordinates": [fast.longitude, fast.latitude]},
                               radius_m=50)], gap


def independent_distances(fence: Fence, fixes: Sequence[Fix]) -> list[float]:
    feature = fence_to_geojson(fence)
    if fence.kind != "corridor":
        return [expected(feature, f.latitude, f.longitude) for f in fixes]
    lats, lons = samples(feature["geometry"]["coordinates"])
    return [float(haversine(lats, lons, f.latitude, f.longitude).min()) - 50 for f in fixes]


def test_reno_drive(reno: list[Fix]) -> None:
    fences, gap = reno_fences(reno)
    events = run(reno, FenceIndex(fences))
    check_alternation(events)
    for fence in fences:
        d = independent_distances(fence, reno)
        enter_at = -min(MARGIN, fence.depth_m / 2)
        # The expectation must not hang on the independent distances' sampling error (< 0.5 m):
        # thresholds moved 0.6 m either way give the same events.
        want = oracle(reno, d, enter_at - 0.6, MARGIN + 0.6, fence.id)
        assert oracle(reno, d, enter_at + 0.6, MARGIN - 0.6, fence.id) == want
        assert summary(events, fence.id) == want
    times = {fid: [e.time for e in events if e.geofence_id == fid] for fid in (1, 2, 3)}
    # The corridor is entered where it starts and left where it ends, once: the route does not
    # come back along that road.
    t = [f.time for f in reno]
    (c_in, c_out) = times[1]
    assert t[CORRIDOR_FROM] - timedelta(seconds=10) <= c_in <= t[CORRIDOR_FROM]
    assert t[CORRIDOR_TO] < c_out <= t[CORRIDOR_TO] + timedelta(seconds=30)
    # One visit to the parking place, around the 21 min the receiver was off.
    (p_in, p_out) = times[2]
    assert p_in <= t[gap] and t[gap + 1] <= p_out
    assert p_out - p_in > timedelta(minutes=25)
    (f_in, f_out) = times[3]
    assert f_in <= t[DRIVE_BY] <= f_out and f_out - f_in < timedelta(seconds=10)


def test_dwell_drops_the_drive_by_and_keeps_crossing_times(reno: list[Fix]) -> None:
    fences, _ = reno_fences(reno)
    index = FenceIndex(fences)
    plain = run(reno, index)
    dwelt = run(reno, index, GeofenceParams(min_dwell_s=60))
    check_alternation(dwelt)
    # The 50 m circle is crossed in under 10 s; the corridor and the parking place are held for
    # minutes, and their events keep the time of the first fix across, not of the confirmation.
    assert summary(dwelt) == [s for s in summary(plain) if s[2] != 3]
    assert len(summary(plain, 3)) == 2


def test_state_round_trip_mid_stream(reno: list[Fix]) -> None:
    fences, _ = reno_fences(reno)
    index, params = FenceIndex(fences), GeofenceParams(min_dwell_s=60)
    straight = run(reno, index, params)
    state, restored, pending_seen = GeofenceState.initial(), [], 0
    for fix in reno:
        data = json.loads(json.dumps(state.to_json()))
        pending_seen += bool(data["pending"])
        state = GeofenceState.from_json(data)
        assert state == GeofenceState.from_json(state.to_json())
        state, events = step(state, fix, index, params)
        restored.extend(events)
    assert restored == straight and len(straight) == 4
    assert pending_seen > 30  # the restarts did fall while a crossing awaited its dwell


# --- rules on synthetic fixes ---------------------------------------------------------------------


T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
LAT, LON = 52.0, 5.0


def at(seconds: float, east_m: float, **kw: Any) -> Fix:
    lon, lat = offset(LAT, LON, 0.0, east_m)
    return Fix(time=T0 + timedelta(seconds=seconds), latitude=lat, longitude=lon, **kw)


def circle(fence_id: int, radius_m: float, east_m: float = 0.0) -> Fence:
    return fence_from_geojson(fence_id, {"type": "Point", "coordinates": offset(LAT, LON, 0.0, east_m)},
                              radius_m=radius_m)


def test_dwell_waits_and_cancels() -> None:
    index = FenceIndex([circle(1, 200)])
    params = GeofenceParams(min_dwell_s=30)
    # In at 10 s, back out by the margin at 20 s: cancelled. In again at 40 s, still in (within
    # the band) at 70 s: the enter is confirmed then, stamped 40 s where the device crossed.
    track = [at(0, 400), at(10, 0), at(20, 300), at(40, 100), at(55, 190), at(70, 210), at(80, 0)]
    state, out = GeofenceState(), []
    for fix in track:
        state, events = step(state, fix, index, params)
        out.append(events)
        if fix.time == T0 + timedelta(seconds=55):
            assert state.pending and not inside(state)
    assert [len(e) for e in out] == [0, 0, 0, 0, 0, 1, 0]
    (enter,) = out[5]
    assert (enter.type, enter.time, enter.longitude) == (GEOFENCE_ENTER, T0 + timedelta(seconds=40),
                                                         track[3].longitude)
    assert inside(state) == {1}


def test_accuracy_widens_the_band_up_to_the_cap() -> None:
    index = FenceIndex([circle(1, 200)])
    deep_40 = at(0, 160)  # 40 m inside
    assert summary(run([deep_40], index)) == [(deep_40.time, GEOFENCE_ENTER, 1)]
    assert run([replace(deep_40, accuracy_m=20)], index) == []  # margin 45 m
    params = GeofenceParams(accuracy_cap_m=10)
    assert len(run([replace(deep_40, accuracy_m=500)], index, params)) == 1  # margin 35 m
    assert params.margin_m(None) == 25 and params.margin_m(500) == 35 and params.margin_m(float("nan")) == 25


def test_small_fence_is_entered_at_half_its_depth() -> None:
    index = FenceIndex([circle(1, 10)])
    assert run([at(0, 6)], index) == []  # 4 m inside: not half of 10 m
    assert len(run([at(0, 4)], index)) == 1  # 6 m inside


def test_invalid_fix_changes_nothing() -> None:
    index = FenceIndex([circle(1, 200)])
    state, events = step(GeofenceState(), at(0, 0, valid=False), index, GeofenceParams())
    assert (state, events) == (GeofenceState(), [])


def test_exit_comes_before_enter_at_one_fix() -> None:
    index = FenceIndex([circle(9, 100), circle(2, 100, east_m=1000)])
    events = run([at(0, 0), at(10, 1000)], index)
    assert [(e.type, e.geofence_id) for e in events] == [(GEOFENCE_ENTER, 9), (GEOFENCE_EXIT, 9),
                                                         (GEOFENCE_ENTER, 2)]


def test_removed_or_disallowed_fence_is_forgotten_silently() -> None:
    both, only_2 = FenceIndex([circle(1, 300), circle(2, 300)]), FenceIndex([circle(2, 300)])
    # (allowed, index, inside afterwards) per fix; the device stays at the centre of both.
    plan = [(None, both, {1, 2}), (None, both, {1, 2}), ({2}, both, {2}), (None, only_2, {2}),
            (None, both, {1, 2}), (None, only_2, {2})]
    track = [at(10 * k, 0) for k in range(len(plan))]
    state, out = GeofenceState(), []
    for fix, (allowed, index, now_in) in zip(track, plan, strict=True):
        state, events = step(state, fix, index, GeofenceParams(), allowed)
        out.append(summary(events))
        assert inside(state) == now_in
    # Enters at the first fix; nothing when fence 1 is disallowed or deleted; a fresh enter when
    # it is back while the device is inside.
    assert out == [[(track[0].time, GEOFENCE_ENTER, 1), (track[0].time, GEOFENCE_ENTER, 2)], [], [], [],
                   [(track[4].time, GEOFENCE_ENTER, 1)], []]


def test_params_from_mapping() -> None:
    p = GeofenceParams.from_mapping({"geofence_hysteresis_m": 10, "geofence_min_dwell_s": 30,
                                     "min_dwell_s": 999, "speed_limit_kmh": 50})
    assert p == GeofenceParams(hysteresis_m=10.0, accuracy_cap_m=50.0, min_dwell_s=30.0)
    assert GeofenceParams.from_mapping({}) == GeofenceParams()
    for bad in (-1, "25", float("inf"), True, None):
        with pytest.raises(ValueError, match="geofence_hysteresis_m"):
            GeofenceParams.from_mapping({"geofence_hysteresis_m": bad})


def test_state_json_shape() -> None:
    index = FenceIndex([circle(4, 200), circle(1, 200, east_m=5000)])
    state, _ = step(GeofenceState(), at(0, 0), index, GeofenceParams(min_dwell_s=60))
    state.inside.add(1)  # as if the device had been confirmed in fence 1
    data = state.to_json()
    assert data == {"inside": [1], "pending": [{"id": 4, "time": "2024-05-01T09:00:00+00:00",
                                                "lat": LAT, "lon": LON}]}
    assert GeofenceState.from_json(data) == state
