"""Decoded positions to :class:`~processors.fix.Fix`: used by tests and simulators that feed the
processors without a database, with the same attribute reading the runner applies to stored rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from processors.fix import Fix
from protocols import keys
from protocols.model import Position


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def fix_from_parts(time: datetime, latitude: float, longitude: float, valid: bool,
                   speed_kmh: float | None, course_deg: float | None, accuracy_m: float | None,
                   hdop: float | None, altitude_m: float | None, attributes: dict[str, Any],
                   key: int = 0, server_time: datetime | None = None) -> Fix:
    ignition = attributes.get(keys.IGNITION)
    alarm = attributes.get(keys.ALARM)
    return Fix(
        time=time, latitude=latitude, longitude=longitude, valid=valid, speed_kmh=speed_kmh,
        course_deg=course_deg, accuracy_m=accuracy_m, hdop=hdop, altitude_m=altitude_m,
        ignition=ignition if isinstance(ignition, bool) else None,
        device_odometer_m=_float(attributes.get(keys.ODOMETER_M)),
        alarm=str(alarm) if alarm not in (None, "") else None,
        mock=attributes.get(keys.MOCK) is True,
        server_time=server_time, key=key, attributes=attributes,
    )


def fix_from_position(position: Position, key: int = 0, server_time: datetime | None = None) -> Fix | None:
    """``None`` for a status report without any location: there is nothing to process."""
    if position.latitude is None or position.longitude is None:
        return None
    return fix_from_parts(position.fix_time, position.latitude, position.longitude, position.valid,
                          position.speed_kmh, position.course_deg, position.accuracy_m, position.hdop,
                          position.altitude_m, position.attributes, key, server_time)
