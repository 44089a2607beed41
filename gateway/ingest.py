"""From decoded positions to durable rows: device identity, per-device steps, the writer.

Every listener (TCP, UDP, HTTP) goes through here, so identity rules, the unknown-device policy
and the ack-after-durable rule are the same for all transports. So is a team's choice not to
store off-duty positions (gateway.privacy_cache): those are dropped here, before the writer, and
acknowledged like stored ones.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from gateway.privacy_cache import OffHoursPolicy
from processors import last_location
from protocols.model import Position
from storage.devices import Device, DeviceDirectory, DeviceStore
from storage.errors import Conflict
from storage.rows import StoredPosition
from storage.writer import PositionWriter

log = logging.getLogger("fieldtrack.gateway")


class Ingest:
    def __init__(
        self,
        directory: DeviceDirectory,
        store: DeviceStore,
        writer: PositionWriter,
        *,
        register_unknown: bool = False,
        api_hint: str = "http://<server>:8000",
        off_hours: OffHoursPolicy | None = None,
    ) -> None:
        self.directory = directory
        self.store = store
        self.writer = writer
        self.register_unknown = register_unknown
        self.api_hint = api_hint
        self._refused_logged: set[str] = set()
        self._last: dict[int, last_location.LastLocation | None] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self.off_hours = off_hours
        self.refused = 0
        # Positions not stored because the device's team keeps no off-duty positions.
        self.dropped_off_hours = 0

    async def identify(self, unique_id: str, protocol: str) -> Device | None:
        """The registered device for ``unique_id``; registers it when that is switched on.

        Raises ``StorageUnavailable`` when the answer needs the database and it is away.
        """
        device = await self.directory.resolve(unique_id)
        if device is not None:
            return None if device.disabled else device
        if self.register_unknown:
            try:
                device = await self.store.create(unique_id, unique_id, protocol)
            except Conflict:
                device = await self.store.by_unique_id(unique_id)
            if device is not None:
                log.info("registered new %s device %s (id %d)", protocol, unique_id, device.id)
                self.directory.remember(device)
            return device
        self.refused += 1
        if unique_id not in self._refused_logged:
            if len(self._refused_logged) < 100_000:
                self._refused_logged.add(unique_id)
            log.warning(
                "refused unknown %s device %s; register it with: curl -X POST %s/api/devices"
                " -H 'Authorization: Bearer <token>' -H 'Content-Type: application/json'"
                ' -d \'{"unique_id": "%s", "name": "<name>", "protocol": "%s"}\''
                " (or set FIELDTRACK_REGISTER_UNKNOWN=true)",
                protocol, unique_id, self.api_hint, unique_id, protocol,
            )
        return None

    async def store_positions(self, device: Device, protocol: str, positions: list[Position]) -> None:
        """Stamp, run the per-device steps in arrival order, and return once durable."""
        if not positions:
            return
        if self.off_hours is not None:
            await self.off_hours.ready()
        lock = self._locks.get(device.id)
        if lock is None:
            lock = self._locks[device.id] = asyncio.Lock()
        async with lock:
            now = datetime.now(UTC)
            rows = []
            state = self._last.get(device.id)
            for p in positions:
                # A status report without a fix is kept; a dropped fix must not become the "last
                # known location" that later status reports are stamped with.
                if (self.off_hours is not None and p.latitude is not None
                        and self.off_hours.drops(device.id, p.fix_time)):
                    self.dropped_off_hours += 1
                    continue
                state, p = last_location.step(state, p)
                rows.append(StoredPosition(device.id, device.unique_id, protocol, now, p))
            self._last[device.id] = state
            await self.writer.write(rows)
