"""A TCP proxy in the test's own event loop that can swallow the server's answers and cut every
connection: the device's data reaches the server (and is stored) but its acks are lost, so the
device must time out, reconnect and send again, and the server must not store it twice."""

from __future__ import annotations

import asyncio
import contextlib


class AckEatingProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.eat = False  # drop server -> device bytes
        self.port = 0
        self.eaten = 0
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.WriteTransport] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def cut(self) -> None:
        """Abort every proxied connection (the listener stays: devices can reconnect)."""
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._transports.update((writer.transport, up_writer.transport))
        await asyncio.gather(self._pipe(reader, up_writer, False), self._pipe(up_reader, writer, True),
                             return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answers: bool) -> None:
        try:
            while data := await reader.read(65536):
                if answers and self.eat:
                    self.eaten += len(data)
                    continue
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(Exception):
                writer.transport.abort()
            self._transports.discard(writer.transport)
