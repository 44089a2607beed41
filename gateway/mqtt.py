"""MQTT ingest: phones (OwnTracks, our JSON, NMEA) through a broker, acknowledged after storage.

The client keeps a persistent session (fixed client id, clean start off, QoS 1 subscriptions), so
what phones publish while Fieldtrack is down is delivered when it returns. Automatic PUBACK is
switched off: a message is acknowledged only once its positions are durable. MQTT requires
PUBACKs in the order the PUBLISHes arrived, so messages are processed concurrently (each device
still in order, through the ingest's per-device lock) and acknowledged strictly in arrival order.
Malformed payloads are logged, counted and acknowledged, so the broker does not redeliver them
forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.ingest import Ingest
from gateway.throttle import ThrottledLog
from protocols.base import Protocol
from protocols.model import DecodeError, Position, Session
from storage.errors import StorageUnavailable

log = logging.getLogger("fieldtrack.gateway.mqtt")
throttled = ThrottledLog(log)

WINDOW = 1000  # messages being stored at once; the broker's inflight limit throttles it too

InFlight = asyncio.Queue[tuple[aiomqtt.Message, asyncio.Task[None]] | None]
MAX_SESSIONS = 50_000
STOP_GRACE_S = 2.0


@dataclass(frozen=True, slots=True)
class MqttSettings:
    url: str
    client_id: str = "fieldtrack"
    prefix: str = ""  # e.g. "acme/" to share a broker: topics become acme/owntracks/+/+
    session_expiry_s: int = 7 * 24 * 3600


@dataclass
class MqttStatus:
    connected: bool = False
    connects: int = 0
    protocol: str | None = None
    last_error: str | None = None
    received: int = 0
    stored_positions: int = 0
    malformed: int = 0
    refused: int = 0
    unrouted: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def topics(prefix: str) -> list[str]:
    return [f"{prefix}owntracks/+/+", f"{prefix}owntracks/+/+/event", f"{prefix}fieldtrack/+/position",
            f"{prefix}fieldtrack/+/nmea"]


def route(topic: str, prefix: str) -> tuple[str, str] | None:
    """(protocol name, device unique id) for a topic, or None for a topic we do not read."""
    if not topic.startswith(prefix):
        return None
    parts = topic[len(prefix):].split("/")
    if parts[0] == "owntracks" and len(parts) in (3, 4) and all(parts[1:3]):
        if len(parts) == 4 and parts[3] != "event":
            return None
        return "owntracks", f"{parts[1]}/{parts[2]}"
    if parts[0] == "fieldtrack" and len(parts) == 3 and parts[1]:
        kind = {"position": "json", "nmea": "nmea"}.get(parts[2])
        return (kind, parts[1]) if kind else None
    return None


class MqttIngest:
    def __init__(self, settings: MqttSettings, ingest: Ingest, protocols: Mapping[str, Protocol]) -> None:
        self.settings = settings
        self.ingest = ingest
        self.protocols = protocols
        self.status = MqttStatus()
        self._sessions: dict[tuple[str, str], Session] = {}
        self._stopping = asyncio.Event()

    def _client(self, version: aiomqtt.ProtocolVersion) -> aiomqtt.Client:
        url = urlsplit(self.settings.url)
        if url.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"MQTT URL must start with mqtt:// or mqtts://, got {self.settings.url!r}")
        tls = ssl.create_default_context() if url.scheme == "mqtts" else None
        properties = None
        kwargs: dict[str, Any] = {}
        if version == aiomqtt.ProtocolVersion.V5:
            properties = Properties(PacketTypes.CONNECT)
            # Without an expiry an MQTT 5 session ends with the connection: nothing would be kept.
            properties.SessionExpiryInterval = self.settings.session_expiry_s
            # Flow control: the broker stops sending once this many messages await our PUBACK,
            # so unacknowledged messages wait in the broker's queue, not in our memory.
            properties.ReceiveMaximum = WINDOW
            kwargs["clean_start"] = False
        else:
            kwargs["clean_session"] = False
        client = aiomqtt.Client(
            url.hostname or "localhost", url.port or (8883 if tls else 1883),
            username=unquote(url.username) if url.username else None,
            password=unquote(url.password) if url.password else None,
            identifier=self.settings.client_id, protocol=version, properties=properties,
            tls_context=tls, **kwargs,
        )
        # No client-side queue limit: aiomqtt would silently discard beyond it, and a discarded
        # QoS 1 message is only redelivered on the next connection. The broker's inflight limit
        # (Receive Maximum above; max_inflight_messages for MQTT 3.1.1) bounds the queue instead.
        # aiomqtt has no public switch for manual acknowledgement; paho's is what we need.
        client._client.manual_ack_set(True)
        return client

    async def run(self) -> None:
        """Connect, consume, and reconnect with jittered backoff until ``stop``."""
        delay = 1.0
        version = aiomqtt.ProtocolVersion.V5
        while not self._stopping.is_set():
            try:
                async with self._client(version) as client:
                    self.status.connected = True
                    self.status.connects += 1
                    self.status.protocol = "5" if version == aiomqtt.ProtocolVersion.V5 else "3.1.1"
                    self.status.last_error = None
                    log.info("MQTT connected to %s (MQTT %s)", _safe(self.settings.url), self.status.protocol)
                    delay = 1.0
                    for topic in topics(self.settings.prefix):
                        await client.subscribe(topic, qos=1)
                    await self._consume(client)
            except aiomqtt.MqttCodeError as exc:
                if version == aiomqtt.ProtocolVersion.V5 and "protocol" in str(exc).lower():
                    log.info("broker refused MQTT 5 (%s); using 3.1.1", exc)
                    version = aiomqtt.ProtocolVersion.V311
                    continue
                self._lost(exc)
            except aiomqtt.MqttError as exc:
                self._lost(exc)
            finally:
                self.status.connected = False
            if self._stopping.is_set():
                return
            wait = delay * random.uniform(0.5, 1.5)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), wait)
            delay = min(delay * 2, 60.0)

    def _lost(self, exc: BaseException) -> None:
        if self.status.last_error != str(exc):
            log.warning("MQTT connection to %s lost or refused: %s", _safe(self.settings.url), exc)
        self.status.last_error = str(exc)

    async def _consume(self, client: aiomqtt.Client) -> None:
        in_flight: InFlight = asyncio.Queue(WINDOW)
        tasks: set[asyncio.Task[None]] = set()
        acker = asyncio.create_task(self._ack_in_order(client, in_flight), name="mqtt-acker")
        stop = asyncio.create_task(self._stopping.wait())
        try:
            messages = client.messages.__aiter__()
            while True:
                nxt = asyncio.ensure_future(messages.__anext__())
                done, _ = await asyncio.wait({nxt, stop, acker}, return_when=asyncio.FIRST_COMPLETED)
                if nxt not in done:
                    nxt.cancel()
                    break
                message = nxt.result()
                self.status.received += 1
                task = asyncio.create_task(self._store(message))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                await in_flight.put((message, task))
            await in_flight.put(None)
            # Acknowledge what gets stored within the grace period; the rest stays unacknowledged
            # and the broker delivers it again on the next connection (stored once, by fingerprint).
            await asyncio.wait({acker}, timeout=STOP_GRACE_S)
        finally:
            stop.cancel()
            for t in (acker, *tasks):
                t.cancel()
            await asyncio.gather(acker, *tasks, return_exceptions=True)

    async def _ack_in_order(self, client: aiomqtt.Client, in_flight: InFlight) -> None:
        while (item := await in_flight.get()) is not None:
            message, task = item
            await task
            if message.qos > 0:
                client._client.ack(message.mid, message.qos)

    async def _store(self, message: aiomqtt.Message) -> None:
        """Decode and store one message, retrying until its positions are durable."""
        found = route(str(message.topic), self.settings.prefix)
        protocol = self.protocols.get(found[0]) if found else None
        if found is None or protocol is None:
            self.status.unrouted += 1
            return
        unique_id = found[1]
        positions = self._decode(protocol, unique_id, _payload(message))
        if not positions:
            return
        delay = 0.5
        while True:
            try:
                device = await self.ingest.identify(unique_id, protocol.name)
                if device is None:
                    self.status.refused += 1
                    return
                await self.ingest.store_positions(device, protocol.name, positions)
                self.status.stored_positions += len(positions)
                return
            except (StorageUnavailable, OSError, RuntimeError) as exc:
                # Not acknowledged until stored: hold this message (and those behind it) and retry.
                throttled.warning("mqtt-store", "MQTT message for %s not stored yet (%s); retrying",
                                  unique_id, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    def _decode(self, protocol: Protocol, unique_id: str, payload: bytes) -> list[Position]:
        session = self._session(protocol.name, unique_id)
        positions: list[Position] = []
        buf = payload
        while buf:
            frame, used = protocol.next_frame(buf)
            if used == 0:
                frame, used = buf, len(buf)  # the message ends the last frame
            buf = buf[used:]
            if frame is None:
                continue
            try:
                decoded = protocol.decode(frame, session)
            except DecodeError as exc:
                self.status.malformed += 1
                throttled.warning(f"mqtt:{unique_id}", "MQTT %s payload for %s malformed (%s): %s",
                                  protocol.name, unique_id, exc, frame[:256].hex())
                continue
            for p in decoded.positions:
                if p.unique_id not in (None, unique_id):
                    self.status.malformed += 1
                    continue
                positions.append(p)
        return positions

    def _session(self, protocol: str, unique_id: str) -> Session:
        key = (protocol, unique_id)
        session = self._sessions.get(key)
        if session is None:
            if len(self._sessions) >= MAX_SESSIONS:
                self._sessions.clear()
            session = self._sessions[key] = Session(transport="mqtt", unique_id=unique_id)
        return session

    def report(self) -> dict[str, Any]:
        s = self.status
        return {"broker": _safe(self.settings.url), "connected": s.connected, "connects": s.connects,
                "protocol": s.protocol,
                "last_error": s.last_error, "received": s.received, "stored_positions": s.stored_positions,
                "malformed": s.malformed, "refused_unknown": s.refused}

    def stop(self) -> None:
        self._stopping.set()


def _payload(message: aiomqtt.Message) -> bytes:
    p = message.payload
    if isinstance(p, bytes | bytearray):
        return bytes(p)
    return str(p).encode() if p is not None else b""


def _safe(url: str) -> str:
    """The broker URL without its password, for logs and /api/health."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}"
