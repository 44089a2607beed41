"""What every simulated device shares, whatever its transport: the clock that takes fixes from its
track, the buffer of fixes not yet acknowledged, the counters and the reconnect backoff.

A device samples its track on its own schedule whether or not it is connected, as a tracker does:
fixes wait in the buffer until the server confirms them, and a lost connection means they are sent
again after reconnecting (``retried``). Subclasses implement :meth:`SimDevice.link`.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from simulators.movement import Fix, Track


@dataclass
class Counters:
    sent: int = 0  # positions sent for the first time
    acked: int = 0  # positions the server confirmed
    retried: int = 0  # positions sent again (lost connection, missing or wrong ack)
    errors: int = 0  # wrong acks, ack timeouts, failed or lost connections, refusals
    reconnects: int = 0  # connections after the first one
    unconfirmed: int = 0  # at the end: positions never confirmed (all of them without acks)

    def add(self, other: Counters) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass(frozen=True, slots=True)
class Schedule:
    """``count`` fixes, one every ``every_s`` wall seconds, from simulated time ``start`` on; the
    simulated clock runs ``speed`` times faster than the wall clock."""

    start: datetime
    every_s: float
    count: int
    speed: float = 1.0
    phase_s: float = 0.0  # wall delay before the first fix, so a fleet does not report in lockstep

    def fix_time(self, k: int) -> datetime:
        return self.start + timedelta(seconds=k * self.every_s * self.speed)


# (wall seconds after the device starts, the fix then or None for no fix), in time order.
FixSource = Iterable[tuple[float, Fix | None]]


def scheduled(track: Track, schedule: Schedule) -> Iterator[tuple[float, Fix | None]]:
    """The track sampled on the schedule: a movement-driven device's fixes."""
    for k in range(schedule.count):
        yield (schedule.phase_s + k * schedule.every_s, track.at(schedule.fix_time(k)))


@dataclass(slots=True)
class Pending:
    fix: Fix
    sends: int = 0
    on_wire: bool = False  # sent on the current connection, waiting for its confirmation


class AckError(Exception):
    """The server answered, but not what the protocol says it must."""


class Backoff:
    """Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff and Jitter")."""

    def __init__(self, rng: random.Random, base_s: float = 1.0, cap_s: float = 60.0) -> None:
        self.rng, self.base_s, self.cap_s, self.failures = rng, base_s, cap_s, 0

    def next_delay(self) -> float:
        self.failures += 1
        return self.rng.uniform(self.base_s / 2, min(self.cap_s, self.base_s * 2 ** (self.failures - 1)))

    def reset(self) -> None:
        self.failures = 0


@dataclass(frozen=True, slots=True)
class LinkSettings:
    ack_timeout_s: float = 10.0
    connect_timeout_s: float = 10.0
    heartbeat_s: float = 60.0  # idle time before a keep-alive
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0
    drain_s: float = 10.0  # after the last fix, time allowed to deliver what is buffered


class SimDevice:
    """A device: :meth:`run` takes fixes from its source when they are due and delivers them, until
    the source ends and the buffer is empty (or ``drain_s`` has passed)."""

    def __init__(self, unique_id: str, source: FixSource, counters: Counters, link: LinkSettings,
                 seed: str) -> None:
        self.unique_id = unique_id
        self.source = source
        self.counters = counters
        self.settings = link
        self.rng = random.Random(f"link:{seed}")
        self.backoff = Backoff(self.rng, link.backoff_base_s, link.backoff_cap_s)
        self.buffer: deque[Pending] = deque()
        self.wake = asyncio.Event()
        self.sampling = True
        self.drain_until: float | None = None
        self.last_fix: Fix | None = None
        self.last_error = ""
        self.connected_once = False

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._sample(), name=f"sample-{self.unique_id}")
            tasks.create_task(self._deliver(), name=f"link-{self.unique_id}")
        self.counters.unconfirmed += len(self.buffer)

    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            for due, fix in self.source:
                await asyncio.sleep(max(0.0, t0 + due - loop.time()))
                if fix is not None:  # None: in a tunnel, no fix to report
                    self.last_fix = fix
                    self.buffer.append(Pending(fix))
                    self.wake.set()
        finally:
            self.sampling = False
            self.drain_until = loop.time() + self.settings.drain_s
            self.wake.set()

    def finished(self) -> bool:
        if self.sampling:
            return False
        if not self.buffer:
            return True
        return self.drain_until is not None and asyncio.get_running_loop().time() >= self.drain_until

    def time_left(self, wanted: float) -> float:
        """``wanted`` seconds, cut short by the drain deadline once sampling is over."""
        if self.sampling or self.drain_until is None:
            return wanted
        return max(0.0, min(wanted, self.drain_until - asyncio.get_running_loop().time()))

    async def _deliver(self) -> None:
        while self.last_fix is None and self.sampling:
            await self._wait(3600.0)  # a tracker connects once it has its first fix
        while not self.finished():
            try:
                await self.link()
            except (OSError, TimeoutError, EOFError, AckError, asyncio.IncompleteReadError) as exc:
                self.counters.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
            for pending in self.buffer:
                pending.on_wire = False  # a new connection starts from the oldest unconfirmed fix
            if self.finished():
                break
            self.counters.reconnects += 1
            await asyncio.sleep(self.time_left(self.backoff.next_delay()))

    async def link(self) -> None:
        """One connection's life: identify, deliver, keep alive; raise on any failure."""
        raise NotImplementedError

    async def _wait(self, seconds: float) -> bool:
        """Wait for a new fix (True) or ``seconds`` (False)."""
        self.wake.clear()
        try:
            async with asyncio.timeout(self.time_left(seconds)):
                await self.wake.wait()
            return True
        except TimeoutError:
            return False

    def online(self) -> bool:
        """No mobile data while the latest fix is in a dead zone (the track says so); after the last
        fix the device is taken to be back in coverage, to deliver its buffer."""
        return not self.sampling or self.last_fix is None or self.last_fix.online

    def unsent(self, limit: int) -> list[Pending]:
        """The oldest fixes not sent on this connection yet; none while out of coverage."""
        if not self.online():
            return []
        out: list[Pending] = []
        for pending in self.buffer:
            if not pending.on_wire:
                out.append(pending)
                if len(out) == limit:
                    break
        return out

    def mark_sent(self, batch: list[Pending]) -> None:
        for pending in batch:
            if pending.sends:
                self.counters.retried += 1
            else:
                self.counters.sent += 1
            pending.sends += 1
            pending.on_wire = True

    def confirm_on_wire(self, *, acked: bool = True) -> None:
        """Drop the fixes sent on this connection: the server confirmed them (or, for a protocol
        without acks, nothing more can be known: they count as unconfirmed)."""
        while self.buffer and self.buffer[0].on_wire:
            self.buffer.popleft()
            if acked:
                self.counters.acked += 1
            else:
                self.counters.unconfirmed += 1
