"""The computed odometer on a real drive, a parked receiver and buses; it never goes back.

Reference distance for the Reno drive, computed here from the data: the sum of haversine
distances between consecutive epochs where the Garmin reported at least MOVING_KMH at either end.
It reports 0.0 km/h when standing and its stationary jitter is ~0.1 m per fix, so pairs it calls
standing carry no travel worth counting; "either end" keeps the first and last metre of every
start and halt.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from functools import cache
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings

from processors import odometer
from processors.fix import Fix
from processors.geo import haversine_m
from processors.odometer import OdometerParams, OdometerState
from tests.processors.tracks import (
    PARKED,
    RENO,
    Params,
    Run,
    bus_fixes,
    nmea_fixes,
    pipeline,
    random_tracks,
)

MOVING_KMH = 3.0


def path_m(fixes: list[Fix]) -> float:
    return sum(haversine_m(a.latitude, a.longitude, b.latitude, b.longitude) for a, b in pairwise(fixes))


@cache
def reno() -> Run:
    return pipeline(nmea_fixes(RENO))


def moving_reference_m(fixes: list[Fix]) -> float:
    return sum(haversine_m(a.latitude, a.longitude, b.latitude, b.longitude) for a, b in pairwise(fixes)
               if max(a.speed_kmh or 0.0, b.speed_kmh or 0.0) >= MOVING_KMH)


def test_reno_total_within_one_percent_of_the_moving_path() -> None:
    epochs = nmea_fixes(RENO, {"positions": "epoch"})
    reference = moving_reference_m(epochs)
    total = reno().odometer_m[-1]
    print(f"odometer {total:.0f} m, moving path {reference:.0f} m, all pairs {path_m(epochs):.0f} m")
    assert 130_000 < reference < 145_000  # the data: 137.5 km driven
    assert total == pytest.approx(reference, rel=0.01)


def test_slow_traffic_loses_nothing() -> None:
    """A car in slow traffic on real roads: the fixes of the city part of the drive (01:02-01:17)
    where it drove at least 10 km/h, one every 2 s, slowed to a sixth of the speed (five points
    interpolated between each pair), so it crawls at 2-18 km/h, often below the rest speed, in
    steps of a metre or two, through the same corners."""
    epochs = nmea_fixes(RENO, {"positions": "epoch"})
    driving = [f for f in epochs if (1, 2, 16) <= (f.time.hour, f.time.minute, f.time.second) <= (1, 17, 26)
               and f.speed_kmh is not None and f.speed_kmh >= 10]
    t0, slower = driving[0].time, 6
    crawl: list[Fix] = []
    for a, b in pairwise(driving):
        for i in range(slower):
            k = i / slower
            crawl.append(dataclasses.replace(
                a, time=t0 + timedelta(seconds=2 * slower * (len(crawl) / slower)), key=len(crawl),
                latitude=a.latitude + (b.latitude - a.latitude) * k,
                longitude=a.longitude + (b.longitude - a.longitude) * k,
                speed_kmh=((a.speed_kmh or 0) * (1 - k) + (b.speed_kmh or 0) * k) / slower))
    below = sum(1 for f in crawl if f.speed_kmh is not None and f.speed_kmh < OdometerParams().rest_speed_kmh)
    assert below > len(crawl) / 4
    total = pipeline(crawl).odometer_m[-1]
    reference = path_m(driving)
    print(f"crawl: odometer {total:.0f} m, path {reference:.0f} m, {below} of {len(crawl)} fixes below "
          f"the rest speed")
    assert total == pytest.approx(reference, rel=0.01)


@pytest.mark.parametrize("positions", ["epoch", "sentence"])
def test_parked_receiver_does_not_drift(positions: str) -> None:
    fixes = nmea_fixes(PARKED, {"positions": positions})
    run = pipeline(fixes)
    raw = path_m(run.accepted)
    print(f"parked: odometer {run.odometer_m[-1]:.1f} m over {raw:.0f} m of jitter")
    assert raw > 300  # the data: 341 m of path while standing
    assert run.odometer_m[-1] <= 50


def test_buses_odometer_follows_their_path() -> None:
    for bus, fixes in bus_fixes().items():
        run = pipeline(fixes)
        raw = path_m(run.accepted)
        print(f"bus {bus}: odometer {run.odometer_m[-1]:.0f} m, path {raw:.0f} m")
        # 24 s between pings: what is lost is GPS wander at the stops, never a road.
        assert 0.97 * raw <= run.odometer_m[-1] <= raw * (1 + 1e-12)


def test_one_far_fix_while_parked_adds_nothing() -> None:
    fixes = nmea_fixes(PARKED, {"positions": "epoch"})
    outlier = dataclasses.replace(fixes[600], latitude=fixes[600].latitude + 0.00055)  # 61 m north
    run = pipeline([*fixes[:600], outlier, *fixes[601:]])
    assert run.reasons[600] is None  # not a jump for the filters
    assert run.odometer_m[-1] == pipeline(fixes).odometer_m[-1]


def test_device_odometer_when_asked() -> None:
    base = nmea_fixes(RENO, {"positions": "epoch"})[:6]
    values = [1000.0, None, 1500.0, 1200.0, None, 2500.0]  # 1200: a device that went back
    fixes = [dataclasses.replace(f, device_odometer_m=v) for f, v in zip(base, values, strict=True)]
    params = Params(odometer=OdometerParams(use_device_odometer=True))
    assert pipeline(fixes, params).odometer_m == [1000.0, 1000.0, 1500.0, 1500.0, 1500.0, 2500.0]
    assert pipeline(fixes).odometer_m[-1] == pytest.approx(path_m(base), rel=0.01)


def test_radius_grows_with_reported_error() -> None:
    fix = nmea_fixes(RENO, {"positions": "epoch"})[0]
    p = OdometerParams()
    assert odometer.rest_radius_m(dataclasses.replace(fix, hdop=None), 30, 100) == 30
    assert odometer.rest_radius_m(dataclasses.replace(fix, hdop=5.0), 30, 100) == 50
    assert odometer.rest_radius_m(dataclasses.replace(fix, hdop=None, accuracy_m=20), 30, 100) == 40
    assert odometer.rest_radius_m(dataclasses.replace(fix, hdop=50.0), 30, 100) == 100
    assert p.rest_radius_floor_m == 30


def test_params_from_mapping() -> None:
    p = OdometerParams.from_mapping({"rest_radius_floor_m": 40, "use_device_odometer": True, "x": "y"})
    assert (p.rest_radius_floor_m, p.use_device_odometer) == (40.0, True)
    with pytest.raises(ValueError, match="rest_speed_kmh"):
        OdometerParams.from_mapping({"rest_speed_kmh": -1})
    with pytest.raises(ValueError, match="use_device_odometer"):
        OdometerParams.from_mapping({"use_device_odometer": 1})


def test_state_round_trip_mid_drive() -> None:
    fixes = nmea_fixes(RENO, {"positions": "epoch"})
    params = OdometerParams()
    state = OdometerState()
    totals = []
    for i, fix in enumerate(fixes):
        if i % 50 == 25:
            state = OdometerState.from_json(state.to_json())
        state, total = odometer.step(state, fix, params)
        totals.append(total)
    straight = OdometerState()
    assert totals == [odometer.step(straight, f, params)[1] for f in fixes]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_tracks())
def test_never_decreases(fixes: list[Fix]) -> None:
    run = pipeline(fixes)
    assert all(a <= b for a, b in pairwise(run.odometer_m))
    gaps = [b.time - a.time for a, b in pairwise(run.accepted)]
    assert all(g > timedelta(0) for g in gaps)
