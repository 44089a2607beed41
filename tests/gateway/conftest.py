"""A running gateway (real listeners on loopback, real database) for the gateway tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from gateway.ingest import Ingest
from gateway.service import EPHEMERAL, Gateway
from protocols.base import Protocol
from storage import db
from storage.devices import DeviceDirectory, DeviceStore
from storage.spool import Spool
from storage.writer import PositionWriter
from tests.gateway import lineproto


@dataclass
class Running:
    gateway: Gateway
    writer: PositionWriter
    devices: DeviceStore
    directory: DeviceDirectory
    url: str

    def tcp_port(self, name: str = "line") -> int:
        return next(t.port for t in self.gateway.tcp if t.protocol.name == name)

    def udp_port(self, name: str = "line") -> int:
        return next(u.port for u in self.gateway.udp if u.protocol.name == name)

    def http_port(self, name: str) -> int:
        return next(h.server.servers[0].sockets[0].getsockname()[1]
                    for h in self.gateway.http if h.protocol.name == name)

    def count(self, unique_id: str | None = None) -> int:
        with psycopg.connect(self.url) as conn:
            if unique_id is None:
                row = conn.execute("SELECT count(*) FROM positions").fetchone()
            else:
                row = conn.execute(
                    "SELECT count(*) FROM positions p JOIN devices d ON d.id = p.device_id"
                    " WHERE d.unique_id = %s", (unique_id,)).fetchone()
            assert row is not None
            return int(row[0])


async def start_gateway(url: str, spool_dir: Path, protocols: list[Protocol], *,
                        register_unknown: bool = False, idle_timeout_s: float = 1800.0,
                        ports: dict[str, int] | None = None) -> tuple[Running, list[asyncio.Task[None]]]:
    pool = db.open_pool(url, 4)
    await pool.open()
    devices = DeviceStore(pool)
    directory = DeviceDirectory(devices)
    await directory.load()
    writer = PositionWriter(pool, Spool(spool_dir), connect_timeout_s=1.0, drain_interval_s=0.2)
    tasks = [asyncio.create_task(writer.run()), asyncio.create_task(writer.drain_spool())]
    ingest = Ingest(directory, devices, writer, register_unknown=register_unknown)
    gateway = Gateway(protocols, ports or {p.name: EPHEMERAL for p in protocols}, ingest, host="127.0.0.1",
                      idle_timeout_s=idle_timeout_s, max_errors=3)
    await gateway.start()
    return Running(gateway, writer, devices, directory, url), tasks


async def stop_gateway(running: Running, tasks: list[asyncio.Task[None]]) -> None:
    await running.gateway.stop_accepting()
    await running.gateway.close()
    await running.writer.close()
    tasks[1].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await running.writer.pool.close()


@pytest.fixture
async def line_gateway(database_url: str, tmp_path: Path) -> AsyncIterator[Running]:
    running, tasks = await start_gateway(database_url, tmp_path / "spool", [lineproto.PROTOCOL],
                                         idle_timeout_s=2.0)
    try:
        yield running
    finally:
        await stop_gateway(running, tasks)
