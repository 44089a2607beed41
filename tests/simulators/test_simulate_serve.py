"""Simulated fleets against a real ``fieldtrack serve`` process, real PostgreSQL and a real Mosquitto:
every protocol's positions are stored under the right device with the right coordinates; a device
whose acks are lost and whose connection is cut resends, and nothing is lost or stored twice; the
``simulate`` and ``replay`` commands work from the shell."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from simulators.device import Counters, LinkSettings, Schedule, scheduled
from simulators.movement import Fix, Track
from simulators.runner import SUPPORTED, UDP, Fleet, FleetSpec, Target
from tests.mosquitto import Mosquitto
from tests.serverproc import ServerProcess
from tests.simulators.ackproxy import AckEatingProxy

ROOT = Path(__file__).resolve().parents[2]
RENO = ROOT / "tests" / "data" / "nmea" / "nmeaparser__NmeaSampleData.nmea.gz"
# Wire resolutions: 0.0001 minute of arc (text protocols) is 1.7e-6 degree; GT06 1/1,800,000 degree.
DEGREES = 2e-6


Row = tuple[datetime, float, float, float | None]  # fix_time, latitude, longitude, speed_kmh


@dataclass
class Served:
    server: ServerProcess
    broker: Mosquitto
    db: str

    def register(self, ids: list[str]) -> None:
        for uid in ids:
            status, body = self.server.api("POST", "/api/devices", {"unique_id": uid, "name": uid})
            assert status == 201, body

    def rows(self, unique_id: str) -> list[Row]:
        with psycopg.connect(self.db) as conn:
            return [(r[0], r[1], r[2], r[3]) for r in conn.execute(
                "SELECT p.fix_time, p.latitude, p.longitude, p.speed_kmh FROM positions p"
                " JOIN devices d ON d.id = p.device_id WHERE d.unique_id = %s AND p.latitude IS NOT NULL"
                " AND NOT (p.attributes ? 'outdated') ORDER BY p.fix_time", (unique_id,))]

    def wait_rows(self, unique_id: str, count: int, within_s: float = 20.0) -> list[Row]:
        deadline = time.monotonic() + within_s
        while True:
            rows = self.rows(unique_id)
            if len({r[0] for r in rows}) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.2)


@pytest.fixture(scope="module")
def served(pg_server_url: str, template_db: str) -> Iterator[Served]:
    folder = Path(tempfile.mkdtemp(prefix="ft-sim-"))  # short: the broker and server sockets live here
    name = f"ft_sim_{uuid.uuid4().hex[:10]}"
    admin = make_conninfo(pg_server_url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"'.encode())
    db = make_conninfo(pg_server_url, dbname=name)
    broker = Mosquitto(folder / "mqtt")
    broker.start()
    server = ServerProcess(folder / "data", db, FIELDTRACK_MQTT_URL=broker.url)
    try:
        server.start()
        yield Served(server, broker, db)
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.terminate()
        broker.stop()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())
        shutil.rmtree(folder, ignore_errors=True)


def expected_fixes(fleet: Fleet, index: int) -> list[Fix]:
    """What the device of ``index`` sampled: its track, sampled again on its schedule."""
    spec, member = fleet.spec, fleet.members[index]
    seed = f"{spec.seed}/{member.unique_id}"
    track = Track(spec.movement, seed, fleet.start, cheat=member.cheat)
    schedule = Schedule(fleet.start, spec.every_s, spec.fixes_per_device, spec.speed)
    return [f for _, f in scheduled(track, schedule) if f is not None]


def check_stored(served: Served, fleet: Fleet, index: int, *, copies: int = 1) -> None:
    member = fleet.members[index]
    fixes = expected_fixes(fleet, index)
    rows = served.wait_rows(member.unique_id, len(fixes))
    assert len(rows) == copies * len(fixes), (member, len(rows), len(fixes))  # nothing lost, none twice
    by_time = {r[0]: r for r in rows}
    assert sorted(by_time) == [f.time for f in fixes], member
    for f in fixes:
        _, lat, lon, speed = by_time[f.time]
        assert abs(lat - f.lat) <= DEGREES and abs(lon - f.lon) <= DEGREES, (member, f, lat, lon)
        # Speed on the wire: whole km/h for GT06 and OwnTracks, finer elsewhere.
        assert speed is not None and abs(speed - f.speed_kmh) <= 0.6, (member, f, speed)


def test_every_protocol_lands_under_its_device_with_its_coordinates(served: Served) -> None:
    link = LinkSettings(ack_timeout_s=5, backoff_base_s=0.2, drain_s=15)
    spec = FleetSpec(devices=2 * len(SUPPORTED), protocols=SUPPORTED, every_s=0.25, duration_s=2.5, speed=40,
                     seed="every-protocol", link=link)
    ports = {**served.server.ports, "owntracks:http": served.server.api_port}
    fleet = Fleet(spec, Target("127.0.0.1", ports, mqtt_url=served.broker.url))
    # Queclink, Meitrack, watches and GpsGate too: every protocol the gateway speaks is simulated,
    # and those it also takes over UDP are simulated over UDP as well (OwnTracks over HTTP too).
    assert {"gl200", "meitrack", "watch", "gpsgate", "h02:udp", "teltonika:udp", "nmea:udp",
            "owntracks:http"} <= {m.protocol for m in fleet.members}
    served.register([m.unique_id for m in fleet.members])
    total = asyncio.run(fleet.run())
    assert total.errors == 0 and total.retried == 0, fleet.last_errors()
    for name, c in fleet.counters.items():
        fixes = sum(len(expected_fixes(fleet, i)) for i, m in enumerate(fleet.members) if m.protocol == name)
        assert c.sent == fixes, name
        # NMEA has no answers: its fixes are sent, never confirmed; every other protocol acks all.
        assert (c.acked, c.unconfirmed) == ((0, fixes) if name.startswith("nmea") else (fixes, 0)), name
    # The ":udp" devices really came as datagrams: the server's UDP listeners hold a peer for each.
    status, health = served.server.api("GET", "/api/health")
    assert status == 200
    peers = {item["protocol"]: item["peers"] for item in health["listeners"] if item["transport"] == "udp"}
    for name in UDP:
        devices = sum(1 for m in fleet.members if m.protocol == name)
        assert peers[name.removesuffix(":udp")] >= devices == 2, (name, peers)
    for i, member in enumerate(fleet.members):
        # A raw NMEA stream sends RMC and GGA per fix: two positions of the same instant, as Traccar stores.
        check_stored(served, fleet, i, copies=2 if member.protocol.startswith("nmea") else 1)


async def run_with_lost_acks(fleet: Fleet, proxies: list[AckEatingProxy]) -> Counters:
    async def trouble() -> None:
        await asyncio.sleep(0.8)
        for p in proxies:
            p.eat = True  # the server stores, the device never hears so
        await asyncio.sleep(0.6)
        for p in proxies:
            p.cut()  # and the connection breaks
            p.eat = False

    saboteur = asyncio.create_task(trouble())
    try:
        return await fleet.run()
    finally:
        await saboteur
        for p in proxies:
            await p.close()


def test_lost_acks_and_a_cut_connection_mean_resending_without_loss_or_duplicates(served: Served) -> None:
    protocols = ("gt06", "tk103", "osmand")
    link = LinkSettings(ack_timeout_s=0.4, backoff_base_s=0.1, backoff_cap_s=0.3, drain_s=15)
    spec = FleetSpec(devices=3, protocols=protocols, every_s=0.1, duration_s=3.0, speed=10, seed="cut",
                     first_index=100, link=link)

    async def scenario() -> tuple[Fleet, list[AckEatingProxy]]:
        proxies = [AckEatingProxy(served.server.ports[p]) for p in protocols]
        for p in proxies:
            await p.start()
        fleet = Fleet(spec, Target("127.0.0.1", {name: p.port for name, p in zip(protocols, proxies,
                                                                                    strict=True)}))
        served.register([m.unique_id for m in fleet.members])
        await run_with_lost_acks(fleet, proxies)
        return fleet, proxies

    fleet, proxies = asyncio.run(scenario())
    assert all(p.eaten > 0 for p in proxies), "each device's answers were swallowed"
    for name, c in fleet.counters.items():
        assert c.unconfirmed == 0, (name, c)
        assert c.retried >= 1 and c.reconnects >= 1 and c.errors >= 1, (name, c)
        assert c.acked == c.sent, (name, c)
    for i in range(len(fleet.members)):
        check_stored(served, fleet, i)


def test_mock_location_cheaters_reach_the_database_pinned_and_flagged(served: Served) -> None:
    spec = FleetSpec(devices=2, protocols=("osmand", "json"), every_s=0.2, duration_s=1.0, speed=30,
                     seed="cheats", first_index=200, cheats={"mock": 2})
    fleet = Fleet(spec, Target("127.0.0.1", dict(served.server.ports), mqtt_url=served.broker.url))
    served.register([m.unique_id for m in fleet.members])
    total = asyncio.run(fleet.run())
    assert total.acked == total.sent == 10
    for member in fleet.members:
        assert len(served.wait_rows(member.unique_id, 5)) == 5
        with psycopg.connect(served.db) as conn:
            rows = conn.execute("SELECT DISTINCT p.latitude, p.longitude, p.attributes->'mock'"
                                " FROM positions p JOIN devices d ON d.id = p.device_id"
                                " WHERE d.unique_id = %s",
                                (member.unique_id,)).fetchall()
        assert len(rows) == 1 and rows[0][2] is True, rows  # one spot, to the last digit, and flagged


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDTRACK_")}
    return subprocess.run([sys.executable, "-m", "fieldtrack.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env=env)


def test_simulate_command_registers_nothing_itself_and_reports_a_summary(served: Served) -> None:
    ports = served.server.ports
    # h02 over UDP, on the port given for h02 (the gateway's UDP and TCP ports share the number).
    common = ["--devices", "3", "--protocol", "gt06,h02:udp,osmand", "--rate", "1/0.2s", "--duration", "2s",
              "--speed", "30", "--seed", "cli", "--first-index", "500", "--target", "127.0.0.1",
              "--port", f"gt06={ports['gt06']},h02={ports['h02']}", "--port", f"osmand={ports['osmand']}"]
    listed = cli("simulate", *common, "--list-ids")
    assert listed.returncode == 0, listed.stderr
    ids = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [p for p, _ in ids] == ["gt06", "h02:udp", "osmand"]
    served.register([uid for _, uid in ids])
    run = cli("simulate", *common, "--progress", "1s")
    assert run.returncode == 0, run.stdout + run.stderr
    # 3 devices x (2 s / 0.2 s) fixes, every one acknowledged the first time.
    assert "total: 30 sent, 30 acked, 0 retried, 0 errors, 0 reconnects" in run.stdout, run.stdout
    assert "devices done" in run.stdout  # the progress line (plain lines when not on a terminal)
    for _, uid in ids:
        assert len({r[0] for r in served.wait_rows(uid, 10)}) == 10


def test_simulate_command_explains_bad_options() -> None:
    bad = cli("simulate", "--protocol", "gt06,carrier-pigeon", "--duration", "1m")
    assert bad.returncode == 2 and "carrier-pigeon" in bad.stderr
    bad = cli("simulate", "--rate", "often")
    assert bad.returncode == 2 and "often" in bad.stderr
    assert "--cheats" in cli("simulate", "--help").stdout


def test_replay_command_sends_a_real_nmea_log_through_the_nmea_port(served: Served, tmp_path: Path) -> None:
    lines = gzip.decompress(RENO.read_bytes()).splitlines(keepends=True)
    rmc = [line for line in lines if line.startswith(b"$GPRMC")][:40]
    cut = lines[: lines.index(rmc[-1]) + 1]
    log = tmp_path / "reno.nmea"
    log.write_bytes(b"".join(cut))
    served.register(["356000000077777"])
    ports = served.server.ports
    # 40 epochs 2 s apart: 78 s of driving, replayed 100 times faster.
    run = cli("replay", str(log), "--protocol", "nmea", "--id", "356000000077777", "--speed", "100",
              "--target", f"127.0.0.1:{ports['nmea']}")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "total: 40 sent, acks n/a" in run.stdout, run.stdout
    rows = served.wait_rows("356000000077777", 40)
    assert len({r[0] for r in rows}) == 40
    # The log's first fix, "$GPRMC,235234,A,3925.9702,N,11945.9354,W": 39 deg 25.9702', 119 deg 45.9354' W.
    first = rows[0]
    assert abs(first[1] - (39 + 25.9702 / 60)) < 1e-6 and abs(first[2] + (119 + 45.9354 / 60)) < 1e-6
    # Recorded 2 s apart, and moved so the replay ends now: spacing kept, nothing in the future.
    times = sorted({r[0] for r in rows})
    assert {(b - a).total_seconds() for a, b in itertools.pairwise(times)} == {2.0}
    assert times[-1].timestamp() <= time.time() + 1
