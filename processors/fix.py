"""What the processors see of a stored position.

Processors do no I/O and must not depend on storage, so the runner converts each stored row into a
:class:`Fix`. ``key`` is the row's fingerprint: together with ``time`` it gives every position of a
device one total order, so replaying stored positions always steps them in the same sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Fix:
    time: datetime
    latitude: float
    longitude: float
    valid: bool = True
    speed_kmh: float | None = None
    course_deg: float | None = None
    accuracy_m: float | None = None
    hdop: float | None = None
    altitude_m: float | None = None
    # Device-reported values (Traccar keys in the stored attributes), when present.
    ignition: bool | None = None
    device_odometer_m: float | None = None
    alarm: str | None = None
    # The phone said the fix came from a mock-location provider.
    mock: bool = False
    # When the server received it: a fix far in the device's future is judged against this.
    server_time: datetime | None = None
    key: int = 0
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def order(self) -> tuple[datetime, int]:
        return (self.time, self.key)
