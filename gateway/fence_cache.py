"""The geofences as the processing runner needs them, reloaded only when they change.

Checking the version is one cheap query; it is done at most once per ``check_every_s`` so a busy
runner does not ask for every device it processes. Rebuilding 10,000 fences takes seconds, so
it happens only after a fence (or a group's membership) actually changed.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.processing import NO_FENCES, FenceSet
from processors.fences import FenceIndex
from storage.geofences import GeofenceStore


class FenceCache:
    def __init__(self, store: GeofenceStore, check_every_s: float = 1.0) -> None:
        self.store = store
        self.check_every_s = check_every_s
        self._version: tuple[Any, int] | None = None
        self._checked = float("-inf")
        self._current = NO_FENCES

    async def __call__(self) -> FenceSet:
        now = time.monotonic()
        if now - self._checked < self.check_every_s:
            return self._current
        self._checked = now
        version = await self.store.version()
        if version != self._version:
            scoped = await self.store.load_fences()
            self._current = FenceSet(FenceIndex([s.fence for s in scoped]),
                                     {s.fence.id: None if s.everyone else s.members for s in scoped})
            self._version = version
        return self._current
