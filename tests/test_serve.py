"""``fieldtrack serve`` as a real process: embedded start, durability across an outage and kill -9,
graceful SIGTERM."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from protocols.gt06 import encode_gps, encode_login
from tests.proxy import proxied
from tests.serverproc import ServerProcess

T = 1_763_900_000


def test_serve_on_embedded_database(short_tmp: Path) -> None:
    server = ServerProcess(short_tmp / "data", database_url=None)
    server.start(timeout_s=180)
    try:
        status, health = server.api("GET", "/api/health")
        assert status == 200 and health["status"] == "ok", health
        assert health["database"]["embedded"] is True
        up = {(item["protocol"], item["transport"]) for item in health["listeners"] if item["up"]}
        assert {("osmand", "http"), ("gt06", "tcp"), ("h02", "udp"), ("teltonika", "tcp"),
                ("nmea", "tcp")} <= up
        status, _dev = server.api("POST", "/api/devices", {"unique_id": "phone-1", "name": "Rep phone"})
        assert status == 201
        assert server.osmand(f"id=phone-1&lat=52.37&lon=4.89&timestamp={T}&speed=10") == 200
        assert server.osmand(f"id=stranger&lat=52.37&lon=4.89&timestamp={T}") == 403
        status, latest = server.api("GET", "/api/positions/latest")
        assert status == 200 and [p["unique_id"] for p in latest] == ["phone-1"]
        assert abs(latest[0]["latitude"] - 52.37) < 1e-9
        # Opens the live hub's LISTEN connection, which stays open until the server stops.
        status, _near = server.api("GET", "/api/dispatch/nearest?lat=52.37&lon=4.89")
        assert status == 200
    finally:
        assert server.terminate() == 0
    # A clean stop logs no warning (the stranger's refusal is the only one expected): nothing
    # still talks to the embedded database as it stops.
    noisy = [line for line in server.log.read_text().splitlines()
             if (" WARNING fieldtrack" in line or " ERROR " in line) and "refused unknown" not in line]
    assert noisy == []
    assert (short_tmp / "data" / "pgdata" / "PG_VERSION").exists()
    assert not (short_tmp / "data" / "pgdata" / "postmaster.pid").exists(), "embedded database left running"


def count(url: str, unique_id: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(DISTINCT fix_time) FROM positions p JOIN devices d"
                           " ON d.id = p.device_id WHERE d.unique_id = %s", (unique_id,)).fetchone()
        assert row is not None
        return int(row[0])


def gt06_report(sock: socket.socket, i: int) -> bool:
    """Send one GT06 location; True when the server acknowledged it."""
    packet = encode_gps(datetime.fromtimestamp(T, UTC) + timedelta(seconds=i), 52.3 + i / 1000, 4.9, 30, 90,
                        serial=10 + i)
    sock.sendall(packet)
    ack = sock.recv(64)
    return ack[:4] == b"\x78\x78\x05" + packet[3:4]


def test_acked_positions_survive_outage_and_kill_9(database_url: str, short_tmp: Path) -> None:
    proxy, url = proxied(database_url)
    server = ServerProcess(short_tmp / "data", database_url=url)
    imei = "868000000000017"
    try:
        server.start()
        assert server.api("POST", "/api/devices", {"unique_id": "van-7", "name": "Van 7"})[0] == 201
        assert server.api("POST", "/api/devices", {"unique_id": imei, "name": "Truck"})[0] == 201
        tracker = socket.create_connection(("127.0.0.1", server.ports["gt06"]), timeout=30)
        tracker.sendall(encode_login(imei, 1))
        assert tracker.recv(64)[:4] == b"\x78\x78\x05\x01"
        acked = 0
        for i in range(5):
            assert server.osmand(f"id=van-7&lat=52.{i}&lon=4.9&timestamp={T + i}") == 200
            assert gt06_report(tracker, i)
            acked += 1
        proxy.cut()  # the database goes away
        for i in range(5, 15):
            assert server.osmand(f"id=van-7&lat=52.{i}&lon=4.9&timestamp={T + i}") == 200
            assert gt06_report(tracker, i)
            acked += 1
        tracker.close()
        spool = server.data_dir / "spool"
        assert any(spool.iterdir()), "acknowledged while the database is away, so it must be spooled"
        server.kill()  # no shutdown, no flush
        assert count(database_url, "van-7") == 5 and count(database_url, imei) == 5
        proxy.start()  # the database is back
        server.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and count(database_url, imei) < acked:
            time.sleep(0.2)
        assert count(database_url, "van-7") == acked
        assert count(database_url, imei) == acked
        # A resend of something already stored changes nothing.
        assert server.osmand(f"id=van-7&lat=52.0&lon=4.9&timestamp={T}") == 200
        assert count(database_url, "van-7") == acked
        assert not any(p.name.endswith(".jsonl") for p in spool.iterdir())
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.terminate()
        proxy.close()


def test_sigterm_flushes_and_exits_cleanly(database_url: str, short_tmp: Path) -> None:
    server = ServerProcess(short_tmp / "data", database_url=database_url)
    server.start()
    assert server.api("POST", "/api/devices", {"unique_id": "p9", "name": "P9"})[0] == 201
    for i in range(20):
        assert server.osmand(f"id=p9&lat=52.1&lon=4.{i}&timestamp={T + i}") == 200
    assert server.terminate() == 0
    assert count(database_url, "p9") == 20
    assert "stopped" in server.log.read_text()
