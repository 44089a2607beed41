"""Status-only reports (heartbeat, alarm without fix) get the device's last known location.

Traccar does the same and marks them ``outdated``; keeping the location makes the latest-position
view and maps useful, while ``valid = False`` keeps them out of distance and trip maths.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.keys import OUTDATED
from protocols.model import Position


@dataclass(frozen=True, slots=True)
class LastLocation:
    latitude: float
    longitude: float
    altitude_m: float | None = None


def step(state: LastLocation | None, position: Position) -> tuple[LastLocation | None, Position]:
    if position.latitude is not None and position.longitude is not None:
        return LastLocation(position.latitude, position.longitude, position.altitude_m), position
    if state is not None:
        position.latitude = state.latitude
        position.longitude = state.longitude
        position.altitude_m = position.altitude_m if position.altitude_m is not None else state.altitude_m
        position.valid = False
        position.attributes[OUTDATED] = True
    return state, position
