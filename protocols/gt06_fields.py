"""GT06 building blocks shared by the message handlers: a bounds-checked reader, the GPS, LBS and
status blocks, dates, and the alarm vocabularies.

Layouts follow the Concox GT06/GT06N protocol document and the clones Traccar supports (field
order and quirks learned from Traccar's ``Gt06ProtocolDecoder``). Every read is bounds-checked:
running off the end of a frame raises :class:`~protocols.model.DecodeError`, never IndexError.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from protocols import keys
from protocols.model import DecodeError, Position

# Coordinates are minutes * 30000, i.e. degrees * 1_800_000.
COORD_SCALE = 1_800_000.0
_MAX_SPEED_KMH = 869 * 1.852


def traccar_key(name: str) -> str:
    """Our attribute name for a Traccar vendor key (``tag1Temp`` -> ``tag1_temp``)."""
    return keys.from_traccar(name)[0]


GEOFENCE = traccar_key("geofence")
TEMP1 = traccar_key("temp1")
ADC1 = traccar_key("adc1")
EVENT_DATA = traccar_key("eventData")
CARD = traccar_key("card")


class Reader:
    """Big-endian cursor over one frame. ``remaining`` counts the trailer (serial, CRC, CRLF) too,
    as the vendor layouts are written against "bytes left before the 6-byte trailer"."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise DecodeError(f"gt06: frame too short (need {n} bytes at {self.pos})", self.data)
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def skip(self, n: int) -> None:
        self.take(n)

    def peek(self, offset: int = 0) -> int:
        at = self.pos + offset
        if at >= len(self.data):
            raise DecodeError("gt06: frame too short", self.data)
        return self.data[at]

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u24(self) -> int:
        return int.from_bytes(self.take(3), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def u32le(self) -> int:
        return int.from_bytes(self.take(4), "little")

    def i16(self) -> int:
        return int(struct.unpack(">h", self.take(2))[0])

    def i32(self) -> int:
        return int(struct.unpack(">i", self.take(4))[0])

    def i64(self) -> int:
        return int(struct.unpack(">q", self.take(8))[0])

    def text(self, n: int) -> str:
        return self.take(n).decode("ascii", errors="replace")


def bit(value: int, index: int) -> bool:
    return bool(value >> index & 1)


def bits(value: int, start: int, stop: int) -> int:
    """Bits ``start`` (inclusive) to ``stop`` (exclusive)."""
    return value >> start & ((1 << (stop - start)) - 1)


def status_only(when: datetime | None = None) -> Position:
    """A report without a fix: the gateway fills the last known location and marks it outdated."""
    at = when or datetime.now(UTC)
    return Position(fix_time=at, latitude=None, longitude=None, valid=False, device_time=at)


def make_time(parts: bytes | tuple[int, ...], tz: timedelta, frame: bytes) -> datetime:
    """yy mm dd hh mm ss in the device's clock (UTC unless the login announced a zone)."""
    y, mo, d, h, mi, s = parts
    try:
        local = datetime(2000 + y, mo, d, h, mi, s, tzinfo=UTC)
    except ValueError as exc:
        raise DecodeError(f"gt06: bad date {bytes(parts).hex()}", frame) from exc
    return local - tz


def read_time(r: Reader, tz: timedelta) -> datetime:
    return make_time(r.take(6), tz, r.data)


def read_bcd_time(r: Reader) -> datetime:
    """0x17/0x69 WiFi reports carry their time as BCD digits, always UTC."""
    raw = r.take(6)
    digits = raw.hex()
    if not digits.isdigit():
        raise DecodeError(f"gt06: bad BCD time {digits}", r.data)
    return make_time(tuple(int(digits[i : i + 2]) for i in range(0, 12, 2)), timedelta(0), r.data)


def add_alarm(p: Position, alarm: str | None) -> None:
    """Several alarms in one report are comma-joined (Traccar's convention), without repeats:
    the status byte and the alarm byte often both carry the same one."""
    if not alarm:
        return
    current = p.attributes.get(keys.ALARM)
    if not current:
        p.attributes[keys.ALARM] = alarm
    elif alarm not in str(current).split(","):
        p.attributes[keys.ALARM] = f"{current},{alarm}"


def apply_course_flags(p: Position, flags: int, lat_raw: int, lon_raw: int, frame: bytes) -> None:
    """Course/status word: bits 0-9 course, 10 north, 11 west, 12 fix valid, 14-15 ACC."""
    lat = lat_raw / COORD_SCALE
    lon = lon_raw / COORD_SCALE
    if lat > 90 or lon > 180:
        raise DecodeError(f"gt06: coordinates out of range ({lat}, {lon})", frame)
    course = bits(flags, 0, 10)
    p.course_deg = float(course) if course <= 360 else None
    p.valid = bit(flags, 12)
    p.latitude = lat if bit(flags, 10) else -lat
    p.longitude = -lon if bit(flags, 11) else lon
    if bit(flags, 14):
        p.attributes[keys.IGNITION] = bit(flags, 15)


def read_gps(
    r: Reader,
    p: Position,
    tz: timedelta,
    *,
    has_length: bool = False,
    has_satellites: bool = True,
    has_speed: bool = True,
    long_speed: bool = False,
    flags_first: bool = False,
) -> bool:
    """The GPS block: date, [length], [satellites], lat, lon, speed, course/status.

    Returns False when a length byte says the block is empty (no fix); the time is still set.
    """
    when = read_time(r, tz)
    p.fix_time = when
    p.device_time = p.device_time or when
    if has_length and r.u8() == 0:
        return False
    if has_satellites:
        p.attributes[keys.SATELLITES] = r.u8() & 0x0F
    lat_raw, lon_raw = r.u32(), r.u32()
    flags = r.u16() if flags_first else 0
    if has_speed:
        speed = r.u16() if long_speed else r.u8()
        p.speed_kmh = float(speed) if speed <= _MAX_SPEED_KMH else None
    if not flags_first:
        flags = r.u16()
    apply_course_flags(p, flags, lat_raw, lon_raw, r.data)
    return True


def add_cell(p: Position, mcc: int, mnc: int, lac: int, cid: int, rssi: int | None = None) -> None:
    if mcc == 0 and lac == 0 and cid == 0:
        return
    tower: dict[str, Any] = {"mcc": mcc, "mnc": mnc, "lac": lac, "cid": cid}
    if rssi is not None:
        tower["rssi"] = rssi
    p.attributes.setdefault(keys.CELL_TOWERS, []).append(tower)


def add_wifi(p: Position, mac: bytes, rssi: int | None = None) -> None:
    ap: dict[str, Any] = {"mac": ":".join(f"{b:02x}" for b in mac)}
    if rssi is not None:
        ap["rssi"] = rssi
    p.attributes.setdefault(keys.WIFI, []).append(ap)


class Variant(Enum):
    """Clone families told apart by header, type and length byte (no model configured)."""

    STANDARD = "standard"
    VXT01 = "vxt01"
    WANWAY_S20 = "wanway_s20"
    SR411_MINI = "sr411_mini"
    GT06E_CARD = "gt06e_card"
    BENWAY = "benway"
    S5 = "s5"
    SPACE10X = "space10x"
    OBD6 = "obd6"
    WETRUST = "wetrust"
    JC400 = "jc400"
    SL4X = "sl4x"
    SEEWORLD = "seeworld"
    RFID = "rfid"
    LW4G = "lw4g"
    GL21L = "gl21l"


# (type, length byte) -> variant, for 0x7878 frames.
_VARIANT_BY_LENGTH: dict[tuple[int, int], Variant] = {
    (0x12, 0x24): Variant.VXT01,
    (0x16, 0x24): Variant.VXT01,
    (0x24, 0x31): Variant.WANWAY_S20,
    (0x24, 0x2E): Variant.SR411_MINI,
    (0x12, 0x21): Variant.BENWAY,
    (0x12, 0x2B): Variant.S5,
    (0x13, 0x13): Variant.OBD6,
    (0x12, 0x29): Variant.WETRUST,
    (0x34, 0x37): Variant.SL4X,
    (0x31, 0x2A): Variant.SL4X,
    (0x32, 0x27): Variant.SL4X,
    (0x32, 0x29): Variant.SL4X,
    (0x22, 0x2F): Variant.SEEWORLD,
    (0x16, 0x26): Variant.SEEWORLD,
    (0xA3, 0x0C): Variant.SEEWORLD,
    (0xA3, 0x18): Variant.GL21L,
    (0x17, 0x28): Variant.RFID,
    (0xA2, 0x40): Variant.LW4G,
}


def detect_variant(frame: bytes) -> Variant:
    if frame[:2] != b"\x78\x78" or len(frame) < 4:
        return Variant.STANDARD
    length, kind = frame[2], frame[3]
    found = _VARIANT_BY_LENGTH.get((kind, length))
    if found is not None:
        return found
    if kind == 0x12 and length >= 0x71:
        return Variant.GT06E_CARD
    if kind == 0x19 and length >= 0x17:
        return Variant.SPACE10X
    if kind == 0x95 and frame[4:6] == b"\xff\xff":
        return Variant.JC400
    return Variant.STANDARD


# Terminal-information byte, bits 3-5 (GT06 status packet).
STATUS_ALARMS: dict[int, str] = {1: "vibration", 2: "powerCut", 3: "lowBattery", 4: "sos", 6: "geofence"}

NT_MODELS = frozenset({"NT11", "NT20", "NT26", "NT40", "NT46", "VL100", "XT40"})
VL_MODELS = frozenset({"VL103", "LL303", "VL512", "G18"})


def alarm_for(value: int, model: str) -> str | None:
    """The alarm byte of status packets; a few codes mean different things per vendor family."""
    lw = model.startswith("LW")
    sw = model == "SEEWORLD"
    vl = model in VL_MODELS
    by_model: dict[int, Callable[[], str]] = {
        0x09: lambda: "tow" if vl else "vibration",
        0x18: lambda: "accident" if lw else "removing",
        0x19: lambda: "hardAcceleration" if lw else "lowBattery",
        0x28: lambda: "hardCornering" if sw else "hardBraking",
        0x29: lambda: "accident" if sw else "hardAcceleration",
        0x30: lambda: "hardBraking" if vl else "jamming",
    }
    if value in by_model:
        return by_model[value]()
    return _ALARMS.get(value)


_ALARMS: dict[int, str] = {
    0x01: "sos",
    0x02: "powerCut",
    0x03: "vibration",
    0x04: "geofenceEnter",
    0x05: "geofenceExit",
    0x06: "overspeed",
    0x0E: "lowBattery",
    0x0F: "lowBattery",
    0x11: "powerOff",
    0x0C: "tampering",
    0x13: "tampering",
    0x25: "tampering",
    0x14: "door",
    0x1A: "hardBraking",
    0x27: "hardBraking",
    0x1B: "hardCornering",
    0x2A: "hardCornering",
    0x2B: "hardCornering",
    0x2E: "hardCornering",
    0x23: "fallDown",
    0x26: "hardAcceleration",
    0x2C: "accident",
}

# JC100/JC400 alarm packet (0x95) event codes.
EVENT_ALARMS: dict[int, str] = {
    0x0E: "lowPower",
    0x76: "temperature",
    0x80: "vibration",
    0x87: "overspeed",
    0x88: "powerCut",
    0x90: "hardAcceleration",
    0x91: "hardBraking",
    0x92: "hardCornering",
    0x93: "accident",
}

# Modular packet (0x70) event module codes.
MODULE_EVENT_ALARMS: dict[int, str] = {
    0x10: "door",
    0x12: "removing",
    0x14: "geofenceEnter",
    0x15: "geofenceExit",
    0x16: "temperature",
    0x1A: "lowBattery",
    0x1B: "overspeed",
    0x1C: "powerOn",
    0x1D: "powerOff",
    0x20: "vibration",
    0x21: "powerCut",
    0x23: "tampering",
}

# AZ735 alarm packet status byte.
AZ735_ALARMS: dict[int, str] = {0xA2: "lowBattery", 0xA3: "lowBattery", 0xA4: "general", 0xA5: "door"}


def read_status_byte(r: Reader, p: Position, variant: Variant) -> None:
    """Terminal information: bit 1 ACC, bit 2 charging, bit 7 oil/power cut, bits 3-5 alarm."""
    status = r.u8()
    p.attributes[keys.STATUS] = status
    p.attributes[keys.IGNITION] = bit(status, 1)
    p.attributes[keys.CHARGE] = bit(status, 2)
    p.attributes[keys.BLOCKED] = bit(status, 7)
    code = bits(status, 3, 6)
    if code == 7:
        add_alarm(p, "overspeed" if variant is Variant.VXT01 else "removing")
    else:
        add_alarm(p, STATUS_ALARMS.get(code))


CRLF = b"\r\n"


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16_x25(data: bytes) -> int:
    """CRC-16/X.25 (the "CRC-ITU" of the GT06 document): reflected 0x1021, init and xorout 0xFFFF."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFF


def build_reply(kind: int, serial: int, content: bytes = b"", *, extended: bool = False) -> bytes:
    """A server packet: start, length, protocol number, content, serial, CRC over length..serial."""
    length = 5 + len(content)
    size = length.to_bytes(2, "big") if extended else bytes([length])
    body = size + bytes([kind]) + content + (serial & 0xFFFF).to_bytes(2, "big")
    start = b"\x79\x79" if extended else b"\x78\x78"
    return start + body + crc16_x25(body).to_bytes(2, "big") + CRLF


@dataclass(slots=True)
class Msg:
    frame: bytes
    extended: bool
    length: int
    kind: int
    variant: Variant
    model: str
    tz: timedelta
    r: Reader

    @property
    def data_length(self) -> int:
        return self.length - 5

    @property
    def serial(self) -> int:
        # The information serial number always sits just before CRC and CRLF.
        return int.from_bytes(self.frame[-6:-4], "big") if len(self.frame) >= 6 else 0

    @property
    def nt(self) -> bool:
        return self.model in NT_MODELS

    @property
    def vl(self) -> bool:
        return self.model in VL_MODELS

    def ack(self) -> bytes | None:
        """The plain acknowledgement: same protocol number, echoed serial (7878 frames only)."""
        return None if self.extended else build_reply(self.kind, self.serial)

    def ack_extended(self) -> bytes:
        return build_reply(self.kind, self.serial, extended=True)

    def blank(self) -> Position:
        return Position(fix_time=datetime.now(UTC), latitude=None, longitude=None)



def read_lbs(m: Msg, p: Position, has_length: bool) -> bool:
    r, kind = m.r, m.kind
    declared = 0
    if has_length:
        declared = r.u8()
        if declared == 0:
            # Some firmwares still send the (zeroed) block after a zero length; skip it whole.
            tail = r.data[r.pos + 9 : r.pos + 45]
            if not any(tail):
                r.skip(min(r.remaining(), 45))
            return False
    cell_type = r.u8() if kind == 0x38 else 0
    mcc = r.u16()
    mnc_wide = bit(mcc, 15) or kind == 0x11 or m.variant is Variant.SL4X
    mnc = r.u16() if mnc_wide else r.u8()
    wide = cell_type >= 3 or kind in (0xA5, 0xA0, 0xA2)  # 4G cells: 32-bit LAC, 64-bit CI
    lac = r.i32() if wide else r.u16()
    start = r.pos
    if wide:
        cid = r.i64()
    elif kind in (0x11, 0x61, 0x25) or m.variant in (Variant.SEEWORLD, Variant.SL4X):
        # SL4X: Traccar reads 8 bytes here, but the block length (10) and the altitude that
        # follows (matching the terrain) show a 4-byte cell id.
        cid = r.u32()
    else:
        cid = r.u24()
    cell_bytes = r.pos - start
    if cell_type >= 3:
        r.skip(2)
    elif kind == 0x38:
        r.skip(1)
    add_cell(p, mcc & 0x7FFF, mnc, lac, cid)
    # Clones disagree on whether the length counts itself; skip only what lies beyond both
    # readings of the 2+1+2+3-byte classic block.
    consumed = 2 + (2 if mnc_wide else 1) + 2 + cell_bytes
    if declared > max(consumed, 9):
        r.skip(declared - max(consumed, 9))
    return True


