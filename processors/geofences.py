"""Geofence enter and exit events for one device, with hysteresis and an optional dwell time.

Hysteresis: a device enters a fence once it is inside by the margin (signed distance ≤ −margin)
and exits once it is outside by more than the margin (> +margin); between the two the state
holds, so a device parked on a fence edge does not flap. The margin is ``hysteresis_m`` plus the
fix's reported accuracy up to ``accuracy_cap_m``. A fence too small to be ``margin`` deep is
entered at half its depth instead (a 20 m circle: within 10 m of its centre), else it could
never be entered.

Dwell: with ``min_dwell_s`` > 0 a crossing is only pending until the device has stayed across
that long; it is cancelled if the device comes back by the margin first. The event carries the
time and place of the first fix across, not of the confirming fix: reports of time spent in a
zone need the real crossing, and Traccar, which has no dwell, also stamps the crossing fix.
Each fence's events therefore still alternate enter/exit in time order, and with one dwell for
all fences the events of a device come out in time order.

A fence deleted from the index, or no longer in ``allowed`` for the device, is dropped from the
state without an event, as Traccar does for a deleted geofence: nothing crossed a boundary, and
an exit stamped with the time of an administrator's edit would be a false record. If it is
allowed again while the device is inside, a new enter follows. Invalid fixes change nothing.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, ClassVar

from processors.fences import FenceIndex
from processors.fix import Fix
from processors.records import GEOFENCE_ENTER, GEOFENCE_EXIT, Event

_DEPTH_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class GeofenceParams:
    # 25 m: a receiver parked for 20 min (signalk log, HDOP 3, 4 satellites) strays up to 22 m
    # from its median position; consumer GNSS in the open is within ~10 m (95 %).
    hysteresis_m: float = 25.0
    # Phones report accuracy as a 68 % radius; it widens the band for a poor fix. Capped so a
    # cell-tower fix (accuracy in km) does not make every fence unreachable: the position filter
    # upstream is the place to drop such fixes.
    accuracy_cap_m: float = 50.0
    min_dwell_s: float = 0.0

    # Per-device settings keys (prefixed: the settings dict is shared by all processors).
    KEYS: ClassVar[Mapping[str, str]] = {
        "hysteresis_m": "geofence_hysteresis_m", "accuracy_cap_m": "geofence_accuracy_cap_m",
        "min_dwell_s": "geofence_min_dwell_s"}

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{self.KEYS[f.name]} must be a finite number, got {value!r}")
            if value < 0:
                raise ValueError(f"{self.KEYS[f.name]} must not be negative, got {value}")
            object.__setattr__(self, f.name, float(value))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> GeofenceParams:
        return cls(**{name: values[key] for name, key in cls.KEYS.items() if key in values})

    def margin_m(self, accuracy_m: float | None) -> float:
        extra = accuracy_m if accuracy_m is not None and math.isfinite(accuracy_m) and accuracy_m > 0 else 0.0
        return self.hysteresis_m + min(extra, self.accuracy_cap_m)


@dataclass(frozen=True, slots=True)
class Crossing:
    """The first fix across a fence's boundary, waiting for the dwell time."""

    time: datetime
    latitude: float
    longitude: float


@dataclass(slots=True)
class GeofenceState:
    inside: set[int] = field(default_factory=set)
    # Fence id → pending crossing: an enter when the fence is not in ``inside``, else an exit.
    pending: dict[int, Crossing] = field(default_factory=dict)

    @classmethod
    def initial(cls) -> GeofenceState:
        return cls()

    def to_json(self) -> dict[str, Any]:
        return {"inside": sorted(self.inside),
                "pending": [{"id": i, "time": c.time.isoformat(), "lat": c.latitude, "lon": c.longitude}
                            for i, c in sorted(self.pending.items())]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GeofenceState:
        pending = {int(p["id"]): Crossing(datetime.fromisoformat(p["time"]), float(p["lat"]), float(p["lon"]))
                   for p in data.get("pending", ())}
        return cls({int(i) for i in data.get("inside", ())}, pending)


def inside(state: GeofenceState) -> frozenset[int]:
    """Fences the device is confirmed inside (an exit still pending counts as inside)."""
    return frozenset(state.inside)


def step(state: GeofenceState, fix: Fix, index: FenceIndex, params: GeofenceParams,
         allowed: Collection[int] | None = None) -> tuple[GeofenceState, list[Event]]:
    for fid in [*state.inside, *state.pending]:
        if fid not in index or (allowed is not None and fid not in allowed):
            state.inside.discard(fid)
            state.pending.pop(fid, None)
    if not fix.valid:
        return state, []
    margin = params.margin_m(fix.accuracy_m)
    near = index.signed_distances(fix.latitude, fix.longitude, margin, only=allowed)
    events = []
    for fid in sorted(near.keys() | state.inside | state.pending.keys()):
        d = near.get(fid, math.inf)  # absent: more than the margin outside
        enter_at = -min(margin, _DEPTH_SHARE * index[fid].depth_m)
        was_in = fid in state.inside
        across, back = (d > margin, d <= enter_at) if was_in else (d <= enter_at, d > margin)
        crossing = state.pending.get(fid)
        if across and crossing is None:
            crossing = state.pending[fid] = Crossing(fix.time, fix.latitude, fix.longitude)
        elif back and crossing is not None:
            del state.pending[fid]
            crossing = None
        if crossing is not None and (fix.time - crossing.time).total_seconds() >= params.min_dwell_s:
            del state.pending[fid]
            if was_in:
                state.inside.discard(fid)
            else:
                state.inside.add(fid)
            events.append(Event(crossing.time, GEOFENCE_EXIT if was_in else GEOFENCE_ENTER,
                                crossing.latitude, crossing.longitude, geofence_id=fid))
    # Leaving one fence comes before entering the next when both happen at one fix.
    events.sort(key=lambda e: (e.time, e.type == GEOFENCE_ENTER, e.geofence_id))
    return state, events
