"""Which devices' off-duty positions are not stored at all, as ingest needs it: cheap per position.

A team may set ``store_off_hours: false`` (processors.team_policy): positions its reps' devices
take outside the rep's working hours are then dropped before the writer (and still acknowledged:
dropping them is the team's policy, not a loss). Whose device and which calendar come from
storage.privacy; only devices with such a policy and a calendar are kept here, so for every other
device the answer is one dict miss.

Loaded on first use, then refreshed in the background once the answer is ``refresh_s`` old, so a
calendar or policy change takes effect within that period and ingest never waits on the database
after the first load. When the database is away the last answer is kept (at first: none, so
everything is stored; storing more than asked is never a loss).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

from psycopg_pool import AsyncConnectionPool

from storage.errors import StorageUnavailable
from storage.privacy import DutyClock, device_calendars

log = logging.getLogger("fieldtrack.gateway")


class OffHoursPolicy:
    def __init__(self, pool: AsyncConnectionPool, refresh_s: float = 60.0) -> None:
        self.pool = pool
        self.refresh_s = refresh_s
        self._clocks: dict[int, DutyClock] = {}
        self._loaded_at: float | None = None
        self._task: asyncio.Task[None] | None = None

    async def ready(self) -> None:
        """Wait for the first load; afterwards only start a refresh when the answer is stale."""
        if self._loaded_at is not None and time.monotonic() - self._loaded_at < self.refresh_s:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.refresh(), name="off-hours-policy")
        if self._loaded_at is None:
            await asyncio.shield(self._task)

    async def refresh(self) -> None:
        try:
            found = await device_calendars(self.pool)
        except StorageUnavailable as exc:
            log.warning("off-hours policy not refreshed (%s); keeping the last one", exc)
        else:
            self._clocks = {d: DutyClock(c) for d, c in found.items()
                            if not c.store_off_hours and c.working_hours}
        self._loaded_at = time.monotonic()

    def drops(self, device_id: int, fix_time: datetime) -> bool:
        """True: a position of this device fixed at this time is not to be stored."""
        clock = self._clocks.get(device_id)
        return clock is not None and not clock.on_duty(fix_time)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
