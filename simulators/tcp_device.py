"""A tracker on a TCP connection: log in, report, keep alive, check every answer (see
:mod:`simulators.dialects` for what each protocol answers and when)."""

from __future__ import annotations

import asyncio
import contextlib

from simulators.device import AckError, Counters, FixSource, LinkSettings, SimDevice
from simulators.dialects import Dialect, Message


class TcpDevice(SimDevice):
    def __init__(self, dialect: Dialect, host: str, port: int, source: FixSource, counters: Counters,
                 link: LinkSettings, seed: str) -> None:
        super().__init__(dialect.unique_id, source, counters, link, seed)
        self.dialect = dialect
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._received = b""

    async def link(self) -> None:
        await self._open()
        try:
            assert self.last_fix is not None  # _deliver waits for the first fix
            hello = self.dialect.hello(self.last_fix)
            if hello is not None:
                await self._exchange(hello)
            self.backoff.reset()
            self.connected_once = True
            await self._converse()
        finally:
            await self._close()

    async def _open(self) -> None:
        async with asyncio.timeout(self.settings.connect_timeout_s):
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._received = b""

    async def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()

    async def _converse(self) -> None:
        mode = self.dialect.confirm
        while not self.finished():
            batch = self.unsent(self.dialect.batch)
            if batch:
                message = self.dialect.report([p.fix for p in batch])
                self.mark_sent(batch)
                await self._exchange(message)
                if mode == "each":
                    self.confirm_on_wire()
                elif mode == "none":
                    self.confirm_on_wire(acked=False)
                continue
            if mode == "heartbeat" and self.online() and self.buffer and self.buffer[0].on_wire:
                await self._keep_alive()  # its answer confirms everything sent before it
                self.confirm_on_wire()
                continue
            if not await self._wait(self.settings.heartbeat_s) and self.online() and not self.finished():
                await self._keep_alive()

    async def _keep_alive(self) -> None:
        beat = self.dialect.heartbeat()
        if beat is not None:
            await self._exchange(beat)

    async def _exchange(self, message: Message) -> None:
        assert self._reader is not None and self._writer is not None
        self._writer.write(message.data)
        await self._writer.drain()
        expect = message.expect
        if expect is None:
            return
        async with asyncio.timeout(self.settings.ack_timeout_s):
            while True:
                frame, used = expect.framer(self._received)
                if used == 0:
                    data = await self._reader.read(4096)
                    if not data:
                        raise EOFError("connection closed by the server while waiting for an answer")
                    self._received += data
                    continue
                self._received = self._received[used:]
                if frame is None:
                    continue
                if not expect.check(frame):
                    raise AckError(f"{self.dialect.name}: expected {expect.what}, got {frame!r}")
                return
