"""Concox GT06 and its many clones (GT06N, Jimi/Concox VL/JM/GK/JC series, Wanway, SinoTrack,
SeeWorld...), binary over TCP, port 5023.

Wire format (Concox "GT06 protocol" document, CRC as in its appendix)::

    78 78 | len (1) | protocol | content | serial (2) | CRC (2) | 0D 0A
    79 79 | len (2) | protocol | content | serial (2) | CRC (2) | 0D 0A

``len`` counts protocol number through CRC; the CRC is CRC-16/X.25 ("CRC-ITU") over ``len``
through ``serial``. The server acknowledges login (0x01), status/heartbeat (0x13), location and
alarm packets with the same protocol number and the device's serial, in a 7878 frame.

Clones are sloppy, and Traccar (whose decoder tests are our vectors) copes in ways we keep:

- the CRC is not checked: many clones send a wrong one, and the device is identified by login;
- WiFi packets (0x17, 0x69) put an access-point count in the length byte, so when the declared
  length does not end on ``0D 0A`` the frame is cut at the first ``0D 0A`` instead;
- some firmwares count one or two bytes short, so a ``0D 0A`` just after the declared end is
  accepted too, and a packet ending in ``0D 0A`` before its declared end is taken as it is.

Hence one limit, shared with Traccar: if a TCP segment ends right after a ``0D 0A`` inside a
frame's payload (a text answer, or coordinates that happen to contain 0D 0A), the frame is cut
there. Devices write one packet per segment, so splits inside a packet are rare.

Message layouts live in :mod:`protocols.gt06_messages` and :mod:`protocols.gt06_reports`.
A per-device ``model`` (``session.config["model"]``, e.g. ``VL103``, ``NT20``, ``SEEWORLD``)
selects vendor readings of the packets that clones disagree on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from protocols.base import FrameResult, Protocol, need_more
from protocols.gt06_fields import CRLF, Msg, Reader, build_reply, crc16_x25, detect_variant
from protocols.gt06_messages import TZ_STATE, dispatch
from protocols.model import Decoded, DecodeError, Session

__all__ = [
    "PROTOCOL",
    "build_reply",
    "crc16_x25",
    "decode",
    "encode_gps",
    "encode_heartbeat",
    "encode_login",
    "next_frame",
]

MAX_FRAME = 4096
_SHORT, _LONG = b"\x78\x78", b"\x79\x79"
_STARTS = (0x78, 0x79)


def _declared_size(buffer: bytes) -> int | None:
    """Frame size the length field announces, or None if the field is not complete yet."""
    if buffer[0] == 0x78:
        return buffer[2] + 5 if len(buffer) >= 3 else None
    return int.from_bytes(buffer[2:4], "big") + 6 if len(buffer) >= 4 else None


def _resync(buffer: bytes) -> FrameResult:
    """Drop bytes up to the next start marker (keeping a trailing half marker)."""
    starts = [i for i in (buffer.find(_SHORT, 1), buffer.find(_LONG, 1)) if i > 0]
    if starts:
        return (None, min(starts))
    keep = 1 if buffer[-1] in _STARTS else 0
    return (None, len(buffer) - keep)


def next_frame(buffer: bytes) -> FrameResult:
    n = len(buffer)
    if n == 0:
        return need_more()
    if n == 1:
        return need_more() if buffer[0] in _STARTS else (None, 1)
    if buffer[:2] not in (_SHORT, _LONG):
        return _resync(buffer)
    size = _declared_size(buffer)
    if size is None:
        return need_more()
    if size + 2 <= MAX_FRAME:
        # Exact, one byte long, two bytes long (miscounting clones). At most one of the last two
        # can hold, and each is decided by the first bytes alone, so a frame is cut the same
        # however the stream is split into segments.
        for cut in (size, size + 1, size + 2):
            if n >= cut and buffer[cut - 2 : cut] == CRLF:
                return (bytes(buffer[:cut]), cut)
        if n < size + 2 and not (n < size and buffer.endswith(CRLF)):
            # Wait for the declared length: a 0D 0A inside the payload of a frame still arriving
            # must not end it. But when what we hold ends in 0D 0A short of the declared length,
            # a clone that counts long (Traccar's sample: a 15-byte login declaring 18) is
            # waiting for our answer, so cut at the first 0D 0A now.
            return need_more()
    end = buffer.find(CRLF, 2, MAX_FRAME)
    if end >= 0:
        return (bytes(buffer[: end + 2]), end + 2)
    if n >= MAX_FRAME:
        return (None, 2)  # a start marker with no end in sight: skip it and resync
    return need_more()


def decode(frame: bytes, session: Session) -> Decoded:
    frame = bytes(frame)
    if frame[:2] == _SHORT and len(frame) >= 4:
        length, kind, start, extended = frame[2], frame[3], 4, False
    elif frame[:2] == _LONG and len(frame) >= 5:
        length, kind, start, extended = int.from_bytes(frame[2:4], "big"), frame[4], 5, True
    else:
        raise DecodeError("gt06: not a 7878/7979 frame", frame)
    offset = session.state.get(TZ_STATE, 0)
    msg = Msg(
        frame=frame,
        extended=extended,
        length=length,
        kind=kind,
        variant=detect_variant(frame),
        model=str(session.config.get("model") or "").strip().upper(),
        tz=timedelta(seconds=offset if isinstance(offset, int) else 0),
        r=Reader(frame, start),
    )
    return dispatch(msg, session)


# --- encoders (simulators, benchmark, tests) -------------------------------------------------

_GPS_INFO_LENGTH = 12  # high nibble of the satellites byte: bytes in the GPS block after the date


def encode_login(imei: str, serial: int) -> bytes:
    """Login packet (0x01): the IMEI as 8 BCD bytes, left-padded with 0."""
    if not imei.isdigit() or len(imei) > 15:
        raise ValueError(f"IMEI must be up to 15 digits, got {imei!r}")
    return build_reply(0x01, serial, bytes.fromhex(imei.rjust(16, "0")))


def encode_gps(
    fix_time: datetime,
    lat: float,
    lon: float,
    speed_kmh: float,
    course_deg: float,
    serial: int,
    valid: bool = True,
    satellites: int = 8,
    *,
    kind: int = 0x12,
    ignition: bool = False,
    mcc: int = 0,
    mnc: int = 0,
    lac: int = 0,
    cid: int = 0,
) -> bytes:
    """GPS + LBS location packet: 0x12 (GT06) or 0x22 (GT06N/Jimi, adds ACC and upload mode).

    Resolution on the wire: 1 s, 1/1_800_000 degree, 1 km/h, 1 degree of course.
    """
    if kind not in (0x12, 0x22):
        raise ValueError("kind must be 0x12 or 0x22")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError(f"coordinates out of range: {lat}, {lon}")
    if fix_time.tzinfo is None:
        raise ValueError("fix_time must be timezone-aware")
    t = fix_time.astimezone(UTC)
    if not 2000 <= t.year <= 2255:
        raise ValueError("fix_time year must be 2000-2255")
    course = round(course_deg) % 360
    flags = course | (valid << 12) | ((lat >= 0) << 10) | ((lon < 0) << 11)
    gps = bytes([t.year - 2000, t.month, t.day, t.hour, t.minute, t.second,
                 _GPS_INFO_LENGTH << 4 | min(max(satellites, 0), 15)])
    gps += round(abs(lat) * 1_800_000).to_bytes(4, "big") + round(abs(lon) * 1_800_000).to_bytes(4, "big")
    gps += bytes([min(max(round(speed_kmh), 0), 255)]) + flags.to_bytes(2, "big")
    lbs = mcc.to_bytes(2, "big") + bytes([mnc]) + lac.to_bytes(2, "big") + cid.to_bytes(3, "big")
    tail = bytes([int(ignition), 0x00, 0x00]) if kind == 0x22 else b""  # ACC, upload mode, realtime
    return build_reply(kind, serial, gps + lbs + tail)


def encode_heartbeat(
    serial: int, battery_level: int = 6, gsm: int = 4, *, ignition: bool = False, charging: bool = False
) -> bytes:
    """Status packet (0x13): terminal info, voltage grade 0-6, GSM signal 0-4, alarm, language."""
    if not (0 <= battery_level <= 6 and 0 <= gsm <= 255):
        raise ValueError("battery_level must be 0-6 and gsm 0-255")
    info = 0x40 | ignition << 1 | charging << 2  # bit 6: GPS tracking on
    return build_reply(0x13, serial, bytes([info, battery_level, gsm, 0x00, 0x02]))  # 0x02: English


PROTOCOL = Protocol(
    name="gt06",
    transports=("tcp",),
    default_port=5023,
    next_frame=next_frame,
    decode=decode,
    max_frame=MAX_FRAME,
)
