"""MQTT ingest benchmark: phones' messages queued in a real Mosquitto while Fieldtrack is away, then
drained into committed rows, against the broker delivering the same queued messages to a plain
subscriber that only acknowledges them (the baseline, measured in the same run).

    .venv/bin/python -m bench.mqtt --devices 200 --messages 50

Two workloads: OwnTracks (one position per message) and our JSON topic with buffers of ten
positions per message (a phone uploading after a tunnel). Both phases start from a persistent
session with every message already queued, so the figure is the drain rate of broker plus
consumer, not the publisher's speed. The benchmark runs its own Mosquitto (from the machine's
binary) so it can lift the per-client queue limit without touching the machine's broker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.dbsetup import scratch_database
from gateway.ingest import Ingest
from gateway.mqtt import MqttIngest, MqttSettings
from protocols.registry import PROTOCOLS
from storage import db
from storage.devices import DeviceDirectory, DeviceStore
from storage.spool import Spool
from storage.timescale import TimescalePolicy
from storage.writer import PositionWriter
from tests.mosquitto import Mosquitto

# Mosquitto's defaults (1,000 queued messages per client) would drop what the benchmark queues. The
# test broker saves its database on every change (for crash tests); a production broker saves
# periodically (Debian's default: every 30 min), which is what is measured here.
BROKER_CONFIG = ("max_queued_messages 0\nmax_queued_bytes 0\n"
                 "autosave_interval 1800\nautosave_on_changes false\n")
# aiomqtt warns about every publish beyond its inflight window: expected here, by design.
QUIET = logging.getLogger("bench.mqtt.publisher")
QUIET.setLevel(logging.ERROR)
T0 = 1_764_000_000  # a fixed epoch second so reruns produce the same rows
BUFFER = 10


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    positions_per_message: int
    topic: Callable[[int], str]
    payload: Callable[[int, int], bytes]
    unique_id: Callable[[int], str]
    protocol: str


def _owntracks(device: int, seq: int) -> bytes:
    return json.dumps({"_type": "location", "lat": 52.0 + seq * 1e-4, "lon": 4.0 + device * 1e-4,
                       "tst": T0 + seq * 10, "acc": 8, "vel": 40, "cog": 90, "batt": 80,
                       "tid": "bn"}).encode()


def _json_buffer(device: int, seq: int) -> bytes:
    return json.dumps([{"time": T0 + (seq * BUFFER + k) * 5, "lat": 52.0 + (seq * BUFFER + k) * 1e-5,
                        "lon": 4.0 + device * 1e-4, "speed_kmh": 30, "accuracy_m": 6}
                       for k in range(BUFFER)]).encode()


WORKLOADS = [
    Workload("owntracks", 1, lambda d: f"owntracks/bench/p{d}", _owntracks, lambda d: f"bench/p{d}",
             "owntracks"),
    Workload("json-buffer", BUFFER, lambda d: f"fieldtrack/benchj{d}/position", _json_buffer,
             lambda d: f"benchj{d}", "json"),
]


def register(url: str, workload: Workload, devices: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn, \
            conn.cursor().copy("COPY devices (unique_id, name, protocol) FROM STDIN") as copy:
        for d in range(devices):
            copy.write_row((workload.unique_id(d), f"bench {d}", workload.protocol))


def _hostport(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("mqtt://").split(":")
    return host, int(port)


async def subscribe_session(url: str, client_id: str, topics: list[str]) -> None:
    """Create a persistent QoS 1 session and leave, so what is published next is queued for it."""
    host, port = _hostport(url)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    async with aiomqtt.Client(host, port, identifier=client_id, protocol=aiomqtt.ProtocolVersion.V5,
                              clean_start=False, properties=props) as client:
        for topic in topics:
            await client.subscribe(topic, qos=1)


async def publish_all(url: str, prefix: str, workload: Workload, devices: int, messages: int) -> None:
    host, port = _hostport(url)
    async with aiomqtt.Client(host, port, identifier=f"bench-pub-{uuid.uuid4().hex[:8]}",
                              max_inflight_messages=200, logger=QUIET) as client:
        limit = asyncio.Semaphore(200)

        async def one(d: int, seq: int) -> None:
            async with limit:
                await client.publish(prefix + workload.topic(d), workload.payload(d, seq), qos=1)

        # Device order within each message sequence: every device's messages stay in order.
        for seq in range(messages):
            await asyncio.gather(*(one(d, seq) for d in range(devices)))


async def plain_drain(url: str, client_id: str, expected: int) -> float:
    """Seconds for the broker to hand ``expected`` queued messages to a subscriber that only acks."""
    host, port = _hostport(url)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    received = 0
    start = time.perf_counter()
    async with aiomqtt.Client(host, port, identifier=client_id, protocol=aiomqtt.ProtocolVersion.V5,
                              clean_start=False, properties=props) as client:
        async for _ in client.messages:
            received += 1
            if received == expected:
                break
    return time.perf_counter() - start


async def fieldtrack_drain(url: str, database_url: str, prefix: str, client_id: str,
                           expected_positions: int, spool_dir: Path) -> tuple[float, MqttIngest, int]:
    pool = db.open_pool(database_url, 4)
    await pool.open()
    store = DeviceStore(pool)
    directory = DeviceDirectory(store)
    await directory.load()
    writer = PositionWriter(pool, Spool(spool_dir))
    writer_task = asyncio.create_task(writer.run())
    mqtt = MqttIngest(MqttSettings(url, client_id, prefix), Ingest(directory, store, writer), PROTOCOLS)
    start = time.perf_counter()
    task = asyncio.create_task(mqtt.run())
    while mqtt.status.stored_positions < expected_positions:
        if task.done():
            task.result()
            raise SystemExit("FAILED: the MQTT consumer stopped early")
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - start
    mqtt.stop()
    await asyncio.wait_for(task, 30)
    await writer.close()
    await writer_task
    await pool.close()
    return elapsed, mqtt, writer.stats.batches


async def run_workload(broker: str, database_url: str, workload: Workload, devices: int,
                       messages: int) -> dict[str, Any]:
    total = devices * messages
    base_prefix = f"b{uuid.uuid4().hex[:6]}/"
    ft_prefix = f"f{uuid.uuid4().hex[:6]}/"
    base_id, ft_id = f"bench-plain-{uuid.uuid4().hex[:6]}", f"bench-ft-{uuid.uuid4().hex[:6]}"

    await subscribe_session(broker, base_id, [base_prefix + "#"])
    await publish_all(broker, base_prefix, workload, devices, messages)
    base_s = await plain_drain(broker, base_id, total)

    await subscribe_session(broker, ft_id, [ft_prefix + t for t in
                                            ("owntracks/+/+", "owntracks/+/+/event",
                                             "fieldtrack/+/position", "fieldtrack/+/nmea")])
    t = time.perf_counter()
    await publish_all(broker, ft_prefix, workload, devices, messages)
    publish_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory(prefix="ft-bench-spool-") as spool:
        ft_s, mqtt, batches = await fieldtrack_drain(broker, database_url, ft_prefix, ft_id,
                                                     total * workload.positions_per_message, Path(spool))
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM positions p JOIN devices d ON d.id = p.device_id"
                           " WHERE d.protocol = %s", (workload.protocol,)).fetchone()
    return {"messages": total, "positions": total * workload.positions_per_message,
            "committed": int(row[0]) if row else 0, "base_s": base_s, "ft_s": ft_s,
            "publish_s": publish_s, "batches": batches, "malformed": mqtt.status.malformed,
            "received": mqtt.status.received}


async def run(broker: str, database_url: str, devices: int,
              messages: int) -> list[tuple[Workload, dict[str, Any]]]:
    results = []
    for workload in WORKLOADS:
        register(database_url, workload, devices)
        results.append((workload, await run_workload(broker, database_url, workload, devices, messages)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--messages", type=int, default=50, help="messages per device and workload")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ft-bench-mosquitto-") as folder:
        broker = Mosquitto(Path(folder), BROKER_CONFIG)
        broker.start()
        try:
            with scratch_database() as (url, where):
                asyncio.run(db.prepare(url, TimescalePolicy()))
                results = asyncio.run(run(broker.url, url, args.devices, args.messages))
        finally:
            broker.stop()
    print(f"mqtt benchmark  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {platform.node()}  "
          f"{platform.python_version()}  database: {where}  broker: mosquitto (own, QoS 1)")
    failed = False
    for workload, r in results:
        base_rate = r["messages"] / r["base_s"]
        ft_rate = r["messages"] / r["ft_s"]
        print(f"  {workload.name}: {devices_line(args.devices, args.messages, workload)}")
        print(f"    fieldtrack: {r['received']} messages received, {r['committed']} positions committed,"
              f" {r['malformed']} malformed, {r['batches']} writer batches")
        print(f"    fieldtrack drain: {ft_rate:,.0f} messages/s, "
              f"{ft_rate * workload.positions_per_message:,.0f} positions/s committed and PUBACKed"
              f" in {r['ft_s']:.2f} s")
        print(f"    baseline, broker to an ack-only subscriber: {base_rate:,.0f} messages/s"
              f" in {r['base_s']:.2f} s (publishing took {r['publish_s']:.2f} s)")
        print(f"    ratio fieldtrack / broker: {ft_rate / base_rate:.3f}")
        failed |= r["committed"] != r["positions"]
    if failed:
        raise SystemExit("FAILED: not every position was committed")


def devices_line(devices: int, messages: int, workload: Workload) -> str:
    return (f"{devices} devices x {messages} messages x {workload.positions_per_message} positions"
            f" = {devices * messages * workload.positions_per_message} positions")


if __name__ == "__main__":
    main()
