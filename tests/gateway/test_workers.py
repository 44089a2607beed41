"""GatewayWorkers on its own: a port asked for as "any" is shared by every worker, a worker's
directory sees devices changed behind its back, the wake reports reach the main process, and a
worker that cannot start makes start() fail with a clear message."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from gateway.service import EPHEMERAL
from gateway.worker import WorkerConfig
from gateway.workers import GatewayWorkers
from protocols.gt06 import encode_gps, encode_login

IMEI = "869100000000001"


async def login(port: int, imei: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(encode_login(imei, 1))
    await writer.drain()
    try:
        reply = await asyncio.wait_for(reader.read(64), 10)
    except ConnectionError:
        reply = b""
    return reader, writer, reply


async def test_workers_share_the_port_and_follow_device_changes(database_url: str, tmp_path: Path) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO devices (unique_id, name, protocol) VALUES (%s, 'van', 'gt06')", (IMEI,))
    woken: list[int] = []
    template = WorkerConfig(0, database_url, str(tmp_path / "spool"), {"gt06": EPHEMERAL, "h02": 0},
                            host="127.0.0.1", status_interval_s=0.1, directory_refresh_s=0.3)
    workers = GatewayWorkers(2, template, on_wake=woken.extend)
    await workers.start()
    try:
        port = workers.ports["gt06"]
        assert port > 0 and list(workers.ports) == ["gt06"]  # h02 is switched off
        assert [r["protocol"] for r in workers.status()] == ["gt06"] and workers.status()[0]["up"]
        reader, writer, reply = await login(port, IMEI)
        assert reply[:4] == b"\x78\x78\x05\x01"
        writer.write(encode_gps(datetime(2026, 12, 1, 9, 0, tzinfo=UTC), 52.1, 4.3, 20, 90, serial=2))
        await writer.drain()
        assert (await asyncio.wait_for(reader.read(64), 10))[:4] == b"\x78\x78\x05\x12"
        writer.close()
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT id FROM devices WHERE unique_id = %s", (IMEI,)).fetchone()
            assert row is not None
            device_id = row[0]
            assert conn.execute("SELECT count(*) FROM positions").fetchone() == (1,)
        for _ in range(50):
            if woken:
                break
            await asyncio.sleep(0.05)
        assert woken == [device_id]
        # Disabled behind the workers' back (another process, the API): refused after a refresh.
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("UPDATE devices SET disabled = true WHERE unique_id = %s", (IMEI,))
        await asyncio.sleep(1.0)
        for _ in range(6):  # six connections: both workers answer (1 in 32 that one never does)
            _, writer, reply = await login(port, IMEI)
            writer.close()
            assert reply == b"", "a disabled device must not be acknowledged"
    finally:
        await workers.stop()
    assert all(w.process is not None and w.process.returncode == 0 for w in workers.workers)


@pytest.fixture
def silent_database() -> Iterator[str]:
    """A "database" that takes the connection and never answers: each attempt hangs until the
    client's own timeout, the worst case of a database that is away."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield f"postgresql://postgres@127.0.0.1:{sock.getsockname()[1]}/x?connect_timeout=20"
    finally:
        sock.close()


@pytest.mark.parametrize("database", ["up", "silent"])
async def test_a_worker_that_cannot_bind_fails_the_start(database: str, database_url: str,
                                                         silent_database: str, tmp_path: Path) -> None:
    # A port taken by a socket without SO_REUSEPORT: the workers cannot share it. The ports are
    # bound before the database is asked for anything, so this fails at once even when it hangs.
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        url = database_url if database == "up" else silent_database
        template = WorkerConfig(0, url, str(tmp_path / "spool"), {"gt06": taken.getsockname()[1]},
                                host="127.0.0.1")
        workers = GatewayWorkers(1, template, start_timeout_s=60)
        with pytest.raises(RuntimeError, match="gateway worker 1 failed to start"):
            await workers.start()
    finally:
        taken.close()


async def test_a_worker_waiting_for_the_database_stops_on_sigterm(silent_database: str,
                                                                  tmp_path: Path) -> None:
    template = WorkerConfig(0, silent_database, str(tmp_path / "spool"), {"gt06": EPHEMERAL},
                            host="127.0.0.1")
    # Its listener is bound but not listening: a device must not be taken before the worker
    # knows which devices exist.
    workers = GatewayWorkers(1, template, start_timeout_s=3, stop_timeout_s=15)
    with pytest.raises(RuntimeError, match="gateway worker 1 not ready after 3 s"):
        await workers.start()
    # start() stopped it: SIGTERM ended it on its own, not the kill after stop_timeout_s.
    proc = workers.workers[0].process
    assert proc is not None and proc.returncode == 0
