"""What the processors produce: a mark per position, and trips, stops and events.

Event types use Traccar's names so integrations written for it read ours unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

GEOFENCE_ENTER = "geofenceEnter"
GEOFENCE_EXIT = "geofenceExit"
OVERSPEED = "deviceOverspeed"
ALARM = "alarm"
DEVICE_MOVING = "deviceMoving"
DEVICE_STOPPED = "deviceStopped"
IGNITION_ON = "ignitionOn"
IGNITION_OFF = "ignitionOff"
DEVICE_ONLINE = "deviceOnline"
DEVICE_OFFLINE = "deviceOffline"


@dataclass(frozen=True, slots=True)
class Mark:
    """Stored with the position: why it was filtered (``None`` when accepted), the device's
    computed odometer after it, and whether the device was moving at that fix."""

    filtered: str | None
    odometer_m: float
    moving: bool


@dataclass(frozen=True, slots=True)
class Trip:
    start_time: datetime
    end_time: datetime
    start_latitude: float
    start_longitude: float
    end_latitude: float
    end_longitude: float
    distance_m: float
    max_speed_kmh: float
    average_speed_kmh: float
    start_odometer_m: float
    end_odometer_m: float

    @property
    def duration_s(self) -> float:
        return (self.end_time - self.start_time).total_seconds()


@dataclass(frozen=True, slots=True)
class Stop:
    start_time: datetime
    end_time: datetime
    latitude: float
    longitude: float
    odometer_m: float

    @property
    def duration_s(self) -> float:
        return (self.end_time - self.start_time).total_seconds()


@dataclass(frozen=True, slots=True)
class Event:
    time: datetime
    type: str
    latitude: float
    longitude: float
    geofence_id: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


Output = Trip | Stop | Event
