"""Is a rep's check-in (or check-out) fix good enough to prove they are at the customer?

Pure: the caller loads the customer, the fix, the server's clock, the team's ``CheckinPolicy``, the
rep's previous known position and their tracked positions (every device they carry) around the fix
time, and stores the verdict. The check-in rules, in this order; the first that fails is the
reason (the codes of ``checkin_attempts.reason`` in 005_visits.sql):

==================  ==============================================================================
``future_fix``      the fix time is more than ``max_future_s`` ahead of the server's clock
``stale_fix``       the fix is more than ``max_fix_age_s`` old (a remembered fix, not a current one)
``mock_location``   the phone flagged the fix as mock, or a tracked position of the rep within
                    ``track_window_s`` of it carries a mock flag (``mock``/``isMock`` attributes)
``inaccurate``      reported accuracy worse than ``max_accuracy_m`` (unknown accuracy passes)
``too_far``         farther from the customer than the customer's check-in radius
``teleport``        reaching the fix from the previous known position needs more than
                    ``teleport_speed_kmh``
``track_mismatch``  the rep's track has positions within ``track_window_s`` of the fix, and none of
                    them within radius + ``track_tolerance_m`` of the customer
==================  ==============================================================================

The order runs from what the fix says about itself (its time, its flag, its accuracy), which
makes every later number meaningless when it fails, to what it says about where the rep is, then
to what other evidence says. A track with no positions near the fix time cannot confirm or
contradict it: the check-in is accepted and the detail says the track could not confirm.

A check-out applies the fix's own checks (future, stale, mock, accuracy) only; its distance is
recorded, and beyond radius + tolerance it is accepted with ``far`` set in the detail.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from processors.geo import haversine_m
from processors.team_policy import CheckinPolicy

# A previous position this close proves nothing about speed: two fixes a few seconds apart, from
# a phone and a vehicle tracker whose clocks and noise differ by seconds and tens of metres, give
# absurd speeds over short distances. A mock-location jump is usually kilometres, far above this.
TELEPORT_MIN_DISTANCE_M = 1000.0
# A previous position older than this proves nothing either: gaps of hours are normal (tracker off
# overnight, a flight, a ferry), and the average speed over them says how the rep travelled, not
# whether this fix is real. Within an hour, beating 300 km/h by road is not plausible.
TELEPORT_HORIZON_S = 3600.0

MOCK_KEYS = ("mock", "isMock", "is_mock", "mockLocation")


def is_mock(attributes: Mapping[str, Any] | None) -> bool:
    """True when a position's attributes say the location was faked (Android's isMock and kin)."""
    if not attributes:
        return False
    return any(attributes.get(k) in (True, "true", "1", 1) for k in MOCK_KEYS)


@dataclass(frozen=True, slots=True)
class Place:
    """The customer: where and how close a check-in must be."""

    latitude: float
    longitude: float
    radius_m: float


@dataclass(frozen=True, slots=True)
class SubmittedFix:
    """The phone's current fix as the rep's app sends it."""

    time: datetime
    latitude: float
    longitude: float
    accuracy_m: float | None = None
    mock: bool = False


@dataclass(frozen=True, slots=True)
class TrackPoint:
    """A stored position of one of the rep's devices (filtered ones are left out by the caller)."""

    time: datetime
    latitude: float
    longitude: float
    mock: bool = False
    device_id: int | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    accepted: bool
    reason: str | None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def message(self) -> str:
        return str(self.detail.get("message", ""))


def _r(value: float) -> float:
    return round(value, 1)


def _fix_checks(fix: SubmittedFix, now: datetime, policy: CheckinPolicy, mock_track: int,
                detail: dict[str, Any]) -> Verdict | None:
    age = (now - fix.time).total_seconds()
    detail["age_s"] = _r(age)
    detail["accuracy_m"] = fix.accuracy_m
    if -age > policy.max_future_s:
        return _refuse("future_fix", detail, f"the fix is {-age:.0f} s in the future by the server's clock; "
                                             f"at most {policy.max_future_s:.0f} s is allowed")
    if age > policy.max_fix_age_s:
        return _refuse("stale_fix", detail, f"the fix is {age:.0f} s old; at most "
                                            f"{policy.max_fix_age_s:.0f} s is allowed, send a current fix")
    if fix.mock:
        return _refuse("mock_location", detail, "the phone reports this location as mock (faked)")
    if mock_track:
        detail["mock_track_positions"] = mock_track
        return _refuse("mock_location", detail, f"{mock_track} tracked position(s) around this time are "
                                                "reported as mock (faked) locations")
    if fix.accuracy_m is not None and fix.accuracy_m > policy.max_accuracy_m:
        return _refuse("inaccurate", detail, f"the fix is accurate to {fix.accuracy_m:.0f} m; it must be "
                                             f"{policy.max_accuracy_m:.0f} m or better")
    return None


def _refuse(reason: str, detail: dict[str, Any], message: str) -> Verdict:
    detail["message"] = message
    return Verdict(False, reason, detail)


def implied_speed_kmh(previous: TrackPoint, fix: SubmittedFix) -> tuple[float, float, float | None]:
    """(distance m, seconds, km/h or None when the previous position cannot say anything)."""
    distance = haversine_m(previous.latitude, previous.longitude, fix.latitude, fix.longitude)
    dt = (fix.time - previous.time).total_seconds()
    if dt <= 0 or dt > TELEPORT_HORIZON_S or distance <= TELEPORT_MIN_DISTANCE_M:
        return distance, dt, None
    return distance, dt, distance / dt * 3.6


def verify_checkin(place: Place, fix: SubmittedFix, now: datetime, policy: CheckinPolicy,
                   previous: TrackPoint | None, track: Sequence[TrackPoint]) -> Verdict:
    """``track``: the rep's positions within ``policy.track_window_s`` of ``fix.time`` (the caller
    selects them; this function does not filter by time). ``previous``: the rep's last position
    before ``fix.time``, from any device."""
    distance = haversine_m(place.latitude, place.longitude, fix.latitude, fix.longitude)
    detail: dict[str, Any] = {"distance_m": _r(distance), "radius_m": place.radius_m}
    refused = _fix_checks(fix, now, policy, sum(1 for p in track if p.mock), detail)
    if refused:
        return refused
    if distance > place.radius_m:
        return _refuse("too_far", detail, f"{distance:.0f} m from the customer; the check-in radius is "
                                          f"{place.radius_m:.0f} m")
    if previous is not None and not previous.mock:  # a faked position is no evidence of where the rep was
        gap_m, gap_s, speed = implied_speed_kmh(previous, fix)
        detail |= {"previous_distance_m": _r(gap_m), "previous_age_s": _r(gap_s),
                   "implied_speed_kmh": None if speed is None else _r(speed)}
        if speed is not None and speed > policy.teleport_speed_kmh:
            return _refuse("teleport", detail, f"{gap_m / 1000:.1f} km from the rep's position {gap_s:.0f} s "
                                               f"earlier: {speed:.0f} km/h, faster than "
                                               f"{policy.teleport_speed_kmh:.0f} km/h")
    real = [p for p in track if not p.mock]
    detail["track_positions"] = len(real)
    if not real:
        detail["track_confirmed"] = None
        detail["message"] = (f"{distance:.0f} m from the customer; the rep's track has no positions within "
                             f"{policy.track_window_s:.0f} s, so it could not confirm")
        return Verdict(True, None, detail)
    nearest = min(haversine_m(place.latitude, place.longitude, p.latitude, p.longitude) for p in real)
    limit = place.radius_m + policy.track_tolerance_m
    detail |= {"nearest_track_m": _r(nearest), "track_limit_m": limit}
    if nearest > limit:
        detail["track_confirmed"] = False
        return _refuse("track_mismatch", detail,
                       f"the rep's tracked positions within {policy.track_window_s:.0f} s are at least "
                       f"{nearest:.0f} m from the customer; the limit is {limit:.0f} m")
    detail["track_confirmed"] = True
    detail["message"] = f"{distance:.0f} m from the customer; the rep's track agrees ({nearest:.0f} m)"
    return Verdict(True, None, detail)


def verify_checkout(place: Place, fix: SubmittedFix, now: datetime, policy: CheckinPolicy) -> Verdict:
    """The fix's own checks; distance beyond radius + tolerance is accepted with ``far`` true."""
    distance = haversine_m(place.latitude, place.longitude, fix.latitude, fix.longitude)
    detail: dict[str, Any] = {"distance_m": _r(distance), "radius_m": place.radius_m}
    refused = _fix_checks(fix, now, policy, 0, detail)
    if refused:
        return refused
    limit = place.radius_m + policy.track_tolerance_m
    detail["far"] = distance > limit
    detail["message"] = (f"checked out {distance:.0f} m from the customer, beyond the {limit:.0f} m limit: "
                         "flagged checkout_far" if detail["far"] else
                         f"checked out {distance:.0f} m from the customer")
    return Verdict(True, None, detail)
