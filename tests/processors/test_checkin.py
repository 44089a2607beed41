"""Check-in verification rule by rule, at and beyond each boundary. Distances are computed by a
haversine written here (mean Earth radius), not the module's, and points are placed by moving
north from the customer, where metres per degree of latitude are exact on the sphere."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from processors.checkin import (
    TELEPORT_HORIZON_S,
    TELEPORT_MIN_DISTANCE_M,
    Place,
    SubmittedFix,
    TrackPoint,
    is_mock,
    verify_checkin,
    verify_checkout,
)
from processors.team_policy import CheckinPolicy

R = 6_371_008.8
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SHOP = Place(52.3702, 4.8952, 150.0)
POLICY = CheckinPolicy()


def haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * R * math.asin(math.sqrt(a))


def north(metres: float) -> tuple[float, float]:
    """The point ``metres`` due north of the shop."""
    return SHOP.latitude + math.degrees(metres / R), SHOP.longitude


def fix(metres: float = 40.0, age_s: float = 10.0, accuracy: float | None = 10.0, mock: bool = False
        ) -> SubmittedFix:
    lat, lon = north(metres)
    return SubmittedFix(NOW - timedelta(seconds=age_s), lat, lon, accuracy, mock)


def point(metres: float, seconds_before_fix: float, f: SubmittedFix, mock: bool = False) -> TrackPoint:
    lat, lon = north(metres)
    return TrackPoint(f.time - timedelta(seconds=seconds_before_fix), lat, lon, mock)


def test_accepted_close_and_fresh_reports_the_numbers() -> None:
    f = fix(40)
    track = [point(30, 60, f), point(500, -60, f)]
    v = verify_checkin(SHOP, f, NOW, POLICY, None, track)
    assert v.accepted and v.reason is None
    assert v.detail["distance_m"] == pytest.approx(haversine(SHOP.latitude, SHOP.longitude, f.latitude,
                                                             f.longitude), abs=0.1)
    assert v.detail["distance_m"] == pytest.approx(40, abs=0.1)
    assert v.detail["age_s"] == 10 and v.detail["accuracy_m"] == 10 and v.detail["radius_m"] == 150
    assert v.detail["nearest_track_m"] == pytest.approx(30, abs=0.1)
    assert v.detail["track_confirmed"] is True


def test_future_fix_boundary() -> None:
    # max_future_s 30: 30 s ahead is clock skew we allow, 31 s is not.
    assert verify_checkin(SHOP, fix(age_s=-30), NOW, POLICY, None, []).accepted
    v = verify_checkin(SHOP, fix(age_s=-31), NOW, POLICY, None, [])
    assert (v.accepted, v.reason) == (False, "future_fix")
    assert "31 s in the future" in v.message


def test_stale_fix_boundary() -> None:
    assert verify_checkin(SHOP, fix(age_s=120), NOW, POLICY, None, []).accepted
    v = verify_checkin(SHOP, fix(age_s=180), NOW, POLICY, None, [])
    assert v.reason == "stale_fix" and v.detail["age_s"] == 180
    assert "180 s old" in v.message and "120 s" in v.message


def test_stale_beats_mock_and_distance() -> None:
    # The order: a stale fix says nothing reliable about the rest, so it is the reason.
    v = verify_checkin(SHOP, fix(metres=5000, age_s=500, mock=True), NOW, POLICY, None, [])
    assert v.reason == "stale_fix"


def test_mock_flag_on_the_fix() -> None:
    v = verify_checkin(SHOP, fix(mock=True), NOW, POLICY, None, [])
    assert (v.accepted, v.reason) == (False, "mock_location")


def test_mock_flag_in_the_track_counts_as_mock() -> None:
    f = fix()
    v = verify_checkin(SHOP, f, NOW, POLICY, None, [point(20, 30, f, mock=True)])
    assert v.reason == "mock_location" and v.detail["mock_track_positions"] == 1


@pytest.mark.parametrize(("attributes", "expected"), [
    ({"mock": True}, True), ({"isMock": True}, True), ({"isMock": "true"}, True), ({"mock": False}, False),
    ({}, False), (None, False), ({"alarm": "sos"}, False)])
def test_is_mock(attributes: dict[str, object] | None, expected: bool) -> None:
    assert is_mock(attributes) is expected


def test_accuracy_boundary() -> None:
    assert verify_checkin(SHOP, fix(accuracy=100), NOW, POLICY, None, []).accepted
    v = verify_checkin(SHOP, fix(accuracy=500), NOW, POLICY, None, [])
    assert v.reason == "inaccurate" and "500 m" in v.message
    # A phone that reports no accuracy is not refused for it.
    assert verify_checkin(SHOP, fix(accuracy=None), NOW, POLICY, None, []).accepted


def test_too_far_boundary_and_message() -> None:
    assert verify_checkin(SHOP, fix(149.9), NOW, POLICY, None, []).accepted
    v = verify_checkin(SHOP, fix(150.2), NOW, POLICY, None, [])
    assert v.reason == "too_far"
    v = verify_checkin(SHOP, fix(412), NOW, POLICY, None, [])
    assert v.reason == "too_far" and v.detail["distance_m"] == pytest.approx(412, abs=0.1)
    assert v.message == "412 m from the customer; the check-in radius is 150 m"


def test_teleport_from_the_previous_position() -> None:
    f = fix()
    previous = point(300_000, 300, f)  # 300 km in 5 min: 3600 km/h
    v = verify_checkin(SHOP, f, NOW, POLICY, previous, [])
    expected = haversine(previous.latitude, previous.longitude, f.latitude, f.longitude) / 300 * 3.6
    assert v.reason == "teleport"
    assert v.detail["implied_speed_kmh"] == pytest.approx(expected, abs=0.1)
    assert v.detail["implied_speed_kmh"] == pytest.approx(3600, rel=0.001)


def test_teleport_speed_boundary() -> None:
    f = fix(0)
    # 300 km/h is 5 km in 60 s: just under passes, just over is a teleport.
    assert verify_checkin(SHOP, f, NOW, POLICY, point(4990, 60, f), []).accepted
    assert verify_checkin(SHOP, f, NOW, POLICY, point(5010, 60, f), []).reason == "teleport"


def test_teleport_ignores_close_old_and_mock_previous_positions() -> None:
    f = fix(0)
    close = point(TELEPORT_MIN_DISTANCE_M - 10, 2, f)  # ~1780 km/h, but within GPS/clock noise
    v = verify_checkin(SHOP, f, NOW, POLICY, close, [])
    assert v.accepted and v.detail["implied_speed_kmh"] is None
    old = point(2_000_000, TELEPORT_HORIZON_S + 1, f)  # 2000 km an hour ago: a flight, not a fake fix
    assert verify_checkin(SHOP, f, NOW, POLICY, old, []).accepted
    faked = point(300_000, 300, f, mock=True)  # faked before: no evidence of where the rep was
    assert verify_checkin(SHOP, f, NOW, POLICY, faked, []).reason != "teleport"


def test_track_mismatch_and_tolerance_boundary() -> None:
    f = fix()
    # radius 150 + tolerance 100 = 250 m from the customer.
    assert verify_checkin(SHOP, f, NOW, POLICY, None, [point(249.9, 30, f)]).accepted
    v = verify_checkin(SHOP, f, NOW, POLICY, None, [point(250.2, 30, f), point(3000, -30, f)])
    assert v.reason == "track_mismatch" and v.detail["track_confirmed"] is False
    assert v.detail["nearest_track_m"] == pytest.approx(250.2, abs=0.1)
    assert v.detail["track_limit_m"] == 250


def test_no_track_accepts_but_says_it_could_not_confirm() -> None:
    v = verify_checkin(SHOP, fix(), NOW, POLICY, None, [])
    assert v.accepted and v.detail["track_confirmed"] is None and v.detail["track_positions"] == 0
    assert "could not confirm" in v.message


def test_policy_from_team_settings_is_used() -> None:
    strict = CheckinPolicy(max_fix_age_s=30, max_accuracy_m=20)
    assert verify_checkin(SHOP, fix(age_s=40), NOW, strict, None, []).reason == "stale_fix"
    assert verify_checkin(SHOP, fix(accuracy=25), NOW, strict, None, []).reason == "inaccurate"


def test_checkout_checks_the_fix_and_flags_far() -> None:
    near = verify_checkout(SHOP, fix(200), NOW, POLICY)
    assert near.accepted and near.detail["far"] is False  # 200 m < 150 + 100
    far = verify_checkout(SHOP, fix(2000), NOW, POLICY)
    assert far.accepted and far.detail["far"] is True and "checkout_far" in far.message
    assert far.detail["distance_m"] == pytest.approx(2000, abs=0.1)
    assert verify_checkout(SHOP, fix(age_s=180), NOW, POLICY).reason == "stale_fix"
    assert verify_checkout(SHOP, fix(mock=True), NOW, POLICY).reason == "mock_location"
    assert verify_checkout(SHOP, fix(accuracy=500), NOW, POLICY).reason == "inaccurate"
