"""UDP listener for one protocol: a session per peer, datagrams of a peer handled in order.

UDP cannot push back, so each peer has a small queue; when it is full the datagram is dropped
unacknowledged and the device sends it again.
"""

from __future__ import annotations

import asyncio
import logging
import time

from gateway.ingest import Ingest
from gateway.session import DeviceSession, throttled
from protocols.base import Protocol

log = logging.getLogger("fieldtrack.gateway.udp")

PEER_QUEUE = 64
PEER_IDLE_S = 600.0


class _Peer:
    def __init__(self, session: DeviceSession) -> None:
        self.session = session
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(PEER_QUEUE)
        self.task: asyncio.Task[None] | None = None
        self.last_seen = time.monotonic()


class UdpListener(asyncio.DatagramProtocol):
    def __init__(self, protocol: Protocol, ingest: Ingest, host: str, port: int, max_errors: int = 5) -> None:
        self.protocol = protocol
        self.ingest = ingest
        self.host = host
        self.port = port
        self.max_errors = max_errors
        self.transport: asyncio.DatagramTransport | None = None
        self.peers: dict[tuple[str, int], _Peer] = {}
        self.dropped = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(self.host, self.port))
        self.transport = transport
        if self.port == 0:
            self.port = transport.get_extra_info("sockname")[1]
        log.info("%s listening on udp %s:%d", self.protocol.name, self.host, self.port)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        peer = self.peers.get(addr)
        if peer is None:
            if len(self.peers) > 10_000:
                self._forget_idle()
            name = f"{addr[0]}:{addr[1]}"
            peer = self.peers[addr] = _Peer(
                DeviceSession(self.protocol, self.ingest, "udp", name, self.max_errors)
            )
        peer.last_seen = time.monotonic()
        try:
            peer.queue.put_nowait(data)
        except asyncio.QueueFull:
            self.dropped += 1
            throttled.warning(f"udp-full:{addr}", "%s: peer %s is sending faster than we store; dropped",
                              self.protocol.name, addr)
            return
        if peer.task is None or peer.task.done():
            peer.task = asyncio.get_running_loop().create_task(self._drain(addr, peer))

    async def _drain(self, addr: tuple[str, int], peer: _Peer) -> None:
        while not peer.queue.empty():
            datagram = peer.queue.get_nowait()
            try:
                for frame in self._frames(datagram):
                    outcome = await peer.session.on_frame(frame)
                    for reply in outcome.replies:
                        if self.transport is not None:
                            self.transport.sendto(reply, addr)
            except Exception:
                log.exception("%s: datagram from %s failed", self.protocol.name, addr)

    def _frames(self, datagram: bytes) -> list[bytes]:
        if self.protocol.udp_whole_datagram:
            return [datagram]
        frames = []
        buf = datagram
        while buf:
            frame, used = self.protocol.next_frame(buf)
            if used == 0:
                # The datagram ends without a delimiter: the rest is one frame.
                frames.append(buf)
                break
            buf = buf[used:]
            if frame is not None:
                frames.append(frame)
        return frames

    def _forget_idle(self) -> None:
        cutoff = time.monotonic() - PEER_IDLE_S
        for addr in [a for a, p in self.peers.items() if p.last_seen < cutoff and p.queue.empty()]:
            del self.peers[addr]

    async def stop_accepting(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def close_connections(self) -> None:
        tasks = [p.task for p in self.peers.values() if p.task is not None and not p.task.done()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
