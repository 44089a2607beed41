"""``fieldtrack serve`` with gateway worker processes (FIELDTRACK_GATEWAY_WORKERS): TCP connections
spread over the workers, devices added through the API after start, a crashed worker restarted,
acknowledged positions kept across an outage, kill -9 and a lower worker count, clean SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gateway.workers import retired_spools
from protocols.gt06 import encode_gps, encode_login
from tests.proxy import proxied
from tests.serverproc import ServerProcess

T = 1_763_900_000


def imei(k: int) -> str:
    return f"86900000000{k:04d}"


def tracker(server: ServerProcess, k: int) -> socket.socket:
    """A GT06 tracker connected and logged in (login acknowledged)."""
    sock = socket.create_connection(("127.0.0.1", server.ports["gt06"]), timeout=30)
    sock.sendall(encode_login(imei(k), 1))
    assert sock.recv(64)[:4] == b"\x78\x78\x05\x01", f"login of {imei(k)} not acknowledged"
    return sock


def report(sock: socket.socket, k: int, i: int) -> bool:
    packet = encode_gps(datetime.fromtimestamp(T, UTC) + timedelta(seconds=i), 52.3 + k / 1000 + i / 1e5,
                        4.9, 30, 90, serial=10 + i)
    sock.sendall(packet)
    return sock.recv(64)[:4] == b"\x78\x78\x05" + packet[3:4]


def stored(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM positions").fetchone()
        return int(row[0]) if row else 0


def wait_for(check: Callable[[], Any], what: str, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def health(server: ServerProcess) -> dict[str, Any]:
    status, body = server.api("GET", "/api/health")
    assert status == 200
    return dict(body)


def gt06_row(body: dict[str, Any]) -> dict[str, Any]:
    return next(r for r in body["listeners"] if r["protocol"] == "gt06" and r["transport"] == "tcp")


def register(server: ServerProcess, n: int) -> None:
    for k in range(n):
        status, _ = server.api("POST", "/api/devices", {"unique_id": imei(k), "name": f"Van {k}"})
        assert status == 201


def test_connections_spread_over_workers_and_positions_stored(database_url: str, short_tmp: Path) -> None:
    server = ServerProcess(short_tmp / "data", database_url, FIELDTRACK_GATEWAY_WORKERS="2")
    server.start()
    socks: list[socket.socket] = []
    try:
        body = health(server)
        assert body["status"] == "ok", body
        assert [w["index"] for w in body["gateway_workers"]] == [1, 2]
        assert all(w["up"] and w["pid"] != server.proc.pid for w in body["gateway_workers"])  # type: ignore[union-attr]
        # Registered after the workers loaded their directories: they must look them up.
        register(server, 24)
        socks = [tracker(server, k) for k in range(24)]
        assert all(report(s, k, 0) for k, s in enumerate(socks))
        assert all(report(s, k, 1) for k, s in enumerate(socks))
        assert stored(database_url) == 48
        # The workers report every second: wait for a report that covers all of it.
        body = wait_for(lambda: (b := health(server)) and gt06_row(b)["connections"] == 24
                        and b["ingest"]["committed"] == 48 and b, "the workers to report 24 connections")
        per_worker = [w["connections"] for w in body["gateway_workers"]]
        # 24 connections hashed over two listeners: all on one would be a 1 in 8 million chance.
        assert sum(per_worker) == 24 and min(per_worker) > 0, per_worker
        assert sum(w["committed"] for w in body["gateway_workers"]) == 48
        # An unknown tracker is refused by whichever worker it reaches, and counted.
        stranger = socket.create_connection(("127.0.0.1", server.ports["gt06"]), timeout=30)
        stranger.sendall(encode_login("869999999999999", 1))
        assert stranger.recv(64) == b""
        stranger.close()
        wait_for(lambda: health(server)["ingest"]["refused_unknown"] == 1, "the refusal to be counted")
        # The processing runner in the main process derives state from the workers' positions.
        wait_for(lambda: server.api("GET", "/api/status")[1], "device status from processing")
        with psycopg.connect(database_url) as conn:
            wait_for(lambda: conn.execute("SELECT count(*) FROM processing_dirty").fetchone() == (0,),
                     "the processing runner to catch up")
    finally:
        for s in socks:
            s.close()
        if server.proc is not None and server.proc.poll() is None:
            assert server.terminate() == 0
    assert "stopped" in server.log.read_text()


def test_crashed_worker_is_restarted(database_url: str, short_tmp: Path) -> None:
    server = ServerProcess(short_tmp / "data", database_url, FIELDTRACK_GATEWAY_WORKERS="2")
    server.start()
    try:
        register(server, 8)
        victim = health(server)["gateway_workers"][0]
        os.kill(victim["pid"], signal.SIGKILL)
        body = wait_for(lambda: (b := health(server))["gateway_workers"][0]["restarts"] == 1
                        and b["gateway_workers"][0]["up"] and b, "the worker to be restarted")
        assert body["gateway_workers"][0]["pid"] != victim["pid"]
        assert body["status"] == "ok" and gt06_row(body)["up"]
        socks = [tracker(server, k) for k in range(8)]
        assert all(report(s, k, 0) for k, s in enumerate(socks))
        for s in socks:
            s.close()
        assert stored(database_url) == 8
        assert "gateway worker 1" in server.log.read_text()
    finally:
        if server.proc is not None and server.proc.poll() is None:
            assert server.terminate() == 0


def test_acked_positions_survive_outage_kill_9_and_fewer_workers(database_url: str, short_tmp: Path) -> None:
    proxy, url = proxied(database_url)
    server = ServerProcess(short_tmp / "data", url, FIELDTRACK_GATEWAY_WORKERS="2")
    try:
        server.start()
        register(server, 20)
        socks = [tracker(server, k) for k in range(20)]
        assert all(report(s, k, 0) for k, s in enumerate(socks))
        proxy.cut()  # the database goes away; the workers spool, then acknowledge
        assert all(report(s, k, i) for i in (1, 2) for k, s in enumerate(socks))
        for s in socks:
            s.close()
        spool = server.data_dir / "spool"
        for k in (1, 2):
            assert any(p.suffix == ".jsonl" for p in (spool / f"worker-{k}").iterdir()), f"worker {k} spooled"
        server.kill()  # the workers see their stdin close and stop; nothing reaches the database
        assert stored(database_url) == 20
        proxy.start()
        # One worker now: worker-2's spool belongs to nobody and the main process drains it.
        server.env["FIELDTRACK_GATEWAY_WORKERS"] = "1"
        server.start()
        wait_for(lambda: stored(database_url) == 60, "every acknowledged position to be stored")
        wait_for(lambda: not (spool / "worker-2").exists(), "the retired spool to be drained and removed")
        assert not any(p.suffix == ".jsonl" for p in (spool / "worker-1").iterdir())
        assert len(health(server)["gateway_workers"]) == 1
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.terminate()
        proxy.close()


def test_sigterm_stops_workers(database_url: str, short_tmp: Path) -> None:
    server = ServerProcess(short_tmp / "data", database_url, FIELDTRACK_GATEWAY_WORKERS="3")
    server.start()
    pids = [w["pid"] for w in health(server)["gateway_workers"]]
    assert len(pids) == 3
    register(server, 6)
    socks = [tracker(server, k) for k in range(6)]
    assert all(report(s, k, 0) for k, s in enumerate(socks))
    assert server.terminate() == 0
    for s in socks:
        s.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert stored(database_url) == 6


def test_retired_spools_are_those_beyond_the_count(tmp_path: Path) -> None:
    for name in ("worker-1", "worker-2", "worker-10", "workerX", "other"):
        (tmp_path / name).mkdir()
    (tmp_path / "worker-3").write_text("a file, not a spool folder")
    assert retired_spools(tmp_path, 2) == [tmp_path / "worker-10"]
    assert retired_spools(tmp_path, 0) == [tmp_path / p for p in ("worker-1", "worker-10", "worker-2")]
    assert retired_spools(tmp_path / "missing", 0) == []
