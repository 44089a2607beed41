"""The device's computed odometer: metres travelled, summed over accepted fixes.

Summing the haversine distance between every pair of fixes counts GPS jitter as travel: a receiver
standing still for 20 minutes (``signalk__gps.log``) wanders 341 m. So the odometer keeps a
*rest anchor*. While moving, fix-to-fix distance is summed; the device comes to rest at a fix
that moved less than the rest radius without reporting at least ``rest_speed_kmh``, and that fix
becomes the anchor. It has left when two fixes in a row lie outside the radius (a single far fix
is the usual multipath outlier). For ``settle_s`` after coming to rest the path through the fixes
is kept and counted on leaving (or as soon as a fix reports driving speed), so a car crawling in
traffic or round a corner below the rest speed loses nothing; after that the rest is real, its
jitter is dropped, and leaving counts the straight line from the anchor through the two fixes
outside. The only loss is the corner cut by that line when a device crawls slower than
radius / ``settle_s``.

The radius comes from the fix's own accuracy or HDOP, with a floor for receivers that report
neither and a ceiling so a bad fix cannot swallow a real drive.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from processors.fix import Fix
from processors.geo import haversine_m
from processors.settings import params_from_mapping


@dataclass(frozen=True, slots=True)
class OdometerParams:
    # The parked SignalK receiver strays up to 25 m from its first fix at HDOP 0.8-3.5.
    rest_radius_floor_m: float = 30.0
    rest_radius_max_m: float = 100.0
    # Reported accuracy is a ~68 % radius; twice it holds nearly all of the jitter.
    accuracy_factor: float = 2.0
    # Metres of radius per unit of HDOP: twice a typical 5 m range error.
    hdop_radius_m: float = 10.0
    # Parked receivers report speed noise (SignalK: 95 % below 1.8 km/h, peak 6.2 km/h); a
    # reported speed at or above this keeps a moving device moving through short steps.
    rest_speed_kmh: float = 5.0
    # After coming to rest, how long the path through the fixes is still counted if the device
    # moves off: a car crawling faster than radius / settle_s (30 m / 120 s = 0.9 km/h) round a
    # corner keeps its real path, and a traffic light's jitter is counted (the Reno Garmin's is
    # ~0.05 m/s); a halt longer than this is a rest whose jitter is dropped.
    settle_s: float = 120.0
    # Take the device's own odometer (``Fix.device_odometer_m``) instead; fixes without one add
    # nothing, and the total never decreases (a device reset does not wind it back).
    use_device_odometer: bool = False

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> OdometerParams:
        return params_from_mapping(cls(), values, "odometer")


def rest_radius_m(fix: Fix, floor_m: float, max_m: float, accuracy_factor: float = 2.0,
                  hdop_radius_m: float = 10.0) -> float:
    """How far from its rest point a fix may stray before the device counts as having left
    (also used by :mod:`processors.motion` for its stops)."""
    radius = floor_m
    if fix.accuracy_m is not None and fix.accuracy_m > 0:
        radius = max(radius, fix.accuracy_m * accuracy_factor)
    if fix.hdop is not None and fix.hdop > 0:
        radius = max(radius, fix.hdop * hdop_radius_m)
    return min(radius, max(max_m, floor_m))


@dataclass(slots=True)
class OdometerState:
    total_m: float = 0.0
    # Where distance was last counted to: the rest anchor while resting, else the last fix.
    ref: tuple[float, float] | None = None
    resting: bool = True
    # A first fix outside the anchor radius, waiting for a second to confirm the departure.
    pending: tuple[float, float] | None = None
    # Just come to rest: until this time the path through the fixes is kept (``trail_m``, up to
    # ``last``) and counted if the device leaves; after it, leaving counts the straight line.
    settle_until: datetime | None = None
    trail_m: float = 0.0
    last: tuple[float, float] | None = None

    @classmethod
    def initial(cls) -> OdometerState:
        return cls()

    def to_json(self) -> dict[str, Any]:
        return {"total_m": self.total_m, "ref": _pair_json(self.ref), "resting": self.resting,
                "pending": _pair_json(self.pending),
                "settle_until": self.settle_until.isoformat() if self.settle_until else None,
                "trail_m": self.trail_m, "last": _pair_json(self.last)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OdometerState:
        until = data.get("settle_until")
        return cls(float(data.get("total_m", 0.0)), _pair(data.get("ref")), bool(data.get("resting", True)),
                   _pair(data.get("pending")), datetime.fromisoformat(until) if until else None,
                   float(data.get("trail_m", 0.0)), _pair(data.get("last")))


def step(state: OdometerState, fix: Fix, params: OdometerParams) -> tuple[OdometerState, float]:
    """Called for accepted fixes only; the odometer in metres after ``fix``."""
    if params.use_device_odometer:
        if fix.device_odometer_m is not None and math.isfinite(fix.device_odometer_m):
            state.total_m = max(state.total_m, fix.device_odometer_m)
        return state, state.total_m
    here = (fix.latitude, fix.longitude)
    if state.ref is None:
        state.ref, state.resting = here, True
        return state, state.total_m
    radius = rest_radius_m(fix, params.rest_radius_floor_m, params.rest_radius_max_m,
                           params.accuracy_factor, params.hdop_radius_m)
    fast = fix.speed_kmh is not None and fix.speed_kmh >= params.rest_speed_kmh
    if state.resting:
        _rest(state, here, radius, fast, state.settle_until is not None and fix.time < state.settle_until)
        return state, state.total_m
    moved = _distance(state.ref, here)
    state.total_m += moved
    state.ref = here
    if moved <= radius and not fast:
        state.resting, state.pending = True, None
        state.settle_until = fix.time + timedelta(seconds=params.settle_s)
        state.trail_m, state.last = 0.0, here
    return state, state.total_m


def _rest(state: OdometerState, here: tuple[float, float], radius: float, fast: bool, settling: bool) -> None:
    assert state.ref is not None
    if not settling:
        state.settle_until, state.trail_m, state.last = None, 0.0, None
    if _distance(state.ref, here) <= radius:
        state.pending = None
        if settling and state.last is not None:
            state.trail_m += _distance(state.last, here)
            state.last = here
            if fast:  # driving off from a halt: nothing of the halt was jitter worth dropping
                _leave(state, state.trail_m, here)
        return
    if state.pending is None:
        state.pending = here
        return
    if settling and state.last is not None:
        gone = state.trail_m + _distance(state.last, state.pending) + _distance(state.pending, here)
    else:
        gone = _distance(state.ref, state.pending) + _distance(state.pending, here)
    _leave(state, gone, here)


def _leave(state: OdometerState, gone_m: float, here: tuple[float, float]) -> None:
    state.total_m += gone_m
    state.ref, state.resting, state.pending = here, False, None
    state.settle_until, state.trail_m, state.last = None, 0.0, None


def _pair(value: Any) -> tuple[float, float] | None:
    return (float(value[0]), float(value[1])) if value else None


def _pair_json(value: tuple[float, float] | None) -> list[float] | None:
    return list(value) if value else None


def _distance(a: tuple[float, float], b: tuple[float, float]) -> float:
    return haversine_m(a[0], a[1], b[0], b[1])
