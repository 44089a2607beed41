"""A tracker sending datagrams: the TCP conversation of its dialect (login, reports, keep-alives,
each answer checked), one message per datagram, from one local port.

The gateway keeps a session per sender address and handles a sender's datagrams in order, so a
keep-alive's answer still confirms the reports sent before it. What UDP cannot tell: a report
lost on the way before an answered keep-alive is never resent (as with a real device); each
"reconnect" after a missing or wrong answer opens a new socket, which the gateway sees as a new
sender, so the dialect's login is sent again.
"""

from __future__ import annotations

import asyncio
from typing import Any

from simulators.device import AckError
from simulators.dialects import Message
from simulators.tcp_device import TcpDevice


class _Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams: asyncio.Queue[bytes] = asyncio.Queue()
        self.error: Exception | None = None

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.datagrams.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the next wait for an answer fails with it.
        self.error = exc
        self.datagrams.put_nowait(b"")


class UdpDevice(TcpDevice):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._transport: asyncio.DatagramTransport | None = None
        self._inbox = _Inbox()

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        self._transport, self._inbox = await loop.create_datagram_endpoint(
            _Inbox, remote_addr=(self.host, self.port))

    async def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def _exchange(self, message: Message) -> None:
        assert self._transport is not None
        self._transport.sendto(message.data)
        expect = message.expect
        if expect is None:
            return
        async with asyncio.timeout(self.settings.ack_timeout_s):
            while True:
                datagram = await self._inbox.datagrams.get()
                if self._inbox.error is not None:
                    error, self._inbox.error = self._inbox.error, None
                    raise ConnectionError(f"{self.dialect.name}: {error}")
                frame, used = expect.framer(datagram)
                if frame is None or used == 0:
                    raise AckError(f"{self.dialect.name}: expected {expect.what}, got {datagram!r}")
                if not expect.check(frame):
                    raise AckError(f"{self.dialect.name}: expected {expect.what}, got {frame!r}")
                return
