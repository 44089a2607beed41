"""MQTT ingest against the real Mosquitto on this machine (127.0.0.1:1883): each test uses its own
topic prefix and client id, and removes its persistent session afterwards."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.mqtt import WINDOW, MqttIngest, MqttSettings, route
from protocols.registry import PROTOCOLS
from tests.gateway.conftest import Running, start_gateway, stop_gateway
from tests.mosquitto import Mosquitto, reachable
from tests.proxy import proxied

RMC = b"$GPRMC,081836,A,3751.65,S,14507.36,E,000.0,360.0,130998,011.3,E*62"


def rmc(second: int) -> bytes:
    """A valid RMC sentence (checksum computed) for 08:18:<second> on 1998-09-13."""
    body = f"GPRMC,0818{second:02d},A,3751.65,S,14507.36,E,000.0,360.0,130998,011.3,E"
    checksum = 0
    for ch in body.encode():
        checksum ^= ch
    return f"${body}*{checksum:02X}\r\n".encode()


@pytest.fixture(scope="session")
def broker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """FIELDTRACK_TEST_MQTT_URL if set; else a Mosquitto of our own; else the machine's on 1883."""
    url = os.environ.get("FIELDTRACK_TEST_MQTT_URL")
    if url:
        yield url
        return
    try:
        own = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    except RuntimeError:
        if reachable("127.0.0.1", 1883):
            yield "mqtt://127.0.0.1:1883"
            return
        raise
    own.start()
    try:
        yield own.url
    finally:
        own.stop()


@dataclass
class Broker:
    url: str
    prefix: str
    client_id: str

    def settings(self) -> MqttSettings:
        return MqttSettings(self.url, self.client_id, self.prefix)

    async def publish(self, topic: str, payload: bytes) -> None:
        host, port = self.url.removeprefix("mqtt://").split(":")
        async with aiomqtt.Client(host, int(port), identifier=f"pub-{uuid.uuid4().hex[:8]}") as client:
            await client.publish(self.prefix + topic, payload, qos=1)


async def forget_session(client_id: str, url: str) -> None:
    host, port = url.removeprefix("mqtt://").split(":")
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    async with aiomqtt.Client(host, int(port), identifier=client_id, protocol=aiomqtt.ProtocolVersion.V5,
                              clean_start=True, properties=props):
        pass


@pytest.fixture
async def broker(broker_url: str) -> AsyncIterator[Broker]:
    b = Broker(broker_url, prefix=f"t{uuid.uuid4().hex[:10]}/", client_id=f"ft-test-{uuid.uuid4().hex[:10]}")
    yield b
    await forget_session(b.client_id, b.url)


@pytest.fixture
async def gateway(database_url: str, tmp_path: Path) -> AsyncIterator[Running]:
    running, tasks = await start_gateway(database_url, tmp_path / "spool", [])
    try:
        yield running
    finally:
        await stop_gateway(running, tasks)


async def until(check: Callable[[], bool], within_s: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def running_ingest(gateway: Running, settings: MqttSettings) -> tuple[MqttIngest, asyncio.Task[None]]:
    mqtt = MqttIngest(settings, gateway.gateway.ingest, PROTOCOLS)
    task = asyncio.create_task(mqtt.run())
    await until(lambda: mqtt.status.connected)
    await asyncio.sleep(0.2)  # subscriptions confirmed
    return mqtt, task


async def stopped(mqtt: MqttIngest, task: Awaitable[None]) -> None:
    mqtt.stop()
    await asyncio.wait_for(task, 10)


def test_topics_route_to_protocol_and_device() -> None:
    assert route("owntracks/anna/phone", "") == ("owntracks", "anna/phone")
    assert route("owntracks/anna/phone/event", "") == ("owntracks", "anna/phone")
    assert route("acme/fieldtrack/dev1/position", "acme/") == ("json", "dev1")
    assert route("fieldtrack/dev1/nmea", "") == ("nmea", "dev1")
    assert route("fieldtrack/dev1/other", "") is None
    assert route("owntracks/anna", "") is None
    assert route("other/fieldtrack/dev1/nmea", "acme/") is None


async def test_nmea_message_is_stored(gateway: Running, broker: Broker) -> None:
    gateway.directory.remember(await gateway.devices.create("boat-1", "Boat", "nmea"))
    mqtt, task = await running_ingest(gateway, broker.settings())
    try:
        await broker.publish("fieldtrack/boat-1/nmea", rmc(1) + rmc(2))
        await until(lambda: gateway.count("boat-1") == 2)
        assert mqtt.status.stored_positions == 2
    finally:
        await stopped(mqtt, task)


async def test_published_while_stopped_arrives_after_restart(gateway: Running, broker: Broker) -> None:
    gateway.directory.remember(await gateway.devices.create("boat-2", "Boat", "nmea"))
    mqtt, task = await running_ingest(gateway, broker.settings())  # creates the persistent session
    await stopped(mqtt, task)
    for second in range(5):
        await broker.publish("fieldtrack/boat-2/nmea", rmc(second))
    assert gateway.count("boat-2") == 0
    mqtt, task = await running_ingest(gateway, broker.settings())
    try:
        await until(lambda: gateway.count("boat-2") == 5)
    finally:
        await stopped(mqtt, task)


async def test_malformed_payload_is_acked_once_not_redelivered(gateway: Running, broker: Broker) -> None:
    gateway.directory.remember(await gateway.devices.create("boat-3", "Boat", "nmea"))
    mqtt, task = await running_ingest(gateway, broker.settings())
    try:
        await broker.publish("fieldtrack/boat-3/nmea", b"$GPRMC,garbage*00\r\n")
        await broker.publish("fieldtrack/boat-3/nmea", rmc(7))
        await until(lambda: gateway.count("boat-3") == 1)
        assert mqtt.status.malformed == 1
    finally:
        await stopped(mqtt, task)
    mqtt, task = await running_ingest(gateway, broker.settings())
    try:
        await asyncio.sleep(1.0)
        assert mqtt.status.received == 0, "an acknowledged message came back"
    finally:
        await stopped(mqtt, task)


async def test_not_acknowledged_until_stored(database_url: str, tmp_path: Path, broker: Broker) -> None:
    """Database away and the device not cached: the message is held unacknowledged; after a restart
    with the database back, the broker redelivers it and it is stored."""
    proxy, url = proxied(database_url)
    running, tasks = await start_gateway(url, tmp_path / "spool", [])
    await running.devices.create("boat-4", "Boat", "nmea")  # registered, but not in the cache
    try:
        mqtt, task = await running_ingest(running, broker.settings())
        proxy.cut()
        await broker.publish("fieldtrack/boat-4/nmea", rmc(9))
        await until(lambda: mqtt.status.received == 1)
        await asyncio.sleep(1.0)
        assert mqtt.status.stored_positions == 0
        await stopped(mqtt, task)  # disconnect without having acknowledged it
        proxy.start()
        mqtt, task = await running_ingest(running, broker.settings())
        try:
            await until(lambda: running.count("boat-4") == 1)
        finally:
            await stopped(mqtt, task)
    finally:
        await stop_gateway(running, tasks)
        proxy.close()


async def test_broker_restart_loses_nothing(gateway: Running, tmp_path: Path) -> None:
    """Messages queued for our persistent session survive a broker restart, and the ingest
    reconnects by itself."""
    own = Mosquitto(tmp_path / "broker")
    own.start()
    broker = Broker(own.url, prefix="r/", client_id="ft-restart")
    gateway.directory.remember(await gateway.devices.create("boat-5", "Boat", "nmea"))
    mqtt, task = await running_ingest(gateway, broker.settings())
    try:
        await broker.publish("fieldtrack/boat-5/nmea", rmc(1))
        await until(lambda: gateway.count("boat-5") == 1)
        await stopped(mqtt, task)
        for second in range(2, 6):  # queued for the stopped subscriber
            await broker.publish("fieldtrack/boat-5/nmea", rmc(second))
        own.stop()
        own.start()  # same port, same persistence file
        mqtt, task = await running_ingest(gateway, broker.settings())
        await until(lambda: gateway.count("boat-5") == 5)
        connects = mqtt.status.connects
        own.stop()  # and while connected: the ingest must come back by itself
        own.start()
        await until(lambda: mqtt.status.connected and mqtt.status.connects > connects, 30)
        await asyncio.sleep(0.3)  # subscriptions renewed
        await broker.publish("fieldtrack/boat-5/nmea", rmc(6))
        await until(lambda: gateway.count("boat-5") == 6, 30)
    finally:
        await stopped(mqtt, task)
        own.stop()


async def test_owntracks_and_json_buffers_are_stored(gateway: Running, broker: Broker) -> None:
    gateway.directory.remember(await gateway.devices.create("anna/phone", "Anna", "owntracks"))
    gateway.directory.remember(await gateway.devices.create("van-7", "Van 7", "json"))
    mqtt, task = await running_ingest(gateway, broker.settings())
    try:
        await broker.publish("owntracks/anna/phone", b'{"_type":"location","lat":52.3702,"lon":4.8952,'
                             b'"tst":1763884800,"acc":12,"batt":81,"vel":34}')
        await broker.publish("owntracks/anna/phone", b'{"_type":"lwt","tst":1763884800}')  # no position
        await broker.publish("fieldtrack/van-7/position",
                             b'[{"time":"2026-11-23T08:00:00Z","lat":52.37,"lon":4.89,"speed_kmh":42},'
                             b'{"time":1763885100,"lat":52.38,"lon":4.90}]')
        await until(lambda: gateway.count("anna/phone") == 1 and gateway.count("van-7") == 2)
        await broker.publish("fieldtrack/van-7/position", b'{"time":"2026-11-23T08:00:00","lat":1,"lon":2}')
        await until(lambda: mqtt.status.malformed == 1)  # a time without a zone is refused, and acked
        assert gateway.count("van-7") == 2
    finally:
        await stopped(mqtt, task)


async def test_a_burst_while_storage_is_away_is_held_by_the_broker_not_dropped(
        database_url: str, tmp_path: Path) -> None:
    """More messages than the consumer's window arrive while nothing can be stored: the broker
    must hold the excess (flow control), and every message is stored once storage is back,
    without a reconnect. A client-side queue limit would drop the excess silently instead."""
    own = Mosquitto(tmp_path / "broker", "max_queued_messages 100000\n")
    own.start()
    broker = Broker(own.url, prefix="burst/", client_id="ft-burst")
    proxy, url = proxied(database_url)
    running, tasks = await start_gateway(url, tmp_path / "spool", [])
    await running.devices.create("van-9", "Van 9", "json")  # registered, not cached: held while cut
    total = 3 * WINDOW
    try:
        mqtt, task = await running_ingest(running, broker.settings())
        proxy.cut()
        host, port = own.url.removeprefix("mqtt://").split(":")
        async with aiomqtt.Client(host, int(port), identifier="burst-pub", max_inflight_messages=500) as pub:
            await asyncio.gather(*(
                pub.publish("burst/fieldtrack/van-9/position",
                            f'{{"time":{1763884800 + k},"lat":52.37,"lon":4.89}}'.encode(), qos=1)
                for k in range(total)))
        await until(lambda: mqtt.status.received >= WINDOW)
        proxy.start()
        try:
            await until(lambda: running.count("van-9") == total, within_s=60)
            assert mqtt.status.connects == 1  # all of it in the same connection
        finally:
            await stopped(mqtt, task)
    finally:
        await stop_gateway(running, tasks)
        proxy.close()
        own.stop()
