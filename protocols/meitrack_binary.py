"""Meitrack binary reports: CCC (fixed 52-byte records) and CCE (parameter lists).

Both are little-endian and count time in seconds from 2000-01-01 UTC (Meitrack GPRS protocol,
"CCC" and "CCE" sections; field meanings as Traccar reads them, attribute names through
:func:`protocols.keys.from_traccar`).

CCE payload::

    remaining cache (4) | record count (2) | record...
    record = length (2, counts the bytes after it) | index (2)
             | n1 (1) [id value(1)]... | n2 (1) [id value(2)]... | n4 (1) [id value(4)]...
             | nv (1) [id length(1) value]...

An id whose first byte is 0xFE is two bytes long (0xFE69 ...). Ids we do not know are skipped.

CCC payload: version (2) | record length (2) | remaining cache (4) | records of that length.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from protocols import keys
from protocols.model import DecodeError, Position
from protocols.text_fields import cell_tower

__all__ = ["ALARMS", "add_event", "decode_ccc", "decode_cce", "located"]

EPOCH_2000 = datetime(2000, 1, 1, tzinfo=UTC)
CCC_RECORD = struct.Struct("<BiiIBBBHHHhIIHHHHHHHHI")  # 52 bytes, Meitrack "CCC" record layout

# Meitrack event codes (the "Event Code" table, shared by AAA, CCC and CCE) that are alarms,
# named in Traccar's alarm vocabulary.
ALARMS: dict[int, str] = {
    1: "sos",
    17: "lowBattery",
    18: "lowPower",
    19: "overspeed",
    20: "geofenceEnter",
    21: "geofenceExit",
    22: "powerRestored",
    23: "powerCut",
    36: "tow",
    44: "jamming",
    78: "accident",
    90: "cornering",
    91: "cornering",
    129: "braking",
    130: "acceleration",
    135: "fatigueDriving",
}


def add_event(p: Position, event: int) -> None:
    p.attributes[keys.EVENT] = event
    if event in ALARMS:
        p.attributes[keys.ALARM] = ALARMS[event]


def located(p: Position, lat: float, lon: float) -> None:
    """Exactly 0/0 is a tracker without any fix yet, left empty for the gateway to fill. So is a
    binary record off the globe: refusing it would refuse (and never ack) its whole batch."""
    if (lat == 0 and lon == 0) or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        p.latitude = p.longitude = None
        p.valid = False
    else:
        p.latitude, p.longitude = lat, lon


class _Cursor:
    """Little-endian reads over ``data[pos:end]``; running short raises DecodeError."""

    __slots__ = ("data", "end", "frame", "pos")

    def __init__(self, data: bytes, frame: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data, self.frame, self.pos = data, frame, pos
        self.end = len(data) if end is None else end

    def take(self, n: int) -> bytes:
        if self.pos + n > self.end:
            raise DecodeError(f"meitrack: binary report truncated at byte {self.pos}", self.frame)
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "little")

    def param_id(self) -> int:
        first = self.uint(1)
        return (first << 8) | self.uint(1) if first == 0xFE else first


# --- CCC ---------------------------------------------------------------------------------------


def decode_ccc(payload: bytes, frame: bytes, unique_id: str, *, strict: bool) -> list[Position]:
    cur = _Cursor(payload, frame)
    _version, size, _remaining = struct.unpack("<HHI", cur.take(8))
    if size < CCC_RECORD.size:
        raise DecodeError(f"meitrack: CCC record length {size} < {CCC_RECORD.size}", frame)
    body = len(payload) - cur.pos
    if strict and body % size:
        raise DecodeError(f"meitrack: CCC data of {body} bytes is no whole number of records", frame)
    positions = []
    for _ in range(body // size):
        record = cur.take(size)
        (event, lat, lon, seconds, fix, sats, rssi, speed, course, hdop, altitude, odometer, runtime,
         mcc, mnc, lac, cid, status, adc1, battery, power, _geofence) = CCC_RECORD.unpack_from(record)
        at = EPOCH_2000 + timedelta(seconds=seconds)
        p = Position(fix_time=at, device_time=at, latitude=None, longitude=None, valid=fix == 1,
                     speed_kmh=float(speed), course_deg=float(course) if course <= 360 else None,
                     altitude_m=float(altitude), hdop=hdop / 10, unique_id=unique_id)
        located(p, lat / 1e6, lon / 1e6)
        add_event(p, event)
        a = p.attributes
        a[keys.SATELLITES] = sats
        a[keys.ODOMETER_M] = odometer
        a["runtime"] = runtime
        a[keys.STATUS] = status
        a["adc1"] = adc1
        a[keys.BATTERY_V] = battery / 100
        # Traccar keeps the raw number; it reads as hundredths of a volt like the battery
        # (1218 on a 12 V vehicle), so it is stored in volts here.
        a[keys.POWER_V] = power / 100
        if mcc:
            a[keys.CELL_TOWERS] = [cell_tower(mcc, mnc, lac, cid, rssi)]
        positions.append(p)
    return positions


# --- CCE ---------------------------------------------------------------------------------------

Setter = Callable[[Position, int], None]


def _attr(key: str, divisor: int = 1) -> Setter:
    def put(p: Position, value: int) -> None:
        p.attributes[key] = value / divisor if divisor != 1 else value
    return put


def _signed(bits: int, then: Setter) -> Setter:
    def put(p: Position, value: int) -> None:
        then(p, value - (1 << bits) if value >= 1 << (bits - 1) else value)
    return put


def _valid(p: Position, v: int) -> None:
    p.valid = v > 0


def _lock(p: Position, v: int) -> None:
    if v:  # 0: no lock fitted; 1 unlocked, 2 locked
        p.attributes["lock"] = v == 2


def _speed(p: Position, v: int) -> None:
    p.speed_kmh = float(v)


def _course(p: Position, v: int) -> None:
    p.course_deg = float(v) if v <= 360 else None


def _hdop(p: Position, v: int) -> None:
    p.hdop = v / 10  # tenths, as in CCC (11 is an HDOP of 1.1)


def _altitude(p: Position, v: int) -> None:
    p.altitude_m = float(v)


def _event(p: Position, v: int) -> None:
    add_event(p, v)


def _time(p: Position, v: int) -> None:
    p.fix_time = p.device_time = EPOCH_2000 + timedelta(seconds=v)


def _latitude(p: Position, v: int) -> None:
    p.latitude = v / 1e6  # checked with the longitude once the record is read


def _longitude(p: Position, v: int) -> None:
    p.longitude = v / 1e6


def _driver(p: Position, v: int) -> None:
    p.attributes[keys.DRIVER_UNIQUE_ID] = str(v)


def _engine_minutes(p: Position, v: int) -> None:
    p.attributes[keys.ENGINE_HOURS_S] = v * 60


ONE_BYTE: dict[int, Setter] = {
    0x01: _event,
    0x05: _valid,
    0x06: _attr(keys.SATELLITES),
    0x07: _attr(keys.RSSI),
    0x14: _attr(keys.OUTPUT),
    0x15: _attr(keys.INPUT),
    0x47: _lock,
    0x97: _attr("throttle"),
    0x9D: _attr(keys.FUEL_PCT),
    0xFE69: _attr(keys.BATTERY_PCT),
}
TWO_BYTES: dict[int, Setter] = {
    0x08: _speed,
    0x09: _course,
    0x0A: _hdop,
    0x0B: _signed(16, _altitude),
    0x16: _attr("adc1", 100),
    0x17: _attr("adc2", 100),
    0x19: _attr(keys.BATTERY_V, 100),
    0x1A: _attr(keys.POWER_V, 100),
    0x29: _attr(keys.FUEL_PCT, 100),
    0x40: _event,
    0x91: _attr(keys.OBD_SPEED_KMH),
    0x92: _attr(keys.OBD_SPEED_KMH),
    0x98: _attr("fuel_used"),
    0x99: _attr(keys.RPM),
    0x9C: _attr("coolant_temp"),
    0x9F: _attr("temp1_c"),
    0xC9: _attr("fuel_consumption"),
}
FOUR_BYTES: dict[int, Setter] = {
    0x02: _signed(32, _latitude),
    0x03: _signed(32, _longitude),
    0x04: _time,
    0x0C: _attr(keys.ODOMETER_M),
    0x0D: _attr("runtime"),
    0x25: _driver,
    0x9B: _attr("obd_odometer"),
    0xA0: _attr("fuel_used", 1000),
    0xA2: _attr("fuel_consumption", 100),
    0xFEF4: _engine_minutes,
}

_CELL_IDS = frozenset({0x0E, 0x0F, 0x10, 0x12, 0x13})
_WIFI_IDS = frozenset(range(0x1D, 0x26))
_TEMP_IDS = range(0x2A, 0x32)


def _variable(p: Position, pid: int, v: bytes) -> None:
    """One variable-length parameter; ``v`` is exactly its declared bytes. A value too short for
    the layout we know is another firmware's variant, skipped: refusing it would refuse (and
    never ack) the whole batch, and the checksum already vouches for the bytes."""
    a = p.attributes
    try:
        if pid in _CELL_IDS:
            mcc, mnc, lac, cid, rssi = struct.unpack_from("<HHHIh", v)
            a.setdefault(keys.CELL_TOWERS, []).append(cell_tower(mcc, mnc, lac, cid, rssi))
        elif pid in _WIFI_IDS:
            (rssi,) = struct.unpack_from("<h", v, 6)
            a.setdefault(keys.WIFI, []).append({"mac": v[:6].hex(":"), "rssi": rssi})
        elif pid in _TEMP_IDS:  # label byte, then hundredths of a degree
            a[f"temp{pid - 0x2A}_c"] = struct.unpack_from("<h", v, 1)[0] / 100
        elif pid == 0xFE31:
            _camera_alarm(p, v)
        elif pid == 0xFE73:
            _ble_sensor(p, v)
        elif pid == 0xFEA8:
            # Up to three batteries: (present flag, level %) each, then an alert byte.
            for k, (present, level) in enumerate(struct.iter_unpack("BB", v[:6]), start=1):
                if present:
                    a[keys.BATTERY_PCT if k == 1 else f"battery{k}_level"] = level
    except struct.error:
        return


def _camera_alarm(p: Position, v: bytes) -> None:
    """Alarm protocol, alarm type, then (protocol 2) the name of the photo the device took."""
    protocol, alarm_type = struct.unpack_from("BB", v)
    p.attributes["alarm_type"] = alarm_type
    name = v[2:]
    if protocol == 2 and len(name) > 1 and all(0x20 < b < 0x7F for b in name):
        text = name.decode("ascii")
        day = text[:8]
        # Traccar files photos under a YYYY-MM-DD folder taken from the name's date.
        folder = f"{day[:4]}-{day[4:6]}-{day[6:8]}" if day.isdigit() else day
        p.attributes["image"] = f"{folder}/{text}"


def _ble_sensor(p: Position, v: bytes) -> None:
    """Temperature/humidity tag: version, name, MAC, battery, then 1/256 degree and % values."""
    (size,) = struct.unpack_from("B", v, 1)
    name = v[2 : 2 + size]
    battery, temp, humidity = struct.unpack_from("<Bhh", v, 2 + size + 6)
    a = p.attributes
    a["tag_name"] = name.decode("latin-1")
    a["tag_battery"] = battery
    a["tag_temp"] = temp / 256
    a["tag_humidity"] = humidity / 256


_FIXED_GROUPS: tuple[tuple[int, dict[int, Setter]], ...] = ((1, ONE_BYTE), (2, TWO_BYTES), (4, FOUR_BYTES))


def _cce_record(cur: _Cursor, unique_id: str, now: datetime) -> Position:
    p = Position(fix_time=now, latitude=None, longitude=None, valid=False, unique_id=unique_id)
    cur.take(2)  # record index
    for width, table in _FIXED_GROUPS:
        for _ in range(cur.uint(1)):
            pid = cur.param_id()
            value = cur.uint(width)
            setter = table.get(pid)
            if setter is not None:
                setter(p, value)
    for _ in range(cur.uint(1)):
        pid = cur.param_id()
        value_bytes = cur.take(cur.uint(1))
        _variable(p, pid, value_bytes)
    if p.latitude is None or p.longitude is None:
        p.latitude = p.longitude = None  # half a location is none
    else:
        located(p, p.latitude, p.longitude)
    return p


def decode_cce(payload: bytes, frame: bytes, unique_id: str, now: datetime, *,
               strict: bool) -> tuple[int, list[Position]]:
    """The records of a CCE report and the record count the device announced (for the ack)."""
    cur = _Cursor(payload, frame)
    _remaining, count = struct.unpack("<IH", cur.take(6))
    positions = []
    for _ in range(count):
        size = cur.uint(2)
        end = cur.pos + size
        if end > len(payload):
            raise DecodeError(f"meitrack: CCE record of {size} bytes past the end", frame)
        # Parameters stay inside their record; bytes the record declares beyond them are
        # skipped (Traccar's first CCE sample has four such bytes in every record).
        positions.append(_cce_record(_Cursor(payload, frame, cur.pos, end), unique_id, now))
        cur.pos = end
    if strict and cur.pos != len(payload):
        raise DecodeError(f"meitrack: {len(payload) - cur.pos} bytes after the CCE records", frame)
    return count, positions
