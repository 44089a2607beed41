"""TCP listener for one protocol: a read loop per connection feeding ``DeviceSession``.

Frames are handled one at a time per connection and the next read waits for the current frame's
positions to be durable: a flood slows its own sender (TCP backpressure) and nobody else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.ingest import Ingest
from gateway.session import DeviceSession, throttled
from protocols.base import Protocol

log = logging.getLogger("fieldtrack.gateway.tcp")

READ_SIZE = 65536


class TcpListener:
    def __init__(
        self,
        protocol: Protocol,
        ingest: Ingest,
        host: str,
        port: int,
        *,
        idle_timeout_s: float = 1800.0,
        max_errors: int = 5,
        reuse_port: bool = False,
    ) -> None:
        self.protocol = protocol
        self.ingest = ingest
        self.host = host
        self.port = port
        self.idle_timeout_s = idle_timeout_s
        self.max_errors = max_errors
        self.server: asyncio.Server | None = None
        self.connections: set[asyncio.Task[None]] = set()
        self.accepted = 0
        self.peak_connections = 0
        # Gateway worker processes (gateway.workers) each bind the same port; the kernel spreads
        # new connections over them.
        self.reuse_port = reuse_port

    async def start(self, accept: bool = True) -> None:
        """Bind the port; with ``accept`` False the socket is not listening yet (see ``accept``)."""
        self.server = await asyncio.start_server(self._on_connect, self.host, self.port, backlog=4096,
                                                 reuse_port=self.reuse_port or None, start_serving=accept)
        if self.port == 0:
            self.port = self.server.sockets[0].getsockname()[1]
        if accept:
            log.info("%s listening on tcp %s:%d", self.protocol.name, self.host, self.port)

    async def accept(self) -> None:
        # Until listen(), the kernel sends a shared (SO_REUSEPORT) port's connections to the
        # other processes bound to it, so a worker still loading its device directory gets none.
        assert self.server is not None
        if not self.server.is_serving():
            await self.server.start_serving()
            log.info("%s listening on tcp %s:%d", self.protocol.name, self.host, self.port)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        self.accepted += 1
        self.peak_connections = max(self.peak_connections, len(self.connections))
        host, port = (writer.get_extra_info("peername") or ("?", "?"))[:2]
        peer = f"{host}:{port}"
        try:
            await self._serve(reader, writer, peer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("%s connection from %s failed", self.protocol.name, peer)
        finally:
            self.connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> None:
        session = DeviceSession(self.protocol, self.ingest, "tcp", peer, self.max_errors)
        buf = b""
        while True:
            try:
                # asyncio.timeout, not wait_for: no extra task per read on the hot path.
                async with asyncio.timeout(self.idle_timeout_s):
                    data = await reader.read(READ_SIZE)
            except TimeoutError:
                log.info("%s: closing idle connection from %s", self.protocol.name, peer)
                return
            if not data:
                return
            buf += data
            while buf:
                frame, used = self.protocol.next_frame(buf)
                if used == 0:
                    if len(buf) > self.protocol.max_frame:
                        throttled.warning(
                            f"oversize:{peer}", "%s: %s sent %d bytes without a complete frame; closing",
                            self.protocol.name, peer, len(buf),
                        )
                        return
                    break
                buf = buf[used:]
                if frame is None:
                    continue
                outcome = await session.on_frame(frame)
                for reply in outcome.replies:
                    writer.write(reply)
                if outcome.replies:
                    await writer.drain()
                if outcome.close:
                    return

    async def stop_accepting(self) -> None:
        if self.server is not None:
            self.server.close()

    async def close_connections(self) -> None:
        for task in list(self.connections):
            task.cancel()
        if self.connections:
            await asyncio.gather(*self.connections, return_exceptions=True)
