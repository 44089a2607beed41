"""Coban GPS103 text protocol (TK103-2, TK-102B, GPS-103 and their clones), port 5001, TCP and UDP.

The device speaks ASCII sentences ending in ``;`` (the "alternative" firmware ends them in ``*``,
some send line ends). Conversation, as Traccar and the Coban manual describe it:

- login ``##,imei:359586015829802,A;`` -> server answers ``LOAD``;
- heartbeat, the bare IMEI ``359586015829802;`` -> server answers ``ON``;
- reports ``imei:<imei>,<type>,<local date time>,<tag>,F|L,...;`` where ``type`` is ``tracker``
  or an alarm (``help me``, ``low battery``, ``acc on`` ...), ``F`` carries a GPS fix and ``L``
  only the serving cell;
- ``imei:<imei>,OBD,...`` engine data, ``imei:<imei>,vr,<hex>`` photo chunks (dropped: we keep no
  media), and a comma-separated "alternative" layout ending in ``*``.

The report time is the device's *local* wall clock plus the UTC time of day of the fix; the
timezone offset is inferred from the two (see :func:`_report_time`).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from protocols import keys
from protocols.base import FrameResult, Protocol, need_more
from protocols.model import KNOT_KMH, Decoded, DecodeError, Position, Session, knots_to_kmh
from protocols.text_fields import cell_tower, degrees_minutes, format_degrees_minutes, status_report

MAX_FRAME = 2048  # Traccar's limit for this protocol
_DELIMITERS = b";*\n"
# A sentence starts with "imei:", "##" (login) or a digit (heartbeat, or IMEI glued to a report).
_START = frozenset(b"#i0123456789")
# Traccar treats any short sentence naming an IMEI as a login (covers "##,imei:N,A" and the
# "imei:N,L,*" greeting of the alternative firmware).
_LOGIN_MAX = 30
_MAX_SPEED_KN = 869.0

# Alarm type strings -> Traccar's alarm vocabulary.
_ALARMS: dict[str, str] = {
    "help me": "sos",
    "low battery": "lowBattery",
    "stockade": "geofence",
    "move": "movement",
    "speed": "overspeed",
    "door alarm": "door",
    "ac alarm": "powerCut",
    "accident alarm": "accident",
    "sensor alarm": "vibration",
    "bonnet alarm": "bonnet",
    "footbrake alarm": "footBrake",
    "DTC": "fault",
}
_ALARM_PREFIXES: tuple[tuple[str, str], ...] = (("T:", "temperature"), ("oil", "fuelLeak"))
# Types that are neither alarms nor worth keeping as an event.
_NO_EVENT = frozenset({"", "tracker", "acc on", "acc off"})

_HEAD = re.compile(r"imei:(\d+),([^,]*),", re.ASCII)
_LOGIN_IMEI = re.compile(r"imei:(\d+),", re.ASCII)
_HEARTBEAT = re.compile(r"(\d+)(imei:.*)?", re.ASCII | re.DOTALL)

_REGULAR = re.compile(
    r"""
    imei:(?P<imei>\d+),
    (?P<type>[^,]*),
    (?:                                            # local date and time, yyMMddHHmm[ss]
        (?P<ly>\d\d)/?(?P<lmo>\d\d)/?(?P<ld>\d\d)\ ?(?P<lh>\d\d):?(?P<lmi>\d\d)(?:\d\d)?,
      | \d*,
    )
    (?P<tag>[^,]*),                                # rfid, phone number or battery
    (?:
        L,(?:,,(?P<lac>[0-9A-Fa-f]+),,(?P<cid>[0-9A-Fa-f]+),)?   # no fix: serving cell
      | F,
        (?:(?P<uh>\d\d)(?P<umi>\d\d)(?P<us>\d\d)(?:\.\d+)? | (?:\d{1,5}\.\d+)?),
        (?P<fix>[AV]),
        (?:(?P<lat_h1>[NS]),)?
        (?P<lat_d>\d+)(?P<lat_m>\d\d\.\d+),
        (?:(?P<lat_h2>[NS]),)?
        (?:(?P<lon_h1>[EW]),)?
        (?P<lon_d>\d+)(?P<lon_m>\d\d\.\d+),
        (?:(?P<lon_h2>[EW])?,)?
        (?P<speed>\d+\.?\d*)?                      # knots
        (?:,(?P<course>\d+\.?\d*)?)?
        (?:,(?P<alt>-?\d+\.?\d*)?)?
        (?:,(?P<ign>[01])?)?
        (?:,(?P<door>[01])?)?
        (?:,(?:(?P<fuel1>\d+\.\d+)%)?,(?:(?P<fuel2>\d+\.\d+)%|\d+)?)?
        (?:,(?P<temp>[-+]?\d+)?)?
    )
    .*
    """,
    re.ASCII | re.VERBOSE | re.DOTALL,
)

_OBD = re.compile(
    r"""
    imei:(?P<imei>\d+),OBD,
    (?P<y>\d\d)(?P<mo>\d\d)(?P<d>\d\d)(?P<h>\d\d)(?P<mi>\d\d)(?P<s>\d\d),
    (?P<odometer>\d+)?,
    (?:\d+\.\d+)?,                                 # instant fuel consumption
    (?P<fuel_avg>\d+\.\d+)?,
    (?P<hours>\d+)?,
    (?P<speed>\d+),                                # km/h
    (?P<load>\d+\.?\d*)%,
    (?:(?P<coolant>[-+]?\d+)|[-+]?),
    (?P<throttle>\d+\.?\d*)%,
    (?P<rpm>\d+),
    (?P<battery>\d+\.\d+),
    (?P<dtcs>[^;]*)
    .*
    """,
    re.ASCII | re.VERBOSE | re.DOTALL,
)

_ALTERNATIVE = re.compile(
    r"""
    imei:(?P<imei>\d+),
    [^,]+,                                         # device label
    (?:-+|(?P<event>[^,]+)),
    (?:-+|(?P<sensor_id>[^,]+)),
    (?:-+|(?P<sensor_v>[^,]+)),
    (?P<h>\d\d)(?P<mi>\d\d)(?P<s>\d\d),
    (?P<d>\d\d)(?P<mo>\d\d)(?P<y>\d\d),
    (?P<rssi>\d+),
    (?P<gps>\d),
    (?P<lat>-?\d+\.\d+),
    (?P<lon>-?\d+\.\d+),
    (?P<speed>\d+),                                # km/h
    (?P<course>\d+),
    (?P<alt>-?\d+),
    (?P<hdop>\d+\.\d+),
    (?P<sat>\d+),
    (?P<ign>[01]),
    (?P<charge>[01]),
    (?:-+|(?P<error>[^,]+))
    .*
    """,
    re.ASCII | re.VERBOSE | re.DOTALL,
)
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?", re.ASCII)
_BATTERY_TAG = re.compile(r"(\d{1,3}(?:\.\d+)?)%", re.ASCII)


def next_frame(buffer: bytes) -> FrameResult:
    """Cut one sentence, delimiter kept (as Traccar does), dropping bytes that cannot start one.

    Only the first ``MAX_FRAME`` bytes decide, so the result does not depend on how the stream
    was split into segments.
    """
    if not buffer:
        return need_more()
    skip = 0
    while skip < len(buffer) and buffer[skip] not in _START:
        skip += 1
    if skip:
        return (None, skip)
    window = buffer[:MAX_FRAME]
    ends = [i for i in (window.find(d) for d in _DELIMITERS) if i >= 0]
    if ends:
        stop = min(ends) + 1
        return (bytes(buffer[:stop]), stop)
    if len(buffer) >= MAX_FRAME:
        return (None, MAX_FRAME)  # oversize: drop it, resynchronise on what follows
    return need_more()


def decode(frame: bytes, session: Session) -> Decoded:
    if len(frame) > MAX_FRAME:
        raise DecodeError("gps103 frame too long", frame)
    text = frame.decode("latin-1").strip().rstrip(";").strip()
    if not text:
        raise DecodeError("empty gps103 frame", frame)
    if "imei:" in text and len(text) <= _LOGIN_MAX:
        found = _LOGIN_IMEI.search(text)
        return Decoded(reply=b"LOAD", unique_id=found.group(1) if found else None)
    if text[0].isdigit():
        beat = _HEARTBEAT.fullmatch(text)
        if beat is None:
            raise DecodeError("gps103 heartbeat is not an IMEI", frame)
        if beat.group(2) is None:
            return Decoded(reply=b"ON", unique_id=beat.group(1))
        # Some firmwares glue the heartbeat IMEI to the next report: answer it, then read on.
        decoded = _decode_report(beat.group(2), frame)
        decoded.reply = b"ON" + (decoded.reply or b"")
        return decoded
    return _decode_report(text, frame)


def _decode_report(text: str, frame: bytes) -> Decoded:
    head = _HEAD.match(text)
    if head is None:
        raise DecodeError("gps103 sentence without imei", frame)
    imei, kind = head.group(1), head.group(2)
    if kind == "vr":
        return Decoded(unique_id=imei)  # photo chunk: media storage is out of scope
    if kind == "OBD":
        return _decode_obd(text, imei)
    if text.endswith("*"):
        return _decode_alternative(text, imei, frame)
    return _decode_regular(text, imei, frame)


def _decode_regular(text: str, imei: str, frame: bytes) -> Decoded:
    m = _REGULAR.fullmatch(text)
    if m is None:
        raise DecodeError("gps103 report does not match the known layouts", frame)
    kind = m["type"]
    attrs: dict[str, Any] = {}
    _type_attributes(kind, m["tag"], attrs)
    reply = f"**,imei:{imei},E;".encode() if kind == "help me" else None  # stops SOS repeats

    if m["fix"] is None:  # "L": no GPS, only the serving cell
        if m["lac"] is not None:
            attrs[keys.CELL_TOWERS] = [cell_tower(None, None, int(m["lac"], 16), int(m["cid"], 16))]
        position = Position(fix_time=datetime.now(UTC), latitude=None, longitude=None, valid=False,
                            unique_id=imei, attributes=attrs)
        return Decoded(positions=[position], reply=reply, unique_id=imei)

    lat = _coordinate(m["lat_d"], m["lat_m"], m["lat_h2"] or m["lat_h1"], "S", 90, frame)
    lon = _coordinate(m["lon_d"], m["lon_m"], m["lon_h2"] or m["lon_h1"], "W", 180, frame)
    when = _report_time(m)
    if m["ign"] is not None and keys.IGNITION not in attrs:
        # An "acc on"/"acc off" report states the transition itself; some firmwares still
        # carry the previous state in this field (gps103-081: "acc off" with 1 here).
        attrs[keys.IGNITION] = m["ign"] == "1"
    if m["door"] is not None:
        attrs[keys.DOOR] = m["door"] == "1"
    for traccar_key, raw in (("fuel1", m["fuel1"]), ("fuel2", m["fuel2"])):
        _put_float(attrs, keys.from_traccar(traccar_key)[0], raw)
    if m["temp"] is not None:
        attrs[keys.from_traccar("temp1")[0]] = int(m["temp"])
    speed = float(m["speed"]) if m["speed"] else None
    course = float(m["course"]) if m["course"] else None
    altitude = float(m["alt"]) if m["alt"] else None
    position = Position(
        fix_time=when,
        device_time=when,
        latitude=lat,
        longitude=lon,
        valid=m["fix"] == "A",
        speed_kmh=knots_to_kmh(speed) if speed is not None and speed <= _MAX_SPEED_KN else None,
        course_deg=course if course is not None and course <= 360 else None,
        altitude_m=altitude if altitude is not None and -12262 <= altitude <= 18000 else None,
        unique_id=imei,
        attributes=attrs,
    )
    return Decoded(positions=[position], reply=reply, unique_id=imei)


def _type_attributes(kind: str, tag: str, attrs: dict[str, Any]) -> None:
    """What the report type (and the tag next to it) says, in Traccar's vocabulary."""
    alarm = _ALARMS.get(kind)
    for prefix, name in _ALARM_PREFIXES:
        if alarm is None and kind.startswith(prefix):
            alarm = name
    if alarm is not None:
        attrs[keys.ALARM] = alarm
    if kind in ("acc on", "acc off"):
        attrs[keys.IGNITION] = kind == "acc on"
    elif kind.startswith("T:"):
        _put_float(attrs, keys.from_traccar("temp1")[0], kind[2:])
    elif kind.startswith("oil "):
        _put_float(attrs, keys.FUEL_PCT, kind[4:])
    elif alarm is None and not kind.startswith("vt") and kind not in _NO_EVENT:
        # "vtNN" announces NN photo chunks; anything else unknown is kept as the event name.
        attrs[keys.EVENT] = kind
    if kind == "rfid" and tag:
        attrs[keys.DRIVER_UNIQUE_ID] = tag
    battery = _BATTERY_TAG.fullmatch(tag)
    if battery is not None and float(battery.group(1)) <= 100:
        # Recent firmwares put the battery level where older ones put the SIM/phone tag.
        attrs[keys.BATTERY_PCT] = float(battery.group(1))


def _put_float(attrs: dict[str, Any], key: str, raw: str | None) -> None:
    """A numeric field, if it is one; digits long enough to overflow a float are dropped."""
    if raw and _NUMBER.fullmatch(raw):
        value = float(raw)
        if math.isfinite(value):
            attrs[key] = value


def _coordinate(deg: str, minutes: str, hemisphere: str | None, negative: str, limit: float,
                frame: bytes) -> float:
    value = degrees_minutes(deg, minutes, hemisphere, negative)
    if abs(value) > limit:
        raise DecodeError("gps103 coordinate out of range", frame)
    return value


def _report_time(m: re.Match[str]) -> datetime:
    """Local date plus the UTC time of day; the offset is the local/UTC difference.

    The device only knows its local wall clock (to the minute) and the GPS UTC time of day. Their
    difference, folded into (-12 h, +12 h], is the timezone offset; applying it to the local
    date gives the UTC instant even when the two sit on different days.
    """
    local = _local_date(m)
    if m["uh"] is None:
        if local is None:
            return datetime.now(UTC)
        # No UTC time of day: the local clock is all there is (Traccar stores it as UTC).
        return _at(local, int(m["lh"]), int(m["lmi"]), 0) or datetime.now(UTC)
    uh, umi, us = int(m["uh"]), int(m["umi"]), int(m["us"])
    if local is None:
        return _nearest_today(uh, umi, us)
    lh, lmi = int(m["lh"]), int(m["lmi"])
    offset = (lh - uh) * 60 + (lmi - umi)
    if offset <= -12 * 60:
        offset += 24 * 60
    elif offset > 12 * 60:
        offset -= 24 * 60
    stamp = _at(local, lh, lmi, us)
    if stamp is None:
        return _nearest_today(uh, umi, us)
    return stamp - timedelta(minutes=offset)


def _local_date(m: re.Match[str]) -> date | None:
    if m["ly"] is None:
        return None
    try:
        return date(2000 + int(m["ly"]), int(m["lmo"]), int(m["ld"]))
    except ValueError:
        return None


def _at(day: date, hour: int, minute: int, second: int) -> datetime | None:
    if hour > 23 or minute > 59 or second > 59:
        return None
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


def _nearest_today(hour: int, minute: int, second: int) -> datetime:
    """A UTC time of day without a usable date: the occurrence nearest to now."""
    now = datetime.now(UTC)
    stamp = _at(now.date(), hour, minute, second)
    if stamp is None:
        return now
    return min((stamp + timedelta(days=d) for d in (-1, 0, 1)), key=lambda t: abs(t - now))


def _decode_obd(text: str, imei: str) -> Decoded:
    m = _OBD.fullmatch(text)
    if m is None:
        # Adapters without engine data (ignition off, no bus) send the fields blank; Traccar
        # drops such reports, and so do we, without calling the frame malformed.
        return Decoded(unique_id=imei)
    when = _clock(m) or datetime.now(UTC)
    attrs: dict[str, Any] = {keys.OBD_SPEED_KMH: int(m["speed"]), keys.RPM: int(m["rpm"])}
    _put_float(attrs, keys.from_traccar("engineLoad")[0], m["load"])
    _put_float(attrs, keys.from_traccar("throttle")[0], m["throttle"])
    _put_float(attrs, keys.BATTERY_V, m["battery"])
    if m["odometer"] is not None:
        attrs[keys.ODOMETER_M] = int(m["odometer"])
    _put_float(attrs, keys.from_traccar("fuelConsumption")[0], m["fuel_avg"])
    if m["hours"] is not None:
        attrs[keys.ENGINE_HOURS_S] = int(m["hours"]) * 3600
    if m["coolant"] is not None:
        attrs[keys.from_traccar("coolantTemp")[0]] = int(m["coolant"])
    dtcs = " ".join(code for code in m["dtcs"].split(",") if code.strip())
    if dtcs:
        attrs[keys.from_traccar("dtcs")[0]] = dtcs
    return Decoded(positions=[status_report(when, imei, attrs)], unique_id=imei)


def _clock(m: re.Match[str]) -> datetime | None:
    try:
        return datetime(2000 + int(m["y"]), int(m["mo"]), int(m["d"]), int(m["h"]), int(m["mi"]),
                        int(m["s"]), tzinfo=UTC)
    except ValueError:
        return None


def _decode_alternative(text: str, imei: str, frame: bytes) -> Decoded:
    m = _ALTERNATIVE.fullmatch(text)
    if m is None:
        raise DecodeError("gps103 alternative report does not match", frame)
    when = _clock(m)
    if when is None:
        raise DecodeError("gps103 alternative report with an invalid date", frame)
    lat, lon = float(m["lat"]), float(m["lon"])
    if abs(lat) > 90 or abs(lon) > 180:
        raise DecodeError("gps103 coordinate out of range", frame)
    attrs: dict[str, Any] = {
        keys.RSSI: int(m["rssi"]),
        keys.SATELLITES: int(m["sat"]),
        keys.IGNITION: m["ign"] == "1",
        keys.CHARGE: m["charge"] == "1",
    }
    for traccar_key, raw in (("event", m["event"]), ("sensorId", m["sensor_id"]),
                             ("error", m["error"])):
        if raw:
            attrs[keys.from_traccar(traccar_key)[0]] = raw
    _put_float(attrs, keys.from_traccar("sensorVoltage")[0], m["sensor_v"])
    speed, course, altitude = int(m["speed"]), int(m["course"]), int(m["alt"])
    position = Position(
        fix_time=when,
        device_time=when,
        latitude=lat,
        longitude=lon,
        valid=int(m["gps"]) > 0,
        speed_kmh=float(speed) if speed <= knots_to_kmh(_MAX_SPEED_KN) else None,
        course_deg=float(course) if course <= 360 else None,
        altitude_m=float(altitude) if -12262 <= altitude <= 18000 else None,
        hdop=float(m["hdop"]),
        unique_id=imei,
        attributes=attrs,
    )
    return Decoded(positions=[position], unique_id=imei)


PROTOCOL = Protocol(
    name="gps103",
    transports=("tcp", "udp"),
    default_port=5001,
    next_frame=next_frame,
    decode=decode,
    max_frame=MAX_FRAME,
)


# --- encoders (simulators, tests): what a Coban tracker sends ---------------------------------


def encode_login(imei: str) -> bytes:
    """``##,imei:<imei>,A;``, answered ``LOAD``."""
    return f"##,imei:{imei},A;".encode("ascii")


def encode_heartbeat(imei: str) -> bytes:
    """The bare IMEI, answered ``ON``."""
    return f"{imei};".encode("ascii")


def encode_report(
    imei: str,
    fix_time: datetime,
    lat: float,
    lon: float,
    speed_kmh: float = 0.0,
    course_deg: float = 0.0,
    altitude_m: float | None = None,
    *,
    valid: bool = True,
) -> bytes:
    """A ``tracker`` report with a GPS fix (``F``); the protocol has no answer to it.

    The local clock field is written in UTC (offset 0), so the decoder needs no inference.
    Resolution on the wire: 1 s, 0.0001 minute of arc, 0.01 knot, 0.01 degree, 0.1 m.
    """
    if not imei.isdigit():
        raise ValueError(f"IMEI must be digits, got {imei!r}")
    t = fix_time.astimezone(UTC)
    knots = max(speed_kmh, 0.0) / KNOT_KMH
    altitude = "" if altitude_m is None else f"{altitude_m:.1f}"
    return (
        f"imei:{imei},tracker,{t:%y%m%d%H%M},,F,{t:%H%M%S}.000,{'A' if valid else 'V'},"
        f"{format_degrees_minutes(lat, 2)},{'S' if lat < 0 else 'N'},"
        f"{format_degrees_minutes(lon, 3)},{'W' if lon < 0 else 'E'},"
        f"{knots:.2f},{course_deg % 360:.2f},{altitude};"
    ).encode("ascii")
