"""All device listeners of the process: started from the protocol registry and the port settings."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.http import InLoopServer, ingest_app, server_for
from gateway.ingest import Ingest
from gateway.tcp import TcpListener
from gateway.udp import UdpListener
from protocols.base import Protocol

log = logging.getLogger("fieldtrack.gateway")

# A port setting of 0 switches a listener off; EPHEMERAL asks the OS for any free port (tests, bench).
EPHEMERAL = -1


@dataclass
class _HttpListener:
    protocol: Protocol
    port: int
    server: InLoopServer
    task: asyncio.Task[None] | None = None


class Gateway:
    def __init__(
        self,
        protocols: Sequence[Protocol],
        ports: Mapping[str, int],
        ingest: Ingest,
        *,
        host: str = "0.0.0.0",
        idle_timeout_s: float = 1800.0,
        max_errors: int = 5,
        transports: frozenset[str] = frozenset({"tcp", "udp", "http"}),
        reuse_port: bool = False,
    ) -> None:
        """``transports``: which kinds of listener this process runs (with gateway worker
        processes, the main process keeps UDP and HTTP and the workers take TCP)."""
        self.protocols = protocols
        self.ports = ports
        self.ingest = ingest
        self.host = host
        self.idle_timeout_s = idle_timeout_s
        self.max_errors = max_errors
        self.transports = transports
        self.reuse_port = reuse_port
        self.tcp: list[TcpListener] = []
        self.udp: list[UdpListener] = []
        self.http: list[_HttpListener] = []

    async def start(self, accept: bool = True) -> None:
        """Bind every listener. ``accept`` False binds the TCP ports without listening, so a
        port that cannot be had fails now, before the caller's slower set-up; ``accept()`` then
        opens them. UDP and HTTP listeners always start at once."""
        for proto in self.protocols:
            port = int(self.ports.get(proto.name, 0))
            if port == 0:
                log.info("%s listener is off", proto.name)
                continue
            port = max(port, 0)
            wanted = self.transports.intersection(proto.transports)
            if "tcp" in wanted:
                tcp = TcpListener(proto, self.ingest, self.host, port, idle_timeout_s=self.idle_timeout_s,
                                  max_errors=self.max_errors, reuse_port=self.reuse_port)
                await tcp.start(accept)
                self.tcp.append(tcp)
            if "udp" in wanted:
                udp = UdpListener(proto, self.ingest, self.host, port, self.max_errors)
                await udp.start()
                self.udp.append(udp)
            if "http" in wanted:
                server = server_for(ingest_app(proto, self.ingest), self.host, port)
                listener = _HttpListener(proto, port, server)
                listener.task = asyncio.create_task(server.serve(), name=f"http-{proto.name}")
                self.http.append(listener)
        for listener in self.http:
            while not listener.server.started:
                if listener.task is not None and listener.task.done():
                    name, port = listener.protocol.name, listener.port
                    raise RuntimeError(f"{name} HTTP listener on port {port} failed to start")
                await asyncio.sleep(0.01)
            log.info("%s listening on http %s:%d", listener.protocol.name, self.host, listener.port)

    async def accept(self) -> None:
        for t in self.tcp:
            await t.accept()

    def status(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for t in self.tcp:
            up = t.server is not None and t.server.is_serving()
            rows.append({"protocol": t.protocol.name, "transport": "tcp", "port": t.port, "up": up,
                         "connections": len(t.connections), "peak_connections": t.peak_connections})
        for u in self.udp:
            up = u.transport is not None and not u.transport.is_closing()
            rows.append({"protocol": u.protocol.name, "transport": "udp", "port": u.port, "up": up,
                         "peers": len(u.peers)})
        for h in self.http:
            up = h.server.started and h.task is not None and not h.task.done()
            rows.append({"protocol": h.protocol.name, "transport": "http", "port": h.port, "up": up})
        return rows

    async def stop_accepting(self) -> None:
        for t in self.tcp:
            await t.stop_accepting()
        for u in self.udp:
            await u.stop_accepting()
        for h in self.http:
            h.server.should_exit = True

    async def close(self) -> None:
        """Finish in-flight frames (each waits for its positions to be durable), then drop sockets."""
        for u in self.udp:
            await u.close_connections()
        for h in self.http:
            if h.task is not None:
                await asyncio.gather(h.task, return_exceptions=True)
        for t in self.tcp:
            await t.close_connections()
