"""H02 (Sinotrack, "HQ" trackers and their clones), port 5013, TCP and UDP.

Two framings share the port, told apart by the first byte:

- text ``*HQ,<id>,<type>,...#`` (``*TH`` and ``*hq`` from some firmwares), optionally followed by
  CR/LF;
- binary ``$`` + BCD fields, fixed length but with no length field: 32 bytes is the classic
  report, longer variants (42 with a 15-digit id, 45/46/48 with cell data) exist. ``X`` starts a
  32-byte frame Traccar ignores; we cut and ignore it too.

Replies, as Traccar sends them: ``V0``/``HTBT`` heartbeats are echoed up to the type
(``*HQ,<id>,HTBT#``); ``V1`` reports and ``NBR`` cell reports get ``*HQ,<id>,V4,<type>,<UTC
yyyyMMddHHmmss>#``; with ``session.config["ack"]`` every other report gets ``*HQ,<id>,R12,<HHmmss>#``.

Speeds are knots on the wire (text and binary), converted to km/h here. Dates are day-month-year;
out-of-range fields (second 69, day 00) roll over like Java's lenient calendar, which is what
Traccar stores; a report with a time but no date is stamped with the receive time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from protocols import keys
from protocols.base import FrameResult, Protocol, need_more
from protocols.model import KNOT_KMH, Decoded, DecodeError, Position, Session, knots_to_kmh
from protocols.text_fields import (
    DDMMYY,
    HHMMSS,
    blamed_on,
    cell_tower,
    check_on_earth,
    degrees_minutes,
    float_field,
    format_degrees_minutes,
    lenient_datetime,
    lenient_datetime_of,
    status_report,
)

_MARKERS = b"*$X"
_MAX_TEXT = 2048
# Longest frame decode() accepts (a UDP datagram is not bounded by the framer); also keeps every
# digit run under Python's int() conversion limit.
_MAX_DECODE = 4096
# Binary lengths seen in the field. The wire gives no length: a frame ends where the next frame
# visibly starts, or where the buffer ends exactly on one of these.
_SHORT = 32
_BINARY_LENGTHS = (32, 42, 45, 46, 48)
_LONG_ID_LENGTH = 42  # a 15-digit id takes 8 BCD bytes instead of 5
_MAX_SPEED_KN = 869.0

# ---------------------------------------------------------------------------------------------
# Framing


def _is_bcd(data: bytes) -> bool:
    return all((b >> 4) <= 9 and (b & 0x0F) <= 9 for b in data)


def _frame_start(tail: bytes) -> bool | None:
    """Does ``tail`` begin a new frame? ``None`` while too few bytes are there to tell."""
    if tail[:1] == b"*":
        # "*HQ," / "*TH," / "*hq,": two letters and a comma.
        head = tail[1:4]
        if (head[:2] and not head[:2].isalpha()) or head[2:3] not in (b"", b","):
            return False
        return True if len(head) == 3 else None
    if tail[:1] in (b"$", b"X"):
        ident = tail[1:6]
        if not _is_bcd(ident):
            return False
        return True if len(ident) == 5 else None
    return False


def _binary_length(buf: bytes) -> int | None:
    size = len(buf)
    if size < _SHORT:
        return None
    for length in _BINARY_LENGTHS:
        if length < size:
            starts = _frame_start(buf[length : length + 6])
            if starts is None:
                return None  # a possible next frame begins here: wait until it can be told
            if starts:
                return length
    if size in _BINARY_LENGTHS:
        return size  # one frame per segment/datagram, as devices send them
    if size > _BINARY_LENGTHS[-1] + 6:
        return _SHORT  # nothing lines up: Traccar's default length, resync on what follows
    return None


def next_frame(buffer: bytes) -> FrameResult:
    if not buffer:
        return need_more()
    first = buffer[0]
    if first not in _MARKERS:
        found = [i for i in (buffer.find(m) for m in (b"*", b"$", b"X")) if i > 0]
        return (None, min(found) if found else len(buffer))
    verdict = _frame_start(buffer[:6])
    if verdict is None:
        return need_more()
    if not verdict:
        return (None, 1)  # a stray '*', '$' or 'X' (e.g. "$GPRMC"): not one of ours
    if first == ord("*"):
        end = buffer.find(b"#")
        if end < 0:
            # A start marker with no end in sight is line noise: drop it and resync.
            return (None, 1) if len(buffer) > _MAX_TEXT else need_more()
        stop = end + 1
        while stop < len(buffer) and buffer[stop] in b"\r\n":
            stop += 1
        return (bytes(buffer[: end + 1]), stop)
    length = _SHORT if first == ord("X") else _binary_length(buffer)
    if length is None or len(buffer) < length:
        return need_more()
    return (bytes(buffer[:length]), length)


# ---------------------------------------------------------------------------------------------
# Shared field helpers


def _now() -> datetime:
    # Module-level so a test can freeze the clock (monkeypatch h02._now).
    return datetime.now(UTC)


def _has(*values: str | None) -> bool:
    return all(v for v in values)


def _status_attributes(status: int, attrs: dict[str, Any]) -> None:
    # Status bits are active-low; Traccar reads the first alarm set, in this order.
    if not status & (1 << 0):
        attrs[keys.ALARM] = "vibration"
    elif not status & (1 << 1) or not status & (1 << 18):
        attrs[keys.ALARM] = "sos"
    elif not status & (1 << 2):
        attrs[keys.ALARM] = "overspeed"
    elif not status & (1 << 19):
        attrs[keys.ALARM] = "powerCut"
    attrs[keys.IGNITION] = bool(status & (1 << 10))
    attrs[keys.STATUS] = status


def _fix(when: datetime, lat: float, lon: float, frame: bytes, **fields: Any) -> Position:
    check_on_earth(lat, lon, frame, protocol="h02")
    speed, course = fields.pop("speed_kn", None), fields.pop("course_deg", None)
    return Position(
        fix_time=when,
        device_time=when,
        latitude=lat,
        longitude=lon,
        speed_kmh=knots_to_kmh(speed) if speed is not None and 0 <= speed <= _MAX_SPEED_KN else None,
        course_deg=course if course is not None and 0 <= course <= 360 else None,
        **fields,
    )


def _reply(unique_id: str, kind: str) -> bytes:
    if kind == "R12":
        return f"*HQ,{unique_id},R12,{_now():%H%M%S}#".encode()
    return f"*HQ,{unique_id},V4,{kind},{_now():%Y%m%d%H%M%S}#".encode()


# ---------------------------------------------------------------------------------------------
# Binary reports


def _bcd(data: bytes, frame: bytes) -> str:
    if not _is_bcd(data):
        raise DecodeError("h02 binary field is not BCD", frame)
    return data.hex()


def _battery_pct(value: int) -> int | None:
    # Old firmwares send a 1..6 gauge, newer ones a percentage, some 0xF1..0xF6 for the gauge.
    if value == 0:
        return None
    if value <= 3:
        return (value - 1) * 10
    if value <= 6:
        return (value - 1) * 20
    if value <= 100:
        return value
    if 0xF1 <= value <= 0xF6:
        return value - 0xF0
    return None


def _decode_binary(frame: bytes, session: Session) -> Decoded:
    long_id = len(frame) == _LONG_ID_LENGTH
    id_size = 8 if long_id else 5
    if len(frame) < 1 + id_size + 23:
        raise DecodeError("h02 binary frame too short", frame)
    unique_id = frame[1 : 1 + id_size].hex()[: 15 if long_id else 10]
    body = frame[1 + id_size :]
    clock = _bcd(body[0:6], frame)  # hhmmss ddmmyy
    hh, mi, ss, dd, mo, yy = (int(clock[i : i + 2]) for i in range(0, 12, 2))
    when = lenient_datetime(yy, mo, dd, hh, mi, ss, protocol="h02")
    # Latitude ddmm.mmmm in 4 bytes, battery byte, longitude dddmm.mmmm in 4.5 bytes + flag nibble.
    lat_digits = _bcd(body[6:10], frame)
    lon_bytes = body[11:16]
    lon_digits = _bcd(lon_bytes[:4], frame) + _bcd(bytes([lon_bytes[4] & 0xF0]), frame)[0]
    flags = lon_bytes[4] & 0x0F
    lat = int(lat_digits[:2]) + int(lat_digits[2:]) * 0.0001 / 60
    lon = int(lon_digits[:3]) + int(lon_digits[3:]) * 0.0001 / 60
    if not flags & 0x04:
        lat = -lat
    if not flags & 0x08:
        lon = -lon
    motion = body[16:19]
    speed_digits = _bcd(motion[:1], frame) + _bcd(bytes([motion[1] & 0xF0]), frame)[0]
    course = (motion[1] & 0x0F) * 100 + int(_bcd(motion[2:3], frame))
    attrs: dict[str, Any] = {}
    battery = _battery_pct(body[10])
    if battery is not None:
        attrs[keys.BATTERY_PCT] = battery
    _status_attributes(int.from_bytes(body[19:23], "big"), attrs)
    position = _fix(when, lat, lon, frame, valid=bool(flags & 0x02), speed_kn=float(int(speed_digits)),
                    course_deg=float(course), unique_id=unique_id, attributes=attrs)
    reply = _reply(unique_id, "R12") if session.config.get("ack") else None
    return Decoded(positions=[position], reply=reply, unique_id=unique_id)


# ---------------------------------------------------------------------------------------------
# Text reports

_HEX = "[0-9a-fA-F]"
_COORD = r"""
    (?: -(?P<{p}1d>\d+)-(?P<{p}1m>\d+\.\d+),(?P<{p}1h>[{h}]),          # -dd-mm.mmmm (negative style)
      | (?P<{p}2d>\d*)(?P<{p}2m>\d\d\.\d+),(?P<{p}2h>[{h}]),           # ddmm.mmmm, degrees optional
      | (?P<{p}3d>\d+)(?P<{p}3m>\d\d)(?P<{p}3f>\d{{4}}),(?P<{p}3h>[{h}]), # ddmmmmmm, no dot
    )"""
_REPORT = re.compile(
    rf"""
    \*..,(?P<id>\d+)?,
    (?:V4,(?P<result>.*),|(?P<type>V[^,]*),)                # V4 = answer to a command
    (?:{HHMMSS})?,
    (?:(?P<validity>[ABV])?,|(?P<coding>\d+),)
    """
    + _COORD.format(p="lat", h="NS")
    + _COORD.format(p="lon", h="EW")
    + rf"""
    \ *(?P<speed>\d+\.?\d*),                                # knots
    (?P<course>\d+\.?\d*)?,
    (?:\d+,)?                                               # battery (some firmwares)
    (?:{DDMMYY})?
    (?:,[^,]*,[^,]*,[^,]*)?                                 # SIM info
    (?:,(?P<status>{_HEX}{{8}})
        (?:,(?P<odometer>\d+),(?P<temp>-?\d+),(?P<fuel>\d+\.\d+),(?P<alt>-?\d+),
           (?P<lac>{_HEX}+),(?P<cid>{_HEX}+)
         |,(?P<data>.*)
         |)
     |)
    \#""",
    re.VERBOSE | re.DOTALL | re.ASCII,
)
_NBR = re.compile(
    rf"\*..,(?P<id>\d+),NBR,{HHMMSS},(?P<mcc>\d+),(?P<mnc>\d+),\d+,\d+,"
    rf"(?P<cells>(?:\d+,\d+,-?\d+,)+){DDMMYY},(?P<status>{_HEX}{{8}}).*",
    re.DOTALL | re.ASCII,
)
_LINK = re.compile(
    rf"\*..,(?P<id>\d+),LINK,{HHMMSS},(?P<rssi>\d+),(?P<sat>\d+),"
    rf"(?P<battery>\d+),(?P<steps>\d+),(?P<turnovers>\d+),{DDMMYY},"
    rf"(?P<status>{_HEX}{{8}}).*",
    re.DOTALL | re.ASCII,
)
_V3 = re.compile(
    rf"\*..,(?P<id>\d+),V3,{HHMMSS},(?P<mcc>\d{{3}})(?P<mnc>\d+),(?P<count>\d+),"
    rf"(?P<cells>.*),(?P<battery>{_HEX}{{4}}),\d+,X,{DDMMYY},"
    rf"(?P<status>{_HEX}{{8}})#?",
    re.DOTALL | re.ASCII,
)
_VP1 = re.compile(
    r"\*hq,(?P<id>\d{15}),VP1,"
    r"(?:V,(?P<mcc>\d+),(?P<mnc>\d+),(?P<cells>[^#]+)"
    r"|[AB],(?P<latd>\d+)(?P<latm>\d\d\.\d+),(?P<lath>[NS]),(?P<lond>\d+)(?P<lonm>\d\d\.\d+),(?P<lonh>[EW]),"
    rf"(?P<speed>\d+\.\d+),(?P<course>\d+\.\d+),{DDMMYY}).*",
    re.DOTALL | re.ASCII,
)
_HTBT = re.compile(r"\*HQ,(?P<id>\d{15}),HTBT,(?P<battery>\d+).*", re.DOTALL | re.ASCII)
_SMS = re.compile(r"\*HQ,(?P<id>\d+),SMS,(?P<text>.+)#", re.DOTALL | re.ASCII)
_HEADER_ID = re.compile(r"\*..,(\d+)[,#]", re.ASCII)

_JAVA_SPACE = "".join(chr(c) for c in range(33))  # String.trim() strips every char <= ' '


def _coordinate(m: re.Match[str], prefix: str, negative: str) -> float | None:
    for alt in "123":
        deg, minutes, hem = m[f"{prefix}{alt}d"], m[f"{prefix}{alt}m"], m[f"{prefix}{alt}h"]
        if hem is None:
            continue
        if alt == "3":
            minutes = f"{minutes}.{m[prefix + '3f']}"  # ddmmmmmm: the dot is implied after mm
        return degrees_minutes(deg, minutes, hem, negative)
    return None


def _decode_report(text: str, frame: bytes, session: Session) -> Decoded:
    m = _REPORT.fullmatch(text)
    if m is None:
        return Decoded()
    uid = m["id"]
    attrs: dict[str, Any] = {}
    if m["result"]:
        attrs[keys.RESULT] = m["result"]
    reply = None
    if uid and m["type"] == "V1":
        reply = _reply(uid, "V1")
    elif uid and session.config.get("ack"):
        reply = _reply(uid, "R12")
    valid = m["validity"] == "A" if m["validity"] else bool(m["coding"])
    lat, lon = _coordinate(m, "lat", "S"), _coordinate(m, "lon", "W")
    if lat is None or lon is None:
        raise DecodeError("h02 report without coordinates", frame)
    if _has(m["day"], m["month"], m["year"]):
        hms = [int(m[k]) for k in ("hh", "mi", "ss")] if _has(m["hh"]) else [0, 0, 0]
        when = lenient_datetime(int(m["year"]), int(m["month"]), int(m["day"]), *hms, protocol="h02")
    else:
        when = _now()  # no date on the wire: Traccar stamps the receive time
    if m["status"]:
        _status_attributes(int(m["status"], 16), attrs)
    altitude = None
    if m["odometer"] is not None:
        attrs[keys.ODOMETER_M] = int(m["odometer"])
        attrs[keys.from_traccar("temp1")[0]] = int(m["temp"])
        attrs[keys.FUEL] = float(m["fuel"])
        altitude = float(m["alt"]) if -12262 <= int(m["alt"]) <= 18000 else None
        attrs[keys.CELL_TOWERS] = [cell_tower(None, None, int(m["lac"], 16), int(m["cid"], 16))]
    if m["data"]:
        values = m["data"].split(",")
        while values and not values[-1]:
            values.pop()  # Java's split drops trailing empty fields
        for i, value in enumerate(values, 1):
            attrs[keys.from_traccar(f"io{i}")[0]] = value.strip(_JAVA_SPACE)
    speed = float_field(m["speed"], frame, protocol="h02")
    course = float_field(m["course"] or "0", frame, protocol="h02")  # a missing course reads 0, as in Traccar
    position = _fix(when, lat, lon, frame, valid=valid, speed_kn=speed, course_deg=course,
                    altitude_m=altitude, unique_id=uid, attributes=attrs)
    return Decoded(positions=[position], reply=reply, unique_id=uid)


def _decode_nbr(text: str, frame: bytes) -> Decoded:
    m = _NBR.fullmatch(text)
    if m is None:
        return Decoded()
    uid, mcc, mnc = m["id"], int(m["mcc"]), int(m["mnc"])
    fields = m["cells"].split(",")
    towers = [cell_tower(mcc, mnc, int(fields[i]), int(fields[i + 1]), int(fields[i + 2]))
              for i in range(0, len(fields) - 2, 3)]
    attrs: dict[str, Any] = {keys.CELL_TOWERS: towers}
    _status_attributes(int(m["status"], 16), attrs)
    position = status_report(lenient_datetime_of(m, protocol="h02"), uid, attrs)
    return Decoded([position], reply=_reply(uid, "NBR"), unique_id=uid)


def _decode_link(text: str, frame: bytes) -> Decoded:
    m = _LINK.fullmatch(text)
    if m is None:
        return Decoded()
    attrs: dict[str, Any] = {
        keys.RSSI: int(m["rssi"]),
        keys.SATELLITES: int(m["sat"]),
        keys.BATTERY_PCT: int(m["battery"]),
        keys.STEPS: int(m["steps"]),
        keys.from_traccar("turnovers")[0]: int(m["turnovers"]),
    }
    _status_attributes(int(m["status"], 16), attrs)
    return Decoded([status_report(lenient_datetime_of(m, protocol="h02"), m["id"], attrs)], unique_id=m["id"])


def _decode_v3(text: str, frame: bytes) -> Decoded:
    m = _V3.fullmatch(text)
    if m is None:
        return Decoded()
    mcc, mnc, count = int(m["mcc"]), int(m["mnc"]), int(m["count"])
    fields = m["cells"].split(",")  # lac, cid, rssi, (blank) per cell
    if len(fields) < count * 4 - 1:
        raise DecodeError("h02 V3 report lists fewer cells than it counts", frame)
    try:
        towers = [cell_tower(mcc, mnc, int(fields[i * 4]), int(fields[i * 4 + 1])) for i in range(count)]
    except ValueError as exc:
        raise DecodeError("h02 V3 cell is not a number", frame) from exc
    # The battery word's unit is undocumented (values around 0x02A0); keep it raw, not as volts.
    attrs: dict[str, Any] = {keys.CELL_TOWERS: towers, "battery_raw": int(m["battery"], 16)}
    _status_attributes(int(m["status"], 16), attrs)
    return Decoded([status_report(lenient_datetime_of(m, protocol="h02"), m["id"], attrs)], unique_id=m["id"])


def _decode_vp1(text: str, frame: bytes) -> Decoded:
    m = _VP1.fullmatch(text)
    if m is None:
        return Decoded()
    uid = m["id"]
    if m["cells"] is not None:
        mcc, mnc = int(m["mcc"]), int(m["mnc"])
        towers = []
        for cell in m["cells"].split("Y"):
            values = cell.split(",")
            try:
                towers.append(cell_tower(mcc, mnc, int(values[0]), int(values[1]), int(values[2])))
            except (ValueError, IndexError) as exc:
                raise DecodeError("h02 VP1 cell list is malformed", frame) from exc
        return Decoded([status_report(_now(), uid, {keys.CELL_TOWERS: towers})], unique_id=uid)
    lat = degrees_minutes(m["latd"], m["latm"], m["lath"], "S")
    lon = degrees_minutes(m["lond"], m["lonm"], m["lonh"], "W")
    when = lenient_datetime(int(m["year"]), int(m["month"]), int(m["day"]), protocol="h02")
    position = _fix(when, lat, lon, frame, valid=True, speed_kn=float(m["speed"]),
                    course_deg=float(m["course"]), unique_id=uid)
    return Decoded([position], unique_id=uid)


def _decode_heartbeat(text: str, frame: bytes, reply: bytes) -> Decoded:
    m = _HTBT.fullmatch(text)
    if m is None:
        return Decoded(reply=reply)
    position = status_report(_now(), m["id"], {keys.BATTERY_PCT: int(m["battery"])})
    return Decoded([position], reply=reply, unique_id=m["id"])


def _decode_sms(text: str, frame: bytes) -> Decoded:
    m = _SMS.fullmatch(text)
    if m is None:
        return Decoded()
    return Decoded([status_report(_now(), m["id"], {keys.RESULT: m["text"]})], unique_id=m["id"])


def _decode_text(frame: bytes, session: Session) -> Decoded:
    text = frame.decode("latin-1").strip(_JAVA_SPACE)
    # The type is the third field; "*HQ,<id>,HTBT#" has no comma after it.
    start = text.find(",", text.find(",") + 1) + 1
    end = text.find(",", start)
    if end < 0:
        end = text.find("#", start)
    if end <= 0:
        return Decoded()
    kind = text[start:end]
    if kind in ("V0", "HTBT"):
        decoded = _decode_heartbeat(text, frame, (text[:end] + "#").encode("latin-1"))
    elif kind == "NBR":
        decoded = _decode_nbr(text, frame)
    elif kind == "LINK":
        decoded = _decode_link(text, frame)
    elif kind == "V3":
        decoded = _decode_v3(text, frame)
    elif kind == "VP1":
        decoded = _decode_vp1(text, frame)
    elif kind == "SMS":
        decoded = _decode_sms(text, frame)
    else:
        decoded = _decode_report(text, frame, session)
    if decoded.unique_id is None:
        # Frames we do not decode still name the device.
        header = _HEADER_ID.match(text)
        decoded.unique_id = header.group(1) if header else None
    return decoded


def decode(frame: bytes, session: Session) -> Decoded:
    if not frame:
        raise DecodeError("empty h02 frame", frame)
    if len(frame) > _MAX_DECODE:
        raise DecodeError("h02 frame too long", frame)
    with blamed_on(frame):
        if frame[0] == ord("*"):
            return _decode_text(frame, session)
        if frame[0] == ord("$"):
            return _decode_binary(frame, session)
    if frame[0] == ord("X"):
        return Decoded()  # undocumented 32-byte record; Traccar ignores it as well
    raise DecodeError("h02 frame starts with neither '*', '$' nor 'X'", frame)


PROTOCOL = Protocol(
    name="h02",
    transports=("tcp", "udp"),
    default_port=5013,
    next_frame=next_frame,
    decode=decode,
    max_frame=_MAX_TEXT + 64,
)


# ---------------------------------------------------------------------------------------------
# Encoders (simulators, tests): what an H02 tracker sends


def _status_word(ignition: bool) -> str:
    # Active-low alarm bits all high (no alarm); bit 10 is the ignition line.
    return f"{0xFFFFFBFF | (int(ignition) << 10):08X}"


def encode_report(
    unique_id: str,
    fix_time: datetime,
    lat: float,
    lon: float,
    speed_kmh: float = 0.0,
    course_deg: float = 0.0,
    *,
    valid: bool = True,
    ignition: bool = False,
) -> bytes:
    """A ``V1`` text report, answered by ``*HQ,<id>,V4,V1,<time>#``.

    Resolution on the wire: 1 s, 0.0001 minute of arc (about 0.2 m), 0.01 knot, 1 degree of course.
    """
    if not unique_id.isdigit():
        raise ValueError(f"H02 ids are digits, got {unique_id!r}")
    t = fix_time.astimezone(UTC)
    knots = max(speed_kmh, 0.0) / KNOT_KMH
    return (
        f"*HQ,{unique_id},V1,{t:%H%M%S},{'A' if valid else 'V'},"
        f"{format_degrees_minutes(lat, 2)},{'S' if lat < 0 else 'N'},"
        f"{format_degrees_minutes(lon, 3)},{'W' if lon < 0 else 'E'},"
        f"{knots:.2f},{round(course_deg) % 360},{t:%d%m%y},{_status_word(ignition)}#"
    ).encode("ascii")


def encode_heartbeat(unique_id: str) -> bytes:
    """``V0`` link keep-alive; the server echoes it (``*HQ,<id>,V0#``) without storing anything."""
    return f"*HQ,{unique_id},V0#".encode("ascii")
