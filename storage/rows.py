"""The stored form of a position and its content fingerprint (the dedup key)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from protocols.model import Position

COLUMNS = (
    "device_id", "fix_time", "fingerprint", "server_time", "device_time", "latitude", "longitude",
    "valid", "speed_kmh", "course_deg", "altitude_m", "accuracy_m", "hdop", "protocol", "attributes",
)
COPY_TYPES = (
    "int8", "timestamptz", "int8", "timestamptz", "timestamptz", "float8", "float8",
    "bool", "float4", "float4", "float4", "float4", "float4", "text", "text",
)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def attributes_json(attributes: dict[str, Any]) -> str:
    # jsonb refuses NUL and lone UTF-16 surrogates, which a broken device can put in any text field,
    # and NaN/Infinity, which JSON has no words for.
    try:
        text = json.dumps(attributes, sort_keys=True, separators=(",", ":"), default=_json_default,
                          ensure_ascii=False, allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(attributes), sort_keys=True, separators=(",", ":"),
                          default=_json_default, ensure_ascii=False)
    return text.replace("\\u0000", "").encode("utf-8", "replace").decode("utf-8")


@dataclass(slots=True)
class StoredPosition:
    """A decoded position stamped with its device and arrival time, ready to store."""

    device_id: int
    unique_id: str
    protocol: str
    server_time: datetime
    position: Position

    def fingerprint(self, attributes: str | None = None) -> int:
        """64-bit hash of what the device reported: a resend hashes the same, a new report not.

        Stable across processes (unlike ``hash()``), since a resend may reach a restarted server.
        """
        p = self.position
        if attributes is None:
            attributes = attributes_json(p.attributes)
        key = (f"{p.fix_time.timestamp()}|{p.latitude}|{p.longitude}|{p.valid}|{p.speed_kmh}|"
               f"{p.course_deg}|{p.altitude_m}|{p.accuracy_m}|{p.hdop}|{attributes}")
        return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)

    def row(self) -> tuple[Any, ...]:
        p = self.position
        attributes = attributes_json(p.attributes)
        return (
            self.device_id, p.fix_time, self.fingerprint(attributes), self.server_time, p.device_time,
            p.latitude, p.longitude, p.valid, p.speed_kmh, p.course_deg, p.altitude_m, p.accuracy_m,
            p.hdop, self.protocol, attributes,
        )

    def to_json(self) -> dict[str, Any]:
        p = self.position
        return {
            "device_id": self.device_id,
            "unique_id": self.unique_id,
            "protocol": self.protocol,
            "server_time": self.server_time.isoformat(),
            "fix_time": p.fix_time.isoformat(),
            "device_time": p.device_time.isoformat() if p.device_time else None,
            "latitude": p.latitude,
            "longitude": p.longitude,
            "valid": p.valid,
            "speed_kmh": p.speed_kmh,
            "course_deg": p.course_deg,
            "altitude_m": p.altitude_m,
            "accuracy_m": p.accuracy_m,
            "hdop": p.hdop,
            "attributes": json.loads(attributes_json(p.attributes)),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> StoredPosition:
        device_time = doc.get("device_time")
        position = Position(
            fix_time=datetime.fromisoformat(doc["fix_time"]),
            latitude=doc["latitude"],
            longitude=doc["longitude"],
            valid=doc["valid"],
            speed_kmh=doc["speed_kmh"],
            course_deg=doc["course_deg"],
            altitude_m=doc["altitude_m"],
            accuracy_m=doc["accuracy_m"],
            hdop=doc["hdop"],
            device_time=datetime.fromisoformat(device_time) if device_time else None,
            unique_id=doc["unique_id"],
            attributes=doc["attributes"],
        )
        return cls(
            device_id=doc["device_id"],
            unique_id=doc["unique_id"],
            protocol=doc["protocol"],
            server_time=datetime.fromisoformat(doc["server_time"]),
            position=position,
        )
