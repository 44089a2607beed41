"""TK103 (Xexun/Coban "TK103-2" firmware family and clones), port 5002, TCP and UDP.

Every message is ASCII between ``(`` and ``)``: a 12-character device id, a 4-character command
and its body, ``(027044702512BR00150917A1352.9801N10030.9050E000.0103224000.0000010000L000003F9)``.
A second "alternative" firmware separates the fields with commas and sends its IMEI:
``(864768010009188,BP05,271114,V,4012.19376N,00824.05638E,000.0,154436,000.0)``. Free text
(command answers) is quoted with ``$`` and may contain ``)``, so a frame ends at the first ``)``
preceded by an even number of ``$``.

Conversation, as Traccar answers it: heartbeat ``BP00`` -> ``(<id>AP01HSO)`` (nothing stored);
login ``BP05`` -> ``(<id>AP05)``, and the login's fix is stored. Both replies take the id from
the first 12 characters, so the comma-separated firmware gets none (Traccar sends none either).

Speeds are km/h on the wire. The fixed-width report dates are yymmdd, the comma-separated ones
ddmmyy; overflowing fields roll over as in Java's lenient calendar (what Traccar stores).
"""

from __future__ import annotations

import re
import struct
from datetime import UTC, datetime
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
    degrees_minutes,
    float_field,
    format_degrees_minutes,
    lenient_datetime,
    lenient_datetime_of,
    status_report,
)

MAX_FRAME = 1024  # Traccar drops a partial frame once this much is buffered
# Longest frame decode() accepts (a UDP datagram is not bounded by the framer); also keeps every
# digit run under Python's int() conversion limit.
_MAX_DECODE = 4096

# ---------------------------------------------------------------------------------------------
# Framing


def _frame_end(buffer: bytes, start: int) -> int:
    """Index of the ``)`` closing the frame opened at ``start``, or -1."""
    end = buffer.find(b")", start)
    while end >= 0 and buffer.count(b"$", start, end) % 2:
        end = buffer.find(b")", end + 1)  # inside $free text$: not the end
    return end


def next_frame(buffer: bytes) -> FrameResult:
    start = buffer.find(b"(")
    if start < 0:
        return (None, len(buffer))
    if start > 0:
        return (None, start)
    end = _frame_end(buffer, 0)
    if end < 0:
        if len(buffer) > MAX_FRAME:
            again = buffer.find(b"(", 1)
            return (None, again if again > 0 else len(buffer))
        return need_more()
    return (bytes(buffer[: end + 1]), end + 1)


# ---------------------------------------------------------------------------------------------
# Patterns (Traccar's, field for field; the trailing temperature is captured lazily, see below)

_X = "[0-9a-fA-F]"
_REPORT = re.compile(
    rf"""
    \(?
    (?:(?P<id>.{{12}})|(?P<alt_id>[^,]+),)                  # fixed-width id, or IMEI + comma
    (?P<type>.{{4}}),?
    (?:(?P<data>\d*)|,ALARM,(?P<alarm>\d),\d+,)
    (?P<d1>\d\d)(?P<d2>\d\d)(?P<d3>\d\d),?
    (?P<validity>[AV]),?
    \ *(?P<latd>\d*)(?P<latm>\d\d\.\d+)(?P<lath>[NS]),?
    \ *(?P<lond>\d*)(?P<lonm>\d\d\.\d+)(?P<lonh>[EW]),?
    (?P<speed>[\ \d.]{{1,5}})(?:\d*,)?                      # km/h
    {HHMMSS},?
    (?:
        (?:(?P<course6>[\ \d.]{{6}})|(?P<course2>\d\d)),?
        (?P<charge>[01])(?P<ignition>[01])
        (?P<io1>{_X})(?P<io2>{_X})(?P<io3>{_X})
        (?P<fuel>{_X}{{3}})
        L(?P<odometer>{_X}+)
      | (?P<course>\d+\.\d+)
    )
    .*?                                                     # Traccar's greedy .* never let the
    (?P<temp>[+-]\d{{3}}\.\d)?                              # temperature match; lazy does
    \)?
    """,
    re.VERBOSE | re.DOTALL | re.ASCII,
)
_BATTERY = re.compile(
    rf"\(?(?P<id>\d+),ZC20,{DDMMYY},{HHMMSS},"
    r"(?P<level>\d+),(?P<battery>\d+),(?P<power>\d+),\d+.*",
    re.DOTALL | re.ASCII,
)
_CELLS = re.compile(
    r"\((?P<id>\d{12}).{4}(?:\d{15})?,(?P<cells>.+),(?P<odometer>\d{8})\)", re.DOTALL | re.ASCII
)
_NETWORK = re.compile(
    rf"\(?(?P<id>\d{{12}})BZ00,(?P<mcc>\d+),(?P<mnc>\d+),(?P<lac>{_X}+),(?P<cid>{_X}+),.*",
    re.DOTALL | re.ASCII,
)
_LBS_WIFI = re.compile(
    r"\(?(?P<id>\d+),(?P<type>.{4}),(?P<mcc>\d+),(?P<mnc>\d+),(?P<lac>\d+),(?P<cid>\d+),(?P<count>\d+),"
    rf"(?P<macs>(?:(?:{_X}{{2}}:){{5}}{_X}{{2}}\*[-+]?\d+\*\d+,)*)"
    rf"{DDMMYY},{HHMMSS}.*",
    re.DOTALL | re.ASCII,
)
_COMMAND_RESULT = re.compile(
    rf"\(?(?P<id>\d+),.{{4}},{DDMMYY},{HHMMSS},"
    r"\$(?P<text>.*?)(?:\$|$).*",
    re.DOTALL | re.ASCII,
)
_VIN = re.compile(r"\((?P<id>\d+)BV00(?P<vin>.{17})\)", re.DOTALL | re.ASCII)

# Alarm codes: BO01 carries a digit, BQ81 a number after ",ALARM,", the comma-separated firmware
# uses distinct commands (ZC1x with fix, DW3x with fix, DW5x with cells/Wi-Fi only).
_BO01_ALARMS = {1: "accident", 2: "sos", 3: "vibration", 4: "lowspeed", 5: "overspeed", 6: "geofenceExit"}
_BQ81_ALARMS = {0: "lowBattery", 1: "overspeed", 2: "idle", 3: "hardAcceleration", 4: "hardBraking",
                5: "temperature"}
_TYPE_GROUPS: tuple[tuple[tuple[str, ...], str, Any], ...] = (
    (("ZC11", "DW31", "DW51"), keys.ALARM, "movement"),
    (("ZC12", "DW32", "DW52"), keys.ALARM, "lowBattery"),
    (("ZC13", "DW33", "DW53"), keys.ALARM, "powerCut"),
    (("ZC15", "DW35", "DW55", "ZC29", "DW42", "DW62"), keys.IGNITION, True),
    (("ZC16", "DW36", "DW56"), keys.IGNITION, False),
    (("ZC17", "DW37", "DW57"), keys.ALARM, "removing"),
    (("ZC25", "DW3E", "DW5E"), keys.ALARM, "sos"),
    (("ZC26", "DW3F", "DW5F"), keys.ALARM, "tampering"),
    (("ZC27", "DW40", "DW60"), keys.ALARM, "lowPower"),
)
_TYPE_ATTRIBUTES = {code: (key, value) for codes, key, value in _TYPE_GROUPS for code in codes}

# ZC20 reports the battery as a 2..6 gauge.
_GAUGE_PCT = {6: 100, 5: 80, 4: 50, 3: 20, 2: 10}
_UNSET_16 = 65535
_MAX_SPEED_KMH = 1609.0


def _vendor(traccar_key: str) -> str:
    return keys.from_traccar(traccar_key)[0]


# ---------------------------------------------------------------------------------------------
# Helpers


def _now() -> datetime:
    return datetime.now(UTC)


def _clean_id(raw: str) -> str:
    # An 11-character id makes Traccar's pattern swallow the "(" into the id; it is not part of it.
    return raw.lstrip("(")


# ---------------------------------------------------------------------------------------------
# Message decoders (each returns positions for one frame)


def _decode_battery(text: str, frame: bytes) -> list[Position]:
    m = _BATTERY.fullmatch(text)
    if m is None:
        return []
    attrs: dict[str, Any] = {}
    level, battery, power = int(m["level"]), int(m["battery"]), int(m["power"])
    if level != 255 and level in _GAUGE_PCT:
        attrs[keys.BATTERY_PCT] = _GAUGE_PCT[level]
    if battery != _UNSET_16:
        attrs[keys.BATTERY_V] = round(battery * 0.01, 2)
    if power != _UNSET_16:
        attrs[keys.POWER_V] = round(power * 0.1, 1)
    return [status_report(lenient_datetime_of(m, protocol="tk103"), m["id"], attrs)]


def _decode_cells(text: str, frame: bytes) -> list[Position]:
    m = _CELLS.fullmatch(text)
    if m is None:
        return []
    towers = []
    for cell in m["cells"].split("\n"):
        if not cell:
            continue  # Java's split drops the trailing empty field
        try:
            mcc, mnc, lac, cid = (int(v) for v in cell[1:-1].split(","))
        except ValueError as exc:
            raise DecodeError("tk103 cell is not {mcc,mnc,lac,cid}", frame) from exc
        towers.append(cell_tower(mcc, mnc, lac, cid))
    attrs = {keys.CELL_TOWERS: towers, keys.ODOMETER_M: int(m["odometer"], 16)}
    return [status_report(_now(), m["id"], attrs)]


def _decode_network(text: str, frame: bytes) -> list[Position]:
    m = _NETWORK.fullmatch(text)
    if m is None:
        return []
    tower = cell_tower(int(m["mcc"]), int(m["mnc"]), int(m["lac"], 16), int(m["cid"], 16))
    return [status_report(_now(), m["id"], {keys.CELL_TOWERS: [tower]})]


def _decode_lbs_wifi(text: str, frame: bytes) -> list[Position]:
    m = _LBS_WIFI.fullmatch(text)
    if m is None:
        return []
    attrs: dict[str, Any] = {}
    _type_attributes(m["type"], "0", attrs)
    attrs[keys.CELL_TOWERS] = [cell_tower(int(m["mcc"]), int(m["mnc"]), int(m["lac"]), int(m["cid"]))]
    entries = [e for e in m["macs"].split(",") if e]
    if entries and len(entries) == int(m["count"]):
        wifi = []
        for entry in entries:
            mac, rssi, _channel = entry.split("*")
            wifi.append({"mac": mac, "rssi": int(rssi)})
        attrs[keys.WIFI] = wifi
    return [status_report(lenient_datetime_of(m, protocol="tk103"), m["id"], attrs)]


def _decode_command_result(text: str, frame: bytes) -> list[Position]:
    m = _COMMAND_RESULT.fullmatch(text)
    if m is None:
        return []
    return [status_report(lenient_datetime_of(m, protocol="tk103"), m["id"], {keys.RESULT: m["text"]})]


def _decode_vin(text: str, frame: bytes) -> list[Position]:
    m = _VIN.fullmatch(text)
    if m is None:
        return []
    return [status_report(_now(), m["id"], {keys.VIN: m["vin"]})]


def _decode_bms_binary(payload: bytes, attrs: dict[str, Any]) -> None:
    """BS50: the battery management system's status block, little-endian."""
    count = payload[3]
    cells = struct.unpack_from("<24H", payload, 4)
    for i, millivolts in enumerate(cells[:count], 1):
        attrs[_vendor(f"battery{i}")] = round(millivolts * 0.001, 3)
    (charge, current, battery, level, overheat, charge_prot, discharge_prot, _drop, _balanced, cycles,
     fault) = struct.unpack_from("<BHHBBBBBBHB", payload, 52)
    attrs[keys.CHARGE] = charge == 0
    attrs[_vendor("current")] = round(current * 0.1, 1)
    attrs[keys.BATTERY_V] = round(battery * 0.01, 2)
    attrs[keys.BATTERY_PCT] = level
    attrs[_vendor("batteryOverheat")] = overheat > 0
    attrs[_vendor("chargeProtection")] = charge_prot > 0
    attrs[_vendor("dischargeProtection")] = discharge_prot > 0
    attrs[_vendor("cycles")] = cycles
    attrs[_vendor("faultAlarm")] = fault
    temp_count, power_temp, equilibrium_temp = payload[72], payload[73], payload[74]
    attrs[_vendor("powerTemp")] = power_temp - 40
    attrs[_vendor("equilibriumTemp")] = equilibrium_temp - 40
    for i, raw in enumerate(payload[75 : 75 + min(temp_count, 7)], 1):
        attrs[_vendor(f"batteryTemp{i}")] = raw - 40
    capacity, discharged = struct.unpack_from("<HI", payload, 82)
    attrs[_vendor("calibrationCapacity")] = round(capacity * 0.01, 2)
    attrs[_vendor("dischargeCapacity")] = discharged


def _decode_bms_records(payload: str, attrs: dict[str, Any]) -> None:
    """BS51: ``<id hex>:<data hex>`` records relayed from a Daly BMS.

    Daly's frames are big-endian (cell voltages read 3.8 V that way); Traccar reads them
    little-endian, which gives 59 V cells, so we follow the BMS's byte order.
    """
    for record in payload.split(","):
        key_hex, _, value_hex = record.partition(":")
        key, data = int(key_hex, 16), bytes.fromhex(value_hex)
        if key == 0x90:
            cumulative, gathered, current, soc = struct.unpack_from(">4H", data)
            attrs[_vendor("cumulativeVoltage")] = round(cumulative * 0.1, 1)
            attrs[_vendor("gatherVoltage")] = round(gathered * 0.1, 1)
            attrs[_vendor("current")] = round((current - 30000) * 0.1, 1)  # offset by 30000 (0.1 A units)
            attrs[_vendor("soc")] = round(soc * 0.1, 1)
        elif key == 0x91:
            high, high_cell, low, low_cell = struct.unpack_from(">HBHB", data)
            attrs[_vendor("maxCellVoltage")] = round(high * 0.001, 3)
            attrs[_vendor("maxCellVoltageCount")] = high_cell
            attrs[_vendor("minCellVoltage")] = round(low * 0.001, 3)
            attrs[_vendor("minCellVoltageCount")] = low_cell
        elif key == 0x92:
            high, high_count, low, low_count = struct.unpack_from(">4B", data)
            attrs[_vendor("maxTemp")] = high - 40
            attrs[_vendor("maxTempCount")] = high_count
            attrs[_vendor("minTemp")] = low - 40
            attrs[_vendor("minTempCount")] = low_count
        elif key == 0x96:
            for index in range(1, len(data)):  # byte 0 is the frame number
                attrs[_vendor(f"cellTemp{index}")] = data[index] - 40


def _decode_bms(text: str, frame: bytes) -> list[Position]:
    if len(text) < 18:
        raise DecodeError("tk103 BMS frame too short", frame)
    unique_id, payload = text[1:13], text[17:-1]
    attrs: dict[str, Any] = {}
    try:
        if text.startswith("BS50", 13):
            _decode_bms_binary(bytes.fromhex(payload), attrs)
        else:
            _decode_bms_records(payload, attrs)
    except (ValueError, IndexError, struct.error) as exc:
        raise DecodeError(f"tk103 BMS payload malformed: {exc}", frame) from exc
    return [status_report(_now(), unique_id, attrs)]


def _type_attributes(kind: str, data: str | None, attrs: dict[str, Any]) -> None:
    if kind == "BQ81":
        alarm = _BQ81_ALARMS.get(int(data)) if data else None
    elif kind == "BO01":
        alarm = _BO01_ALARMS.get(int(data[0])) if data else None
    else:
        entry = _TYPE_ATTRIBUTES.get(kind)
        if entry is not None:
            attrs[entry[0]] = entry[1]
        return
    if alarm is not None:
        attrs[keys.ALARM] = alarm


def _decode_report(text: str, frame: bytes) -> list[Position]:
    m = _REPORT.fullmatch(text)
    if m is None:
        return []
    alternative = m["alt_id"] is not None
    unique_id = _clean_id(m["alt_id"] if alternative else m["id"])
    attrs: dict[str, Any] = {}
    _type_attributes(m["type"], m["alarm"] or m["data"] or None, attrs)
    d1, d2, d3 = int(m["d1"]), int(m["d2"]), int(m["d3"])
    ymd = (d3, d2, d1) if alternative else (d1, d2, d3)  # ddmmyy vs yymmdd
    when = lenient_datetime(*ymd, int(m["hh"]), int(m["mi"]), int(m["ss"]), protocol="tk103")
    lat = degrees_minutes(m["latd"], m["latm"], m["lath"], "S")
    lon = degrees_minutes(m["lond"], m["lonm"], m["lonh"], "W")
    check_on_earth(lat, lon, frame, protocol="tk103")
    speed = float_field(m["speed"], frame, protocol="tk103")
    course_text = m["course"] or m["course2"] or m["course6"]
    blank_course = not (course_text and course_text.strip())
    course = None if blank_course else float_field(course_text, frame, protocol="tk103")
    if m["charge"] is not None:
        attrs[keys.CHARGE] = m["charge"] == "0"
        attrs[keys.IGNITION] = m["ignition"] == "1"
        _io_attributes(int(m["io1"], 16), int(m["io2"], 16), int(m["io3"], 16), attrs)
        attrs[keys.FUEL] = int(m["fuel"], 16)
        attrs[keys.ODOMETER_M] = int(m["odometer"], 16)
    if m["temp"]:
        attrs[_vendor("temp1")] = float(m["temp"])
    position = Position(
        fix_time=when,
        device_time=when,
        latitude=lat,
        longitude=lon,
        valid=m["validity"] == "A",
        speed_kmh=speed if 0 <= speed <= _MAX_SPEED_KMH else None,
        course_deg=course if course is not None and 0 <= course <= 360 else None,
        unique_id=unique_id,
        attributes=attrs,
    )
    return [position]


def _io_attributes(mask1: int, mask2: int, mask3: int, attrs: dict[str, Any]) -> None:
    # Traccar reports the optional lines (blocked, door, hs*, ls*) only when they are set.
    attrs[_vendor("in2")] = mask1 & 1
    attrs[_vendor("panic")] = (mask1 >> 1) & 1
    attrs[_vendor("out2")] = (mask1 >> 2) & 1
    if mask1 & 0x08:
        attrs[keys.BLOCKED] = 1
    for bit in range(3):
        if mask2 & (1 << bit):
            attrs[_vendor(f"hs{3 - bit}")] = 1
    if mask2 & 0x08:
        attrs[keys.DOOR] = 1
    for bit in range(1, 4):
        if mask3 & (1 << bit):
            attrs[_vendor(f"ls{4 - bit}")] = 1


# Traccar picks the decoder by a substring anywhere in the frame, in this order.
_BY_MARKER = (
    ("ZC20", _decode_battery),
    ("BZ00", _decode_network),
    ("ZC03", _decode_command_result),
    ("DW5", _decode_lbs_wifi),
    ("BV00", _decode_vin),
    ("BS50", _decode_bms),
    ("BS51", _decode_bms),
)


def decode(frame: bytes, session: Session) -> Decoded:
    if len(frame) > _MAX_DECODE:
        raise DecodeError("tk103 frame too long", frame)
    text = frame.decode("utf-8", errors="replace")
    if not text.startswith("("):
        raise DecodeError("tk103 frame does not start with '('", frame)
    head_id, kind = text[1:13], text[13:17]
    reply = None
    if len(text) >= 17:
        if kind == "BP00":
            return Decoded(reply=f"({head_id}AP01HSO)".encode(), unique_id=head_id)
        if kind == "BP05":
            reply = f"({head_id}AP05)".encode()
    with blamed_on(frame):
        if text.find("{") > 0 and text.find("}") > 0:
            positions = _decode_cells(text, frame)
        else:
            handler = next((h for marker, h in _BY_MARKER if marker in text), _decode_report)
            positions = handler(text, frame)
    unique_id = positions[0].unique_id if positions else None
    return Decoded(positions=positions, reply=reply, unique_id=unique_id)


PROTOCOL = Protocol(
    name="tk103",
    transports=("tcp", "udp"),
    default_port=5002,
    next_frame=next_frame,
    decode=decode,
    max_frame=MAX_FRAME + 1,
)


# ---------------------------------------------------------------------------------------------
# Encoders (simulators, tests): what a TK103-2 tracker sends


def _fixed_report(
    device_id: str, kind: str, data: str, fix_time: datetime, lat: float, lon: float, speed_kmh: float,
    course_deg: float, valid: bool, ignition: bool, odometer_m: int,
) -> bytes:
    if len(device_id) != 12 or not device_id.isalnum():
        raise ValueError(f"TK103 device ids are 12 letters or digits, got {device_id!r}")
    t = fix_time.astimezone(UTC)
    speed = min(max(speed_kmh, 0.0), 999.9)
    course = round(course_deg, 2) % 360
    # charge (0 = on external power), ignition, three I/O nibbles, fuel (3 hex digits).
    flags = f"0{int(ignition)}000000"
    return (
        f"({device_id}{kind}{data}{t:%y%m%d}{'A' if valid else 'V'}"
        f"{format_degrees_minutes(lat, 2)}{'S' if lat < 0 else 'N'}"
        f"{format_degrees_minutes(lon, 3)}{'W' if lon < 0 else 'E'}"
        f"{speed:05.1f}{t:%H%M%S}{course:06.2f}{flags}L{max(odometer_m, 0):08X})"
    ).encode("ascii")


def encode_login(
    device_id: str, imei: str, fix_time: datetime, lat: float, lon: float, speed_kmh: float = 0.0,
    course_deg: float = 0.0, *, valid: bool = True, ignition: bool = False, odometer_m: int = 0,
) -> bytes:
    """``BP05`` login with the IMEI and a fix; answered ``(<id>AP05)``, the fix is stored."""
    if not imei.isdigit():
        raise ValueError(f"IMEI must be digits, got {imei!r}")
    return _fixed_report(device_id, "BP05", imei, fix_time, lat, lon, speed_kmh, course_deg, valid,
                         ignition, odometer_m)


def encode_report(
    device_id: str, fix_time: datetime, lat: float, lon: float, speed_kmh: float = 0.0,
    course_deg: float = 0.0, *, valid: bool = True, ignition: bool = False, odometer_m: int = 0,
) -> bytes:
    """``BR00`` periodic report; the protocol has no answer to it.

    Resolution on the wire: 1 s, 0.0001 minute of arc, 0.1 km/h, 0.01 degree of course, 1 m.
    """
    return _fixed_report(device_id, "BR00", "", fix_time, lat, lon, speed_kmh, course_deg, valid,
                         ignition, odometer_m)


def encode_heartbeat(device_id: str) -> bytes:
    """``BP00`` handshake/keep-alive; answered ``(<id>AP01HSO)``, nothing stored."""
    return f"({device_id}BP00HSO)".encode("ascii")
