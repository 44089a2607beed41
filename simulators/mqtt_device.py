"""A phone publishing through an MQTT broker: OwnTracks (``owntracks/<user>/<device>``, one location
per message) or Fieldtrack JSON (``fieldtrack/<id>/position``, a buffer uploaded as one array).

QoS 1: a publish counts as acknowledged when the broker's PUBACK arrives (what the app itself can
know); the broker keeps it for Fieldtrack's persistent session. A lost connection keeps the fixes
not acknowledged in the buffer, to publish again after reconnecting.
"""

from __future__ import annotations

import ssl
from urllib.parse import unquote, urlsplit

import aiomqtt

from protocols import fieldtrack_json, keys, owntracks
from protocols.model import Position
from simulators.device import Counters, FixSource, LinkSettings, SimDevice
from simulators.movement import Fix

JSON_BATCH = 50  # positions per Fieldtrack JSON message when uploading a buffer


def _position(f: Fix) -> Position:
    p = Position(f.time, f.lat, f.lon, speed_kmh=f.speed_kmh, course_deg=f.course_deg,
                 altitude_m=f.altitude_m, accuracy_m=f.accuracy_m)
    p.attributes[keys.BATTERY_PCT] = 80
    if f.mock:
        p.attributes[keys.MOCK] = True
    return p


class MqttDevice(SimDevice):
    def __init__(self, protocol: str, unique_id: str, broker_url: str, prefix: str, source: FixSource,
                 counters: Counters, link: LinkSettings, seed: str) -> None:
        if protocol not in ("owntracks", "json"):
            raise ValueError(f"MQTT devices speak owntracks or json, not {protocol!r}")
        if protocol == "owntracks" and unique_id.count("/") != 1:
            raise ValueError("an OwnTracks id is <user>/<device>")
        super().__init__(unique_id, source, counters, link, seed)
        self.protocol = protocol
        self.url = urlsplit(broker_url)
        if self.url.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"broker URL must start with mqtt:// or mqtts://, got {broker_url!r}")
        name = "owntracks" if protocol == "owntracks" else "fieldtrack"
        suffix = "" if protocol == "owntracks" else "/position"
        self.topic = f"{prefix}{name}/{unique_id}{suffix}"
        self.client_id = f"sim-{protocol}-{unique_id.replace('/', '-')}"

    def _client(self) -> aiomqtt.Client:
        tls = ssl.create_default_context() if self.url.scheme == "mqtts" else None
        return aiomqtt.Client(
            self.url.hostname or "localhost", self.url.port or (8883 if tls else 1883),
            username=unquote(self.url.username) if self.url.username else None,
            password=unquote(self.url.password) if self.url.password else None,
            identifier=self.client_id, tls_context=tls, timeout=self.settings.connect_timeout_s,
        )

    def _payload(self, fixes: list[Fix]) -> bytes:
        if self.protocol == "json":
            return fieldtrack_json.encode([_position(f) for f in fixes])
        f = fixes[0]
        return owntracks.encode_location(f.time, f.lat, f.lon, accuracy_m=f.accuracy_m,
                                         altitude_m=f.altitude_m, speed_kmh=f.speed_kmh,
                                         course_deg=f.course_deg, battery_pct=80,
                                         tracker_id=self.unique_id[-2:], trigger="t",
                                         mock=True if f.mock else None)

    async def link(self) -> None:
        try:
            async with self._client() as client:
                self.backoff.reset()
                self.connected_once = True
                batch_size = JSON_BATCH if self.protocol == "json" else 1
                while not self.finished():
                    batch = self.unsent(batch_size)
                    if not batch:
                        await self._wait(3600.0)
                        continue
                    payload = self._payload([p.fix for p in batch])
                    self.mark_sent(batch)
                    await client.publish(self.topic, payload, qos=1, timeout=self.settings.ack_timeout_s)
                    self.confirm_on_wire()
        except aiomqtt.MqttError as exc:
            raise OSError(f"mqtt: {exc}") from exc
