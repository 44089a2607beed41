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

__all__ = ["PROTOCOL", "decode", "next_frame"]

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
