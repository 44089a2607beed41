"""Teltonika FM/FMB/FMC/FMM/FMT/GH trackers, binary over TCP and UDP, port 5027.

Wire formats (Teltonika wiki, "Teltonika Data Sending Protocols" and "Codec" pages)::

    TCP handshake   len (2) | IMEI (ASCII digits)                       -> 01 accept / 00 refuse
    TCP AVL packet  00000000 | data length (4) | codec | n | records | n | CRC-16/IBM (4)
    UDP datagram    len (2) | packet id (2) | 01 | AVL packet id | IMEI len (2) | IMEI
                    | codec | n | records | n                         -> 0005 id 01 avl-id n

The TCP ack is the record count as a 4-byte integer. The CRC covers codec through the second
count; over UDP there is none. Codecs: 8, 8E (16-bit ids and counts, variable-length elements),
16 (16-bit ids, generation type), 7 (GH3000), and the GPRS message codecs 12, 13 (with a
timestamp) and 14 (with the IMEI) whose command answers become status positions carrying
``result``, as Traccar does. Record fields and IO element meanings are in
:mod:`protocols.teltonika_io`.

Per-device settings (``session.config``):

- ``model`` (e.g. ``FMB130``, ``FMC640``): which IO table applies, see ``teltonika_io``.
- ``extended``: the device sends a 16-byte IO group (Traccar's ``teltonika.extended``).
- ``checksum``: ``"strict"`` (default): a CRC mismatch, a data length that disagrees with the
  frame or record counts that disagree raise DecodeError, so no ack is sent and the device sends
  the packet again; ``"lenient"``: decoded anyway, Traccar's behaviour (it never checks).

Camera packets (codec 12, type 0x0D) are recognised and skipped: we do not request or store
photos.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from protocols import keys
from protocols.base import FrameResult, Protocol, need_more
from protocols.model import Decoded, DecodeError, Position, Session
from protocols.teltonika_io import (
    Reader,
    apply_gh3000,
    apply_io,
    apply_variable,
    finish_record,
    operator_codes,
)

__all__ = [
    "PROTOCOL",
    "crc16_ibm",
    "decode",
    "encode_command",
    "next_frame",
    "tcp_ack",
    "udp_ack",
]

MAX_DATA = 65536
MAX_FRAME = MAX_DATA + 12
MAX_ID_LEN = 32  # IMEIs are 15 digits; leave room for odd firmwares, refuse garbage early
PING = b"\xff"

CODEC_GH3000 = 0x07
CODEC_8 = 0x08
CODEC_8E = 0x8E
CODEC_12 = 0x0C
CODEC_13 = 0x0D
CODEC_14 = 0x0E
CODEC_16 = 0x10
_MESSAGE_CODECS = (CODEC_12, CODEC_13, CODEC_14)
# Codecs a TCP packet may carry, 15 (0x0F) included so that it is cut cleanly and refused by
# ``decode`` rather than resynced through.
_FRAMED_CODECS = frozenset({CODEC_GH3000, CODEC_8, CODEC_8E, CODEC_12, CODEC_13, CODEC_14, 0x0F,
                            CODEC_16})

_GH3000_EPOCH = datetime(2007, 1, 1, tzinfo=UTC)
_MAX_SPEED_KMH = 1609  # the harness's (Traccar's) bound, 869 knots
_CAMERA = 0x0D


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16_ibm(data: bytes) -> int:
    """CRC-16/IBM (ARC): reflected polynomial 0x8005, init 0, no final xor."""
    crc = 0
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def tcp_ack(count: int) -> bytes:
    return count.to_bytes(4, "big")


def udp_ack(packet_id: int, avl_packet_id: int, count: int) -> bytes:
    return struct.pack(">HHBBB", 5, packet_id, 0x01, avl_packet_id, count)


def encode_command(text: str) -> bytes:
    """A codec 12 command (type 0x05) for a device on a TCP connection, e.g. ``getinfo``."""
    command = text.encode("ascii")
    data = struct.pack(">BBBI", CODEC_12, 1, 0x05, len(command)) + command + b"\x01"
    return struct.pack(">II", 0, len(data)) + data + crc16_ibm(data).to_bytes(4, "big")


# --- framing (TCP) ---


def _is_digit(byte: int) -> bool:
    return 0x30 <= byte <= 0x39


def _skip_garbage(buffer: bytes) -> FrameResult:
    """Drop bytes up to the next one that can start a frame (00 or FF)."""
    starts = [i for i in (buffer.find(b"\x00", 1), buffer.find(PING, 1)) if i > 0]
    return (None, min(starts) if starts else len(buffer))


def next_frame(buffer: bytes) -> FrameResult:
    n = len(buffer)
    if n == 0:
        return need_more()
    if buffer[0] == 0xFF:
        return (PING, 1)  # FMB keep-alive byte (Traccar's frame test starts with one)
    if buffer[0] != 0:
        return _skip_garbage(buffer)
    if n < 2:
        return need_more()
    if buffer[1]:
        # IMEI handshake: a 16-bit length below 256, then that many ASCII digits. Checking the
        # digits as they arrive lets a stray 00 in garbage be dropped without waiting.
        size = buffer[1] + 2
        if size - 2 > MAX_ID_LEN or not all(_is_digit(b) for b in buffer[2:size]):
            return (None, 1)
        return (bytes(buffer[:size]), size) if n >= size else need_more()
    if any(buffer[2:4]):
        return (None, 1)  # not the 00000000 preamble
    if n < 8:
        return need_more()
    length = int.from_bytes(buffer[4:8], "big")
    if not 3 <= length <= MAX_DATA:
        return (None, 1)  # shorter than codec + two counts, or absurd: resync
    if n < 9:
        return need_more()
    if buffer[8] not in _FRAMED_CODECS:
        # A run of zeros in noise is not a packet: without this a stray header would swallow
        # the real frames after it.
        return (None, 1)
    size = length + 12
    return (bytes(buffer[:size]), size) if n >= size else need_more()


# --- records ---


@dataclass(frozen=True, slots=True)
class _Layout:
    """Field widths of an AVL record's IO part, per codec."""

    event_id: int
    generation_type: bool
    count: int
    io_id: int
    variable: bool


_LAYOUTS = {
    CODEC_8: _Layout(event_id=1, generation_type=False, count=1, io_id=1, variable=False),
    CODEC_8E: _Layout(event_id=2, generation_type=False, count=2, io_id=2, variable=True),
    CODEC_16: _Layout(event_id=2, generation_type=True, count=1, io_id=2, variable=False),
}

_IoApply = Callable[[Position, int, bytes], None]
_GPS = struct.Struct(">QBiihHBH")  # time ms, priority, lon, lat, altitude, angle, satellites, speed


@dataclass(slots=True)
class _Context:
    frame: bytes
    model: str | None
    extended: bool
    now: datetime


def _time_ms(ms: int, frame: bytes) -> datetime:
    try:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    except OverflowError:
        raise DecodeError(f"teltonika: timestamp {ms} ms out of range", frame) from None


def _set_location(p: Position, lat: float, lon: float) -> None:
    # 0/0 is what a tracker that never had a fix sends: a report without a location, which the
    # gateway completes from the last known one. Out-of-range values mean the same.
    if (lat == 0 and lon == 0) or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        p.valid = False
        return
    p.latitude, p.longitude = lat, lon


def _io_groups(r: Reader, p: Position, lay: _Layout, widths: tuple[int, ...], apply: _IoApply) -> None:
    for width in widths:
        for _ in range(r.uint(lay.count)):
            io_id = r.uint(lay.io_id)
            apply(p, io_id, r.take(width))


def _avl_record(r: Reader, codec: int, ctx: _Context) -> Position:
    lay = _LAYOUTS[codec]
    ms, priority, lon, lat, altitude, angle, sats, speed = _GPS.unpack(r.take(_GPS.size))
    p = Position(fix_time=_time_ms(ms, ctx.frame), latitude=None, longitude=None,
                 valid=sats != 0)
    p.device_time = p.fix_time
    _set_location(p, lat / 1e7, lon / 1e7)
    p.altitude_m = float(altitude)
    p.course_deg = float(angle) if angle <= 360 else None
    p.speed_kmh = float(speed) if speed <= _MAX_SPEED_KMH else None  # already km/h
    p.attributes["priority"] = priority
    p.attributes[keys.SATELLITES] = sats
    p.attributes[keys.EVENT] = r.uint(lay.event_id)
    if lay.generation_type:
        r.take(1)  # why the record was made (on change, periodic...): the event id says enough
    r.uint(lay.count)  # total element count, redundant with the group counts

    def fixed(pos: Position, io_id: int, raw: bytes) -> None:
        apply_io(pos, io_id, raw, ctx.model)

    _io_groups(r, p, lay, (1, 2, 4, 8), fixed)
    if ctx.extended:
        _io_groups(r, p, lay, (16,), _raw_hex)
    if lay.variable:
        for _ in range(r.uint(2)):
            io_id = r.uint(2)
            apply_variable(p, io_id, r.sub(r.uint(2)))
    if p.speed_kmh is not None and p.speed_kmh > _MAX_SPEED_KMH:
        p.speed_kmh = None
    finish_record(p, ctx.model)
    return p


def _raw_hex(p: Position, io_id: int, raw: bytes) -> None:
    p.attributes[f"io{io_id}"] = raw.hex()


def _gh3000_record(r: Reader, ctx: _Context) -> Position | None:
    at = _GH3000_EPOCH + timedelta(seconds=r.uint(4) & 0x3FFFFFFF)
    p = Position(fix_time=at, latitude=None, longitude=None, device_time=at)
    mask = r.uint(1)
    if mask & 0x01:
        _gh3000_location(r, p)
    else:
        p.valid = False
    for bit, width in ((0x02, 1), (0x04, 2), (0x08, 4)):
        if mask & bit:
            for _ in range(r.uint(1)):
                io_id = r.uint(1)
                apply_gh3000(p, io_id, r.take(width))
    if ctx.extended:
        _io_groups(r, p, _LAYOUTS[CODEC_8], (16,), _raw_hex)
    if p.latitude is None and not p.attributes:
        return None  # neither a fix nor anything else to report
    return p


def _gh3000_location(r: Reader, p: Position) -> None:
    # A location mask says which of the optional fields follow, in this order.
    fields = r.uint(1)
    if fields & 0x01:
        lat, lon = struct.unpack(">ff", r.take(8))
        if math.isfinite(lat) and math.isfinite(lon):
            _set_location(p, lat, lon)
        else:
            p.valid = False
    else:
        p.valid = False
    if fields & 0x02:
        p.altitude_m = float(r.uint(2))
    if fields & 0x04:
        p.course_deg = r.uint(1) * 360 / 256
    if fields & 0x08:
        p.speed_kmh = float(r.uint(1))
    if fields & 0x10:
        p.attributes[keys.SATELLITES] = r.uint(1)
    if fields & 0x20:
        lac, cid = r.uint(2), r.uint(2)
        rssi = r.uint(1) if fields & 0x40 else None
        operator = r.uint(4) if fields & 0x80 else None
        mcc, mnc = operator_codes(operator)
        tower = {"mcc": mcc, "mnc": mnc, "lac": lac, "cid": cid, "rssi": rssi}
        p.attributes[keys.CELL_TOWERS] = [tower]
    else:
        if fields & 0x40:
            p.attributes[keys.RSSI] = r.uint(1)
        if fields & 0x80:
            p.attributes["operator"] = r.uint(4)


# --- GPRS messages (codecs 12, 13, 14) ---


def _is_printable(data: bytes) -> bool:
    return all(b in (9, 10, 13) or 32 <= b < 127 for b in data)


def _status(at: datetime, attributes: dict[str, object]) -> Position:
    return Position(fix_time=at, latitude=None, longitude=None, valid=False, device_time=at,
                    attributes=dict(attributes))


def _axle_loads(text: str) -> dict[str, object] | None:
    # Axle weighing scale on the RS232 port: "UUUUww" + 12 ';'-separated tonnes + ";SSS".
    values = text[6:-4].split(";")
    try:
        numbers = [float(v) for v in values[:12]]
    except ValueError:
        return None
    if len(numbers) < 12:
        return None
    out: dict[str, object] = {f"axle{i + 1}": numbers[i] for i in range(8)}
    out.update(zip(("load_truck", "load_trailer", "total_truck", "total_trailer"), numbers[8:],
                   strict=True))
    return out


def _message_text(data: bytes) -> dict[str, object]:
    """What a device answered: text when printable, else hex; known text formats parsed."""
    if not _is_printable(data):
        return {keys.RESULT: data.hex()}
    text = data.decode("ascii").strip()
    if text.startswith("UUUUww") and text.endswith("SSS"):
        loads = _axle_loads(text)
        if loads is not None:
            return loads
    if text.startswith("GTSL"):
        # Driver card reader: GTSL|<n>|<n>|<n>|<card id>|...
        parts = text.split("|")
        if len(parts) > 4 and parts[4]:
            return {keys.DRIVER_UNIQUE_ID: parts[4]}
    return {keys.RESULT: text}


def _plausible(at: datetime, now: datetime) -> bool:
    return datetime(2000, 1, 1, tzinfo=UTC) <= at <= now + timedelta(days=1)


def _message(r: Reader, codec: int, ctx: _Context) -> Position | None:
    kind = r.uint(1)
    size = r.uint(4)
    if codec == CODEC_12 and kind == _CAMERA:
        r.take(size)  # photo announcement or chunk: not requested, not kept
        return None
    body = r.sub(size)
    at = ctx.now
    if codec == CODEC_13:
        # The size counts a 4-byte timestamp (seconds) before the text. Devices without a
        # clock send nonsense there; then the server's time stands in.
        sent = datetime.fromtimestamp(body.uint(4), UTC)
        at = sent if _plausible(sent, ctx.now) else ctx.now
        return _status(at, _message_text(body.take(body.remaining)))
    attributes: dict[str, object] = {"type": kind}
    if codec == CODEC_14:
        body.take(8)  # the device's IMEI as BCD; the connection already says who it is
    if body.remaining:
        attributes.update(_message_text(body.take(body.remaining)))
    return _status(at, attributes)


# --- packets ---


def _records(r: Reader, ctx: _Context, strict: bool) -> tuple[int, int, list[Position]]:
    """Codec, record count and positions of codec data (codec byte through second count)."""
    codec, count = r.uint(1), r.uint(1)
    if codec not in _LAYOUTS and codec != CODEC_GH3000 and codec not in _MESSAGE_CODECS:
        raise DecodeError(f"teltonika: unknown codec 0x{codec:02x}", ctx.frame)
    positions: list[Position] = []
    for _ in range(count):
        if codec in _LAYOUTS:
            p: Position | None = _avl_record(r, codec, ctx)
        elif codec == CODEC_GH3000:
            p = _gh3000_record(r, ctx)
        else:
            p = _message(r, codec, ctx)
        if p is not None:
            positions.append(p)
    if strict:
        if r.remaining < 1 or r.uint(1) != count:
            raise DecodeError("teltonika: record counts disagree", ctx.frame)
        if r.remaining:
            raise DecodeError(f"teltonika: {r.remaining} bytes after the records", ctx.frame)
    return codec, count, positions


def _context(frame: bytes, session: Session) -> _Context:
    model = str(session.config.get("model") or "").strip().upper() or None
    # Device settings come from JSON edited by hand: accept "true" as well as true.
    extended = session.config.get("extended")
    on = extended is True or str(extended).strip().lower() in ("true", "1", "yes")
    return _Context(frame, model, on, datetime.now(UTC))


def _strict(session: Session) -> bool:
    return session.config.get("checksum", "strict") != "lenient"


def _handshake(frame: bytes) -> Decoded:
    size = int.from_bytes(frame[:2], "big")
    imei = frame[2 : 2 + size]
    if size == 0 or len(frame) != size + 2 or not imei.isdigit():
        raise DecodeError("teltonika: bad IMEI handshake", frame)
    return Decoded(unique_id=imei.decode("ascii"), reply=b"\x01", reject_reply=b"\x00")


def _decode_tcp(frame: bytes, session: Session) -> Decoded:
    if frame == PING:
        return Decoded()
    if len(frame) >= 2 and frame[:2] != b"\x00\x00":
        return _handshake(frame)
    if len(frame) < 12 or frame[:4] != b"\x00\x00\x00\x00":
        raise DecodeError("teltonika: not an AVL packet", frame)
    strict = _strict(session)
    length = int.from_bytes(frame[4:8], "big")
    if strict:
        if len(frame) != length + 12:
            raise DecodeError(f"teltonika: data length {length} in a {len(frame)}-byte frame", frame)
        crc = int.from_bytes(frame[-4:], "big")
        if crc != crc16_ibm(frame[8:-4]):
            raise DecodeError(f"teltonika: CRC {crc:04x} != {crc16_ibm(frame[8:-4]):04x}", frame)
    # Lenient: the records are read from the frame as it is, whatever its header says (Traccar's
    # hand-edited samples even run into the CRC).
    r = Reader(frame, 8, len(frame) - 4 if strict else len(frame))
    codec, count, positions = _records(r, _context(frame, session), strict)
    reply = None if codec in _MESSAGE_CODECS else tcp_ack(count)
    return Decoded(positions=positions, reply=reply)


def _decode_udp(frame: bytes, session: Session) -> Decoded:
    r = Reader(frame)
    length, packet_id, _type, avl_id, id_len = struct.unpack(">HHBBH", r.take(8))
    strict = _strict(session)
    if strict and length != len(frame) - 2:
        raise DecodeError(f"teltonika: UDP length {length} in a {len(frame)}-byte datagram", frame)
    raw_imei = r.take(id_len)
    if not raw_imei.isdigit():
        raise DecodeError("teltonika: UDP datagram without an IMEI", frame)
    imei = raw_imei.decode("ascii")
    codec, count, positions = _records(r, _context(frame, session), strict)
    for p in positions:
        p.unique_id = imei
    reply = None if codec in _MESSAGE_CODECS else udp_ack(packet_id, avl_id, count)
    return Decoded(positions=positions, reply=reply, unique_id=imei)


def decode(frame: bytes, session: Session) -> Decoded:
    frame = bytes(frame)
    if session.transport == "udp":
        return _decode_udp(frame, session)
    return _decode_tcp(frame, session)


PROTOCOL = Protocol(
    name="teltonika",
    transports=("tcp", "udp"),
    default_port=5027,
    next_frame=next_frame,
    decode=decode,
    max_frame=MAX_FRAME,
    udp_whole_datagram=True,
)


# --- encoders (simulators, tests): what an FMB tracker sends over TCP -------------------------


def encode_imei(imei: str) -> bytes:
    """The TCP handshake: IMEI length (2 bytes) and its ASCII digits; answered 01 (or 00 = refused)."""
    if not imei.isdigit():
        raise ValueError(f"IMEI must be digits, got {imei!r}")
    return len(imei).to_bytes(2, "big") + imei.encode("ascii")


@dataclass(frozen=True, slots=True)
class AvlRecord:
    """One codec 8 record. ``io1`` holds one-byte I/O elements by id (239 = ignition)."""

    fix_time: datetime
    latitude: float
    longitude: float
    altitude_m: float = 0.0
    course_deg: float = 0.0
    speed_kmh: float = 0.0
    satellites: int = 8
    priority: int = 0
    event_id: int = 0
    io1: tuple[tuple[int, int], ...] = ()


def encode_avl(records: list[AvlRecord]) -> bytes:
    """A codec 8 AVL packet (answered with the record count, 4 bytes).

    Resolution on the wire: 1 ms, 1e-7 degree, 1 m of altitude, 1 degree of angle, 1 km/h.
    """
    if not 1 <= len(records) <= 255:
        raise ValueError("a codec 8 packet carries 1 to 255 records")
    body = b""
    for rec in records:
        ms = round(rec.fix_time.timestamp() * 1000)
        body += _GPS.pack(ms, rec.priority, round(rec.longitude * 1e7), round(rec.latitude * 1e7),
                          round(rec.altitude_m), round(rec.course_deg) % 360, rec.satellites,
                          min(max(round(rec.speed_kmh), 0), 0xFFFF))
        body += bytes([rec.event_id, len(rec.io1), len(rec.io1)])
        body += b"".join(bytes([io_id, value]) for io_id, value in rec.io1)
        body += b"\x00\x00\x00"  # no 2-, 4- or 8-byte elements
    data = bytes([CODEC_8, len(records)]) + body + bytes([len(records)])
    return struct.pack(">II", 0, len(data)) + data + crc16_ibm(data).to_bytes(4, "big")


def encode_udp(imei: str, records: list[AvlRecord], packet_id: int, avl_packet_id: int) -> bytes:
    """The same records in a UDP datagram (no preamble, no CRC; the IMEI in every datagram),
    answered ``udp_ack(packet_id, avl_packet_id, count)``."""
    if not imei.isdigit():
        raise ValueError(f"IMEI must be digits, got {imei!r}")
    data = encode_avl(records)[8:-4]  # codec, count, records, count
    body = struct.pack(">HBBH", packet_id, 0x01, avl_packet_id, len(imei)) + imei.encode("ascii") + data
    return len(body).to_bytes(2, "big") + body
