"""Where every rep is, for "who is nearest": an in-memory grid of the reps' newest positions.

Loaded from the database in the background every ``refresh_s`` (links, calendars, teams change
rarely) and moved in between by the live position notifications, so an answer costs a grid
lookup and never a scan of positions. The first request waits for the first load.

Privacy (storage.privacy): a caller who sees reps only on duty (``private``: every caller but an
admin) never gets a place fixed at an off-duty time, whatever the ``duty_only`` filter says; a
place fixed on duty is on-duty data (the route shows it too), so it may be listed after hours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from psycopg_pool import AsyncConnectionPool

from api.live import LiveHub, Subscriber
from processors.nearest import NearestIndex
from processors.working_hours import working_intervals
from storage.dispatch import RepFix, rep_fixes
from storage.errors import StorageUnavailable

log = logging.getLogger("fieldtrack.api.dispatch")

OFFLINE_AFTER_S = 600.0
# Straight-line distance to road distance, and a mixed urban/regional average speed: the usual
# first estimate before a routing engine is asked (and what a dispatcher needs to rank reps).
ROAD_FACTOR = 1.3
AVERAGE_KMH = 40.0
_TICK = timedelta(microseconds=1)


def _on_duty(rep: RepFix, at: datetime) -> bool:
    # The same reading of the calendar as the other privacy filters (working_intervals).
    return bool(working_intervals(rep.working_hours, rep.time_zone, at, at + _TICK))


@dataclass(frozen=True, slots=True)
class Candidate:
    rep: RepFix
    distance_m: float
    travel_time_s: float
    age_s: float
    status: str  # driving, stopped, offline (at_customer is decided by the caller with customers)


class RepLocator:
    def __init__(self, pool: AsyncConnectionPool, hub: LiveHub | None = None,
                 refresh_s: float = 60.0) -> None:
        self.pool = pool
        self.hub = hub
        self.refresh_s = refresh_s
        self.index = NearestIndex(0.05)
        self.reps: dict[int, RepFix] = {}
        self._by_device: dict[int, int] = {}
        self._loaded = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def ready(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="rep-locator")
        await self._loaded.wait()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def load(self, rows: list[RepFix], links: dict[int, int]) -> None:
        index = NearestIndex(self.index.cell_deg)
        for rep in rows:
            if rep.latitude is not None and rep.longitude is not None:
                index.put(rep.user_id, rep.latitude, rep.longitude)
        self.index, self.reps, self._by_device = index, {r.user_id: r for r in rows}, links
        self._loaded.set()

    def moved(self, message: dict[str, object]) -> None:
        """A live position notification: move the rep carrying that device, if it is newer."""
        device_id = message.get("device_id")
        user_id = self._by_device.get(device_id) if isinstance(device_id, int) else None
        rep = self.reps.get(user_id) if user_id is not None else None
        if rep is None or message.get("filtered") is not None:
            return
        when = datetime.fromisoformat(str(message["time"]))
        if rep.fix_time is not None and when <= rep.fix_time:
            return
        lat, lon = float(message["latitude"]), float(message["longitude"])  # type: ignore[arg-type]
        speed = message.get("speed_kmh")
        self.reps[rep.user_id] = replace(
            rep, device_id=int(message["device_id"]), fix_time=when,  # type: ignore[call-overload]
            server_time=datetime.now(UTC), latitude=lat, longitude=lon,
            speed_kmh=float(speed) if isinstance(speed, int | float) else None,
            moving=bool(message.get("moving")))
        self.index.put(rep.user_id, lat, lon)

    async def _run(self) -> None:
        subscriber = Subscriber(None, frozenset({"position"}))
        if self.hub is not None:
            self.hub.subscribe(subscriber)
            # Listen before loading: a position committed in between is then heard, not lost.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.hub.listening.wait(), 5.0)
        try:
            while True:
                try:
                    rows, links = await rep_fixes(self.pool), await self._links()
                    self.load(rows, links)
                except StorageUnavailable as exc:
                    log.warning("dispatch: reps not refreshed (%s)", exc)
                deadline = asyncio.get_running_loop().time() + self.refresh_s
                while (left := deadline - asyncio.get_running_loop().time()) > 0:
                    try:
                        message = await asyncio.wait_for(subscriber.queue.get(), left)
                    except TimeoutError:
                        break
                    if message is None:  # fell behind: the hub dropped us; reload and rejoin
                        if self.hub is not None:
                            subscriber = Subscriber(None, frozenset({"position"}))
                            self.hub.subscribe(subscriber)
                        break
                    self.moved(message)
        finally:
            if self.hub is not None:
                self.hub.unsubscribe(subscriber)

    async def _links(self) -> dict[int, int]:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT device_id, user_id FROM user_devices")
            return {d: u for d, u in await cur.fetchall()}

    def nearest(self, lat: float, lon: float, n: int, *, users: Collection[int] | None = None,
                teams: Collection[int] | None = None, duty_only: bool = False, max_m: float = math.inf,
                now: datetime | None = None, private: bool = False) -> list[Candidate]:
        """``duty_only``: reps inside working hours now; ``private``: the caller sees reps only on
        duty, so a rep whose newest fix was taken off duty is never a candidate."""
        now = now or datetime.now(UTC)

        def accept(user_id: int) -> bool:
            rep = self.reps[user_id]
            if users is not None and user_id not in users:
                return False
            if teams is not None and rep.team_id not in teams:
                return False
            if private and (rep.fix_time is None or not _on_duty(rep, rep.fix_time)):
                return False
            return not duty_only or _on_duty(rep, now)

        out = []
        for user_id, distance in self.index.nearest(lat, lon, n, max_m, accept):
            rep = self.reps[user_id]
            age = (now - rep.server_time).total_seconds() if rep.server_time else math.inf
            status = "offline" if age > OFFLINE_AFTER_S else ("driving" if rep.moving else "stopped")
            out.append(Candidate(rep, distance, distance * ROAD_FACTOR / (AVERAGE_KMH / 3.6),
                                 (now - rep.fix_time).total_seconds() if rep.fix_time else math.inf, status))
        return out
