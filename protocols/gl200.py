"""Queclink GL/GV/GB/GT/CV trackers ("gl200" in Traccar), TCP and UDP, port 5004.

Three wire formats share the port (Queclink @Track Air Interface Protocol, GV300CAN V12, and
@Track Protocol Pro, GL601 V10):

- ASCII sentences ``+RESP:GTFRI,...$``, ``+BUFF:`` (replayed from the device's buffer), ``+ACK:``
  (heartbeat, command answers), ended by ``$`` (``NUL`` on the old GT300 firmware). No length, no
  checksum. Decoded in :mod:`protocols.gl200_text`.
- HEX reports ``+RSP``, ``+EVT``, ``+INF``, ``+ACK``, ``+HBD`` ... with a length field and a
  CRC-16, ended by CR LF; and Protocol Pro frames ``2B 00``/``2D 00``/``2B 10`` with a length, a
  CRC-8 and ``$``. Decoded in :mod:`protocols.gl200_binary`.

Every frame carries the IMEI, so there is no login: ``Decoded.unique_id`` and each position's
``unique_id`` come from the frame. Replies: ``+ACK:GTHBD`` is always answered
``+SACK:GTHBD,<protocol version>,<count>$``; with ``session.config["ack"]`` every other ASCII
sentence (and Protocol Pro frame) is acknowledged ``+SACK:<count>$``. Per-device settings:
``model`` (e.g. ``GV300W``, when the protocol version does not name it), ``ack``, ``checksum``.

Framing never keeps bytes that cannot start a frame; a delimiter inside an ASCII payload (the
protocol has no escaping) splits that sentence, whose pieces then fail to decode.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from protocols.base import FrameResult, Protocol, need_more
from protocols.gl200_binary import (
    LENGTH_FIELDS,
    MIN_HEX,
    MIN_PRO,
    crc16_ccitt,
    decode_hex,
    decode_pro,
    hex_length,
)
from protocols.gl200_text import decode_text
from protocols.model import Decoded, DecodeError, Session

__all__ = ["PROTOCOL", "decode", "encode_fri", "encode_heartbeat", "next_frame"]

MAX_FRAME = 4096  # ASCII GTERI with CAN data reaches ~1.5 kB; HEX compressed batches 1.4 kB
_TEXT_HEAD = re.compile(rb"\+[A-Z]{3,4}:")
_STARTS = (0x2B, 0x2D)  # '+' (ASCII, HEX, Pro live) and '-' (Pro buffered)


def _format(frame: bytes) -> str:
    if len(frame) >= 2 and (frame[:2] in (b"+\x00", b"-\x00", b"+\x10")):
        return "pro"
    if frame[:4] == b"+ACK":
        return "text" if frame[4:5] == b":" else "hex"
    return "hex" if frame[:4] in LENGTH_FIELDS else "text"


def _skip(buffer: bytes) -> FrameResult:
    """Drop up to the next byte that may start a frame."""
    starts = [k for k in (buffer.find(b"+", 1), buffer.find(b"-", 1)) if k > 0]
    return (None, min(starts) if starts else len(buffer))


def _sized(buffer: bytes, lengths: list[int], valid: tuple[bytes, int]) -> FrameResult:
    """A frame of one of ``lengths`` ending in ``valid[0]``; the first complete, well-ended one wins."""
    tail, minimum = valid
    waiting = False
    for length in lengths:
        if not minimum <= length <= MAX_FRAME:
            continue
        if len(buffer) < length:
            waiting = True
            continue
        frame = bytes(buffer[:length])
        if frame.endswith(tail) and (len(lengths) == 1 or crc16_ccitt(frame[4:-4]) == int.from_bytes(
                frame[-4:-2], "big")):
            return (frame, length)
    return need_more() if waiting else _skip(buffer)


def _text_frame(buffer: bytes) -> FrameResult:
    head = _TEXT_HEAD.match(buffer)
    if head is None:
        # Still possibly a header ("+RES" so far), else garbage.
        return need_more() if re.fullmatch(rb"\+[A-Z]{0,4}", buffer[:6]) else _skip(buffer)
    ends = [k for k in (buffer.find(b"$"), buffer.find(b"\x00")) if k >= 0]
    if not ends:
        return _skip(buffer) if len(buffer) > MAX_FRAME else need_more()
    end = min(ends)
    if end > MAX_FRAME:
        return _skip(buffer)
    return (bytes(buffer[:end]), end + 1)


def next_frame(buffer: bytes) -> FrameResult:
    if not buffer:
        return need_more()
    if buffer[0] not in _STARTS:
        return _skip(buffer)
    if len(buffer) < 2:
        return need_more()
    if buffer[:2] in (b"+\x00", b"-\x00"):
        if len(buffer) < 4:
            return need_more()
        return _sized(buffer, [int.from_bytes(buffer[2:4], "big")], (b"$", MIN_PRO))
    if buffer[:2] == b"+\x10":
        return need_more() if len(buffer) < 3 else _sized(buffer, [buffer[2]], (b"$", MIN_PRO))
    if buffer[0] != 0x2B:
        return _skip(buffer)
    if len(buffer) < 5:
        return need_more() if re.fullmatch(rb"\+[A-Z]{0,3}", buffer) else _skip(buffer)
    if _format(bytes(buffer[:5])) == "hex":
        if len(buffer) < 11:
            return need_more()
        return _sized(buffer, hex_length(buffer), (b"\r\n", MIN_HEX))
    return _text_frame(buffer)


def decode(frame: bytes, session: Session) -> Decoded:
    if not frame:
        raise DecodeError("gl200: empty frame", frame)
    kind = _format(frame)
    if kind == "pro":
        return decode_pro(frame, session)
    if kind == "hex":
        return decode_hex(frame, session)
    return decode_text(frame, session)


PROTOCOL = Protocol(
    name="gl200",
    transports=("tcp", "udp"),
    default_port=5004,
    next_frame=next_frame,
    decode=decode,
    max_frame=MAX_FRAME,
)


# --- encoders (simulators, tests): what a Queclink tracker sends ---------------------------------

# Protocol version "270403": device type 0x27 (GV300W in the model table), firmware 4.03. The
# model picks the GV layout of the GTFRI tail (append mask, mileage, hour meter, ..., status).
VERSION = "270403"


def _count(count: int) -> str:
    return f"{count & 0xFFFF:04X}"  # the sentence's serial: four hex digits, wrapping


def _check_imei(imei: str) -> None:
    if len(imei) != 15 or not imei.isdigit():
        raise ValueError(f"Queclink ids are 15-digit IMEIs, got {imei!r}")


def encode_fri(
    imei: str,
    count: int,
    fix_time: datetime,
    lat: float,
    lon: float,
    speed_kmh: float = 0.0,
    course_deg: float = 0.0,
    altitude_m: float = 0.0,
    *,
    hdop: int = 1,
    ignition: bool = False,
    mileage_km: float = 0.0,
    battery_pct: int = 100,
    sent_time: datetime | None = None,
    version: str = VERSION,
) -> bytes:
    """``+RESP:GTFRI`` fixed report with one fix (GV300 layout, no cell), ended by ``$``.

    Answered only when the device is set to "SACK enable" (``+SACK:<count>$``); by default the
    server says nothing and the heartbeat's answer is the only confirmation.
    Resolution on the wire: 1 s, 1e-6 degree, 0.1 km/h, 1 degree of course, 0.1 m, 0.1 km.
    """
    _check_imei(imei)
    t = fix_time.astimezone(UTC)
    sent = (sent_time or fix_time).astimezone(UTC)
    # Device status (GV300CAN V12 <Device Status>): motion byte (high nibble 2 = ignition on,
    # 1 = off; low nibble 2 = moving, 1 = still), input byte (bit 0 the ignition line), outputs.
    motion = (0x20 if ignition else 0x10) | (0x02 if speed_kmh > 0 else 0x01)
    status = f"{motion:02X}{int(ignition):02X}00"
    speed = min(max(speed_kmh, 0.0), 999.9)
    altitude = min(max(altitude_m, -9999.9), 17999.9)
    fields = [
        "+RESP:GTFRI", version, imei, "", "", "10", "1",
        str(hdop), f"{speed:.1f}", str(round(course_deg) % 360), f"{altitude:.1f}", f"{lon:.6f}",
        f"{lat:.6f}", f"{t:%Y%m%d%H%M%S}",
        "0000", "0000", "0000", "0000",  # MCC, MNC, LAC, cell id: no cell
        "00",  # position append mask: nothing appended
        f"{max(mileage_km, 0.0):.1f}", "", "", "", str(min(max(battery_pct, 0), 100)), status, "", "", "",
        f"{sent:%Y%m%d%H%M%S}", _count(count),
    ]
    return (",".join(fields) + "$").encode("ascii")


def encode_heartbeat(imei: str, count: int, sent_time: datetime, *, version: str = VERSION) -> bytes:
    """``+ACK:GTHBD`` heartbeat, answered ``+SACK:GTHBD,<version>,<count>$`` (both echoed)."""
    _check_imei(imei)
    return f"+ACK:GTHBD,{version},{imei},,{sent_time.astimezone(UTC):%Y%m%d%H%M%S},{_count(count)}$".encode(
        "ascii")
