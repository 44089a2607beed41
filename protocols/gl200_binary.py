"""Queclink binary frames: the @Track HEX format and @Track Protocol Pro.

HEX format (Queclink GV300CAN @Track Air Interface V12 §4, an opt-in alternative to ASCII)::

    +RSP/+BSP (report), +EVT/+BVT (event), +INF/+BNF (information), +ACK, +HBD, +LGN, +CRD ...
    header (4) | type (1) | mask | length | ... | send time (7) | count (2) | CRC-16 (2) | 0D 0A

The second header letter is ``B`` for a report replayed from the buffer. The report mask
(``AT+GTHRM``) says which fields are present: bit 0 speed, 1 azimuth, 2 altitude, 3 cell,
4 send time, 5 count, 6 device name instead of IMEI, 7 length, 8 device type, 9 protocol
version, 10 firmware version, 11 battery %, 12 external power, 14 analog input, 17 digital I/O,
18 motion status, 19 satellites, 20/21 current/total mileage, 22/23 current/total hour meter,
24 RFID, 25 CAN data, 26 EIO100 I/O. The 8-byte id holds the IMEI two digits per byte (``0D``
= 13). The CRC is CRC-16/CCITT-FALSE over type .. count. Event types add fields before the
position count (ignition duration, jamming state, ...); the frame's length settles how many.

Protocol Pro (GL601, GV500CNA "@Track Protocol Pro")::

    2B|2D 00 | length (2) | flags (1) | [frame count, number] | IMEI (8, BCD, leading nibble dropped)
    | device type (2) | protocol (2) | custom (1) | reserved length N (1) | reserved (N)
    | records: length | UNIX time (4) | record count (2) | record id | event | (data id, length, data)*
    | count (2) | CRC-8 (poly 0x31, init 0xFF, over everything before it) | '$'

    heartbeat: 2B 10 | length (1) = 24 | IMEI (8) | device type (2) | protocol (2) | custom (1)
    | UNIX time (4) | count (2) | CRC-8 | '$'

``2D`` marks buffered records. Record lengths, data ids and data lengths are one byte, or two
when the high bit is set. Data id 82 is the full location, 81 the short one.

With ``session.config["checksum"] == "lenient"`` CRC mismatches are decoded anyway (the default,
strict, refuses them so the device sends again).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from protocols import keys
from protocols.gl200_fields import ALTITUDE_M, motion_state
from protocols.model import Decoded, DecodeError, Position, Session

NAME = "gl200"

# Header -> (offset, width) of the frame length. +INF has it at 7, or at 9 on models that add an
# INF expansion mask; the CRC tells which.
LENGTH_FIELDS: dict[bytes, tuple[int, int]] = {
    b"+RSP": (9, 2), b"+BSP": (9, 2), b"+EVT": (9, 2), b"+BVT": (9, 2), b"+CAN": (9, 2),
    b"+DAT": (9, 2), b"+INF": (7, 2), b"+BNF": (7, 2), b"+HBD": (5, 1), b"+CRD": (6, 2),
    b"+BRD": (6, 2), b"+LGN": (6, 2), b"+ACK": (6, 1), b"+ATI": (4, 1),
}
MIN_HEX = 24
MIN_PRO = 20

# +EVT types whose fields before the position count are known (Queclink §4.5 and Traccar):
# 6 backup battery, 13/14 ignition duration, 15 update code and retry, 17 idling duration, 21 GPS
# signal, 23 crash counter, 25, 26 geofence, 31 jamming, 33 jamming state, 45/46 virtual ignition.
_EVENT_FIELDS = {6: 2, 13: 4, 14: 4, 15: 3, 17: 4, 21: 5, 23: 1, 25: 2, 26: 12, 31: 2, 33: 1,
                 45: 7, 46: 7}
_RSP_LOCATION_CALL = 3
_RSP_COMPRESSED = 100


def crc16_ccitt(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: polynomial 0x1021, init 0xFFFF, no reflection, no final xor."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def crc8(data: bytes) -> int:
    """CRC-8 of Protocol Pro: polynomial 0x31, init 0xFF, no reflection, no final xor."""
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def hex_length(buffer: bytes) -> list[int]:
    """Candidate lengths of the HEX frame at the start of ``buffer`` (header and length read)."""
    offset, width = LENGTH_FIELDS[bytes(buffer[:4])]
    offsets = (offset, 9) if buffer[:4] in (b"+INF", b"+BNF") else (offset,)
    return [int.from_bytes(buffer[k : k + width], "big") for k in offsets if len(buffer) >= k + width]


class _Reader:
    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise DecodeError(f"{NAME}: binary frame cut short", self.data)
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def sint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big", signed=True)

    def varint(self) -> int:
        first = self.uint(1)
        return ((first & 0x7F) << 8) | self.uint(1) if first & 0x80 else first

    def time(self) -> datetime:
        year, month, day, hour, minute, second = struct.unpack(">HBBBBB", self.take(7))
        try:
            return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        except ValueError as exc:
            raise DecodeError(f"{NAME}: bad binary time {exc}", self.data) from exc


def _check_crc(ok: bool, frame: bytes, session: Session) -> None:
    if not ok and session.config.get("checksum", "strict") != "lenient":
        raise DecodeError(f"{NAME}: checksum mismatch", frame)


def _bcd_or_int(raw: bytes) -> int:
    text = raw.hex()
    return int(text) if text.isdigit() else int(text, 16)


def unique_id_of(raw: bytes) -> str | None:
    """The 8-byte id: an IMEI two decimal digits per byte (``0D 39 5A ...`` = ``1357 90...``),
    or a NUL-padded device name, which names no device."""
    if all(b <= 99 for b in raw[:7]) and raw[7] <= 9:
        return "".join(f"{b:02d}" for b in raw[:7]) + str(raw[7])
    return None


def _plausible(value: float, low: float, high: float) -> float | None:
    return value if low <= value <= high else None


def _on_earth(lat: float, lon: float, frame: bytes) -> None:
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise DecodeError(f"{NAME}: coordinate out of range ({lat}, {lon})", frame)


# --- HEX format ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Head:
    kind: bytes
    type: int
    mask: int
    unique_id: str | None
    attributes: dict[str, Any]


def _report_head(r: _Reader, kind: bytes) -> _Head:
    message, mask = r.uint(1), r.uint(4)
    attrs: dict[str, Any] = {}
    if mask & 1 << 7:
        r.take(2)  # length
    if mask & 1 << 8:
        r.take(1)  # device type
    if mask & 1 << 9:
        r.take(2)  # protocol version
    if mask & 1 << 10:
        major, minor = r.take(2)
        attrs[keys.VERSION_FW] = f"{major}.{minor:02d}"
    raw_id = r.take(8)
    uid = None if mask & 1 << 6 else unique_id_of(raw_id)
    if mask & 1 << 11:
        attrs[keys.BATTERY_PCT] = r.uint(1)
    if mask & 1 << 12:
        attrs[keys.POWER_V] = r.uint(2) / 1000
    if mask & 1 << 14:
        attrs["adc1"] = r.uint(2) / 1000
    if mask & 1 << 26:
        r.take(1)  # EIO100 inputs
    if mask & 1 << 17:
        attrs[keys.INPUT] = r.uint(1)
    if mask & 1 << 26:
        r.take(1)  # EIO100 outputs
    if mask & 1 << 17:
        attrs[keys.OUTPUT] = r.uint(1)
    if mask & 1 << 18:
        attrs["motion_status"] = r.uint(1)
    if mask & 1 << 19:
        attrs[keys.SATELLITES] = r.uint(1) & 0x0F  # high nibble: external antenna state
    return _Head(kind, message, mask, uid, attrs)


def _block_size(mask: int) -> int:
    return 1 + 3 * bool(mask & 1) + 2 * bool(mask & 2) + 2 * bool(mask & 4) + 15 + 9 * bool(mask & 8)


def _tail_size(mask: int) -> int:
    sizes = ((20, 3), (21, 5), (22, 3), (23, 6), (24, 4), (4, 7), (5, 2))
    return sum(size for bit, size in sizes if mask & 1 << bit) + 4  # CRC and CR LF


def _event_fields(frame: bytes, head: _Head, pos: int) -> int:
    """Bytes an event adds before its position count: the table's, or the one the length allows."""
    per_block, tail = _block_size(head.mask), _tail_size(head.mask)

    def closes(k: int) -> bool:
        return pos + k < len(frame) and pos + k + 1 + frame[pos + k] * per_block + tail == len(frame)

    known = _EVENT_FIELDS.get(head.type)
    if known is not None and (head.mask & 1 << 25 or closes(known)):
        return known
    return next((k for k in range(17) if closes(k)), known or 0)


def _send_time(frame: bytes, mask: int) -> datetime | None:
    if not mask & 1 << 4:
        return None
    end = len(frame) - 4 - (2 if mask & 1 << 5 else 0)
    return _Reader(frame, end - 7).time()


def _position(head: _Head, sent: datetime | None, r: _Reader, frame: bytes) -> Position:
    mask = head.mask
    accuracy = r.uint(1)
    speed = course = altitude = None
    if mask & 1:
        whole, _fraction = r.uint(2), r.uint(1)  # fraction width undocumented: whole km/h kept
        speed = _plausible(float(whole), 0, 1600)
    if mask & 2:
        course = _plausible(float(r.uint(2)), 0, 360)
    if mask & 4:
        altitude = _plausible(float(r.sint(2)), *ALTITUDE_M)
    lon, lat = r.sint(4) / 1e6, r.sint(4) / 1e6
    _on_earth(lat, lon, frame)
    p = Position(fix_time=r.time(), latitude=lat, longitude=lon, valid=accuracy > 0,
                 speed_kmh=speed, course_deg=course, altitude_m=altitude, hdop=float(accuracy),
                 device_time=sent, unique_id=head.unique_id)
    if mask & 8:
        mcc, mnc = _bcd_or_int(r.take(2)), _bcd_or_int(r.take(2))
        lac, cid = r.uint(2), r.uint(2)
        r.take(1)  # reserved / trigger
        p.attributes[keys.CELL_TOWERS] = [{"mcc": mcc, "mnc": mnc, "lac": lac, "cid": cid, "rssi": None}]
    return p


def _finish(head: _Head, p: Position) -> Position:
    p.attributes.update(head.attributes)
    motion = p.attributes.pop("motion_status", None)
    if motion is not None:
        motion_state(p, motion)
    if head.kind[1:2] == b"B":
        p.attributes[keys.ARCHIVE] = True
    return p


def _mileage(r: _Reader, mask: int, p: Position) -> None:
    if mask & 1 << 20:
        r.take(3)  # current mileage
    if mask & 1 << 21:
        km, _fraction = r.uint(4), r.uint(1)
        p.attributes[keys.ODOMETER_M] = km * 1000
    if mask & 1 << 22:
        r.take(3)  # current hour meter
    if mask & 1 << 23:
        hours, minutes, seconds = r.uint(4), r.uint(1), r.uint(1)
        p.attributes[keys.ENGINE_HOURS_S] = hours * 3600 + minutes * 60 + seconds


def _compressed(head: _Head, r: _Reader, frame: bytes, sent: datetime | None) -> list[Position]:
    """+RSP type 100: a u16 point count, then points packed in bits (Traccar's reading; Queclink
    publishes no layout). Tag 1: absolute (attributes 2, fix 1, speed 12 in 0.1 km/h, heading 9
    bits, then longitude, latitude in 1e-6 degrees, and on the first one the UNIX time); tag 2:
    a delta of 40 bits (2, 1, speed 7, heading 7, longitude 12, latitude 11, signed); any other
    tag is one byte of "invalid or unchanged". Points are one second apart."""
    positions = []
    speed = heading = lat = lon = when = 0
    for _ in range(r.uint(2)):
        if when:
            when += 1
        tag = r.data[r.pos] >> 6 if r.pos < len(r.data) else 0
        if tag == 1:
            bits = r.uint(3)
            speed, heading = (bits >> 9) & 0xFFF, bits & 0x1FF
            lon, lat = r.sint(4), r.sint(4)
            if not when:
                when = r.uint(4)
        elif tag == 2:
            bits = r.uint(5)
            speed += _signed(bits >> 30 & 0x7F, 7)
            heading += _signed(bits >> 23 & 0x7F, 7)
            lon += _signed(bits >> 11 & 0xFFF, 12)
            lat += _signed(bits & 0x7FF, 11)
        else:
            r.take(1)
            continue
        _on_earth(lat / 1e6, lon / 1e6, frame)
        if not 0 < when < 2**32:
            raise DecodeError(f"{NAME}: compressed point without a time", frame)
        p = Position(fix_time=datetime.fromtimestamp(when, UTC), latitude=lat / 1e6, longitude=lon / 1e6,
                     speed_kmh=_plausible(speed / 10, 0, 1600), course_deg=_plausible(heading, 0, 360),
                     device_time=sent, unique_id=head.unique_id)
        positions.append(_finish(head, p))
    return positions


def _signed(value: int, width: int) -> int:
    return value - (1 << width) if value & 1 << (width - 1) else value


def _decode_report(frame: bytes, kind: bytes) -> Decoded:
    r = _Reader(frame, 4)
    head = _report_head(r, kind)
    sent = _send_time(frame, head.mask)
    if kind in (b"+RSP", b"+BSP") and head.type == _RSP_COMPRESSED:
        return Decoded(_compressed(head, r, frame, sent), unique_id=head.unique_id)
    if kind in (b"+RSP", b"+BSP"):
        r.take(1)  # report id / type
        if head.type == _RSP_LOCATION_CALL:
            r.take(1)  # phone number length, then BCD digits up to an F nibble
            while (byte := r.uint(1)) & 0x0F != 0x0F and byte & 0xF0 != 0xF0:
                pass
    else:
        r.take(_event_fields(frame, head, r.pos))
    positions = [_finish(head, _position(head, sent, r, frame)) for _ in range(r.uint(1))]
    # Mileage and hour meters only when they fill what is left exactly (a GB100 location call
    # carries one byte more than its mask announces).
    if positions and r.pos + _tail_size(head.mask) == len(frame):
        _mileage(r, head.mask, positions[-1])
    return Decoded(positions, unique_id=head.unique_id)


def _decode_information(frame: bytes, kind: bytes) -> Decoded:
    # type (1), mask (2), [expansion mask (2)], length (2), id (8), device type (1), protocol (2),
    # firmware (2), ... send time (7), count (2). The body between is model-specific.
    at = 9 if int.from_bytes(frame[7:9], "big") == len(frame) else 11
    r = _Reader(frame, at)
    uid = unique_id_of(r.take(8))
    r.take(3)
    major, minor = r.take(2)
    sent = _Reader(frame, len(frame) - 13).time()
    p = Position(fix_time=sent, latitude=None, longitude=None, valid=False, device_time=sent,
                 unique_id=uid, attributes={keys.VERSION_FW: f"{major}.{minor:02d}"})
    if kind == b"+BNF":
        p.attributes[keys.ARCHIVE] = True
    return Decoded([p], unique_id=uid)


def _decode_identity(frame: bytes, at: int) -> Decoded:
    """+ACK, +HBD, +LGN: nothing to store, but the frame names the device."""
    uid = unique_id_of(frame[at : at + 8]) if len(frame) >= at + 8 else None
    return Decoded(unique_id=uid)


def decode_hex(frame: bytes, session: Session) -> Decoded:
    kind = bytes(frame[:4])
    if len(frame) < MIN_HEX or frame[-2:] != b"\r\n":
        raise DecodeError(f"{NAME}: bad binary frame", frame)
    if kind != b"+ATI":
        _check_crc(crc16_ccitt(frame[4:-4]) == int.from_bytes(frame[-4:-2], "big"), frame, session)
    if kind in (b"+RSP", b"+BSP", b"+EVT", b"+BVT"):
        return _decode_report(frame, kind)
    if kind in (b"+INF", b"+BNF"):
        return _decode_information(frame, kind)
    identity_at = {b"+ACK": 12, b"+HBD": 11, b"+LGN": 15}.get(kind)
    if identity_at is not None:
        return _decode_identity(frame, identity_at)
    return Decoded()  # crash data, CAN, transparent data: framed, not stored


# --- Protocol Pro -----------------------------------------------------------------------------------


def _pro_imei(raw: bytes, frame: bytes) -> str:
    text = raw.hex()[1:]
    if not text.isdigit():
        raise DecodeError(f"{NAME}: bad Protocol Pro IMEI", frame)
    return text


def _pro_location(p: Position, data: bytes, frame: bytes) -> None:
    """Data 81 (mini) / 82 (full): fix byte, longitude, latitude, UTC, speed, [HDOP, azimuth,
    altitude, satellites]. Fix state (bits 3-2) other than 0b10 repeats the last fix."""
    r = _Reader(data)
    fix, lon, lat, when, speed = r.uint(1), r.sint(4) / 1e6, r.sint(4) / 1e6, r.uint(4), r.uint(2) / 10
    if not when:
        return
    _on_earth(lat, lon, frame)
    p.latitude, p.longitude, p.speed_kmh = lat, lon, _plausible(speed, 0, 1600)
    p.fix_time = datetime.fromtimestamp(when, UTC)
    p.valid = (fix >> 2) & 0x3 == 0b10
    if len(data) >= 22:
        p.hdop = r.uint(1) / 10
        p.course_deg = _plausible(float(r.uint(2)), 0, 360)
        p.altitude_m = _plausible(r.sint(3) / 10, *ALTITUDE_M)
        p.attributes[keys.SATELLITES] = r.uint(1)


def _pro_data(p: Position, data_id: int, data: bytes, frame: bytes) -> None:
    if data_id in (81, 82) and len(data) >= 15:
        _pro_location(p, data, frame)
    elif data_id == 27 and len(data) == 1 and data[0] in (0, 1):
        p.attributes[keys.IGNITION] = data[0] == 1
    elif data_id == 31 and len(data) == 4:
        p.attributes[keys.ODOMETER_M] = int.from_bytes(data, "big")
    elif data_id == 34 and len(data) == 4:
        p.attributes[keys.ENGINE_HOURS_S] = int.from_bytes(data, "big")


def decode_pro(frame: bytes, session: Session) -> Decoded:
    if len(frame) < MIN_PRO or frame[-1:] != b"$":
        raise DecodeError(f"{NAME}: bad Protocol Pro frame", frame)
    _check_crc(crc8(frame[:-2]) == frame[-2], frame, session)
    count = int.from_bytes(frame[-4:-2], "big")
    reply = f"+SACK:{count:04X}$".encode() if session.config.get("ack") else None
    if frame[1] == 0x10:  # heartbeat
        return Decoded(unique_id=_pro_imei(frame[3:11], frame), reply=reply)
    r = _Reader(frame[:-4], 4)
    flags = r.uint(1)
    if flags & 0x80:
        r.take(2)  # frame count and number of a split report
    uid = _pro_imei(r.take(8), frame)
    r.take(5)  # device type, protocol version, custom version
    r.take(r.uint(1))  # reserved field
    positions = []
    while r.pos < len(r.data):
        start = r.pos
        end = start + r.varint()
        if end > len(r.data) or end - r.pos < 8:
            if flags & 0x80:
                break  # the rest of a record split across frames: not reassembled
            raise DecodeError(f"{NAME}: Protocol Pro record overruns the frame", frame)
        record = _Reader(r.data[:end], r.pos)
        generated = datetime.fromtimestamp(record.uint(4), UTC)
        record.take(2)  # record count number
        record_id, event = record.uint(1), record.uint(1)
        p = Position(fix_time=generated, latitude=None, longitude=None, valid=False, device_time=generated,
                     unique_id=uid, attributes={"record_id": record_id, keys.EVENT: event})
        if frame[0] == 0x2D:
            p.attributes[keys.ARCHIVE] = True
        while record.pos < end:
            data_id, length = record.varint(), record.varint()
            _pro_data(p, data_id, record.take(length), frame)
        positions.append(p)
        r.pos = end
    return Decoded(positions, unique_id=uid, reply=reply)
