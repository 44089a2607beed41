"""The processing runner: turns committed positions into marks, trips, stops and events.

The writer marks a device dirty (in the database, in the same transaction as its new positions)
from the earliest new position, and wakes us. Per device, in one transaction per chunk:
positions after the last processed one are stepped through the pipeline from the saved state.
A late position (earlier than what was already processed) rewinds to the last checkpoint before
it and replays from there, replacing exactly the records emitted since the checkpoint, so
reports are the same as if the data had arrived in order. Events that a replay produces again
keep their rows and are not announced twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from processors import pipeline
from processors.fences import FenceIndex
from processors.records import Event
from storage import derived, presence
from storage.derived import ChunkStart, Emitted, Key
from storage.errors import StorageUnavailable

log = logging.getLogger("fieldtrack.gateway.processing")

CHUNK = 5000
HOLD_AFTER_FAILURE_S = 60.0
PRESENCE_EVERY_S = 30.0
CHECKPOINT_EVERY = timedelta(hours=1)
EVENTS_CHANNEL = "fieldtrack_events"
POSITIONS_CHANNEL = "fieldtrack_positions"


@dataclass(frozen=True, slots=True)
class FenceSet:
    """The fences, and for each the devices it applies to (None: every device)."""

    index: FenceIndex
    members: dict[int, frozenset[int] | None] = field(default_factory=dict)

    def allowed(self, device_id: int) -> Collection[int] | None:
        if all(m is None for m in self.members.values()):
            return None
        return {f for f, m in self.members.items() if m is None or device_id in m}


NO_FENCES = FenceSet(FenceIndex([]))
FenceLoader = Callable[[], Awaitable[FenceSet]]
EnqueueHook = Callable[[AsyncConnection, list[int]], Awaitable[object]]


@dataclass
class RunnerStats:
    positions: int = 0
    replays: int = 0
    events: int = 0
    chunks: int = 0
    errors: int = 0
    last_error: str | None = None


class ProcessingRunner:
    def __init__(self, pool: AsyncConnectionPool, fences: FenceLoader | None = None,
                 on_events: EnqueueHook | None = None, chunk: int = CHUNK, concurrency: int = 1) -> None:
        """``concurrency``: devices processed at once, each on its own pooled connection. A device
        costs about a dozen round trips however few its new positions, so a large fleet reporting
        a few fixes each is bound by waiting on the database, which lanes overlap."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.pool = pool
        self.fences = fences
        self.on_events = on_events
        self.chunk = chunk
        self.concurrency = concurrency
        self.stats = RunnerStats()
        self._pending: set[int] = set()
        # Devices a lane is processing now, and those woken again meanwhile (done after it).
        self._active: set[int] = set()
        self._again: set[int] = set()
        # Devices whose processing raised: retried after a pause, not in a tight loop.
        self._held: dict[int, float] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()

    def wake(self, device_ids: Iterable[int]) -> None:
        self._pending.update(device_ids)
        self._idle.clear()
        self._wake.set()

    async def run(self) -> None:
        """Until ``stop``: at start (and after an outage) every device marked dirty in the database,
        then whatever the writer wakes us for."""
        backlog = True
        next_sweep = 0.0
        while not self._stopping:
            try:
                if time.monotonic() >= next_sweep:
                    await self.sweep_presence()
                    next_sweep = time.monotonic() + PRESENCE_EVERY_S
                if backlog:
                    async with self.pool.connection() as conn:
                        self._pending.update(await derived.dirty_devices(conn))
                    backlog = False
                await self._drain_pending()
            except (psycopg.OperationalError, OSError, StorageUnavailable) as exc:
                self._failed(exc)
                backlog = True
                await asyncio.sleep(1.0)
                continue
            if not self._pending:
                self._idle.set()
            self._wake.clear()
            if not self._pending and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 5.0)
                backlog = backlog or not self._pending  # a periodic sweep catches other processes' work

    async def _drain_pending(self) -> None:
        """Process every pending device, ``concurrency`` at a time; an outage stops all lanes
        (what they held stays dirty in the database and the sweep after the outage finds it)."""
        lanes = [asyncio.create_task(self._lane()) for _ in range(self.concurrency)]
        try:
            await asyncio.gather(*lanes)
        except BaseException:
            for lane in lanes:
                lane.cancel()
            await asyncio.gather(*lanes, return_exceptions=True)
            raise

    async def _lane(self) -> None:
        while self._pending and not self._stopping:
            device_id = self._pending.pop()
            if self._held.get(device_id, 0.0) > time.monotonic():
                continue  # the periodic sweep brings it back after the pause
            if device_id in self._active:
                # Another lane has it: its advisory lock would only make this lane wait.
                self._again.add(device_id)
                continue
            self._held.pop(device_id, None)
            self._active.add(device_id)
            try:
                await self.process(device_id)
            finally:
                self._active.discard(device_id)
                if device_id in self._again:
                    self._again.discard(device_id)
                    self._pending.add(device_id)

    async def sweep_presence(self) -> int:
        """Online/offline changes as of now, as events (announced like the others)."""
        async with self.pool.connection() as conn, conn.transaction():
            found = await presence.sweep(conn, datetime.now(UTC))
            if found and self.on_events is not None:
                await self.on_events(conn, [event_id for event_id, _, _ in found])
            for event_id, device_id, event in found:
                await _notify_events(conn, device_id, [(event_id, event)])
        self.stats.events += len(found)
        return len(found)

    async def idle(self) -> None:
        """Wait until everything woken for so far is processed (tests, shutdown)."""
        await self._idle.wait()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def _failed(self, exc: BaseException) -> None:
        self.stats.errors += 1
        if self.stats.last_error != str(exc):
            log.warning("processing paused: %s", exc)
        self.stats.last_error = str(exc)

    async def process(self, device_id: int) -> None:
        """Process one device until nothing of it is dirty; a chunk per transaction."""
        async with self.pool.connection() as conn:
            fences = await self.fences() if self.fences else NO_FENCES
            while await self._chunk(conn, device_id, fences):
                pass

    async def _chunk(self, conn: AsyncConnection, device_id: int, fences: FenceSet) -> bool:
        """One chunk in one transaction; True when more of this device remains."""
        try:
            # Pipelined: statements whose results are not read go without waiting, so a chunk
            # costs a few round trips (start, positions, commit) instead of one per statement.
            async with conn.pipeline(), conn.transaction():
                await derived.lock_device(conn, device_id)
                begin = await derived.chunk_start(conn, device_id)
                if begin is None:
                    return False
                try:
                    params = pipeline.PipelineParams.from_mapping(begin.settings)
                except ValueError as exc:
                    log.warning("device %s: bad processing settings (%s); using defaults", device_id, exc)
                    params = pipeline.PipelineParams()
                start, state, last_checkpoint = await self._resume(conn, device_id, begin)
                more = await self._step_chunk(conn, device_id, start, state, last_checkpoint, params,
                                              fences, fences.allowed(device_id))
                return more
        except psycopg.OperationalError:
            raise
        except Exception as exc:
            # A bug or bad data for this device: never stop the others. Its transaction rolled
            # back, so it stays dirty and is tried again after a pause.
            self._failed(exc)
            self._held[device_id] = time.monotonic() + HOLD_AFTER_FAILURE_S
            log.exception("processing device %s failed; retrying in %.0f s", device_id, HOLD_AFTER_FAILURE_S)
            return False

    async def _resume(self, conn: AsyncConnection, device_id: int,
                      begin: ChunkStart) -> tuple[Key | None, pipeline.DeviceState, datetime | None]:
        """Where to step from, the state there, and the time of the latest checkpoint kept."""
        saved = begin.saved
        if saved is not None and begin.since >= saved[0]:
            return saved[0], pipeline.DeviceState.from_json(saved[1]), begin.latest_checkpoint
        # Earlier than what is processed: rewind to the checkpoint before it and replay.
        self.stats.replays += int(saved is not None)
        checkpoint = await derived.checkpoint_before(conn, device_id, begin.since)
        start = checkpoint[0] if checkpoint else None
        # Every checkpoint after ``start`` goes, so the one replayed from is now the latest.
        await derived.discard_checkpoints_after(conn, device_id, start)
        state = pipeline.DeviceState.from_json(checkpoint[1]) if checkpoint else pipeline.DeviceState()
        return start, state, start[0] if start else None

    async def _step_chunk(self, conn: AsyncConnection, device_id: int, start: Key | None,
                          state: pipeline.DeviceState, last_checkpoint: datetime | None,
                          params: pipeline.PipelineParams, fences: FenceSet,
                          allowed: Collection[int] | None) -> bool:
        fixes = await derived.fetch_positions(conn, device_id, start, self.chunk)
        if not fixes:
            await derived.set_dirty(conn, device_id, None)
            return False
        marks = []
        emitted: list[Emitted] = []
        checkpoints: list[tuple[Key, dict[str, object]]] = []
        previous = start
        for fix in fixes:
            if previous is not None and (last_checkpoint is None
                                         or fix.time - last_checkpoint >= CHECKPOINT_EVERY):
                checkpoints.append((previous, state.to_json()))
                last_checkpoint = previous[0]
            mark, outputs = pipeline.step(state, fix, params, fences.index, allowed)
            marks.append(mark)
            emitted.extend(Emitted(o, fix.order) for o in outputs)
            previous = fix.order
        upto = fixes[-1].order
        await derived.save_marks(conn, device_id, fixes, marks)
        new_events = await derived.replace_records(conn, device_id, start, upto, emitted)
        await derived.save_checkpoints(conn, device_id, checkpoints)
        if checkpoints:
            await derived.thin_checkpoints(conn, device_id, upto[0])
        await derived.save_state(conn, device_id, upto, state.to_json())
        more = len(fixes) == self.chunk
        # Still dirty from here if the chunk was full: the next chunk continues, not replays.
        await derived.set_dirty(conn, device_id, upto if more else None)
        if new_events:
            if self.on_events is not None:
                await self.on_events(conn, [event_id for event_id, _ in new_events])
            await _notify_events(conn, device_id, new_events)
        last, mark = fixes[-1], marks[-1]
        await conn.execute("SELECT pg_notify(%s, %s)", (POSITIONS_CHANNEL, json.dumps({
            "device_id": device_id, "time": last.time.isoformat(), "latitude": last.latitude,
            "longitude": last.longitude, "speed_kmh": last.speed_kmh, "course_deg": last.course_deg,
            "odometer_m": mark.odometer_m, "moving": mark.moving, "filtered": mark.filtered})))
        self.stats.positions += len(fixes)
        self.stats.events += len(new_events)
        self.stats.chunks += 1
        return more


async def _notify_events(conn: AsyncConnection, device_id: int, events: list[tuple[int, Event]]) -> None:
    """Delivered to listeners (the live stream) when the transaction commits, not before."""
    for event_id, ev in events:
        await conn.execute("SELECT pg_notify(%s, %s)", (EVENTS_CHANNEL, json.dumps({
            "id": event_id, "device_id": device_id, "type": ev.type, "time": ev.time.isoformat(),
            "latitude": ev.latitude, "longitude": ev.longitude, "geofence_id": ev.geofence_id,
            "attributes": ev.attributes},
            default=str)))
