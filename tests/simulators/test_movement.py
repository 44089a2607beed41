"""Simulated movement: the same seed gives the same track; the track looks like a rep's day
(speeds, accelerations, visits of at least the configured minutes, a parked night with small
jitter, no fixes in tunnels) and the cheats are what anti-cheat expects."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import pytest

from simulators.movement import Fix, MovementConfig, Track

START = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)
CONFIG = MovementConfig(visits_per_day=4, visit_minutes=(5.0, 12.0), tunnel_probability=0.3)


def metres(a: Fix, b: Fix) -> float:
    """Haversine distance, written here so the test does not trust the simulator's projection."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    h = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(b.lon - a.lon) / 2) ** 2)
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


def day(seed: str, every_s: float = 1.0, hours: float = 24.0, config: MovementConfig = CONFIG,
        cheat: str | None = None) -> tuple[Track, list[Fix | None]]:
    track = Track(config, seed, START, cheat=cheat)
    return track, list(track.fixes(every_s, int(hours * 3600 / every_s)))


@pytest.fixture(scope="module")
def rep_day() -> tuple[Track, list[Fix | None]]:
    return day("rep-1")


def test_same_seed_same_track_other_seed_other_track() -> None:
    _, first = day("rep-1", every_s=30, hours=12)
    _, again = day("rep-1", every_s=30, hours=12)
    _, other = day("rep-2", every_s=30, hours=12)
    assert first == again
    assert first != other
    # Sampling more often does not change a sample taken at the same instant.
    _, dense = day("rep-1", every_s=10, hours=12)
    assert dense[::3] == first


def test_speeds_and_accelerations_are_a_cars_in_town(rep_day: tuple[Track, list[Fix | None]]) -> None:
    _, fixes = rep_day
    present = [f for f in fixes if f is not None]
    assert max(f.speed_kmh for f in present) <= CONFIG.cruise_kmh[1]
    assert min(f.speed_kmh for f in present) >= 0
    assert max(f.speed_kmh for f in present) >= 25  # it does drive
    moving = [(a, b) for a, b in itertools.pairwise(fixes) if a is not None and b is not None]
    # Speed changes at most by the configured acceleration or braking per second.
    worst = max(abs(b.speed_kmh - a.speed_kmh) / 3.6 for a, b in moving)
    assert worst <= max(CONFIG.accel_ms2, CONFIG.brake_ms2) + 1e-6
    # Distance between 1 s fixes: the speed plus the GPS jitter (parked jitter is sigma 3 m per axis;
    # 6 sigma of the difference of two fixes is about 36 m), never a jump across town.
    assert max(metres(a, b) for a, b in moving) <= CONFIG.cruise_kmh[1] / 3.6 + 36


def test_visits_last_at_least_the_configured_minutes(rep_day: tuple[Track, list[Fix | None]]) -> None:
    track, fixes = rep_day
    visits = [s for s in track.stops if s.kind == "visit" and s.end <= START + timedelta(days=1)]
    assert len(visits) == CONFIG.visits_per_day
    for visit in visits:
        stay = (visit.end - visit.start).total_seconds()
        assert CONFIG.visit_minutes[0] * 60 <= stay <= CONFIG.visit_minutes[1] * 60
        # The fixes say so too: standing still within a few jitters of the customer for the whole stay.
        at = [f for f in fixes if f is not None and visit.start <= f.time < visit.end]
        assert len(at) >= CONFIG.visit_minutes[0] * 60 - 1
        centre = at[len(at) // 2]
        assert all(f.speed_kmh == 0 and not f.ignition for f in at)
        assert max(metres(f, centre) for f in at) < 30
    lights = [s for s in track.stops if s.kind == "light"]
    assert lights, "a day of town driving meets red lights"
    assert all(CONFIG.light_s[0] <= (s.end - s.start).total_seconds() <= CONFIG.light_s[1] for s in lights)


def test_parked_at_night_with_metres_of_jitter(rep_day: tuple[Track, list[Fix | None]]) -> None:
    track, fixes = rep_day
    night = next(s for s in track.stops if s.kind == "home" and (s.end - s.start) > timedelta(hours=8))
    parked = [f for f in fixes if f is not None and night.start <= f.time < night.end]
    assert len(parked) > 8 * 3600
    mean_lat = sum(f.lat for f in parked) / len(parked)
    mean_lon = sum(f.lon for f in parked) / len(parked)
    centre = Fix(START, mean_lat, mean_lon, 0, 0, 0, 0, False)
    spread = [metres(f, centre) for f in parked]
    # Gaussian jitter of sigma 3 m per axis: the mean distance is sigma * sqrt(pi / 2), about 3.8 m.
    assert 2.5 < sum(spread) / len(spread) < 5.0
    assert max(spread) < 25
    assert all(f.speed_kmh == 0 for f in parked)


def test_tunnels_are_gaps_in_driving(rep_day: tuple[Track, list[Fix | None]]) -> None:
    _, fixes = rep_day
    gaps = [i for i, f in enumerate(fixes) if f is None]
    assert gaps, "tunnel_probability 0.3 over a day's legs gives at least one tunnel"
    # Around a gap the rep is driving (tunnels are on roads, not in a customer's shop).
    first = gaps[0]
    assert fixes[first - 1] is not None and fixes[first - 1].ignition  # type: ignore[union-attr]


def test_dead_zones_keep_fixes_coming_but_offline() -> None:
    config = MovementConfig(dead_zone_probability=0.5, dead_zone_s=(60.0, 120.0))
    track, fixes = day("dead-zones", every_s=5, hours=10, config=config)
    zones = track.dead_zones
    assert zones
    assert all(timedelta(seconds=60) <= end - begin <= timedelta(seconds=120) for begin, end in zones)
    for f in fixes:
        if f is not None:
            assert f.online == (not any(begin <= f.time < end for begin, end in zones))
    assert sum(f is not None and not f.online for f in fixes) >= 60 / 5


def test_mock_phone_is_pinned_flagged_and_without_jitter() -> None:
    _, fixes = day("cheater", every_s=60, hours=6, cheat="mock")
    present = [f for f in fixes if f is not None]
    assert len(present) == len(fixes)
    assert {(f.lat, f.lon) for f in present} == {(present[0].lat, present[0].lon)}
    assert all(f.mock and f.speed_kmh == 0 for f in present)


def test_teleport_jumps_tens_of_kilometres_and_back() -> None:
    config = MovementConfig(teleport_after_s=600, teleport_s=120, teleport_km=40)
    _, fixes = day("jumper", every_s=10, hours=1, config=config, cheat="teleport")
    _, honest = day("jumper", every_s=10, hours=1, config=config)
    for f, h in zip(fixes, honest, strict=True):
        if f is None or h is None:
            continue
        away = (f.time - START).total_seconds()
        expected = 40_000 if 600 <= away < 720 else 0
        assert abs(metres(f, h) - expected) < 500, (away, metres(f, h))


def test_times_must_not_go_back() -> None:
    track = Track(CONFIG, "x", START)
    track.at(START + timedelta(seconds=10))
    with pytest.raises(ValueError):
        track.at(START)
