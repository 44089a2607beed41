"""Fieldtrack JSON: our own schema for phone apps uploading positions over MQTT.

The gateway routes ``fieldtrack/<device id>/position`` here with ``session.unique_id`` set to
``<device id>``. The schema below is written to be pasted into the README as it is.

### Fieldtrack JSON over MQTT

Publish to `fieldtrack/<device id>/position` with QoS 1. The payload is UTF-8 JSON: one position
object, or an array of them (a buffer uploaded after a dead zone), at most 10,000 positions and
1 MiB per message.

| Field | Type | Required | Meaning |
|---|---|---|---|
| `time` | string or number | yes | Fix time: ISO 8601 with a zone, or Unix epoch seconds or milliseconds |
| `lat` | number | yes | Latitude, WGS 84 degrees, -90 to 90 |
| `lon` | number | yes | Longitude, WGS 84 degrees, -180 to 180 |
| `speed_kmh` | number | no | Speed in km/h; negative means unknown |
| `course_deg` | number | no | Heading in degrees clockwise from north; negative means unknown |
| `altitude_m` | number | no | Altitude in metres above sea level |
| `accuracy_m` | number | no | Horizontal accuracy (radius) in metres; negative means unknown |
| `hdop` | number | no | Horizontal dilution of precision; negative means unknown |
| `valid` | boolean | no | `false` when the fix should not be trusted (default `true`) |
| `battery_pct` | number | no | Battery level, 0 to 100; negative means unknown |
| `mock` | boolean | no | `true` when the OS reports the fix came from a mock location provider |
| `id` | string | no | Device id; if present it must equal the id in the topic (one topic, one device) |
| `attributes` | object | no | Anything else, stored with the position |

`time` strings need a zone: `2024-05-01T09:30:00Z` or `2024-05-01T11:30:00.250+02:00`. Epoch
numbers from 100,000,000,000 up are read as milliseconds, smaller ones as seconds. `attributes`
names are non-empty strings and values any JSON; the fields above win over an attribute of the
same name. `null` means the same as leaving an optional field out.

Unknown top-level fields are refused, so a misspelt field (`speed` for `speed_kmh`) is reported
instead of silently lost: put extra data in `attributes`. A message with any invalid position (a
time without a zone, a coordinate out of range, a number that is not finite, a wrong type) is
refused whole: it is logged, counted as malformed and acknowledged, and nothing in it is stored.

Example, two buffered positions:

```json
[
  {"time": "2024-05-01T09:30:00Z", "lat": 52.52001, "lon": 13.40495, "speed_kmh": 32.5,
   "course_deg": 270, "accuracy_m": 8, "battery_pct": 76, "mock": false},
  {"time": 1714555860, "lat": 52.52101, "lon": 13.40102, "accuracy_m": 12,
   "attributes": {"visit_id": "V-1042", "activity": "in_vehicle"}}
]
```
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from protocols import keys
from protocols.base import Protocol, whole_message
from protocols.json_fields import MAX_PAYLOAD, epoch, finite_number, load
from protocols.model import Decoded, DecodeError, Position, Session

NAME = "json"
MAX_POSITIONS = 10_000
# Epoch numbers at or above this are milliseconds: 1e11 s is the year 5138, 1e11 ms is 1973.
MILLISECONDS_FROM = 10**11


class _Refused(ValueError):
    """A field problem; ``decode`` turns it into a DecodeError naming the position."""


def decode(frame: bytes, session: Session) -> Decoded:
    root = load(frame, protocol=NAME)
    items = root if isinstance(root, list) else [root]
    if len(items) > MAX_POSITIONS:
        raise DecodeError(f"{NAME}: {len(items)} positions in one payload (at most {MAX_POSITIONS})", frame)
    positions: list[Position] = []
    for index, item in enumerate(items):
        try:
            positions.append(_position(item, session.unique_id))
        except _Refused as exc:
            where = f"position {index}: " if isinstance(root, list) else ""
            raise DecodeError(f"{NAME}: {where}{exc}", frame) from None
    ids = [p.unique_id for p in positions if p.unique_id]
    return Decoded(positions=positions, unique_id=session.unique_id or (ids[0] if ids else None))


def _position(item: Any, session_id: str | None) -> Position:
    if not isinstance(item, dict):
        raise _Refused("not a JSON object")
    unknown = sorted(item.keys() - _FIELDS.keys() - _REQUIRED)
    if unknown:
        raise _Refused(f"unknown field {unknown[0][:40]!r} (extra data goes in 'attributes')")
    for name in sorted(_REQUIRED):
        if item.get(name) is None:
            raise _Refused(f"{name} is required")
    lat, lon = _number(item, "lat"), _number(item, "lon")
    # The ``not`` form also refuses NaN, should one ever get past the parser.
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise _Refused(f"coordinate out of range ({lat}, {lon})")
    p = Position(fix_time=_time(item["time"]), latitude=lat, longitude=lon)
    p.unique_id = _device_id(item.get("id"), session_id)
    extra = item.get("attributes")
    if extra is not None:
        p.attributes.update(_attributes(extra))
    for name, read in _FIELDS.items():
        if item.get(name) is not None:
            read(p, item)
    return p


def _number(item: dict[str, Any], name: str) -> float:
    value = finite_number(item[name])
    if value is None:
        raise _Refused(f"{name} is not a finite number")
    return value


def _flag(item: dict[str, Any], name: str) -> bool:
    value = item[name]
    if not isinstance(value, bool):
        raise _Refused(f"{name} is not true/false")
    return value


def _unknown_if_negative(value: float) -> float | None:
    # Android and iOS both report "no value" as -1 (speed, course, accuracy, battery level).
    return value if value >= 0 else None


def _time(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise _Refused(f"time {value[:40]!r} is not ISO 8601") from None
        if when.tzinfo is None:
            raise _Refused(f"time {value[:40]!r} has no zone (add Z or an offset)")
        try:
            return when.astimezone(UTC)
        except (OverflowError, ValueError):
            raise _Refused(f"time {value[:40]!r} is out of range") from None
    number = finite_number(value)
    if number is None or number < 0:
        raise _Refused("time is neither an ISO 8601 string nor a non-negative epoch number")
    seconds = number / 1000 if number >= MILLISECONDS_FROM else number
    try:
        return epoch(seconds, b"", what="time")
    except DecodeError as exc:
        raise _Refused(str(exc)) from None


def _device_id(value: Any, session_id: str | None) -> str | None:
    if value is None:
        return session_id
    if not isinstance(value, str) or not value.strip():
        raise _Refused("id is not a non-empty string")
    if session_id is not None and value != session_id:
        # One topic is one device: a payload naming another device is a misconfigured app.
        raise _Refused(f"id {value[:40]!r} is not the topic's device {session_id[:40]!r}")
    return value


def _attributes(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Refused("attributes is not a JSON object")
    for name in value:
        if not name.strip():
            raise _Refused("attributes has an empty name")
    return dict(value)


# --- optional fields: name -> how it sets the position --------------------------------------


def _set_speed(p: Position, item: dict[str, Any]) -> None:
    p.speed_kmh = _unknown_if_negative(_number(item, "speed_kmh"))


def _set_course(p: Position, item: dict[str, Any]) -> None:
    course = _unknown_if_negative(_number(item, "course_deg"))
    p.course_deg = None if course is None else math.fmod(course, 360)


def _set_altitude(p: Position, item: dict[str, Any]) -> None:
    p.altitude_m = _number(item, "altitude_m")


def _set_accuracy(p: Position, item: dict[str, Any]) -> None:
    p.accuracy_m = _unknown_if_negative(_number(item, "accuracy_m"))


def _set_hdop(p: Position, item: dict[str, Any]) -> None:
    p.hdop = _unknown_if_negative(_number(item, "hdop"))


def _set_valid(p: Position, item: dict[str, Any]) -> None:
    p.valid = _flag(item, "valid")


def _set_battery(p: Position, item: dict[str, Any]) -> None:
    level = _number(item, "battery_pct")
    if level > 100:
        raise _Refused(f"battery_pct {level} is over 100")
    if level >= 0:
        p.attributes[keys.BATTERY_PCT] = int(level) if level.is_integer() else level
    else:
        p.attributes.pop(keys.BATTERY_PCT, None)  # unknown: an attribute must not fake a value


def _set_mock(p: Position, item: dict[str, Any]) -> None:
    p.attributes[keys.MOCK] = _flag(item, "mock")


def _checked_elsewhere(p: Position, item: dict[str, Any]) -> None:
    pass


_REQUIRED = frozenset({"time", "lat", "lon"})
_FIELDS: dict[str, Callable[[Position, dict[str, Any]], None]] = {
    "speed_kmh": _set_speed,
    "course_deg": _set_course,
    "altitude_m": _set_altitude,
    "accuracy_m": _set_accuracy,
    "hdop": _set_hdop,
    "valid": _set_valid,
    "battery_pct": _set_battery,
    "mock": _set_mock,  # after attributes, so an app's attribute cannot clear the OS's flag
    "id": _checked_elsewhere,
    "attributes": _checked_elsewhere,
}


PROTOCOL = Protocol(
    name=NAME,
    transports=("mqtt",),
    default_port=0,  # no port of its own: phones publish through the MQTT broker
    next_frame=whole_message,
    decode=decode,
    max_frame=MAX_PAYLOAD,
)


# --- encoder (simulators, tests): what a phone app publishes ----------------------------------


def encode_position(position: Position) -> dict[str, Any]:
    """One position as a schema object (``None`` fields left out); see :func:`encode`."""
    item: dict[str, Any] = {
        "time": position.fix_time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "lat": position.latitude,
        "lon": position.longitude,
    }
    for name, value in (("speed_kmh", position.speed_kmh), ("course_deg", position.course_deg),
                        ("altitude_m", position.altitude_m), ("accuracy_m", position.accuracy_m),
                        ("hdop", position.hdop)):
        if value is not None:
            item[name] = value
    if not position.valid:
        item["valid"] = False
    attributes = dict(position.attributes)
    battery = attributes.pop(keys.BATTERY_PCT, None)
    if battery is not None:
        item["battery_pct"] = battery
    mock = attributes.pop(keys.MOCK, None)
    if isinstance(mock, bool):
        item["mock"] = mock
    if position.unique_id is not None:
        item["id"] = position.unique_id
    if attributes:
        item["attributes"] = attributes
    return item


def encode(positions: list[Position]) -> bytes:
    """The payload for ``fieldtrack/<id>/position``: one object, or an array for a buffer."""
    if not positions:
        raise ValueError("nothing to encode")
    items = [encode_position(p) for p in positions]
    return json.dumps(items[0] if len(items) == 1 else items, separators=(",", ":")).encode()
