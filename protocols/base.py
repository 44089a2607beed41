"""The contract between a protocol module and the gateway.

A protocol is sans-I/O: ``next_frame`` cuts one frame out of a byte stream and ``decode`` turns
a frame into :class:`~protocols.model.Decoded` (positions plus reply bytes). Neither touches a
socket, a clock other than for "now" defaults, or a logger.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from protocols.model import Decoded, Session

# (frame, consumed): (None, 0) = need more bytes; (None, n) = drop n bytes of garbage and retry;
# (frame, n) = one frame, n bytes consumed (delimiters included).
FrameResult = tuple[bytes | None, int]
Framer = Callable[[bytes], FrameResult]
Decoder = Callable[[bytes, Session], Decoded]


@dataclass(frozen=True, slots=True)
class Protocol:
    name: str
    transports: tuple[str, ...]
    default_port: int
    next_frame: Framer
    decode: Decoder
    # Frames larger than this are refused without being buffered further.
    max_frame: int = 4096
    # Over UDP, pass each datagram to ``decode`` whole (Teltonika's UDP header differs from TCP).
    udp_whole_datagram: bool = False


def need_more() -> FrameResult:
    return (None, 0)


def split_on(buffer: bytes, delimiter: bytes, *, keep: bool = False) -> FrameResult:
    """Frame on a delimiter; ``keep`` leaves the delimiter on the frame."""
    end = buffer.find(delimiter)
    if end < 0:
        return need_more()
    stop = end + len(delimiter)
    return (bytes(buffer[: stop if keep else end]), stop)


def whole_message(buffer: bytes) -> FrameResult:
    """For transports that deliver whole messages (an HTTP body, an MQTT payload): the buffer is
    one frame. It exists so every protocol object stays total; an empty buffer waits."""
    if not buffer:
        return need_more()
    return (bytes(buffer), len(buffer))
