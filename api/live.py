"""Live updates: PostgreSQL notifications fanned out to WebSocket clients.

The processing runner sends ``pg_notify`` inside the transaction that stores an event or the
marks of new positions, so a notification means "committed", and every process that serves the
API hears it, whichever gateway process stored the data. One listening connection per API
process; each client has a small queue, and a client too slow to keep up is disconnected rather
than allowed to grow memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from storage.privacy import DutyClock

log = logging.getLogger("fieldtrack.api.live")

CHANNELS = {"fieldtrack_positions": "position", "fieldtrack_events": "event"}
CLIENT_QUEUE = 1000


@dataclass(eq=False)
class Subscriber:
    """``devices`` None: every device; ``kinds``: "position" and/or "event"; ``duty``: devices
    heard only on duty (storage.privacy), whose messages at off-duty times are not sent."""

    devices: Collection[int] | None
    kinds: frozenset[str]
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=lambda: asyncio.Queue(CLIENT_QUEUE))
    overflowed: bool = False
    duty: Mapping[int, DutyClock] = field(default_factory=dict)

    def wants(self, message: dict[str, Any]) -> bool:
        if message["kind"] not in self.kinds:
            return False
        if self.devices is not None and message["device_id"] not in self.devices:
            return False
        clock = self.duty.get(message["device_id"])
        return clock is None or _on_duty(clock, message.get("time"))


def _on_duty(clock: DutyClock, time: object) -> bool:
    try:
        at = datetime.fromisoformat(str(time))
    except ValueError:
        return False  # a time we cannot read cannot be shown to be on duty
    return at.tzinfo is not None and clock.on_duty(at)


class LiveHub:
    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.add(subscriber)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name="live-hub")

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        delay = 1.0
        while self._subscribers:
            try:
                async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
                    for channel in CHANNELS:
                        await conn.execute(f"LISTEN {channel}".encode())
                    self.listening.set()
                    delay = 1.0
                    async for note in conn.notifies():
                        self._dispatch(note.channel, note.payload)
                        if not self._subscribers:
                            break
            except (psycopg.OperationalError, OSError) as exc:
                self.listening.clear()
                log.warning("live updates paused (%s); reconnecting", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        self.listening.clear()

    def _dispatch(self, channel: str, payload: str) -> None:
        try:
            message = {"kind": CHANNELS[channel], **json.loads(payload)}
        except (KeyError, ValueError):
            return
        for sub in list(self._subscribers):
            if not sub.wants(message):
                continue
            try:
                sub.queue.put_nowait(message)
            except asyncio.QueueFull:
                sub.overflowed = True
                self._subscribers.discard(sub)
                with contextlib.suppress(asyncio.QueueFull):
                    sub.queue.get_nowait()
                    sub.queue.put_nowait(None)  # wakes the client's sender to close it
