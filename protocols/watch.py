"""Kids' and elderly watches ("3G" / SeTracker protocol and its clones), TCP port 5093.

Every message is ``[MF*<id>*<len>*<content>]``: a two-character manufacturer (``3G``, ``SG``,
``CS``, ``ZJ``...), the device id, four hex digits of length and the content, ``TYPE,fields``.
ZJ firmwares add a four-hex-digit serial after the id (``[ZJ*<id>*<serial>*<len>*...]``) which
every answer must echo. Binary content (voice ``TK``/``JXTK``, images) escapes ``}[],*`` as
``}`` followed by 0x01..0x05; frames are handed to ``decode`` unescaped.

Framing: text content ends at the ``]`` that balances the opening ``[`` (an SSID may hold
``[LG_Wall-Mount A/C]``); the length field of text reports is often miscounted, so it is not
trusted there. Binary content (control bytes or escapes) ends where the length field says,
counted on the wire (what real JXTK voice chunks do) or over the unescaped bytes, whichever lands
on a ``]``; failing both, at the balancing ``]`` as for text.

Conversation, as Traccar answers it: ``LK`` (keep-alive, may carry steps and battery) ->
``LK``; ``AL*`` alarms -> ``AL``; ``INIT`` -> ``INIT,1``; ``TKQ``/``TKQ2`` echoed; each
``JXTK`` voice chunk -> ``JXTKR,1``. Answers repeat the manufacturer, id and serial received.

Reports (``UD``, ``UD2``, ``UD_LTE``, ``UD_WCDMA``, ``AL``, ``AL_LTE``, ``WT``...) carry a fix
(speed in km/h), battery, steps, alarm bits, the serving and neighbour cells and Wi-Fi access
points. A report without a fix sends 0,0: it becomes a status report (no location) carrying the
cells and access points, which the gateway completes from the last known location. Health
readings (heart rate, blood pressure, temperature, oxygen) are status reports too. Voice and
image payloads are acknowledged but not kept (we store no media).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from protocols import keys
from protocols.base import FrameResult, Protocol, need_more
from protocols.model import Decoded, DecodeError, Position, Session
from protocols.text_fields import (
    DDMMYY,
    HHMMSS,
    blamed_on,
    cell_tower,
    check_on_earth,
    float_field,
    lenient_datetime_of,
    status_report,
)

NAME = "watch"
_MAX_CONTENT = 0xFFFF  # four hex digits of length
_MAX_HEADER = 64
_SLACK = 64  # bytes a miscounted text frame may run past twice its declared length
# An escaped frame is at most twice its content; the framer may wait for that much.
MAX_FRAME = _MAX_HEADER + 2 * _MAX_CONTENT + _SLACK + 2

# ---------------------------------------------------------------------------------------------
# Framing

_HEADER = re.compile(
    rb"\[(?P<mf>[0-9A-Za-z]{2})\*(?P<id>[0-9A-Za-z]{1,32})\*"
    rb"(?:(?P<index>[0-9A-Fa-f]{4})\*)?(?P<length>[0-9A-Fa-f]{4})\*"
)
# Everything a header can look like before all of it has arrived.
_HEADER_SO_FAR = re.compile(
    rb"\[(?:[0-9A-Za-z](?:[0-9A-Za-z](?:\*(?:[0-9A-Za-z]{1,32}"
    rb"(?:\*(?:[0-9A-Fa-f]{1,4}(?:\*[0-9A-Fa-f]{0,4})?)?)?)?)?)?)?"
)
_HEX_SO_FAR = re.compile(rb"[0-9A-Fa-f]{0,4}")
_BRACKETS = re.compile(rb"[\[\]]")
_BINARY = re.compile(rb"[\x00-\x1f\x7f}]")  # control bytes, or '}' opening an escape
_ESCAPES = ((b"}\x02", b"["), (b"}\x03", b"]"), (b"}\x04", b","), (b"}\x05", b"*"), (b"}\x01", b"}"))


def unescape(data: bytes) -> bytes:
    # '}\x01' last: it yields a '}' that must not pair with the byte after it.
    for escaped, plain in _ESCAPES:
        data = data.replace(escaped, plain)
    return data


def _skip(buffer: bytes) -> FrameResult:
    """Drop garbage up to the next '[' (or all of it)."""
    start = buffer.find(b"[", 1)
    return (None, start if start > 0 else len(buffer))


def _balanced_end(buffer: bytes, stop: int) -> int | None:
    """The ']' closing the '[' at 0, brackets inside (an SSID "[LG A/C]") paired off."""
    depth = 0
    for m in _BRACKETS.finditer(buffer, 0, stop):
        depth += 1 if m.group() == b"[" else -1
        if depth == 0:
            return m.start()
    return None


def _unescaped_end(buffer: bytes, start: int, length: int) -> int | None:
    """Wire offset just past ``length`` unescaped content bytes, None if not all here yet."""
    pos, left = start, length
    while True:
        brace = buffer.find(b"}", pos, pos + left)
        if brace < 0:
            end = pos + left
            return end if end < len(buffer) else None
        left -= brace - pos + 1
        pos = brace + 2  # the escape pair counts as one byte
        if pos > len(buffer):
            return None


_NO_MATCH = -1


def _length_end(buffer: bytes, start: int, length: int) -> int | None:
    """The ']' the length field points at, counted on the wire (real JXTK voice chunks) or
    over unescaped bytes; ``_NO_MATCH`` if neither lands on one, None if not all here yet."""
    wire = start + length
    if wire >= len(buffer):
        return None
    if buffer[wire] == 0x5D:
        return wire
    unescaped = _unescaped_end(buffer, start, length)
    if unescaped is None:
        return None
    return unescaped if buffer[unescaped] == 0x5D else _NO_MATCH


def next_frame(buffer: bytes) -> FrameResult:
    if not buffer:
        return need_more()
    if buffer[0] != 0x5B:
        return _skip(buffer)
    m = _HEADER.match(buffer)
    if m is None:
        return need_more() if _HEADER_SO_FAR.fullmatch(buffer) else _skip(buffer)
    start = m.end()
    if m["index"] is None and len(buffer) - start < 5 and _HEX_SO_FAR.fullmatch(buffer, start):
        return need_more()  # "*0034*" may be a ZJ serial, the length still to come
    length = int(m["length"], 16)
    # No frame runs past this: looking no further keeps every cut independent of what has
    # arrived so far (a frame split across TCP segments is cut the same way).
    limit = start + 2 * length + _SLACK
    window = min(len(buffer), limit + 1)
    end = _balanced_end(buffer, window)
    if _BINARY.search(buffer, start, window if end is None else end):
        by_length = _length_end(buffer, start, length)
        if by_length is None:
            return need_more()
        if by_length != _NO_MATCH:
            end = by_length
    if end is None:
        return _skip(buffer) if len(buffer) > limit else need_more()
    return (unescape(bytes(buffer[: end + 1])), end + 1)


# ---------------------------------------------------------------------------------------------
# Decoding

_POSITION = re.compile(
    DDMMYY + "," + HHMMSS + r""",
    (?P<valid>[AV]),
    \ *(?P<lat>-?\d{1,3}(?:\.\d{0,12})?),(?P<ns>[NS]?),
    \ *(?P<lon>-?\d{1,3}(?:\.\d{0,12})?),(?P<ew>[EW]?),
    (?P<speed>\d{1,6}(?:\.\d{0,12})?),
    (?P<course>\d{1,6}(?:\.\d{0,12})?),
    (?P<alt>-?\d{1,6}(?:\.\d{0,12})?),
    (?P<sat>\d{1,4}),(?P<rssi>\d{1,4}),(?P<battery>\d{1,4}),(?P<steps>\d{1,10}),\d{1,10},
    (?P<status>[0-9A-Fa-f]{1,8})
    (?:,(?P<network>.*))?""",
    re.VERBOSE | re.DOTALL,
)
_DECIMAL = re.compile(r"\d{1,10}")
_HEX = re.compile(r"[0-9A-Fa-f]{1,10}")
_SIGNED = re.compile(r"-?\d{1,4}")
_READING = re.compile(r"-?\d{1,6}(?:\.\d{1,6})?")
_MAC = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")

# Status word alarm bits, the first set one wins (Traccar's order).
_ALARM_BITS = (
    (0, "lowBattery"), (1, "geofenceExit"), (2, "geofenceEnter"), (14, "powerCut"), (16, "sos"),
    (17, "lowBattery"), (18, "geofenceExit"), (19, "geofenceEnter"), (20, "removing"),
    (21, "fallDown"), (22, "fallDown"),
)
_MOTION_BIT = 4
_MAX_SPEED_KMH = 1609.0  # 869 knots, Traccar's sanity bound


def _now() -> datetime:
    return datetime.now(UTC)


def _within(value: float, low: float, high: float) -> float | None:
    # Firmware garbage (course 999, speed 65535) is dropped, the fix kept: Traccar's bounds.
    return value if low <= value <= high else None


def _alarm(status: int) -> str | None:
    return next((name for bit, name in _ALARM_BITS if status >> bit & 1), None)


def _coordinate(value: str, hemisphere: str, negative: str, frame: bytes) -> float:
    # Some firmwares sign the value and still send the other hemisphere letter ("-33.48,N"):
    # the sign stands unless the letter says S/W.
    number = float_field(value, frame, protocol=NAME)
    return -abs(number) if hemisphere == negative else number


def _lac_cid(text: str) -> int | None:
    # Decimal on most firmwares, hex on some (55C0, 3B882A2): hex when it has a hex letter.
    if _DECIMAL.fullmatch(text):
        return int(text)
    return int(text, 16) if _HEX.fullmatch(text) else None


def _network(text: str) -> dict[str, Any]:
    """Cells then Wi-Fi: ``n,ta,mcc,mnc,(lac,cid,rssi)*n,m,(ssid,mac,rssi)*m[,accuracy]``.

    Best effort: what does not fit the layout is left out, the fix still counts. Access points
    are found by their MAC, so an SSID holding a comma does not derail the rest.
    """
    values = text.split(",")
    attrs: dict[str, Any] = {}
    count = int(values[0]) if _DECIMAL.fullmatch(values[0]) else 0
    # mcc/mnc in hex (FFFF) is a firmware without service writing another layout: no cells.
    if count and len(values) > 3 and _DECIMAL.fullmatch(values[2]) and _DECIMAL.fullmatch(values[3]):
        mcc, mnc = int(values[2]), int(values[3])
        towers = []
        for i in range(4, min(4 + 3 * count, len(values) - 2), 3):
            lac, cid, rssi = _lac_cid(values[i]), _lac_cid(values[i + 1]), values[i + 2]
            if lac is None or cid is None:
                break
            towers.append(cell_tower(mcc, mnc, lac, cid, int(rssi) if _SIGNED.fullmatch(rssi) else None))
        if towers:
            attrs[keys.CELL_TOWERS] = towers
    wifi = [
        {"mac": mac.lower(), "rssi": int(rssi)}
        for mac, rssi in pairwise(values)
        if _MAC.fullmatch(mac) and _SIGNED.fullmatch(rssi)
    ]
    if wifi:
        attrs[keys.WIFI] = wifi
    return attrs


def _report(body: str, uid: str, frame: bytes, alarm_type: bool) -> Position:
    m = _POSITION.fullmatch(body)
    if m is None:
        raise DecodeError("watch: malformed position report", frame)
    with blamed_on(frame):
        fix_time = lenient_datetime_of(m, protocol=NAME)
    lat = _coordinate(m["lat"], m["ns"], "S", frame)
    lon = _coordinate(m["lon"], m["ew"], "W", frame)
    status = int(m["status"], 16)
    attrs: dict[str, Any] = {
        keys.SATELLITES: int(m["sat"]),
        keys.RSSI: int(m["rssi"]),
        keys.BATTERY_PCT: int(m["battery"]),
        keys.STEPS: int(m["steps"]),
    }
    alarm = _alarm(status) or ("general" if alarm_type else None)
    if alarm:
        attrs[keys.ALARM] = alarm
    if status >> _MOTION_BIT & 1:
        attrs[keys.MOTION] = True
    if m["network"]:
        attrs.update(_network(m["network"]))
    if lat == 0 and lon == 0:
        # What a watch sends without a fix (LBS/Wi-Fi only): no location, the cells stay.
        return status_report(fix_time, uid, attrs)
    check_on_earth(lat, lon, frame, protocol=NAME)
    return Position(
        fix_time=fix_time,
        device_time=fix_time,
        latitude=lat,
        longitude=lon,
        valid=m["valid"] == "A",
        speed_kmh=_within(float(m["speed"]), 0, _MAX_SPEED_KMH),
        course_deg=_within(float(m["course"]), 0, 360),
        altitude_m=_within(float(m["alt"]), -12262, 18000),
        unique_id=uid,
        attributes=attrs,
    )


def _split(body: str) -> list[str]:
    # Java's split: trailing empty fields dropped ("bphrt,120,79,73,,,,").
    values = body.split(",")
    while values and not values[-1]:
        values.pop()
    return values


def _int(text: str, frame: bytes) -> int:
    if not _SIGNED.fullmatch(text.strip()):
        raise DecodeError(f"watch: bad number {text!r}", frame)
    return int(text)


def _reading(text: str, frame: bytes) -> float:
    # A plain decimal: float() would also take "nan" and "inf", which jsonb refuses.
    if not _READING.fullmatch(text.strip()):
        raise DecodeError(f"watch: bad reading {text!r}", frame)
    return float(text)


def _health(kind: str, body: str, frame: bytes) -> dict[str, Any] | None:
    """Attributes of a health reading, None when the reading is empty."""
    values = _split(body)
    if not values:
        return None
    attrs: dict[str, Any] = {}
    if kind == "temp":
        attrs["temp1_c"] = _reading(values[0], frame)
    elif kind == "btemp2":  # first field: 1 = a measurement follows
        if _int(values[0], frame) > 0 and len(values) > 1:
            attrs["temp1_c"] = _reading(values[1], frame)
    elif kind == "oxygen":
        if len(values) < 2:
            raise DecodeError("watch: oxygen reading without a value", frame)
        attrs["blood_oxygen"] = _int(values[1], frame)
    else:
        rate_at = 0
        if kind in ("bphrt", "blood"):  # systolic, diastolic[, heart rate]
            if len(values) < 2:
                raise DecodeError("watch: blood pressure without two values", frame)
            attrs["pressure_high"] = _int(values[0], frame)
            attrs["pressure_low"] = _int(values[1], frame)
            rate_at = 2
        if rate_at < len(values):
            attrs["heart_rate"] = _int(values[rate_at], frame)
    return attrs


_HEALTH = frozenset({"pulse", "heart", "blood", "bphrt", "temp", "btemp2", "oxygen"})
_ECHOED = {"INIT": "INIT,1", "TKQ": "TKQ", "TKQ2": "TKQ2", "JXTK": "JXTKR,1"}


def reply(manufacturer: str, uid: str, index: str | None, content: str) -> bytes:
    """An answer in the frame's own envelope: same manufacturer, id and ZJ serial."""
    serial = f"{index}*" if index is not None else ""
    return f"[{manufacturer}*{uid}*{serial}{len(content):04X}*{content}]".encode("ascii")


def _keep_alive(body: str, uid: str) -> list[Position]:
    # "LK,steps,rollovers,battery": only the long form carries a status.
    values = _split(body)
    if len(values) < 3 or not (_DECIMAL.fullmatch(values[0]) and _DECIMAL.fullmatch(values[2])):
        return []
    return [status_report(_now(), uid, {keys.STEPS: int(values[0]), keys.BATTERY_PCT: int(values[2])})]


def decode(frame: bytes, session: Session) -> Decoded:
    frame = bytes(frame)
    m = _HEADER.match(frame)
    if m is None or len(frame) <= m.end() or not frame.endswith(b"]"):
        raise DecodeError("watch: not a [MF*id*len*content] frame", frame)
    manufacturer, uid = m["mf"].decode("ascii"), m["id"].decode("ascii")
    index = m["index"].decode("ascii") if m["index"] is not None else None
    content = frame[m.end() : -1]
    raw_type, _, raw_body = content.partition(b",")
    kind = raw_type.decode("latin-1")

    def answer(text: str) -> bytes:
        return reply(manufacturer, uid, index, text)

    if kind == "LK":
        # Answered even when its fields are odd: a watch without its LK answer reconnects.
        return Decoded(_keep_alive(raw_body.decode("latin-1"), uid), answer("LK"), uid)
    if kind in _ECHOED:
        return Decoded(reply=answer(_ECHOED[kind]), unique_id=uid)
    is_alarm = kind.startswith("AL")
    if is_alarm or kind.startswith(("UD", "WT")):
        body = raw_body.decode("latin-1")
        try:
            position = _report(body, uid, frame, is_alarm)
        except DecodeError:
            if not is_alarm:
                raise
            # An alarm is acknowledged and kept even when its report is unreadable.
            position = status_report(_now(), uid, {keys.ALARM: "general"})
        return Decoded([position], answer("AL") if is_alarm else None, uid)
    if kind.lower() in _HEALTH:
        attrs = _health(kind.lower(), raw_body.decode("latin-1"), frame)
        return Decoded([status_report(_now(), uid, attrs)] if attrs else [], unique_id=uid)
    # TK/img media and types we do not use: the device is named, nothing stored.
    return Decoded(unique_id=uid)


PROTOCOL = Protocol(
    name=NAME,
    transports=("tcp",),
    default_port=5093,
    next_frame=next_frame,
    decode=decode,
    max_frame=MAX_FRAME,
)


# ---------------------------------------------------------------------------------------------
# Encoders (simulators, tests): what a watch sends


def envelope(manufacturer: str, uid: str, content: str, index: str | None = None) -> bytes:
    """``[MF*id*len*content]`` (``[MF*id*serial*len*content]`` on ZJ firmwares), text content."""
    if not re.fullmatch(r"[0-9A-Za-z]{2}", manufacturer) or not re.fullmatch(r"[0-9A-Za-z]{1,32}", uid):
        raise ValueError(f"watch manufacturer and id are letters and digits, got {manufacturer!r} {uid!r}")
    if re.search(r"[\[\]*}]", content):
        raise ValueError("text content cannot hold [ ] * or }")
    return reply(manufacturer, uid, index, content)  # the server's answers share the envelope


def encode_keep_alive(uid: str, *, manufacturer: str = "3G", steps: int | None = None,
                      battery_pct: int | None = None) -> bytes:
    """``LK`` (or ``LK,steps,0,battery``), answered ``[MF*id*0002*LK]``. The long form is stored as a
    status report; the bare one stores nothing."""
    body = "LK" if steps is None or battery_pct is None else f"LK,{steps},0,{battery_pct}"
    return envelope(manufacturer, uid, body)


def encode_report(
    uid: str,
    fix_time: datetime,
    lat: float,
    lon: float,
    speed_kmh: float = 0.0,
    course_deg: float = 0.0,
    altitude_m: float = 0.0,
    *,
    manufacturer: str = "3G",
    valid: bool = True,
    satellites: int = 9,
    rssi: int = 80,
    battery_pct: int = 90,
    steps: int = 0,
) -> bytes:
    """A ``UD`` location report; the protocol does not answer it. No cells or access points.

    Resolution on the wire: 1 s, 1e-6 degree, 0.01 km/h, 0.1 degree of course, 0.1 m.
    """
    t = fix_time.astimezone(UTC)
    status = 1 << _MOTION_BIT if speed_kmh > 0 else 0
    body = (f"UD,{t:%d%m%y},{t:%H%M%S},{'A' if valid else 'V'},"
            f"{abs(lat):.6f},{'S' if lat < 0 else 'N'},{abs(lon):.6f},{'W' if lon < 0 else 'E'},"
            f"{max(speed_kmh, 0.0):.2f},{course_deg % 360:.1f},{altitude_m:.1f},"
            f"{satellites},{rssi},{battery_pct},{steps},0,{status:08X}")
    return envelope(manufacturer, uid, body)
