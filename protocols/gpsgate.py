"""GpsGate Server protocol (Franson GpsGate, TrackerOne reference trackers), TCP port 5026.

NMEA-style sentences, one per line, each with an NMEA checksum: the tracker logs in with
``$FRLIN,<domain>,<user or IMEI>,<password>*hh`` (``$FRLIN,IMEI,1234123412341234,*7B`` or
``$FRLIN,,user1,8IVHF*7A``), is answered ``$FRSES,<session>*hh`` (``$FRERR,AuthError,...*hh``
when refused), then reports with plain ``$GPRMC`` sentences or with the v1.1 command framework:
``$FRCMD,<id>,_SendMessage,,<lat>,<N|S>,<lon>,<E|W>,<alt m>,<speed kn>,<course>,<ddmmyy>,
<hhmmss[.sss]>,<valid 0|1>[,Name=value...]*hh`` (``$FRRET`` is the same framework answering a
server command). ``$FRVER`` announces the protocol version and is answered with ours.

Framing and the standard sentences are the NMEA module's (``protocols.nmea``): lines end at CR,
LF or NUL (Traccar's delimiters), RMC fixes merge as a generic NMEA stream does. Checksums are
verified here for the ``$FR`` sentences with the same per-device ``checksum`` setting
(``strict`` default: a wrong checksum is refused, a missing one tolerated; ``required``;
``lenient``: decoded anyway).
"""

from __future__ import annotations

import re
import zlib
from datetime import UTC, datetime
from typing import Any

from pynmea2 import NMEASentence

from protocols import nmea
from protocols.base import Protocol
from protocols.keys import from_traccar
from protocols.model import KNOT_KMH, Decoded, DecodeError, Position, Session, knots_to_kmh
from protocols.text_fields import (
    DDMMYY,
    HHMMSS,
    blamed_on,
    check_on_earth,
    degrees_minutes,
    float_field,
    format_degrees_minutes,
    lenient_datetime_of,
)

NAME = "gpsgate"
SERVER_VERSION = "$FRVER,1,0,GpsGate Server 1.0"  # what Traccar announces; trackers only log it

# <lat>,<N|S>,<lon>,<E|W>,<altitude>,<speed>,<course>,<ddmmyy>,<hhmmss[.sss]>: the fix fields of
# _SendMessage (after its empty first argument) and of FRPOS.
_FIX = (
    r"(?P<lat_deg>\d{0,3})(?P<lat_min>\d\d\.\d{1,10}),(?P<ns>[NS]),"
    r"(?P<lon_deg>\d{0,3})(?P<lon_min>\d\d\.\d{1,10}),(?P<ew>[EW]),"
    r"(?P<alt>-?\d{1,6}(?:\.\d{0,6})?),(?P<speed>\d{1,6}(?:\.\d{0,6})?),(?P<course>\d{1,6}(?:\.\d{0,6})?)?,"
    + DDMMYY + "," + HHMMSS + r"(?:\.\d{1,6})?"
)
_COMMAND_FIX = re.compile(r"[^,]*," + _FIX + r",(?P<valid>[01])(?P<extra>(?:,[^,]*)*)")
_POS_FIX = re.compile(_FIX + r"(?:,.*)?")
_USER = re.compile(r"[!-~]{1,64}")  # printable, no spaces
_NUMBER = re.compile(r"-?\d{1,12}(?:\.\d{1,9})?")
# Talker sentences handed to the NMEA decoder ($GPRMC, $GNRMC, $GPGGA...).
_TALKER = re.compile(r"\$[A-Z]{2}[A-Z]{3},")


def sentence(body: str) -> bytes:
    """``body`` (from ``$``) with its NMEA checksum and line end, as every answer goes out."""
    return f"{body}*{NMEASentence.checksum(body[1:]):02X}\r\n".encode("ascii")


def session_id(unique_id: str) -> str:
    # The session id is only echoed in logs by trackers; derived from the login so every
    # reconnect of one device reads the same in both logs.
    return f"{zlib.crc32(unique_id.encode('utf-8')):08x}"


def _verify(text: str, frame: bytes, mode: str) -> str:
    """The sentence between ``$`` and ``*hh``, its checksum checked."""
    content, star, tail = text[1:].partition("*")
    if not star:
        if mode == "required":
            raise DecodeError("gpsgate: checksum missing", frame)
        return content
    given = tail[:2]
    if len(tail) != 2 or not re.fullmatch(r"[0-9A-Fa-f]{2}", given):
        raise DecodeError("gpsgate: malformed checksum", frame)
    if int(given, 16) != NMEASentence.checksum(content) and mode != "lenient":
        raise DecodeError(f"gpsgate: bad checksum *{given}", frame)
    return content


def _within(value: float, low: float, high: float) -> float | None:
    # An impossible value (course 999) is dropped, the fix kept: Traccar's sanity bounds.
    return value if low <= value <= high else None


def _position(m: re.Match[str], frame: bytes, uid: str | None, valid: bool) -> Position:
    lat = degrees_minutes(m["lat_deg"], m["lat_min"], m["ns"], "S")
    lon = degrees_minutes(m["lon_deg"], m["lon_min"], m["ew"], "W")
    check_on_earth(lat, lon, frame, protocol=NAME)
    with blamed_on(frame):
        fix_time: datetime = lenient_datetime_of(m, protocol=NAME)
    return Position(
        fix_time=fix_time,
        latitude=lat,
        longitude=lon,
        valid=valid,
        speed_kmh=_within(knots_to_kmh(float(m["speed"])), 0, knots_to_kmh(869)),
        course_deg=_within(float(m["course"]), 0, 360) if m["course"] else None,
        altitude_m=_within(float(m["alt"]), -12262, 18000),
        unique_id=uid,
    )


def _extras(text: str, frame: bytes) -> dict[str, Any]:
    """Trailing ``Name=value`` fields (TrackerOne custom variables): numbers where they are."""
    attrs: dict[str, Any] = {}
    for item in text.split(","):
        name, eq, value = item.strip().partition("=")
        if not eq or not name or not value:
            continue  # "Odometer=": announced, no value
        key, _ = from_traccar(name)
        if _NUMBER.fullmatch(value):
            attrs[key] = float_field(value, frame, protocol=NAME) if "." in value else int(value)
        else:
            attrs[key] = value
    return attrs


def _login(fields: list[str], frame: bytes) -> Decoded:
    # $FRLIN,<domain>,<user>,<password>: the user (an IMEI for hardware logins) names the device.
    if len(fields) < 3 or not _USER.fullmatch(fields[1]):
        return Decoded(reply=sentence("$FRERR,AuthError,Parse error"))
    uid = fields[1]
    return Decoded(
        reply=sentence(f"$FRSES,{session_id(uid)}"),
        unique_id=uid,
        reject_reply=sentence("$FRERR,AuthError,Unknown device"),
    )


def _command(fields: list[str], frame: bytes) -> Decoded:
    # $FRCMD / $FRRET,<id>,<command>,<arguments...>: a position when the arguments are a fix.
    if len(fields) < 2 or not _USER.fullmatch(fields[0]):
        raise DecodeError("gpsgate: command without a device id", frame)
    uid = fields[0]
    m = _COMMAND_FIX.fullmatch(",".join(fields[2:]))
    if m is None:
        return Decoded(unique_id=uid)  # _Ping and other commands without a fix
    position = _position(m, frame, uid, m["valid"] == "1")
    position.attributes.update(_extras(m["extra"], frame))
    return Decoded(positions=[position], unique_id=uid)


def _frpos(fields: list[str], frame: bytes) -> Decoded:
    # $FRPOS: a fix without an id, from a logged-in tracker.
    m = _POS_FIX.fullmatch(",".join(fields))
    if m is None:
        raise DecodeError("gpsgate: malformed FRPOS", frame)
    return Decoded(positions=[_position(m, frame, None, True)])


def decode(frame: bytes, session: Session) -> Decoded:
    frame = bytes(frame)
    try:
        text = frame.decode("ascii").strip()
    except UnicodeDecodeError:
        raise DecodeError("gpsgate: not ASCII", frame) from None
    if not text.startswith("$FR"):
        if _TALKER.match(text):
            return nmea.decode(frame, session)
        raise DecodeError("gpsgate: not a GpsGate sentence", frame)
    address, *fields = _verify(text, frame, str(session.config.get("checksum", "strict"))).split(",")
    if address == "FRLIN":
        return _login(fields, frame)
    if address in ("FRCMD", "FRRET"):
        return _command(fields, frame)
    if address == "FRPOS":
        return _frpos(fields, frame)
    if address == "FRVER":
        return Decoded(reply=sentence(SERVER_VERSION))
    return Decoded()  # FRRDT, FRWDT... (buddy tracking we do not serve)


PROTOCOL = Protocol(
    name=NAME,
    transports=("tcp",),
    default_port=5026,
    next_frame=nmea.next_frame,
    decode=decode,
    max_frame=nmea.MAX_LINE,
)


# --- encoders (simulators, tests): what a GpsGate tracker sends --------------------------------


def encode_login(unique_id: str, *, password: str = "") -> bytes:
    """``$FRLIN,IMEI,<id>,<password>``: a hardware login, answered ``$FRSES,<session>`` (or
    ``$FRERR,AuthError,...`` for an unknown device)."""
    if not _USER.fullmatch(unique_id) or "," in unique_id or "*" in unique_id:
        raise ValueError(f"GpsGate users are printable, without commas, got {unique_id!r}")
    return sentence(f"$FRLIN,IMEI,{unique_id},{password}")


def encode_version(client: str = "Fieldtrack simulator 1.0") -> bytes:
    """``$FRVER,1,1,<client>``, answered with the server's ``$FRVER`` (what a tracker sends first,
    and what nothing stores)."""
    return sentence(f"$FRVER,1,1,{client}")


def encode_send_message(
    unique_id: str,
    fix_time: datetime,
    lat: float,
    lon: float,
    speed_kmh: float = 0.0,
    course_deg: float = 0.0,
    altitude_m: float = 0.0,
    *,
    valid: bool = True,
) -> bytes:
    """``$FRCMD,<id>,_SendMessage,,<fix>,<valid>``: a v1.1 position; the protocol does not answer it.

    Resolution on the wire: 0.001 s, 0.00001 minute of arc, 0.01 knot, 0.01 degree, 0.1 m.
    """
    t = fix_time.astimezone(UTC)
    knots = max(speed_kmh, 0.0) / KNOT_KMH
    return sentence(
        f"$FRCMD,{unique_id},_SendMessage,,"
        f"{format_degrees_minutes(lat, 2, 5)},{'S' if lat < 0 else 'N'},"
        f"{format_degrees_minutes(lon, 3, 5)},{'W' if lon < 0 else 'E'},"
        f"{altitude_m:.1f},{knots:.2f},{course_deg % 360:.2f},"
        f"{t:%d%m%y},{t:%H%M%S}.{t.microsecond // 1000:03d},{int(valid)}"
    )
