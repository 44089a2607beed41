"""What a fake server in these tests reads from a simulated device: its frames, decoded by our own
decoders in arrival order (one session per connection)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from protocols.base import Protocol
from protocols.model import Decoded, Session


async def decoded_frames(reader: asyncio.StreamReader, protocol: Protocol,
                         session: Session) -> AsyncIterator[Decoded]:
    buf = b""
    while data := await reader.read(4096):
        buf += data
        while True:
            frame, used = protocol.next_frame(buf)
            if used == 0:
                break
            buf = buf[used:]
            if frame is None:
                continue
            decoded = protocol.decode(frame, session)
            session.unique_id = decoded.unique_id or session.unique_id
            yield decoded
