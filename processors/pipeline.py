"""All processors for one device, in order: filters → odometer → motion → geofences → status.

One ``step`` per position in ``Fix.order``; the runner calls it live and when it replays a period
after late data, so both give the same records. Per-device settings come from the device's
``attributes.processing`` as ``{"filters": {...}, "odometer": {...}, "motion": {...},
"geofences": {...}, "status": {...}}``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from processors import filters, geofences, motion, odometer, status
from processors.fences import FenceIndex
from processors.fix import Fix
from processors.records import Mark, Output

SECTIONS = ("filters", "odometer", "motion", "geofences", "status")


@dataclass(frozen=True, slots=True)
class PipelineParams:
    filters: filters.FilterParams = field(default_factory=filters.FilterParams)
    odometer: odometer.OdometerParams = field(default_factory=odometer.OdometerParams)
    motion: motion.MotionParams = field(default_factory=motion.MotionParams)
    geofences: geofences.GeofenceParams = field(default_factory=geofences.GeofenceParams)
    status: status.StatusParams = field(default_factory=status.StatusParams)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> PipelineParams:
        """From a device's ``processing`` settings; a ValueError names the bad section."""
        unknown = set(values) - set(SECTIONS)
        if unknown:
            raise ValueError(f"unknown processing sections {sorted(unknown)}; expected {list(SECTIONS)}")
        parts: dict[str, Any] = {}
        for name, kind in (("filters", filters.FilterParams), ("odometer", odometer.OdometerParams),
                           ("motion", motion.MotionParams), ("geofences", geofences.GeofenceParams),
                           ("status", status.StatusParams)):
            section = values.get(name)
            section = {} if section is None else section
            if not isinstance(section, Mapping):
                raise ValueError(f"processing.{name} must be an object")
            try:
                parts[name] = kind.from_mapping(section)
            except ValueError as exc:
                raise ValueError(f"processing.{name}: {exc}") from exc
        return cls(**parts)


@dataclass(slots=True)
class DeviceState:
    filters: filters.FilterState = field(default_factory=filters.FilterState.initial)
    odometer: odometer.OdometerState = field(default_factory=odometer.OdometerState.initial)
    motion: motion.MotionState = field(default_factory=motion.MotionState.initial)
    geofences: geofences.GeofenceState = field(default_factory=geofences.GeofenceState.initial)
    status: status.StatusState = field(default_factory=status.StatusState.initial)
    moving: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"filters": self.filters.to_json(), "odometer": self.odometer.to_json(),
                "motion": self.motion.to_json(), "geofences": self.geofences.to_json(),
                "status": self.status.to_json(), "moving": self.moving}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeviceState:
        return cls(filters.FilterState.from_json(data["filters"]),
                   odometer.OdometerState.from_json(data["odometer"]),
                   motion.MotionState.from_json(data["motion"]),
                   geofences.GeofenceState.from_json(data["geofences"]),
                   status.StatusState.from_json(data["status"]), bool(data.get("moving", False)))


EMPTY_INDEX = FenceIndex([])


def step(state: DeviceState, fix: Fix, params: PipelineParams, fences: FenceIndex = EMPTY_INDEX,
         allowed: Collection[int] | None = None) -> tuple[Mark, list[Output]]:
    """``allowed``: the fences that apply to this device (None: all in ``fences``)."""
    state.filters, reason = filters.step(state.filters, fix, params.filters)
    state.status, outputs = status.step_reported(state.status, fix, params.status)
    if reason is not None:
        # A filtered position moves nothing: it carries the odometer and motion as they were.
        return Mark(reason, state.odometer.total_m, state.moving), list(outputs)
    out: list[Output] = list(outputs)
    state.odometer, total = odometer.step(state.odometer, fix, params.odometer)
    state.motion, state.moving, trips = motion.step(state.motion, fix, total, params.motion)
    out.extend(trips)
    limits: list[float] = []
    if len(fences):
        state.geofences, crossings = geofences.step(state.geofences, fix, fences, params.geofences, allowed)
        out.extend(crossings)
        for fence_id in geofences.inside(state.geofences):
            if fence_id in fences and fences[fence_id].speed_limit_kmh is not None:
                limits.append(fences[fence_id].speed_limit_kmh)  # type: ignore[arg-type]
    state.status, speeding = status.step_speed(state.status, fix, params.status, limits)
    out.extend(speeding)
    return Mark(None, total, state.moving), out
