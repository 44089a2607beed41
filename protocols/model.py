"""Normalized messages every protocol decodes into.

Units are in the field names (km/h, degrees, metres); times are timezone-aware UTC. Decoders
never produce knots: convert with :func:`knots_to_kmh` at the edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

KNOT_KMH = 1.852
MPH_KMH = 1.609344


def knots_to_kmh(knots: float) -> float:
    return knots * KNOT_KMH


def mph_to_kmh(mph: float) -> float:
    return mph * MPH_KMH


@dataclass(slots=True)
class Position:
    """One fix (or one status report) from a device.

    ``latitude``/``longitude`` are ``None`` for status-only frames (heartbeat with battery,
    alarm without fix); the gateway fills them from the device's last known location and marks
    ``attributes["outdated"] = True``, as Traccar does.
    """

    fix_time: datetime
    latitude: float | None
    longitude: float | None
    valid: bool = True
    speed_kmh: float | None = None
    course_deg: float | None = None
    altitude_m: float | None = None
    accuracy_m: float | None = None
    hdop: float | None = None
    device_time: datetime | None = None
    # Set when the frame itself names the device (UDP, HTTP, protocols that repeat the IMEI).
    unique_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Decoded:
    """What one frame produced: positions to store and the bytes to answer with.

    The gateway sends ``reply`` only after ``positions`` are durable (committed or spooled),
    so an ack always means "stored". ``reject_reply`` is sent instead of ``reply`` when the
    device is identified but not registered (Teltonika answers ``00`` to an unknown IMEI).
    """

    positions: list[Position] = field(default_factory=list)
    reply: bytes | None = None
    unique_id: str | None = None
    reject_reply: bytes | None = None
    close: bool = False


@dataclass(slots=True)
class Session:
    """Per-connection (TCP) or per-peer (UDP) state a decoder may read and write.

    ``unique_id`` is the identity the device announced (login, IMEI handshake). ``state`` is
    private to the protocol module. ``config`` carries per-device decoder settings, e.g. the
    GT06 ``model`` override that changes how some packets are read.
    """

    transport: str = "tcp"
    unique_id: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)


class DecodeError(ValueError):
    """A malformed frame. Carries the offending bytes so the gateway can log them in hex."""

    def __init__(self, message: str, frame: bytes = b"") -> None:
        super().__init__(message)
        self.frame = bytes(frame)
