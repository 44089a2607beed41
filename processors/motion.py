"""Trips and stops: a state machine over a device's accepted fixes.

Learned from Traccar's MotionProcessor and trip/stop reports (``report.trip.*``), our own code.
A device *dwells* when its fixes stay within a radius of where it arrived (the arrival is the
fix before the first one that moved less than the radius without reporting driving speed); it
has left when two fixes in a row lie outside (one far fix is a multipath outlier), or at the first
fix outside that reports at least ``moving_speed_kmh``: a receiver at rest reports less almost
always, so that fix is the departure, and holding it back would show a car pulling away from the
lights as stopped for one report. A dwell of
``min_stop_duration_s`` is a confirmed stop: an open trip ends at the arrival, where the stop
begins. Shorter dwells (traffic lights, a bus at its stops) are halts inside the trip. Leaving a
stop starts a candidate trip at the last fix of the dwell (the departure); it becomes a trip once
the odometer has grown ``min_trip_distance_m`` since, and the stop then ends at the departure.
A candidate that dwells again first was a move inside the stop (another space in the car park).

Displacement rather than reported speed decides, because parked phones and receivers report
speed noise (SignalK log: up to 6.2 km/h standing still); reported speed only keeps a dwell from
starting while the device drives slowly. Silent gaps: after at least ``min_stop_duration_s``
without fixes, a device found within ``gap_stop_radius_m`` of where it was did not travel and the
gap is part of a stop. A device found elsewhere after ``no_data_s`` travelled unseen: what was open
ends at the last fix before the gap and the device starts afresh. ``use_ignition`` is Traccar's
older variant: when a fix reports ignition, ignition off is a dwell and ignition on leaves it.

Trips never overlap and each ends where the next stop begins; every stop lasts at least
``min_stop_duration_s``. Distances come from the odometer passed in; maximum speed is the
reported speed, else the speed implied by the step from the previous fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from processors.fix import Fix
from processors.geo import haversine_m
from processors.odometer import rest_radius_m
from processors.records import DEVICE_MOVING, DEVICE_STOPPED, Event, Output, Stop, Trip
from processors.settings import params_from_mapping


@dataclass(frozen=True, slots=True)
class MotionParams:
    # The project's defaults (Traccar ships 500 m / 300 s / 300 s / 3600 s).
    min_trip_distance_m: float = 200.0
    # Traccar also confirms a trip after this long in motion whatever the distance; off, because
    # a phone's speed noise or a car crawling round a car park would make trips of nothing.
    min_trip_duration_s: float | None = None
    min_stop_duration_s: float = 180.0
    no_data_s: float = 3600.0
    # A reported speed at or above this never starts a dwell (walking pace: receivers at rest
    # report less almost always, and a single noisy fix only delays a dwell by one fix).
    moving_speed_kmh: float = 5.0
    stop_radius_floor_m: float = 30.0
    stop_radius_max_m: float = 100.0
    # Moving within one car park or re-acquiring a fix across a building during a silent gap.
    gap_stop_radius_m: float = 100.0
    use_ignition: bool = False
    events: bool = True

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> MotionParams:
        return params_from_mapping(cls(), values, "motion")


@dataclass(frozen=True, slots=True)
class _Mark:
    """A fix as the state machine remembers it."""

    time: datetime
    latitude: float
    longitude: float
    odometer_m: float
    speed_kmh: float | None = None  # reported, else implied from the previous fix

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time.isoformat(), "latitude": self.latitude, "longitude": self.longitude,
                "odometer_m": self.odometer_m, "speed_kmh": self.speed_kmh}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> _Mark:
        speed = data.get("speed_kmh")
        return cls(datetime.fromisoformat(data["time"]), float(data["latitude"]), float(data["longitude"]),
                   float(data["odometer_m"]), None if speed is None else float(speed))


def _distance(a: _Mark, b: _Mark) -> float:
    return haversine_m(a.latitude, a.longitude, b.latitude, b.longitude)


@dataclass(slots=True)
class MotionState:
    phase: str = "none"  # "none" (nothing confirmed yet), "trip" or "stop"
    last: _Mark | None = None
    # The current dwell (all None while moving): where it began, the point fixes are judged from
    # (moved to the first fix after a resting gap), its last fix inside, a first fix outside.
    arrival: _Mark | None = None
    centre: _Mark | None = None
    inside: _Mark | None = None
    outside: _Mark | None = None
    dwell_max_kmh: float = 0.0
    # Start of the confirmed trip (phase "trip") or of the candidate trip (otherwise).
    departure: _Mark | None = None
    trip_max_kmh: float = 0.0
    stop_start: _Mark | None = None  # the confirmed stop's arrival (phase "stop")

    @classmethod
    def initial(cls) -> MotionState:
        return cls()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.to_json() if isinstance(value, _Mark) else value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MotionState:
        state = cls()
        for f in fields(cls):
            value = data.get(f.name)
            if f.name == "phase":
                state.phase = str(value or "none")
            elif f.name.endswith("_kmh"):
                setattr(state, f.name, float(value or 0.0))
            else:
                setattr(state, f.name, None if value is None else _Mark.from_json(value))
        return state


@dataclass(slots=True)
class _Step:
    """What one step emits."""

    params: MotionParams
    outputs: list[Output] = field(default_factory=list)

    def event(self, kind: str, at: _Mark) -> None:
        if self.params.events:
            self.outputs.append(Event(at.time, kind, at.latitude, at.longitude))


def step(state: MotionState, fix: Fix, odometer_m: float,
         params: MotionParams) -> tuple[MotionState, bool, list[Output]]:
    """Called for accepted fixes in order; returns whether the device is moving at ``fix`` and
    the trips, stops and events it closed or confirmed."""
    out = _Step(params)
    last = state.last
    mark = _mark(fix, odometer_m, last)
    state.last = mark
    if last is None:
        _begin_dwell(state, mark)
        return state, False, out.outputs
    if (mark.time - last.time).total_seconds() >= params.min_stop_duration_s:
        if _distance(last, mark) <= params.gap_stop_radius_m:
            # Silent but still there: the gap is rest, and the device is judged from here on.
            if state.arrival is None:
                _begin_dwell(state, last)
            state.centre = state.inside = mark
            state.outside = None
            _confirm(state, out)
            return state, False, out.outputs
        if (mark.time - last.time).total_seconds() >= params.no_data_s:
            _close_before_gap(state, last, out)
            state = MotionState(last=mark)
            _begin_dwell(state, mark)
            return state, False, out.outputs
    moving = _classify(state, fix, mark, last, params)
    if moving:
        state.trip_max_kmh = max(state.trip_max_kmh, mark.speed_kmh or 0.0)
    else:
        state.dwell_max_kmh = max(state.dwell_max_kmh, mark.speed_kmh or 0.0)
    _confirm(state, out)
    return state, moving, out.outputs


def open_trip(state: MotionState) -> Trip | None:
    """The confirmed trip still under way, up to the last fix."""
    if state.phase != "trip" or state.departure is None or state.last is None:
        return None
    return _trip(state.departure, state.last, max(state.trip_max_kmh, state.dwell_max_kmh))


def open_stop(state: MotionState) -> Stop | None:
    """The confirmed stop not yet left: up to its last fix, or to the departure of a trip not
    yet confirmed."""
    if state.phase != "stop" or state.stop_start is None:
        return None
    end = state.departure or state.inside
    return _stop(state.stop_start, end) if end is not None else None


def _mark(fix: Fix, odometer_m: float, last: _Mark | None) -> _Mark:
    speed = fix.speed_kmh
    if speed is None and last is not None:
        elapsed = (fix.time - last.time).total_seconds()
        if elapsed > 0:
            speed = haversine_m(last.latitude, last.longitude, fix.latitude, fix.longitude) / elapsed * 3.6
    return _Mark(fix.time, fix.latitude, fix.longitude, odometer_m, speed)


def _classify(state: MotionState, fix: Fix, mark: _Mark, last: _Mark, params: MotionParams) -> bool:
    """Update the dwell with ``mark``; True when the device is moving at it."""
    if params.use_ignition and fix.ignition is not None:
        if not fix.ignition:
            if state.arrival is None:
                _begin_dwell(state, mark)
            state.inside, state.outside = mark, None
            return False
        if state.arrival is not None:
            _leave(state)
        return True
    radius = rest_radius_m(fix, params.stop_radius_floor_m, params.stop_radius_max_m)
    fast = fix.speed_kmh is not None and fix.speed_kmh >= params.moving_speed_kmh
    if state.arrival is not None:
        assert state.centre is not None
        if _distance(state.centre, mark) <= radius:
            state.inside, state.outside = mark, None
            return False
        if state.outside is None and not fast:  # maybe an outlier: wait for the next fix
            state.outside = mark
            return False
        last = state.outside or last
        _leave(state)
        state.trip_max_kmh = max(state.trip_max_kmh, last.speed_kmh or 0.0)
    if _distance(last, mark) <= radius and not fast:
        _begin_dwell(state, last)
        state.inside = mark
        return False
    return True


def _begin_dwell(state: MotionState, arrival: _Mark) -> None:
    state.arrival = state.centre = state.inside = arrival
    state.outside = None
    state.dwell_max_kmh = 0.0


def _leave(state: MotionState) -> None:
    """The dwell is over: a halt inside a (candidate) trip, or the departure from a stop."""
    if state.departure is None:
        state.departure, state.trip_max_kmh = state.inside, 0.0
    else:
        state.trip_max_kmh = max(state.trip_max_kmh, state.dwell_max_kmh)
    state.arrival = state.centre = state.inside = state.outside = None
    state.dwell_max_kmh = 0.0


def _confirm(state: MotionState, out: _Step) -> None:
    """Promote a long enough dwell to a stop, or a far enough candidate to a trip."""
    params = out.params
    arrival, inside = state.arrival, state.inside
    if arrival is not None and inside is not None and \
            (inside.time - arrival.time).total_seconds() >= params.min_stop_duration_s:
        if state.phase == "trip" and state.departure is not None:
            out.outputs.append(_trip(state.departure, arrival, state.trip_max_kmh))
        if state.phase != "stop":
            state.phase, state.stop_start = "stop", arrival
            out.event(DEVICE_STOPPED, arrival)
        state.departure, state.trip_max_kmh = None, 0.0  # a candidate that came to rest again
        return
    if state.phase == "trip" or state.departure is None or state.last is None:
        return
    # Measured to the arrival while dwelling, so the trip it becomes is never shorter.
    reached = arrival or state.last
    travelled = reached.odometer_m - state.departure.odometer_m
    lasted = (reached.time - state.departure.time).total_seconds()
    if travelled >= params.min_trip_distance_m or (
            params.min_trip_duration_s is not None and lasted >= params.min_trip_duration_s):
        if state.phase == "stop" and state.stop_start is not None:
            out.outputs.append(_stop(state.stop_start, state.departure))
        state.phase, state.stop_start = "trip", None
        out.event(DEVICE_MOVING, state.departure)


def _close_before_gap(state: MotionState, last: _Mark, out: _Step) -> None:
    """The device travelled unseen for longer than ``no_data_s``: end what is open at the last
    fix before the gap (a trip at the arrival of a dwell too short to be a stop)."""
    if state.phase == "trip" and state.departure is not None:
        end = state.arrival or last
        out.outputs.append(_trip(state.departure, end, state.trip_max_kmh))
        out.event(DEVICE_STOPPED, end)
    elif state.phase == "stop" and state.stop_start is not None:
        end = state.departure or state.inside or last
        out.outputs.append(_stop(state.stop_start, end))


def _trip(start: _Mark, end: _Mark, max_kmh: float) -> Trip:
    distance = max(0.0, end.odometer_m - start.odometer_m)
    duration = (end.time - start.time).total_seconds()
    return Trip(start.time, end.time, start.latitude, start.longitude, end.latitude, end.longitude,
                distance, max_kmh, distance / duration * 3.6 if duration > 0 else 0.0,
                start.odometer_m, end.odometer_m)


def _stop(start: _Mark, end: _Mark) -> Stop:
    return Stop(start.time, end.time, start.latitude, start.longitude, start.odometer_m)
