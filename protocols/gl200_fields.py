"""Field readers shared by the Queclink @Track ASCII decoders (:mod:`protocols.gl200_text`).

A sentence is ``+RESP:GT<type>,<protocol version>,<IMEI>,<device name>,...,<send time>,<count>$``
(``+BUFF:`` when replayed from the device's buffer, ``+ACK:`` for heartbeats and command answers).
The protocol version is ``TTMMmm`` (device type, major, minor) or ``80TTTTMMmm``; the device type
names the model, and the model decides several layouts. The GT300 dialect has no version: the IMEI
is field 1.

Most reports carry one or more position blocks (Queclink "@Track Air Interface Protocol",
GV300CAN V12 §3.3.1 and GL300 V6 §3.3)::

    GNSS accuracy (HDOP; 0 = the fix failed and the last known position is repeated),
    speed (km/h), azimuth, altitude (m), longitude, latitude, GNSS UTC time (yyyyMMddHHmmss),
    [Wi-Fi count, (MAC, RSSI, 3 reserved) x count],  (GT501 and GL50x only)
    MCC, MNC, LAC (hex), cell id (hex),
    one trailing field: reserved ``00`` or the position append mask (hex: bit 0 adds satellites,
    bit 1 the GNSS trigger type, bit 4 the jamming state), GL5xx signal quality, or on GL200 and
    GL300 the mileage itself.

Every value is text, so the readers here check shapes before converting. Location fields that do
not parse make the frame a :class:`~protocols.model.DecodeError`; an optional attribute that does
not parse is left out, so a firmware that reuses a field does not cost the position.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from protocols import keys
from protocols.model import DecodeError, Position
from protocols.text_fields import cell_tower, check_on_earth, lenient_datetime

NAME = "gl200"
ALTITUDE_M = (-12262.0, 18000.0)  # Kola borehole to well above airliners

# Device type (first two hex digits of the protocol version, six when it starts with "80") ->
# model. Queclink assigns these per product; the table is the one Traccar ships.
MODELS: dict[str, str] = {
    "02": "GL200", "04": "GV200", "06": "GV300", "08": "GMT100", "09": "GV50P", "0F": "GV55",
    "10": "GV55 LITE", "11": "GL500", "1A": "GL300", "1F": "GV500", "21": "GL200", "25": "GV300",
    "27": "GV300W", "28": "GL300VC", "2C": "GL300W", "2D": "GV500VC", "2F": "GV55", "30": "GL300",
    "31": "GV65", "35": "GV200", "36": "GV500", "3F": "GMT100", "40": "GL500", "41": "GV75W",
    "42": "GT501", "44": "GL530", "45": "GB100", "4F": "GV56", "50": "GV55W", "52": "GL50",
    "55": "GL50B", "5E": "GV500MAP", "6E": "GV310LAU", "74": "GV350CEU", "BD": "CV200",
    "C2": "GV600M", "C3": "GL320M", "DC": "GV600MG", "DE": "GL500M", "DF": "CV100LG",
    "F1": "GV350M", "F8": "GV800W", "FC": "GV600W", "802004": "GV58LAU", "802005": "GV355CEU",
    "80201E": "GV30CEU",
}

# GNSS accuracy, speed, azimuth and altitude as the vendor formats them ("1", "4.3", "92", "70.0").
_HDOP = re.compile(r"\d{1,2}(?:\.\d+)?")
_SPEED = re.compile(r"\d{1,3}\.\d+")
_COURSE = re.compile(r"\d{1,3}(?:\.\d+)?")
_ALTITUDE = re.compile(r"-?\d{1,5}\.\d+")
_COORDINATE = re.compile(r"-?\d{1,3}\.\d{5,}")
_TIME = re.compile(r"\d{14}")
_DIGITS = re.compile(r"[0-9]+")  # not str.isdigit(): latin-1 superscripts pass it
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_INTEGER = re.compile(r"-?\d+")
_HEX = re.compile(r"[0-9A-Fa-f]+")
_MAC = re.compile(r"[0-9A-Fa-f]{12}")
_COUNT = re.compile(r"[0-9A-Fa-f]{4}")
_UNIQUE_ID = re.compile(r"\d{15}|[0-9A-Fa-f]{14}")  # IMEI, or MEID on CDMA models
# "+RESP:GTFRI", "+ACK:GTHBD"; Protocol Pro devices answer commands "+ACK:APN"/"+NACK:APN".
_HEADER = re.compile(r"\+([A-Z]{3,4}):(?:GT([A-Z0-9]{3})|[A-Z0-9]*)")


def now() -> datetime:
    # Module-level so a test can freeze the clock (monkeypatch gl200_fields.now).
    return datetime.now(UTC)


# --- value converters: None for an empty field or one that does not parse -----------------------


def number(text: str) -> float | None:
    return float(text) if _NUMBER.fullmatch(text) else None


def integer(text: str, base: int = 10) -> int | None:
    if base == 16:
        return int(text, 16) if _HEX.fullmatch(text) and len(text) <= 16 else None
    return int(text) if _INTEGER.fullmatch(text) and len(text) <= 18 else None


def strict_number(text: str, frame: bytes) -> float | None:
    """A location number: empty is None, anything but a decimal number refuses the frame."""
    if not text:
        return None
    if not _NUMBER.fullmatch(text) or len(text) > 20:
        raise DecodeError(f"{NAME}: bad number {text[:20]!r}", frame)
    return float(text)


def timestamp(text: str, frame: bytes) -> datetime | None:
    """``yyyyMMddHHmmss`` in UTC (``yyyyMMddHHmm`` from firmwares that cut the seconds)."""
    if len(text) not in (12, 14) or not _DIGITS.fullmatch(text):
        return None
    parts = [int(text[0:4])] + [int(text[k : k + 2]) for k in range(4, len(text), 2)]
    try:
        return lenient_datetime(*parts, protocol=NAME)
    except DecodeError as exc:
        exc.frame = bytes(frame)
        raise


def version(text: str) -> str | None:
    """A 4-hex-digit firmware or hardware version, ``0A03`` = 10.03 (Queclink: major, minor)."""
    if len(text) != 4 or not _HEX.fullmatch(text):
        return None
    return f"{int(text[:2], 16)}.{int(text[2:], 16):02d}"


def put(p: Position, key: str, value: Any) -> None:
    if value is not None:
        p.attributes[key] = value


def km_to_m(text: str) -> float | None:
    value = number(text)
    return None if value is None else value * 1000


def mv_to_v(text: str) -> float | None:
    value = integer(text)
    return None if value is None else value / 1000


def hours_to_s(text: str) -> int | None:
    """Hour meter ``HHHHH:MM:SS`` (Traccar also accepts ``HHHHH`` and ``HHHHH:MM``) in seconds."""
    parts = text.split(":")
    if not text or len(parts) > 3 or not all(_DIGITS.fullmatch(part) and len(part) <= 9 for part in parts):
        return None
    scale = (3600, 60, 1)
    return sum(int(part) * scale[k] for k, part in enumerate(parts))


# --- device states ------------------------------------------------------------------------------

# Motion status byte (GTINF state, device status, HEX motion byte): high nibble 1 ignition off,
# 2 ignition on, 4 no ignition wire (sensor only); low nibble 1 rest, 2 moving, 6 towed, A "fake tow".
_IGNITION_NIBBLE = {0x1: False, 0x2: True}
_MOTION_NIBBLE = {0x1: False, 0x2: True, 0x6: True, 0xA: True}


def motion_state(p: Position, code: int) -> None:
    if code >> 4 in _IGNITION_NIBBLE and code & 0xF in _MOTION_NIBBLE:
        p.attributes[keys.IGNITION] = _IGNITION_NIBBLE[code >> 4]
    if code >> 4 in (0x1, 0x2, 0x4) and code & 0xF in _MOTION_NIBBLE:
        p.attributes[keys.MOTION] = _MOTION_NIBBLE[code & 0xF]


def device_status(p: Position, text: str) -> None:
    """``<Device Status>``: from the right, output ports, input ports, motion status (6 hex digits;
    10 on devices with an EIO100 expander, whose two extra bytes come first)."""
    if not _HEX.fullmatch(text) or len(text) < 6:
        return
    value = int(text[-6:], 16)
    motion, inputs, outputs = value >> 16, (value >> 8) & 0xFF, value & 0xFF
    motion_state(p, motion)
    p.attributes[keys.INPUT] = inputs
    p.attributes["in1"] = bool(inputs & 0x02)  # bit 0 is the ignition line
    p.attributes["in2"] = bool(inputs & 0x04)
    p.attributes[keys.OUTPUT] = outputs
    p.attributes["out1"] = bool(outputs & 0x01)
    p.attributes["out2"] = bool(outputs & 0x02)


# --- the sentence -------------------------------------------------------------------------------


@dataclass(slots=True)
class Sentence:
    frame: bytes
    kind: str  # RESP, BUFF, ACK, NACK
    type: str  # FRI, ERI, HBD, ... ("" for a +NACK)
    v: list[str]
    version: str
    unique_id: str
    model: str
    gt300: bool  # the old GT300 dialect: no version, IMEI in field 1
    sent: datetime | None

    @property
    def count(self) -> str | None:
        """``<Count Number>``, the value a server acknowledgement echoes (4 hex digits)."""
        return self.v[-1] if _COUNT.fullmatch(self.v[-1]) else None

    def at(self, index: int) -> str:
        return self.v[index] if 0 <= index < len(self.v) else ""

    def position(self, block: Block | None = None) -> Position:
        """A position named after this sentence; without a fix, a status report at send time."""
        when = self.sent or now()
        p = Position(fix_time=when, latitude=None, longitude=None, valid=False, device_time=self.sent,
                     unique_id=self.unique_id, attributes={"type": self.type})
        if self.kind == "BUFF":
            p.attributes[keys.ARCHIVE] = True
        if block is not None:
            block.apply(p)
        return p


def parse_sentence(frame: bytes, config: Mapping[str, Any]) -> Sentence:
    text = frame.decode("latin-1").rstrip("\r\n\x00")
    text = text.removesuffix("$")
    v = text.split(",")
    head = _HEADER.fullmatch(v[0])
    if head is None:
        raise DecodeError(f"{NAME}: not an @Track sentence", frame)
    if len(v) > 1 and len(v[1]) > 10 and _UNIQUE_ID.fullmatch(v[1]):
        version, unique_id, gt300 = "", v[1], True
    elif len(v) > 2 and len(v[1]) <= 10 and _UNIQUE_ID.fullmatch(v[2]):
        version, unique_id, gt300 = v[1], v[2], False
    else:
        raise DecodeError(f"{NAME}: no device id in sentence", frame)
    declared = str(config.get("model") or "").upper()
    model = declared or MODELS.get(version[:6] if len(version) > 6 else version[:2].upper(), "")
    sent = timestamp(v[-2], frame) if len(v) >= 2 else None
    return Sentence(frame, head[1], head[2] or "", v, version, unique_id, model, gt300, sent)


# --- the position block ------------------------------------------------------------------------


@dataclass(slots=True)
class Block:
    hdop: float | None = None
    speed: float | None = None
    course: float | None = None
    altitude: float | None = None
    lat: float | None = None
    lon: float | None = None
    time: datetime | None = None
    towers: list[dict[str, Any]] = field(default_factory=list)
    wifi: list[dict[str, Any]] = field(default_factory=list)

    def apply(self, p: Position) -> None:
        p.hdop, p.speed_kmh, p.course_deg, p.altitude_m = self.hdop, self.speed, self.course, self.altitude
        if self.lat is not None and self.lon is not None and self.time is not None:
            p.latitude, p.longitude, p.fix_time = self.lat, self.lon, self.time
            p.valid = self.hdop is None or self.hdop > 0  # accuracy 0: the last known fix repeated
        if self.towers:
            p.attributes[keys.CELL_TOWERS] = self.towers
        if self.wifi:
            p.attributes[keys.WIFI] = self.wifi


def looks_like_fix(v: list[str], i: int, *, empty_ok: bool = False) -> bool:
    """Whether ``v[i:i+7]`` is shaped like a block's GNSS fields (all location fields empty only
    with ``empty_ok``). Used to find blocks whose offset the model does not settle."""
    if i < 0 or i + 7 > len(v):
        return False
    hdop, speed, course, altitude, lon, lat, when = v[i : i + 7]
    if not all(not text or shape.fullmatch(text) for text, shape in
               ((hdop, _HDOP), (speed, _SPEED), (course, _COURSE), (altitude, _ALTITUDE))):
        return False
    if lon and lat and when:
        return bool(_COORDINATE.fullmatch(lon) and _COORDINATE.fullmatch(lat) and _TIME.fullmatch(when))
    return empty_ok and not (lon or lat or when)


def find_fix(v: list[str], start: int) -> int | None:
    """The first block with a fix at or after ``start``."""
    return next((i for i in range(start, len(v) - 6) if looks_like_fix(v, i)), None)


def read_fix(s: Sentence, i: int) -> tuple[Block, int]:
    """The seven GNSS fields at ``i``; a location needs longitude, latitude and time."""
    if i + 7 > len(s.v):
        raise DecodeError(f"{NAME}: position block cut short", s.frame)
    hdop, speed, course, altitude, lon, lat = (strict_number(x, s.frame) for x in s.v[i : i + 6])
    when = s.v[i + 6]
    block = Block(hdop=hdop, speed=speed, course=course, altitude=altitude)
    if lon is not None and lat is not None and when:
        block.time = timestamp(when, s.frame)
        if block.time is None:
            raise DecodeError(f"{NAME}: bad GNSS time {when[:20]!r}", s.frame)
        check_on_earth(lat, lon, s.frame, protocol=NAME)
        block.lat, block.lon = lat, lon
    if block.altitude is not None and not ALTITUDE_M[0] <= block.altitude <= ALTITUDE_M[1]:
        block.altitude = None  # deeper than any mine or above any airliner: a firmware artefact
    if block.speed is not None and block.speed > 1600:
        raise DecodeError(f"{NAME}: speed {block.speed} km/h", s.frame)
    if block.course is not None and not 0 <= block.course <= 360:
        raise DecodeError(f"{NAME}: azimuth {block.course}", s.frame)
    return block, i + 7


def tower(mcc: str, mnc: str, lac: str, cid: str, rssi: str = "") -> dict[str, Any] | None:
    """A cell: MCC and MNC decimal, LAC and cell id hex (8 digits for an LTE cell). ``0000``
    fields (no network) and MCCs outside 001-999 name no cell."""
    country, network, area, cell = integer(mcc), integer(mnc), integer(lac, 16), integer(cid, 16)
    if country is None or network is None or area is None or cell is None:
        return None
    if not 0 < country < 1000 or not 0 <= network < 1000 or area == cell == 0:
        return None
    return cell_tower(country, network, area, cell, integer(rssi))


def read_radio(s: Sentence, i: int, block: Block) -> int:
    """Optional Wi-Fi list, then MCC, MNC, LAC, cell id."""
    v = s.v
    if i + 1 < len(v) and _DIGITS.fullmatch(v[i]) and _MAC.fullmatch(v[i + 1]):
        for _ in range(int(v[i][:3])):
            i += 1
            if i + 1 >= len(v) or not _MAC.fullmatch(v[i]):
                break
            block.wifi.append({"mac": ":".join(v[i][k : k + 2] for k in range(0, 12, 2)).lower(),
                               "rssi": integer(v[i + 1])})
            i += 4  # MAC, RSSI and three reserved fields
    if i + 4 <= len(v):
        cell = tower(*v[i : i + 4])
        if cell is not None:
            block.towers.append(cell)
        i += 4
    return i


def append_fields(s: Sentence, i: int) -> tuple[int, dict[str, Any]]:
    """The field after the cell: mileage on GL200/GL300, else the position append mask and the
    fields it announces. Returns the next index and the attributes, without applying them."""
    text = s.at(i)
    i += 1
    if "." in text:
        return i, {keys.ODOMETER_M: km_to_m(text)} if number(text) is not None else {}
    attrs: dict[str, Any] = {}
    mask = integer(text, 16) or 0
    if mask & 0x01:
        if (satellites := integer(s.at(i))) is not None:
            attrs[keys.SATELLITES] = satellites
        i += 1
    if mask & 0x02:
        i += 1  # GNSS trigger type
    if mask & 0x10:
        i += 1  # GNSS jamming state
    return i, attrs


def read_append(s: Sentence, i: int, p: Position) -> int:
    i, attrs = append_fields(s, i)
    p.attributes.update(attrs)
    return i


def read_trailer(s: Sentence, i: int, p: Position) -> int:
    """The model-dependent fields closing a block in index-laid reports (GTERI, GTIGN, GTDAT)."""
    if s.model.startswith("GL5"):
        i += 2  # CSQ RSSI and BER
    if s.model in ("GT500MA", "GT501"):
        return i + 1  # CSQ RSSI
    if s.model == "GL320M":
        return i
    return read_append(s, i, p)


def read_block(s: Sentence, i: int, p: Position) -> int:
    """A whole index-laid block (fix, radio, trailer) applied to ``p``."""
    block, i = read_fix(s, i)
    i = read_radio(s, i, block)
    block.apply(p)
    return read_trailer(s, i, p)


def scan_cell(v: list[str], start: int) -> dict[str, Any] | None:
    """A serving cell found by its shape (``0460,0000,18d8,6141``) in a report without a fix."""
    for i in range(start, len(v) - 3):
        mcc, mnc, lac, cid = v[i : i + 4]
        if (len(mcc) == 4 and _DIGITS.fullmatch(mcc) and len(mnc) == 4 and _DIGITS.fullmatch(mnc)
                and len(lac) == 4 and _HEX.fullmatch(lac) and 4 <= len(cid) <= 8 and _HEX.fullmatch(cid)):
            return tower(mcc, mnc, lac, cid)
    return None
