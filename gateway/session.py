"""One device conversation, whatever the transport: decode a frame, identify, store, answer.

The reply a decoder returns is released only after the frame's positions are durable, so an
ack always means "stored". A frame that fails to decode is logged (throttled, in hex) and
skipped; too many in a row and the connection is dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from gateway.ingest import Ingest
from gateway.throttle import ThrottledLog
from protocols.base import Protocol
from protocols.model import Decoded, DecodeError, Position, Session
from storage.devices import Device
from storage.errors import StorageUnavailable

log = logging.getLogger("fieldtrack.gateway")
throttled = ThrottledLog(log)


@dataclass(slots=True)
class Outcome:
    replies: list[bytes] = field(default_factory=list)
    close: bool = False
    # ok | malformed | refused | unidentified | unavailable | error (HTTP maps these to statuses)
    status: str = "ok"
    # The frame named no device and carried no position (HTTP answers 400 to that).
    empty: bool = False


class DeviceSession:
    def __init__(
        self, protocol: Protocol, ingest: Ingest, transport: str, peer: str, max_errors: int = 5
    ) -> None:
        self.protocol = protocol
        self.ingest = ingest
        self.peer = peer
        self.max_errors = max_errors
        self.session = Session(transport=transport)
        self.device: Device | None = None
        self.errors_in_row = 0
        self.frames = 0

    async def on_frame(self, frame: bytes) -> Outcome:
        self.frames += 1
        try:
            decoded = self.protocol.decode(frame, self.session)
        except DecodeError as exc:
            self.errors_in_row += 1
            throttled.warning(
                f"{self.protocol.name}:{self.peer}", "%s: malformed frame from %s (%s): %s",
                self.protocol.name, self.peer, exc, frame[:256].hex(),
            )
            return Outcome(close=self.errors_in_row >= self.max_errors, status="malformed")
        except Exception:
            log.exception("%s decoder failed on a frame from %s: %s", self.protocol.name, self.peer,
                          frame[:256].hex())
            return Outcome(close=True, status="error")
        self.errors_in_row = 0
        try:
            return await self._handle(decoded)
        except StorageUnavailable as exc:
            # Cannot tell whether this device is registered: no ack; it will resend.
            throttled.warning("storage-unavailable", "%s: cannot identify device from %s now: %s",
                              self.protocol.name, self.peer, exc)
            return Outcome(close=self.session.transport == "tcp", status="unavailable")
        except Exception:
            # Positions that could be neither stored nor spooled: no ack, the device resends.
            log.exception("%s: storing positions from %s failed", self.protocol.name, self.peer)
            return Outcome(close=True, status="error")

    async def _handle(self, decoded: Decoded) -> Outcome:
        if decoded.unique_id and (self.device is None or decoded.unique_id != self.device.unique_id):
            device = await self.ingest.identify(decoded.unique_id, self.protocol.name)
            if device is None:
                replies = [decoded.reject_reply] if decoded.reject_reply else []
                return Outcome(replies=replies, close=True, status="refused")
            self._bind(device)
        groups, refused = await self._group_by_device(decoded.positions)
        for device, positions in groups:
            await self.ingest.store_positions(device, self.protocol.name, positions)
        if decoded.positions and not groups:
            return Outcome(close=decoded.close, status="refused" if refused else "unidentified")
        out = Outcome(close=decoded.close, empty=not decoded.positions and not decoded.unique_id)
        if decoded.reply is not None:
            out.replies.append(decoded.reply)
        return out

    def _bind(self, device: Device) -> None:
        self.device = device
        self.session.unique_id = device.unique_id
        decoder_config = device.attributes.get("decoder")
        self.session.config = decoder_config if isinstance(decoder_config, dict) else {}

    async def _group_by_device(
        self, positions: list[Position]
    ) -> tuple[list[tuple[Device, list[Position]]], bool]:
        """Positions split into runs per device; the flag says a named device was refused."""
        groups: list[tuple[Device, list[Position]]] = []
        refused = False
        for p in positions:
            device = self.device
            if p.unique_id and (device is None or p.unique_id != device.unique_id):
                device = await self.ingest.identify(p.unique_id, self.protocol.name)
                if device is None:
                    refused = True
                elif self.device is None:
                    self._bind(device)
            if device is None:
                throttled.warning(
                    f"anon:{self.protocol.name}:{self.peer}",
                    "%s: position from %s before the device identified itself (or refused); dropped",
                    self.protocol.name, self.peer,
                )
                continue
            if groups and groups[-1][0].id == device.id:
                groups[-1][1].append(p)
            else:
                groups.append((device, [p]))
        return groups, refused
