"""Device status events from the stream: overspeed, alarms the device reports, ignition changes.

Online/offline is not here: it depends on the clock, not on a position, and is judged where the
time is known (the runner's sweep and the API).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from processors.fix import Fix
from processors.records import ALARM, IGNITION_OFF, IGNITION_ON, OVERSPEED, Event
from processors.settings import params_from_mapping


@dataclass(frozen=True, slots=True)
class StatusParams:
    # The device's own limit; None: only geofence limits apply.
    speed_limit_kmh: float | None = None
    # A car passing a truck is over the limit for seconds; Traccar's minimalDuration default is 0,
    # which alerts on every such moment, so managers switch it off. 15 s is a sustained breach.
    overspeed_min_duration_s: float = 15.0
    overspeed_tolerance_kmh: float = 0.0
    alarm_events: bool = True
    ignition_events: bool = True

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> StatusParams:
        return params_from_mapping(cls(), values, "status")


@dataclass(slots=True)
class StatusState:
    over_since: datetime | None = None
    over_reported: bool = False
    over_max_kmh: float = 0.0
    alarm: str | None = None
    ignition: bool | None = None

    @classmethod
    def initial(cls) -> StatusState:
        return cls()

    def to_json(self) -> dict[str, Any]:
        return {"over_since": self.over_since.isoformat() if self.over_since else None,
                "over_reported": self.over_reported, "over_max_kmh": self.over_max_kmh,
                "alarm": self.alarm, "ignition": self.ignition}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StatusState:
        since = data.get("over_since")
        return cls(datetime.fromisoformat(since) if since else None, bool(data.get("over_reported")),
                   float(data.get("over_max_kmh", 0.0)), data.get("alarm"), data.get("ignition"))


def _event(fix: Fix, kind: str, **attributes: Any) -> Event:
    return Event(fix.time, kind, fix.latitude, fix.longitude, None, attributes)


def step_reported(state: StatusState, fix: Fix, params: StatusParams) -> tuple[StatusState, list[Event]]:
    """Alarms and ignition, for every position, filtered or not: a device raises its SOS in a
    status report without a fix, which the filters reject for position purposes."""
    out: list[Event] = []
    if fix.alarm != state.alarm:
        # Devices repeat an active alarm in every report until it clears: one event per raise.
        if fix.alarm is not None and params.alarm_events:
            out.append(_event(fix, ALARM, alarm=fix.alarm))
        state.alarm = fix.alarm
    if fix.ignition is not None:
        if state.ignition is not None and fix.ignition != state.ignition and params.ignition_events:
            out.append(_event(fix, IGNITION_ON if fix.ignition else IGNITION_OFF))
        state.ignition = fix.ignition
    return state, out


def step_speed(state: StatusState, fix: Fix, params: StatusParams,
               fence_limits_kmh: Iterable[float] = ()) -> tuple[StatusState, list[Event]]:
    """Overspeed against the lowest applicable limit (the device's, or a geofence's it is in),
    for accepted fixes only; one event per continuous breach, once it has lasted the minimum."""
    limits = [x for x in (params.speed_limit_kmh, *fence_limits_kmh) if x is not None]
    speed = fix.speed_kmh
    if not limits or speed is None or speed <= min(limits) + params.overspeed_tolerance_kmh:
        state.over_since, state.over_reported, state.over_max_kmh = None, False, 0.0
        return state, []
    limit = min(limits)
    if state.over_since is None:
        state.over_since = fix.time
    state.over_max_kmh = max(state.over_max_kmh, speed)
    if state.over_reported or (fix.time - state.over_since).total_seconds() < params.overspeed_min_duration_s:
        return state, []
    state.over_reported = True
    return state, [_event(fix, OVERSPEED, speed_kmh=round(state.over_max_kmh, 1), limit_kmh=limit,
                          since=state.over_since.isoformat())]
