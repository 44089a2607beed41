"""Which fixes are too wrong to move the odometer, trips, stops and geofences.

A filtered fix is still stored, flagged with the reason :func:`step` returns; only accepted fixes
go on to the other processors. The checks and their order (the first that fails is the reason):

============  ==================================================================================
``invalid``   the device said the fix is not valid, or a coordinate is out of range / not a number
``zero``      latitude and longitude both exactly 0 (a receiver without a fix sending its default)
``order``     older than the last accepted fix (cannot happen when fixes are stepped in order)
``duplicate`` the same fix time as the last accepted fix: NMEA's RMC, GGA and GLL of one epoch
``future``    more than ``max_future_s`` ahead of the time the server received it
``accuracy``  reported accuracy worse than ``max_accuracy_m`` (cell / Wi-Fi locations on phones)
``hdop``      HDOP above ``max_hdop``
``period``    closer than ``min_period_s`` to the last accepted fix (off by default)
``jump``      reaching it from the last accepted fix would need more than ``max_speed_kmh``
============  ==================================================================================

Semantics learned from Traccar's FilterHandler (``filter.*`` settings); unlike Traccar the state
judges a fix against the last *accepted* fix only, so a run of rejected fixes never becomes the
reference. A real relocation (a phone carried on a plane, a first fix that was wrong) must not
leave the device filtered forever: ``jump_recovery_fixes`` consecutive jump-rejected fixes that are
consistent with each other (reachable one from the next under the speed limit) are taken as the
truth and the last of them is accepted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from processors.fix import Fix
from processors.geo import haversine_m
from processors.settings import params_from_mapping


@dataclass(frozen=True, slots=True)
class FilterParams:
    invalid: bool = True
    zero: bool = True
    duplicate: bool = True
    # GPS time is exact and servers run NTP: ten minutes is clock skew, hours is a wrong zone.
    max_future_s: float | None = 600.0
    # Phones label network (cell, Wi-Fi) locations with accuracies of 100 m to kilometres.
    max_accuracy_m: float | None = 100.0
    # 20 is where the usual DOP rating scale turns "poor"; the Reno Garmin log reports HDOP up to
    # 176 on fixes whose positions still agree with the reported speed, so stricter limits drop
    # good fixes.
    max_hdop: float | None = 20.0
    min_period_s: float | None = None
    # Faster than any road vehicle a field team drives, far below a teleport.
    max_speed_kmh: float | None = 300.0
    jump_recovery_fixes: int = 3

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> FilterParams:
        return params_from_mapping(cls(), values, "filter")


@dataclass(frozen=True, slots=True)
class _Point:
    time: datetime
    latitude: float
    longitude: float

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time.isoformat(), "latitude": self.latitude, "longitude": self.longitude}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> _Point:
        return cls(datetime.fromisoformat(data["time"]), float(data["latitude"]), float(data["longitude"]))


@dataclass(slots=True)
class FilterState:
    last: _Point | None = None  # the last accepted fix
    # Jump recovery: the latest jump-rejected fix and how many consistent ones led to it.
    suspect: _Point | None = None
    suspect_count: int = 0

    @classmethod
    def initial(cls) -> FilterState:
        return cls()

    def to_json(self) -> dict[str, Any]:
        return {"last": self.last.to_json() if self.last else None,
                "suspect": self.suspect.to_json() if self.suspect else None,
                "suspect_count": self.suspect_count}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FilterState:
        last, suspect = data.get("last"), data.get("suspect")
        return cls(_Point.from_json(last) if last else None, _Point.from_json(suspect) if suspect else None,
                   int(data.get("suspect_count", 0)))


def step(state: FilterState, fix: Fix, params: FilterParams) -> tuple[FilterState, str | None]:
    """The reason ``fix`` is filtered, or ``None`` when it is accepted (then it becomes the
    reference for the next fixes). Only accepted and jump-rejected fixes change the state."""
    reason = _static_reason(fix, params) or _relative_reason(state.last, fix, params)
    point = _Point(fix.time, fix.latitude, fix.longitude)
    if reason == "jump":
        if state.suspect is not None and point.time <= state.suspect.time:
            return state, reason  # the same suspect again (a resent fix) is no new evidence
        if state.suspect is not None and _reachable(state.suspect, point, params):
            state.suspect_count += 1
        else:
            state.suspect_count = 1
        state.suspect = point
        if state.suspect_count < params.jump_recovery_fixes:
            return state, reason
        reason = None  # the device really is there now
    if reason is None:
        state.last, state.suspect, state.suspect_count = point, None, 0
    return state, reason


def _static_reason(fix: Fix, params: FilterParams) -> str | None:
    """Checks that need no history."""
    lat, lon = fix.latitude, fix.longitude
    if params.invalid and (not fix.valid or not (math.isfinite(lat) and math.isfinite(lon))
                           or abs(lat) > 90 or abs(lon) > 180):
        return "invalid"
    if params.zero and lat == 0 and lon == 0:
        return "zero"
    return None


def _relative_reason(last: _Point | None, fix: Fix, params: FilterParams) -> str | None:
    if last is not None and fix.time < last.time:
        return "order"
    if params.duplicate and last is not None and fix.time == last.time:
        return "duplicate"
    if (params.max_future_s is not None and fix.server_time is not None
            and (fix.time - fix.server_time).total_seconds() > params.max_future_s):
        return "future"
    if (params.max_accuracy_m is not None and fix.accuracy_m is not None
            and fix.accuracy_m > params.max_accuracy_m):
        return "accuracy"
    if params.max_hdop is not None and fix.hdop is not None and fix.hdop > params.max_hdop:
        return "hdop"
    if last is None:
        return None
    elapsed = (fix.time - last.time).total_seconds()
    if params.min_period_s is not None and 0 < elapsed < params.min_period_s:
        return "period"
    if not _reachable(last, _Point(fix.time, fix.latitude, fix.longitude), params):
        return "jump"
    return None


def _reachable(origin: _Point | None, point: _Point, params: FilterParams) -> bool:
    """Could the device get from ``origin`` to ``point`` in the time between them?"""
    if origin is None or params.max_speed_kmh is None:
        return True
    distance = haversine_m(origin.latitude, origin.longitude, point.latitude, point.longitude)
    elapsed = (point.time - origin.time).total_seconds()
    if elapsed <= 0:
        return distance == 0
    return distance / elapsed * 3.6 <= params.max_speed_kmh
