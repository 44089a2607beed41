"""Many simulated devices in one asyncio loop: the fleet, its ids, its counters and a progress hook.

Protocols are dealt round-robin over the devices; ids are derived from the protocol and the index,
so the same command always simulates the same devices (register them once, run many times).
The simulated clock can run faster than the wall clock (``speed``); it is then started in the
past so that the last fix is not later than the wall clock (servers refuse fixes from the future).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import httpx

from protocols.registry import PROTOCOLS
from simulators.device import Counters, FixSource, LinkSettings, Schedule, SimDevice, scheduled
from simulators.dialects import DIALECTS, UDP_DIALECTS
from simulators.http_device import HttpDevice, OwnTracksHttpDevice
from simulators.movement import CHEATS, MovementConfig, Track
from simulators.mqtt_device import MqttDevice
from simulators.tcp_device import TcpDevice
from simulators.udp_device import UdpDevice

TCP = tuple(DIALECTS)
# The same trackers over UDP, named ``<protocol>:udp`` (the gateway's UDP port has the TCP number).
UDP = tuple(f"{name}:udp" for name in UDP_DIALECTS)
# The OwnTracks app's HTTP mode posts to Fieldtrack's API port (``/owntracks``), 8000 by default.
HTTP = ("osmand", "owntracks:http")
_DEFAULT_PORTS = {"owntracks:http": 8000}
MQTT = ("owntracks", "json")
SUPPORTED = (*TCP, *UDP, *HTTP, *MQTT)
# The leading digits of the IMEI-like ids, one per TCP protocol, so fleets of different protocols
# never share an id.
_ID_CODES = {name: i + 1 for i, name in enumerate(TCP)}


def unique_id(protocol: str, index: int) -> str:
    """The id a simulated device announces: IMEI-like digits for trackers (TK103's 12 digits),
    ``sim/<n>`` for OwnTracks (``user/device``), ``sim-<protocol>-<n>`` for the phone apps."""
    protocol = protocol.removesuffix(":udp").removesuffix(":http")
    if protocol == "tk103":
        return f"35{_ID_CODES[protocol]}{index:09d}"
    if protocol in _ID_CODES:
        return f"35{_ID_CODES[protocol]}{index:012d}"
    if protocol == "owntracks":
        return f"sim/rep{index:05d}"
    return f"sim-{protocol}-{index:05d}"


@dataclass(frozen=True, slots=True)
class Target:
    """Where the server is. ``ports`` overrides Traccar's default port of a protocol."""

    host: str = "127.0.0.1"
    ports: dict[str, int] = field(default_factory=dict)
    mqtt_url: str | None = None  # default mqtt://<host>:1883
    mqtt_prefix: str = ""

    def port(self, protocol: str) -> int:
        """``h02:udp`` takes its own override, else h02's (one number for both), else Traccar's."""
        if protocol in _DEFAULT_PORTS:
            return self.ports.get(protocol) or _DEFAULT_PORTS[protocol]
        base = protocol.removesuffix(":udp")
        return self.ports.get(protocol) or self.ports.get(base) or PROTOCOLS[base].default_port

    def broker(self) -> str:
        return self.mqtt_url or f"mqtt://{self.host}:1883"


@dataclass(frozen=True, slots=True)
class FleetSpec:
    devices: int
    protocols: tuple[str, ...]
    every_s: float
    duration_s: float
    speed: float = 1.0
    seed: str = "fieldtrack"
    cheats: dict[str, int] = field(default_factory=dict)  # cheat -> how many devices
    movement: MovementConfig = field(default_factory=MovementConfig)
    link: LinkSettings = field(default_factory=LinkSettings)
    first_index: int = 0

    def __post_init__(self) -> None:
        unknown = [p for p in self.protocols if p not in SUPPORTED]
        if unknown or not self.protocols:
            raise ValueError(f"unknown protocol {unknown[0] if unknown else '(none)'!r};"
                             f" simulated: {', '.join(SUPPORTED)}")
        if self.devices < 1 or self.every_s <= 0 or self.duration_s <= 0 or self.speed <= 0:
            raise ValueError("devices, rate, duration and speed must be positive")
        bad = [c for c in self.cheats if c not in CHEATS]
        if bad:
            raise ValueError(f"unknown cheat {bad[0]!r}; known: {', '.join(CHEATS)}")
        if sum(self.cheats.values()) > self.devices:
            raise ValueError("more cheating devices than devices")

    @property
    def fixes_per_device(self) -> int:
        return max(1, int(self.duration_s / self.every_s))


@dataclass(frozen=True, slots=True)
class Member:
    protocol: str
    unique_id: str
    cheat: str | None


def device_for(protocol: str, unique_id: str, target: Target, source: FixSource, counters: Counters,
               link: LinkSettings, seed: str, client: httpx.AsyncClient) -> SimDevice:
    """A simulated device of ``protocol`` pointed at ``target``, taking its fixes from ``source``."""
    if protocol in UDP:
        name = protocol.removesuffix(":udp")
        return UdpDevice(UDP_DIALECTS[name](unique_id), target.host, target.port(protocol), source, counters,
                         link, seed)
    if protocol in DIALECTS:
        return TcpDevice(DIALECTS[protocol](unique_id), target.host, target.port(protocol), source, counters,
                         link, seed)
    if protocol in HTTP:
        url = f"http://{target.host}:{target.port(protocol)}"
        kind = OwnTracksHttpDevice if protocol == "owntracks:http" else HttpDevice
        return kind(unique_id, client, url, source, counters, link, seed)
    return MqttDevice(protocol, unique_id, target.broker(), target.mqtt_prefix, source, counters, link, seed)


class Fleet:
    def __init__(self, spec: FleetSpec, target: Target, *, now: datetime | None = None) -> None:
        self.spec = spec
        self.target = target
        now = now or datetime.now(UTC)
        count = spec.fixes_per_device
        # The last fix is due (count - 1) * every_s wall seconds after the start and lies
        # (count - 1) * every_s * speed simulated seconds after it: start early by the difference.
        self.start = (now - timedelta(seconds=(count - 1) * spec.every_s * (spec.speed - 1))).replace(
            microsecond=0)
        cheats = [c for c, n in spec.cheats.items() for _ in range(n)]
        self.members = [
            Member(spec.protocols[i % len(spec.protocols)],
                   unique_id(spec.protocols[i % len(spec.protocols)], spec.first_index + i),
                   cheats[i] if i < len(cheats) else None)
            for i in range(spec.devices)
        ]
        self.counters = {p: Counters() for p in spec.protocols}
        self.devices: list[SimDevice] = []
        self.started = 0.0
        self.done = 0

    def _device(self, i: int, member: Member, client: httpx.AsyncClient) -> SimDevice:
        spec, target = self.spec, self.target
        seed = f"{spec.seed}/{member.unique_id}"
        movement = spec.movement
        if member.cheat == "teleport":
            # Jump inside the run whatever its length: 40 % in, for a fifth of it (5 minutes at most).
            span = spec.fixes_per_device * spec.every_s * spec.speed
            movement = replace(movement, teleport_after_s=0.4 * span, teleport_s=min(300.0, 0.2 * span))
        track = Track(movement, seed, self.start, cheat=member.cheat)
        # Devices start spread over one reporting interval, as a real fleet does.
        phase = (i * 0.618034 % 1.0) * spec.every_s
        schedule = Schedule(self.start, spec.every_s, spec.fixes_per_device, spec.speed, phase)
        return device_for(member.protocol, member.unique_id, target, scheduled(track, schedule),
                          self.counters[member.protocol], spec.link, seed, client)

    def total(self) -> Counters:
        total = Counters()
        for c in self.counters.values():
            total.add(c)
        return total

    async def run(self, progress: Callable[[Fleet], None] | None = None, every_s: float = 1.0) -> Counters:
        limits = httpx.Limits(max_connections=max(10, self.spec.devices), max_keepalive_connections=None)
        async with httpx.AsyncClient(limits=limits) as client:
            self.devices = [self._device(i, m, client) for i, m in enumerate(self.members)]
            self.started = time.monotonic()

            async def one(device: SimDevice) -> None:
                try:
                    await device.run()
                finally:
                    self.done += 1

            tasks = [asyncio.create_task(one(d), name=f"device-{d.unique_id}") for d in self.devices]
            try:
                while not all(t.done() for t in tasks):
                    await asyncio.wait(tasks, timeout=every_s)
                    if progress is not None:
                        progress(self)
            finally:
                for t in tasks:
                    t.cancel()
                results = await asyncio.gather(*tasks, return_exceptions=True)
        crashed = [r for r in results
                   if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)]
        if crashed:
            raise crashed[0]
        return self.total()

    def last_errors(self, limit: int = 3) -> list[str]:
        """A few distinct recent error messages, to tell the user why (refused, wrong port...)."""
        seen: list[str] = []
        for d in self.devices:
            if d.last_error and d.last_error not in seen:
                seen.append(d.last_error)
                if len(seen) == limit:
                    break
        return seen
