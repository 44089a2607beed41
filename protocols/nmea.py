"""Generic NMEA 0183 stream (Traccar's "t55"): TCP and UDP, port 5005.

Framing: one sentence per frame. A frame ends at a line end, at any byte that is not printable
ASCII, and at the next ``$``: a truncated sentence spliced into the next one (seen on a SiRF
receiver) or binary u-blox UBX packets interleaved with NMEA cost only the broken piece. Lines
without ``$`` are frames only in the forms trackers really send (``IMEI nnn``, a bare hex id,
``QZE,...``) and an id may precede ``$`` (``123456789$GPRMC...``); anything else is discarded.

Decoding: standard sentences are parsed with pynmea2, any talker (GP, GN, GL, GA, GB, BD, IN...).
Like Traccar, every positional sentence (RMC, GGA, GLL, GNS, and vendor ones) yields a position.
The session keeps the current epoch (sentences sharing one time of day) so a position carries
what the epoch told so far: GGA gets RMC's date, speed and course, RMC/GLL get GGA's altitude,
HDOP and satellites, GSA/VTG/ZDA fill in DOPs, speed and date. A sentence whose checksum does not
match is rejected and counted (:class:`NmeaStats`). Per-device decoder settings
(``Session.config``):

- ``checksum``: ``"strict"`` (default: mismatch rejected, missing checksum tolerated, as many
  trackers omit it), ``"required"`` (missing checksum rejected too) or ``"lenient"`` (mismatch
  counted but decoded, Traccar's behaviour, for devices whose firmware computes it wrongly).
- ``positions``: ``"sentence"`` (default, Traccar's) or ``"epoch"``: one merged position per
  epoch, sent when the sentence that closed the previous epoch comes round again (learned from
  the stream) or, failing that, when the next epoch starts.
- ``ack``: answer ``OK1\\r\\n`` to RMC over TCP (Traccar's ``t55.ack``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import reduce
from typing import Any

import pynmea2
from pynmea2.nmea_utils import dm_to_sd
from pynmea2.types.proprietary.ubx import UBX00

from protocols import keys, nmea_vendor
from protocols.base import FrameResult, Protocol, need_more
from protocols.model import KNOT_KMH, Decoded, DecodeError, Position, Session, knots_to_kmh
from protocols.text_fields import format_degrees_minutes

MAX_LINE = 1024  # NMEA allows 82 characters; vendor lines ($ID, extended RMC) run longer.

# --- framing -------------------------------------------------------------------------------

_DOLLAR = 0x24
_EOL = frozenset(b"\r\n")
_ALNUM = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
# Bytes that cannot continue a line start: where garbage is cut, one of them is left in front so
# the framer, which keeps no state, never mistakes the rest of a garbage run for a new line.
_NOT_MARKER = _ALNUM | frozenset(b"$ \r\n")
_BLANKS = re.compile(rb"[ \r\n]+")
_TEXT = re.compile(rb"[ -#%-~]*")  # printable ASCII except '$'
_ADDRESS = re.compile(rb"\$[A-Z][A-Z0-9]{1,9}[,=]")
_ADDRESS_SO_FAR = re.compile(rb"\$(?:[A-Z][A-Z0-9]{0,9})?")
_EOL_OR_DOLLAR = re.compile(rb"[$\r\n]")
_ID_PREFIX = re.compile(rb"(?:[0-9A-F]{1,20}/)?[0-9A-F]{6,24}[/,]?")
_BARE_LINE = re.compile(rb"IMEI [0-9A-Za-z]{6,24}|QZE,[ -~]{10,200}|[0-9A-F]{8,24}")


def _drop(buf: bytes, end: int, text_from: int | None = None) -> FrameResult:
    """Discard garbage in ``buf[:end]`` up to its last marker byte, left as the "in garbage" state."""
    for i in range(end - 1, 0, -1):
        if buf[i] not in _NOT_MARKER:
            return (None, i)
    if end <= MAX_LINE:
        return need_more()
    if text_from is not None:  # text longer than any line, without a marker: drop all of it here
        end = _TEXT.match(buf, text_from).end()  # type: ignore[union-attr]
    return (None, end)


def _garbage(buf: bytes) -> FrameResult:
    hit = _EOL_OR_DOLLAR.search(buf, 1)
    return (None, hit.start()) if hit else _drop(buf, len(buf))


def _sentence(buf: bytes, start: int, dollar: int) -> FrameResult:
    if not _ADDRESS.match(buf, dollar):
        if _ADDRESS_SO_FAR.fullmatch(buf, dollar):
            return need_more()
        return _garbage(buf) if start == dollar else (None, dollar)
    # Look no further than MAX_LINE, so a long line is dropped whether or not its end has come.
    end = _TEXT.match(buf, dollar + 1, start + MAX_LINE + 1).end()  # type: ignore[union-attr]
    if end > start + MAX_LINE:
        return _drop(buf, end, dollar + 1)
    if end == len(buf):
        return need_more()
    return (bytes(buf[start:end]), end)


def _line(buf: bytes) -> FrameResult:
    end = _TEXT.match(buf, 0, MAX_LINE + 1).end()  # type: ignore[union-attr]
    if end > MAX_LINE:
        return _drop(buf, end, 0)
    if end == len(buf):
        return need_more()
    if buf[end] == _DOLLAR:
        return _sentence(buf, 0, end) if _ID_PREFIX.fullmatch(buf, 0, end) else (None, end)
    line = bytes(buf[:end]).rstrip(b" ")
    if buf[end] in _EOL and _BARE_LINE.fullmatch(line):
        return (line, end)
    return (None, end)


def next_frame(buffer: bytes) -> FrameResult:
    if not buffer:
        return need_more()
    first = buffer[0]
    if first in b" \r\n":
        return (None, _BLANKS.match(buffer).end())  # type: ignore[union-attr]
    if first == _DOLLAR:
        return _sentence(buffer, 0, 0)
    if first in _ALNUM:
        return _line(buffer)
    return _garbage(buffer)


# --- session state -------------------------------------------------------------------------


@dataclass(slots=True)
class NmeaStats:
    """Per-connection counters the gateway can export (session.state["nmea"].stats)."""

    frames: int = 0
    ok: int = 0  # accepted (includes sentences of types we do not use, e.g. GSV)
    no_checksum: int = 0  # sentences without a checksum (let through unless "required")
    bad_checksum: int = 0  # checksum missing its hex digits or not matching (counted in every mode)
    unparsable: int = 0  # checksum fine or absent, but fields malformed or truncated
    positions: int = 0


@dataclass(slots=True)
class _Epoch:
    time: time | None = None
    date: date | None = None
    values: dict[str, float] = field(default_factory=dict)
    fix: tuple[float, float, bool] | None = None  # latitude, longitude, valid
    last_kind: str | None = None  # last positional sentence type seen in this epoch
    emitted: bool = False


@dataclass(slots=True)
class NmeaState:
    stats: NmeaStats = field(default_factory=NmeaStats)
    epoch: _Epoch = field(default_factory=_Epoch)
    last_fix: datetime | None = None  # dates time-only sentences (GGA, GLL, PUBX)
    pending: Position | None = None  # fix sent before the id (Maxon: RMC, then $GPFID)
    closer: str | None = None  # epoch mode: the sentence type that ends an epoch on this device


def state_of(session: Session) -> NmeaState:
    state = session.state.get("nmea")
    if not isinstance(state, NmeaState):
        state = session.state["nmea"] = NmeaState()
    return state


def stats(session: Session) -> NmeaStats:
    return state_of(session).stats


def _now() -> datetime:
    return datetime.now(UTC)


# --- checksum and fields -------------------------------------------------------------------


class ChecksumError(DecodeError):
    """The sentence's ``*hh`` does not match the XOR of its content."""


_CHECKSUM = re.compile(r"\s*([0-9A-Fa-f]{2})(?=,|\Z)")
_DEVICE_ID = re.compile(r"[!-~](?:[ -+\--~]{0,62}[!-~])?")  # printable, no comma
_PREFIXED = re.compile(r"(?:[0-9A-F]{1,20}/)?([0-9A-F]{6,24})[/,]?")


def _xor(text: str) -> int:
    return reduce(lambda acc, ch: acc ^ ord(ch), text, 0)


def _verify(sentence: str, frame: bytes, mode: str, counters: NmeaStats) -> tuple[str, str]:
    """Content between ``$`` and ``*`` (checked) and whatever a tracker appended after ``*hh``."""
    content, star, rest = sentence[1:].partition("*")
    if not star:
        if mode == "required":
            raise ChecksumError("nmea: checksum missing", frame)
        counters.no_checksum += 1
        return content, ""
    match = _CHECKSUM.match(rest)
    # One tracker writes "A * 72": the space is not part of what it summed.
    if match and int(match[1], 16) in (_xor(content), _xor(content.rstrip())):
        return content.rstrip(), rest[match.end() :]
    if mode != "lenient":
        raise ChecksumError(f"nmea: bad checksum *{rest[:2]}", frame)
    counters.bad_checksum += 1
    return content.rstrip(), rest[match.end() :] if match else ""


def _num(value: object) -> float | None:
    """A numeric field (pynmea2 hands back the raw string when its own conversion fails)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str | int | float):
        value = str(value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"non-finite {value!r}")
    return number


def _text(msg: Any, name: str) -> str:
    value = getattr(msg, name)
    return value if isinstance(value, str) else ""


def _time_of_day(value: object) -> time | None:
    if value is None or value == "":
        return None
    if not isinstance(value, time):
        raise ValueError(f"time {value!r}")
    return value.replace(tzinfo=UTC)


def _unroll(day: date) -> date:
    # Receivers hit by the GPS week-number rollover report dates 1024 weeks (19.6 years) early;
    # no real fix predates the first rollover (1999-08-22).
    while day < date(1999, 8, 22):
        day += timedelta(weeks=1024)
    return day


def _coords(msg: Any, valid: bool, fields: int) -> tuple[float, float, bool] | None:
    if len(msg.data) < fields:
        raise ValueError("truncated sentence")
    if not _text(msg, "lat") and not _text(msg, "lon"):
        return None  # a well-formed sentence without a fix
    if _text(msg, "lat_dir") not in ("N", "S") or _text(msg, "lon_dir") not in ("E", "W"):
        raise ValueError("hemisphere")
    latitude = dm_to_sd(_text(msg, "lat")) * (-1 if _text(msg, "lat_dir") == "S" else 1)
    longitude = dm_to_sd(_text(msg, "lon")) * (-1 if _text(msg, "lon_dir") == "W" else 1)
    if not (abs(latitude) <= 90 and abs(longitude) <= 180):
        raise ValueError("coordinates out of range")
    return (latitude, longitude, valid)


def _sane(values: dict[str, float | None]) -> dict[str, float]:
    """Drop values outside what a receiver can report (Traccar's sanity bounds) from a fix."""
    bounds = {"altitude_m": (-12262, 18000), "speed_kmh": (0, knots_to_kmh(869)), "course_deg": (0, 360)}
    out = {}
    for name, value in values.items():
        low, high = bounds.get(name, (0, math.inf))
        if value is not None and low <= value <= high:
            out[name] = value
    return out


def _parse(content: str, expected: type) -> Any:
    try:
        msg = pynmea2.parse("$" + content)
    except Exception as exc:  # pynmea2 raises ParseError, IndexError... on hostile input
        raise ValueError(f"pynmea2 {exc.__class__.__name__}") from exc
    if not isinstance(msg, expected):  # "$PXRMC": a proprietary sentence, not an RMC
        raise ValueError(f"{content[:5]} is not {expected.__name__}")
    return msg


# --- positions -----------------------------------------------------------------------------


def _stamp(state: NmeaState, day: date | None, tod: time | None) -> datetime:
    if tod is None:
        return _now()  # sentences without a time (old GLL, RMA): server time, as Traccar
    if day is not None:
        stamp = datetime.combine(day, tod)
    else:
        # No date in this epoch: the date that puts it nearest the last fix (or now), so an
        # epoch just after midnight does not jump back a day.
        ref = state.last_fix or _now()
        first = datetime.combine(ref.date(), tod)
        stamp = min((first + timedelta(days=d) for d in (-1, 0, 1)), key=lambda s: abs(s - ref))
    state.last_fix = stamp
    return stamp


def _position(stamp: datetime, fix: tuple[float, float, bool], values: dict[str, float]) -> Position:
    latitude, longitude, valid = fix
    position = Position(
        fix_time=stamp,
        latitude=latitude,
        longitude=longitude,
        valid=valid,
        speed_kmh=values.get("speed_kmh"),
        course_deg=values.get("course_deg"),
        altitude_m=values.get("altitude_m"),
        accuracy_m=values.get("accuracy_m"),
        hdop=values.get("hdop"),
    )
    for name in (keys.SATELLITES, keys.PDOP, keys.VDOP):
        if name in values:
            position.attributes[name] = int(values[name]) if name == keys.SATELLITES else values[name]
    return position


def _epoch_position(state: NmeaState, epoch: _Epoch) -> Position:
    assert epoch.fix is not None
    return _position(_stamp(state, epoch.date, epoch.time), epoch.fix, epoch.values)


def _merge(
    state: NmeaState, session: Session, kind: str, tod: time | None,
    fix: tuple[float, float, bool] | None, values: dict[str, float | None], day: date | None = None,
) -> list[Position]:
    """Fold one sentence into the current epoch; the positions it releases."""
    by_epoch = session.config.get("positions") == "epoch"
    out = []
    epoch = state.epoch
    if tod is not None and tod != epoch.time:
        if by_epoch and epoch.fix is not None and not epoch.emitted:
            out.append(_epoch_position(state, epoch))
        if epoch.last_kind is not None:
            state.closer = epoch.last_kind
        epoch = state.epoch = _Epoch(time=tod)
    if day is not None and (day := _unroll(day)) <= _now().date() + timedelta(days=1):
        epoch.date = day  # a date from the future is a receiver without almanac: ignored
    epoch.values.update(_sane(values))
    if fix is None:
        return out
    epoch.fix, epoch.last_kind = fix, kind
    if not by_epoch:
        out.append(_epoch_position(state, epoch))
    elif kind == state.closer and not epoch.emitted:
        epoch.emitted = True
        out.append(_epoch_position(state, epoch))
    return out


def _rmc(msg: Any, state: NmeaState, session: Session) -> list[Position]:
    valid = _text(msg, "status") == "A" and _text(msg, "mode_indicator") != "N"
    fix = _coords(msg, valid, 9)
    day = msg.datestamp if isinstance(msg.datestamp, date) else None  # "000000" before a fix
    knots = _num(msg.spd_over_grnd)
    values = {"speed_kmh": None if knots is None else knots_to_kmh(knots),
              "course_deg": _num(msg.true_course)}
    return _merge(state, session, "RMC", _time_of_day(msg.timestamp), fix, values, day)


def _gga(msg: Any, state: NmeaState, session: Session) -> list[Position]:
    quality = _num(msg.gps_qual)
    fix = _coords(msg, bool(quality), 6)
    altitude = _num(msg.altitude) if _text(msg, "altitude_units") in ("M", "") else None
    values = {"altitude_m": altitude, "hdop": _num(msg.horizontal_dil), keys.SATELLITES: _num(msg.num_sats)}
    return _merge(state, session, "GGA", _time_of_day(msg.timestamp), fix, values)


def _gns(msg: Any, state: NmeaState, session: Session) -> list[Position]:
    mode = _text(msg, "mode_indicator")  # one letter per constellation, N = no fix
    fix = _coords(msg, bool(mode.strip("N")), 6)
    values = {"altitude_m": _num(msg.altitude), "hdop": _num(msg.hdop), keys.SATELLITES: _num(msg.num_sats)}
    return _merge(state, session, "GNS", _time_of_day(msg.timestamp), fix, values)


def _gll(msg: Any, state: NmeaState, session: Session) -> list[Position]:
    valid = _text(msg, "status") in ("A", "") and _text(msg, "faa_mode") != "N"
    return _merge(state, session, "GLL", _time_of_day(msg.timestamp), _coords(msg, valid, 4), {})


def _zda(msg: Any, state: NmeaState, session: Session) -> list[Position]:
    parts = (msg.year, msg.month, msg.day)
    day = date(*parts) if all(isinstance(p, int) for p in parts) else None
    return _merge(state, session, "ZDA", _time_of_day(msg.timestamp), None, {}, day)


def _gsa(msg: Any, state: NmeaState, session: Session) -> list[Position]:
    values = {keys.PDOP: _num(msg.pdop), "hdop": _num(msg.hdop), keys.VDOP: _num(msg.vdop)}
    return _merge(state, session, "GSA", None, None, values)


def _vtg(msg: Any, state: NmeaState, session: Session) -> list[Position]:
    kmh, knots = _num(msg.spd_over_grnd_kmph), _num(msg.spd_over_grnd_kts)
    speed = kmh if kmh is not None else (None if knots is None else knots_to_kmh(knots))
    return _merge(state, session, "VTG", None, None, {"speed_kmh": speed, "course_deg": _num(msg.true_track)})


def _rma(msg: Any, state: NmeaState, session: Session) -> list[Position]:
    fix = _coords(msg, _text(msg, "data_status") == "A", 5)
    if fix is None:
        return []
    knots = _num(msg.spd_over_grnd)
    values = _sane({"speed_kmh": None if knots is None else knots_to_kmh(knots),
                    "course_deg": _num(msg.crse_over_grnd)})
    return [_position(_now(), fix, values)]


def _pubx(msg: Any, state: NmeaState, session: Session) -> list[Position]:
    """u-blox ``$PUBX,00``: position, accuracy and DOPs in one proprietary sentence."""
    status = _text(msg, "nav_stat")
    fix = _coords(msg, status not in ("NF", ""), 10)
    if fix is None:
        return []
    values = _sane({
        "altitude_m": _num(msg.alt_ref), "accuracy_m": _num(msg.h_acc), "speed_kmh": _num(msg.sog),
        "course_deg": _num(msg.cog), "hdop": _num(msg.hdop), keys.VDOP: _num(msg.vdop),
        keys.SATELLITES: _num(msg.num_svs),
    })
    return [_position(_stamp(state, None, _time_of_day(msg.timestamp)), fix, values)]


_TALKER = {"RMC": _rmc, "GGA": _gga, "GNS": _gns, "GLL": _gll, "ZDA": _zda, "GSA": _gsa, "VTG": _vtg,
           "RMA": _rma}
_VENDOR = {"TRCCR": nmea_vendor.trccr, "GPIOP": nmea_vendor.gpiop, "ID": nmea_vendor.wmcs}
# Sentences that only name the device, and which comma field holds the name (None: all the rest).
_ID_SENTENCES = {"PGID": None, "DEVID": None, "PSIWMDID": None, "GPFID": None, "PCPTI": 0, "CONNECT": 0}


# --- decode --------------------------------------------------------------------------------


def _plausible(position: Position) -> Position:
    """Vendor sentences carry free-form numbers: refuse impossible fixes, drop impossible values."""
    if position.latitude is not None and not abs(position.latitude) <= 90:
        raise ValueError(f"latitude {position.latitude}")
    if position.longitude is not None and not abs(position.longitude) <= 180:
        raise ValueError(f"longitude {position.longitude}")
    if not datetime(1999, 1, 1, tzinfo=UTC) < position.fix_time < _now() + timedelta(days=1):
        raise ValueError(f"fix time {position.fix_time}")
    kept = _sane({"speed_kmh": position.speed_kmh, "course_deg": position.course_deg,
                  "altitude_m": position.altitude_m})
    position.speed_kmh, position.course_deg = kept.get("speed_kmh"), kept.get("course_deg")
    position.altitude_m = kept.get("altitude_m")
    return position


def _deliver(state: NmeaState, session: Session, positions: list[Position], uid: str | None,
             reply: bytes | None = None) -> Decoded:
    positions = [_plausible(p) for p in positions]
    if uid:
        for p in positions:
            p.unique_id = uid
    elif positions and session.unique_id is None:
        # Traccar keeps an anonymous fix until the device names itself (Maxon sends the fix
        # first, then $GPFID); only the latest is kept.
        state.pending = positions[-1]
        return Decoded(reply=reply)
    return Decoded(positions=positions, unique_id=uid, reply=reply)


def _identify(state: NmeaState, uid: str, frame: bytes) -> Decoded:
    uid = uid.strip()
    if not _DEVICE_ID.fullmatch(uid):
        raise DecodeError("nmea: malformed device id", frame)
    released, state.pending = state.pending, None
    if released is not None:
        released.unique_id = uid
    return Decoded(positions=[released] if released else [], unique_id=uid)


def _bare(line: str, state: NmeaState, session: Session, frame: bytes) -> Decoded:
    if line.startswith("IMEI "):
        return _identify(state, line[5:], frame)
    if line.startswith("QZE,"):
        report = nmea_vendor.qze(line.split(",")[1:], _now)
        return _deliver(state, session, [report.position], report.unique_id)
    if re.fullmatch(r"[0-9A-F]{6,32}", line):
        return _identify(state, line, frame)
    raise DecodeError("nmea: not a sentence", frame)


def _decode(frame: bytes, session: Session, state: NmeaState) -> Decoded:
    text = frame.decode("ascii", "replace").strip()
    if not text.startswith("$"):
        head, dollar, rest = text.partition("$")
        if not dollar:
            return _bare(text, state, session, frame)
        prefix = _PREFIXED.fullmatch(head)
        if not prefix:
            raise DecodeError("nmea: garbage before '$'", frame)
        uid: str | None = prefix[1]
        text = "$" + rest
    else:
        uid = None
    content, tail = _verify(text, frame, str(session.config.get("checksum", "strict")), state.stats)
    address, _, rest = content.partition(",")
    if address.startswith("IMEI") and len(address) > 5 and address[4] in "=,":
        return _identify(state, content[5:], frame)
    if address in _ID_SENTENCES:
        index = _ID_SENTENCES[address]
        return _identify(state, rest if index is None else rest.split(",")[index], frame)
    fields = rest.split(",")
    if address in _VENDOR:
        report = _VENDOR[address](fields, _now)
        return _deliver(state, session, [report.position], uid or report.unique_id)
    kind = address[2:] if len(address) == 5 else ""
    if kind == "TXT" and fields[0] == "NET":
        return _deliver(state, session, [nmea_vendor.net_text(fields, _now).position], uid)
    if address == "PUBX" and fields[0] == "00":
        return _deliver(state, session, _pubx(_parse(content, UBX00), state, session), uid)
    if kind not in _TALKER:
        return Decoded(unique_id=uid)  # a sentence we do not use (GSV, RMB, PGRME...)
    positions = _TALKER[kind](_parse(content, pynmea2.TalkerSentence), state, session)
    reply = None
    if kind == "RMC":
        if tail and positions:
            uid = nmea_vendor.rmc_tail(tail, positions[-1]) or uid
        if session.config.get("ack") and session.transport == "tcp" and (uid or session.unique_id):
            reply = b"OK1\r\n"
    return _deliver(state, session, positions, uid, reply)


def decode(frame: bytes, session: Session) -> Decoded:
    state = state_of(session)
    state.stats.frames += 1
    try:
        decoded = _decode(bytes(frame), session, state)
    except ChecksumError:
        state.stats.bad_checksum += 1
        raise
    except DecodeError:
        state.stats.unparsable += 1
        raise
    except (ValueError, IndexError, OverflowError) as exc:
        state.stats.unparsable += 1
        raise DecodeError(f"nmea: malformed sentence ({exc})", frame) from exc
    state.stats.ok += 1
    state.stats.positions += len(decoded.positions)
    return decoded


PROTOCOL = Protocol(
    name="nmea",
    transports=("tcp", "udp"),
    default_port=5005,
    next_frame=next_frame,
    decode=decode,
    max_frame=MAX_LINE,
)


# --- encoders (simulators, replay, tests): what a receiver streams -----------------------------


def _sentence_bytes(body: str) -> bytes:
    return f"${body}*{_xor(body):02X}\r\n".encode("ascii")


def _nmea_coords(lat: float, lon: float) -> str:
    # Five decimals of a minute (about 2 cm): what current receivers print.
    return (f"{format_degrees_minutes(lat, 2, 5)},{'S' if lat < 0 else 'N'},"
            f"{format_degrees_minutes(lon, 3, 5)},{'W' if lon < 0 else 'E'}")


def encode_rmc(fix_time: datetime, lat: float, lon: float, speed_kmh: float = 0.0, course_deg: float = 0.0,
               *, valid: bool = True, talker: str = "GP") -> bytes:
    """``$..RMC`` with its checksum and CR LF. Resolution: 0.01 s, 0.00001', 0.01 knot, 0.01 degree."""
    t = fix_time.astimezone(UTC)
    knots = max(speed_kmh, 0.0) / KNOT_KMH
    body = (f"{talker}RMC,{t:%H%M%S}.{t.microsecond // 10000:02d},{'A' if valid else 'V'},"
            f"{_nmea_coords(lat, lon)},{knots:.2f},{course_deg % 360:.2f},{t:%d%m%y},,,"
            f"{'A' if valid else 'N'}")
    return _sentence_bytes(body)


def encode_gga(fix_time: datetime, lat: float, lon: float, altitude_m: float = 0.0, *, hdop: float = 1.0,
               satellites: int = 8, valid: bool = True, talker: str = "GP") -> bytes:
    """``$..GGA`` with its checksum and CR LF (fix quality 1 = GPS, 0 = no fix)."""
    t = fix_time.astimezone(UTC)
    body = (f"{talker}GGA,{t:%H%M%S}.{t.microsecond // 10000:02d},{_nmea_coords(lat, lon)},"
            f"{int(valid)},{satellites:02d},{hdop:.1f},{altitude_m:.1f},M,0.0,M,,")
    return _sentence_bytes(body)


def encode_identity(unique_id: str) -> bytes:
    """The ``IMEI <id>`` line trackers send before their sentences to name themselves."""
    return f"IMEI {unique_id}\r\n".encode("ascii")
