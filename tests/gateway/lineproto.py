"""A minimal line protocol for gateway tests, so they do not depend on any real decoder:
``LOGIN,<id>`` -> ``OK``; ``POS,<epoch>,<lat>,<lon>`` -> one position and ``ACK``;
``HB`` -> ``HB-OK`` with no position; anything else is malformed."""

from __future__ import annotations

from datetime import UTC, datetime

from protocols.base import Protocol, split_on
from protocols.model import Decoded, DecodeError, Position, Session


def decode(frame: bytes, session: Session) -> Decoded:
    parts = frame.decode("ascii", "replace").strip().split(",")
    if parts[0] == "LOGIN" and len(parts) == 2:
        return Decoded(unique_id=parts[1], reply=b"OK\n", reject_reply=b"NO\n")
    if parts[0] == "HB" and len(parts) == 1:
        return Decoded(reply=b"HB-OK\n")
    if parts[0] == "POS" and len(parts) == 4:
        try:
            fix = datetime.fromtimestamp(int(parts[1]), UTC)
            lat, lon = float(parts[2]), float(parts[3])
        except ValueError as exc:
            raise DecodeError(str(exc), frame) from exc
        return Decoded(positions=[Position(fix_time=fix, latitude=lat, longitude=lon)],
                       reply=f"ACK,{parts[1]}\n".encode())
    raise DecodeError("unknown line", frame)


PROTOCOL = Protocol(
    name="line",
    transports=("tcp", "udp"),
    default_port=0,
    next_frame=lambda buf: split_on(buf, b"\n"),
    decode=decode,
    max_frame=256,
)
