"""OsmAnd / Traccar Client HTTP protocol, port 5055.

Phones report one fix per HTTP request. The gateway hands ``decode`` either the request target of
a GET (``/?id=123&lat=..&lon=..&timestamp=..``) or the POST body, which is one of:

- a query-encoded form (``id=..&lat=..``), read exactly like the GET parameters;
- a JSON document in the Transistorsoft background-geolocation format
  (``{"location": {...} | [{...}, ...], "device_id": "..."}``), as sent by Traccar Client 8+;
- a flat JSON object of the same parameters as the query form.

Parameter names and units follow the OsmAnd live-tracking spec as Traccar reads it: ``speed`` is
in knots (converted to km/h here), ``timestamp`` is unix seconds, unix milliseconds or an ISO /
``yyyy-MM-dd HH:mm:ss`` date (UTC). Unknown parameters are kept as attributes. The HTTP layer
answers 200 once stored, so ``reply`` is always ``None``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from protocols import keys
from protocols.base import Protocol, whole_message
from protocols.model import KNOT_KMH, Decoded, DecodeError, Position, Session, knots_to_kmh
from protocols.text_fields import cell_tower

MAX_BODY = 1 << 20  # the HTTP layer refuses larger bodies before they get here
_MAX_SPEED_KMH = knots_to_kmh(869)
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", re.ASCII)
_INTEGER = re.compile(r"[-+]?\d{1,18}", re.ASCII)
# Timestamps below 2^31 are seconds, larger ones milliseconds (Traccar's rule).
_SECONDS_LIMIT = 2**31 - 1


@dataclass(slots=True)
class _Report:
    """One fix being assembled from parameters (query, form or JSON)."""

    unique_id: str | None = None
    fix_time: datetime | None = None
    latitude: float | None = None
    longitude: float | None = None
    valid: bool = True
    speed_kmh: float | None = None
    course_deg: float | None = None
    altitude_m: float | None = None
    accuracy_m: float | None = None
    hdop: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def position(self) -> Position:
        lat, lon = self.latitude, self.longitude
        if lat is None or lon is None or (lat == 0 and lon == 0):
            # No fix (or the 0,0 that apps send without one): a status report, as in Traccar.
            lat = lon = None
        return Position(
            fix_time=self.fix_time or datetime.now(UTC),
            latitude=lat,
            longitude=lon,
            valid=self.valid,
            speed_kmh=self.speed_kmh,
            course_deg=self.course_deg,
            altitude_m=self.altitude_m,
            accuracy_m=self.accuracy_m,
            hdop=self.hdop,
            unique_id=self.unique_id,
            attributes=self.attributes,
        )


def decode(frame: bytes, session: Session) -> Decoded:
    if len(frame) > MAX_BODY:
        raise DecodeError("osmand request too large", frame)
    text = frame.strip()
    if not text:
        raise DecodeError("empty osmand request", frame)
    if text[:1] in (b"{", b"["):
        return _decode_json(text, frame)
    query = text.partition(b"?")[2] if text.startswith(b"/") else text
    pairs = parse_qsl(query.decode("utf-8", "replace"), keep_blank_values=True)
    report = _Report()
    for key, value in pairs:
        _apply(report, key, value, frame)
    return _result([report])


def _result(reports: list[_Report], unique_id: str | None = None) -> Decoded:
    """Positions only for identified reports: Traccar refuses a request without a device id."""
    ids = [r.unique_id for r in reports if r.unique_id]
    unique_id = unique_id or (ids[0] if ids else None)
    if unique_id is None:
        return Decoded()
    for r in reports:
        r.unique_id = r.unique_id or unique_id
    return Decoded(positions=[r.position() for r in reports], unique_id=unique_id)


# --- parameters (GET query, form body, flat JSON) -------------------------------------------


def _number(value: str, frame: bytes) -> float:
    if not _NUMBER.fullmatch(value):
        raise DecodeError(f"osmand: not a number: {value[:40]!r}", frame)
    number = float(value)
    if not math.isfinite(number):
        raise DecodeError("osmand: number out of range", frame)
    return number


def _set_id(r: _Report, value: str, frame: bytes) -> None:
    r.unique_id = value.strip() or r.unique_id


def _set_valid(r: _Report, value: str, frame: bytes) -> None:
    r.valid = value.lower() == "true" or value == "1"


def _set_time(r: _Report, value: str, frame: bytes) -> None:
    r.fix_time = _parse_time(value, frame)


def _set_lat(r: _Report, value: str, frame: bytes) -> None:
    r.latitude = _checked(_number(value, frame), 90, frame)


def _set_lon(r: _Report, value: str, frame: bytes) -> None:
    r.longitude = _checked(_number(value, frame), 180, frame)


def _set_location(r: _Report, value: str, frame: bytes) -> None:
    parts = value.split(",")
    if len(parts) != 2:
        raise DecodeError("osmand: location is not 'lat,lon'", frame)
    _set_lat(r, parts[0].strip(), frame)
    _set_lon(r, parts[1].strip(), frame)


def _set_speed(r: _Report, value: str, frame: bytes) -> None:
    r.speed_kmh = _speed(knots_to_kmh(_number(value, frame)))


def _set_course(r: _Report, value: str, frame: bytes) -> None:
    r.course_deg = _course(_number(value, frame))


def _set_altitude(r: _Report, value: str, frame: bytes) -> None:
    r.altitude_m = _altitude(_number(value, frame))


def _set_accuracy(r: _Report, value: str, frame: bytes) -> None:
    r.accuracy_m = _non_negative(_number(value, frame))


def _set_hdop(r: _Report, value: str, frame: bytes) -> None:
    r.hdop = _non_negative(_number(value, frame))


def _set_battery(r: _Report, value: str, frame: bytes) -> None:
    r.attributes[keys.BATTERY_PCT] = _number(value, frame)


def _set_driver(r: _Report, value: str, frame: bytes) -> None:
    r.attributes[keys.DRIVER_UNIQUE_ID] = value


def _add_cell(r: _Report, value: str, frame: bytes) -> None:
    # mcc,mnc,lac,cid[,rssi]
    parts = value.split(",")
    if len(parts) not in (4, 5) or not all(_INTEGER.fullmatch(p.strip()) for p in parts):
        raise DecodeError("osmand: cell is not 'mcc,mnc,lac,cid[,rssi]'", frame)
    # Parse what was checked: str.strip() also drops \x1c-\x1f, which int() would refuse.
    mcc, mnc, lac, cid, *rest = (int(p.strip()) for p in parts)
    tower = cell_tower(mcc, mnc, lac, cid, rest[0] if rest else None)
    r.attributes.setdefault(keys.CELL_TOWERS, []).append(tower)


def _add_wifi(r: _Report, value: str, frame: bytes) -> None:
    # mac (dashes or colons),rssi
    parts = value.split(",")
    if len(parts) != 2 or not _INTEGER.fullmatch(parts[1].strip()):
        raise DecodeError("osmand: wifi is not 'mac,rssi'", frame)
    access_point = {"mac": parts[0].strip().replace("-", ":"), "rssi": int(parts[1].strip())}
    r.attributes.setdefault(keys.WIFI, []).append(access_point)


_Setter = Callable[[_Report, str, bytes], None]
_PARAMETERS: dict[str, _Setter] = {
    "id": _set_id,
    "deviceid": _set_id,
    "device_id": _set_id,
    "valid": _set_valid,
    "timestamp": _set_time,
    "lat": _set_lat,
    "lon": _set_lon,
    "location": _set_location,
    "cell": _add_cell,
    "wifi": _add_wifi,
    "speed": _set_speed,
    "bearing": _set_course,
    "heading": _set_course,
    "altitude": _set_altitude,
    "accuracy": _set_accuracy,
    "hdop": _set_hdop,
    "batt": _set_battery,
    "driverUniqueId": _set_driver,
}


def _apply(r: _Report, key: str, value: str, frame: bytes) -> None:
    key = key.strip()
    if not key or value == "":
        return
    setter = _PARAMETERS.get(key)
    if setter is not None:
        setter(r, value, frame)
        return
    # Anything else (ignition, rpm, fuel, charge, mock, ...) is kept, typed as Traccar does.
    if _NUMBER.fullmatch(value) and math.isfinite(float(value)):
        _put_other(r.attributes, key, int(value) if _INTEGER.fullmatch(value) else float(value))
    elif value in ("true", "false"):
        _put_other(r.attributes, key, value == "true")
    else:
        _put_other(r.attributes, key, value)


def _put_other(attributes: dict[str, Any], key: str, value: Any) -> None:
    name, factor = keys.from_traccar(key)
    name = name.strip()
    if not name:
        return
    if factor != 1 and isinstance(value, int | float) and not isinstance(value, bool):
        value = value * factor
    attributes[name] = value


def _parse_time(value: str, frame: bytes) -> datetime:
    value = value.strip()
    try:
        if re.fullmatch(r"\d+(?:\.\d+)?", value, re.ASCII):
            stamp = float(value)
            if stamp >= _SECONDS_LIMIT:
                stamp /= 1000
            return datetime.fromtimestamp(stamp, UTC)
        # ISO 8601 ("2016-01-27T18:55:47Z") or "yyyy-MM-dd HH:mm:ss"; no zone means UTC.
        when = datetime.fromisoformat(value)
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise DecodeError(f"osmand: bad timestamp {value[:40]!r}", frame) from exc


def _checked(value: float, limit: float, frame: bytes) -> float:
    if abs(value) > limit:
        raise DecodeError("osmand: coordinate out of range", frame)
    return value


def _speed(kmh: float) -> float | None:
    # Apps send -1 for "unknown"; absurd values are dropped rather than stored.
    return kmh if 0 <= kmh <= _MAX_SPEED_KMH else None


def _course(degrees: float) -> float | None:
    return degrees % 360 if degrees >= 0 else None  # -1 = unknown heading


def _altitude(metres: float) -> float | None:
    return metres if -12262 <= metres <= 18000 else None


def _non_negative(value: float) -> float | None:
    return value if value >= 0 else None


# --- JSON (Transistorsoft background-geolocation, or flat parameters) -----------------------


def _decode_json(text: bytes, frame: bytes) -> Decoded:
    try:
        root = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise DecodeError("osmand: invalid JSON", frame) from exc
    if not isinstance(root, dict):
        raise DecodeError("osmand: JSON body is not an object", frame)
    if "location" not in root:
        report = _Report()
        for key, value in root.items():
            _apply(report, key, _as_parameter(value), frame)
        return _result([report])
    device = root.get("device_id", root.get("id"))
    unique_id = str(device).strip() if isinstance(device, str | int) and not isinstance(device, bool) else ""
    locations = root["location"]
    items: Iterable[Any] = locations if isinstance(locations, list) else [locations]
    reports = [_transistorsoft(item, frame) for item in items]
    if not unique_id:
        return Decoded()
    for r in reports:
        r.unique_id = unique_id
    return Decoded(positions=[r.position() for r in reports], unique_id=unique_id)


def _finite_float(text: str) -> float:
    # jsonb (and every consumer) refuses non-finite numbers; 1e999 parses to inf otherwise.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("non-finite number")
    return value


def _no_constant(text: str) -> float:
    raise ValueError(f"{text} is not JSON")


def _as_parameter(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int | float | str):
        return str(value)
    return json.dumps(value)


def _json_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _transistorsoft(location: Any, frame: bytes) -> _Report:
    if not isinstance(location, dict):
        raise DecodeError("osmand: location is not an object", frame)
    r = _Report()
    extras = location.get("extras")
    if isinstance(extras, dict):
        # The app's free-form extras first, so they can never override what the SDK measured.
        for key, value in extras.items():
            if isinstance(key, str) and key.strip() and value is not None:
                _put_other(r.attributes, key, value)
    timestamp = location.get("timestamp")
    if isinstance(timestamp, str | int) and not isinstance(timestamp, bool):
        r.fix_time = _parse_time(str(timestamp), frame)
    coords = location.get("coords")
    if isinstance(coords, dict):
        _read_coords(r, coords, frame)
    if isinstance(location.get("event"), str) and location["event"]:
        r.attributes[keys.EVENT] = location["event"]
    if isinstance(location.get("is_moving"), bool):
        r.attributes[keys.MOTION] = location["is_moving"]
    odometer = _json_number(location.get("odometer"))
    if odometer is not None:
        r.attributes[keys.ODOMETER_M] = odometer
    if isinstance(location.get("mock"), bool):
        # Kept verbatim: anti-cheat flags fixes from a mock location provider.
        r.attributes[keys.MOCK] = location["mock"]
    activity = location.get("activity")
    if isinstance(activity, dict) and isinstance(activity.get("type"), str):
        r.attributes[keys.ACTIVITY] = activity["type"]
    battery = location.get("battery")
    if isinstance(battery, dict):
        level = _json_number(battery.get("level"))
        if level is not None and 0 <= level <= 1:  # the SDK reports -1 when unknown
            r.attributes[keys.BATTERY_PCT] = round(level * 100, 1)
        if isinstance(battery.get("is_charging"), bool):
            r.attributes[keys.CHARGE] = battery["is_charging"]  # same key as the `charge` parameter
    return r


def _read_coords(r: _Report, coords: dict[str, Any], frame: bytes) -> None:
    lat, lon = _json_number(coords.get("latitude")), _json_number(coords.get("longitude"))
    if lat is not None and lon is not None:
        r.latitude = _checked(lat, 90, frame)
        r.longitude = _checked(lon, 180, frame)
    speed = _json_number(coords.get("speed"))  # metres per second
    if speed is not None:
        r.speed_kmh = _speed(speed * 3.6)
    heading = _json_number(coords.get("heading"))
    if heading is not None:
        r.course_deg = _course(heading)
    altitude = _json_number(coords.get("altitude"))
    if altitude is not None:
        r.altitude_m = _altitude(altitude)
    accuracy = _json_number(coords.get("accuracy"))
    if accuracy is not None:
        r.accuracy_m = _non_negative(accuracy)


PROTOCOL = Protocol(
    name="osmand",
    transports=("http",),
    default_port=5055,
    next_frame=whole_message,
    decode=decode,
    max_frame=MAX_BODY,
)


# --- encoder (simulators, tests): what Traccar Client / OsmAnd sends ---------------------------


def encode_query(
    unique_id: str,
    fix_time: datetime,
    lat: float,
    lon: float,
    *,
    speed_kmh: float | None = None,
    course_deg: float | None = None,
    altitude_m: float | None = None,
    accuracy_m: float | None = None,
    battery_pct: float | None = None,
    valid: bool = True,
    extra: dict[str, str | int | float | bool] | None = None,
) -> str:
    """The query string (without ``?``) of one report: GET ``/?<query>`` or POST it as a form.

    ``speed`` goes out in knots, as the app sends it; ``timestamp`` in unix seconds (milliseconds
    kept as a fraction; from 2038 whole milliseconds, as the decoder reads them). ``extra``
    parameters (e.g. ``mock``) are kept by the decoder as attributes.
    """
    stamp = fix_time.timestamp()
    if stamp >= _SECONDS_LIMIT:
        when = str(round(stamp * 1000))  # from 2038 on, seconds would read as milliseconds
    else:
        when = str(int(stamp)) if stamp.is_integer() else f"{stamp:.3f}"
    params: list[tuple[str, str]] = [
        ("id", unique_id),
        ("timestamp", when),
        ("lat", repr(float(lat))),
        ("lon", repr(float(lon))),
    ]
    optional = (("speed", None if speed_kmh is None else speed_kmh / KNOT_KMH), ("bearing", course_deg),
                ("altitude", altitude_m), ("accuracy", accuracy_m), ("batt", battery_pct))
    params += [(name, repr(float(value))) for name, value in optional if value is not None]
    if not valid:
        params.append(("valid", "false"))
    for name, value in (extra or {}).items():
        params.append((name, str(value).lower() if isinstance(value, bool) else str(value)))
    return urlencode(params)
