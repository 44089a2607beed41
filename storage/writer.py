"""The batched position writer: the only path by which positions reach the database.

Callers ``await write(rows)``; it returns once the rows are durable (committed, or fsynced to
the spool while the database is away) and only then may the gateway acknowledge the device.
Submissions from many connections are gathered into one binary COPY per batch. The queue is
bounded in rows, so a flood waits here and its connection stops being read (backpressure).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from storage.rows import COLUMNS, COPY_TYPES, StoredPosition
from storage.spool import Spool

log = logging.getLogger("fieldtrack.storage.writer")

_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS positions_in ("
    " device_id int8, fix_time timestamptz, fingerprint int8, server_time timestamptz,"
    " device_time timestamptz, latitude float8, longitude float8, valid bool, speed_kmh float4,"
    " course_deg float4, altitude_m float4, accuracy_m float4, hdop float4, protocol text,"
    " attributes text) ON COMMIT DELETE ROWS"
)
_COLS = ", ".join(COLUMNS)
_COPY = f"COPY positions_in ({_COLS}) FROM STDIN (FORMAT BINARY)"
# The rows actually inserted (not resends) mark their device for processing from the earliest of
# them, in the same transaction: a crash after commit cannot lose the need to process them.
_MERGE = (
    "WITH ins AS ("
    f"INSERT INTO positions ({_COLS}) SELECT {_COLS.replace('attributes', 'attributes::jsonb')}"
    " FROM positions_in ON CONFLICT DO NOTHING RETURNING device_id, fix_time, fingerprint),"
    " first AS (SELECT DISTINCT ON (device_id) device_id, fix_time, fingerprint FROM ins"
    " ORDER BY device_id, fix_time, fingerprint),"
    " dirty AS (INSERT INTO processing_dirty (device_id, since_time, since_key)"
    " SELECT device_id, fix_time, fingerprint FROM first ON CONFLICT (device_id) DO UPDATE SET"
    " since_time = CASE WHEN (EXCLUDED.since_time, EXCLUDED.since_key) < (processing_dirty.since_time,"
    " processing_dirty.since_key) THEN EXCLUDED.since_time ELSE processing_dirty.since_time END,"
    " since_key = CASE WHEN (EXCLUDED.since_time, EXCLUDED.since_key) < (processing_dirty.since_time,"
    " processing_dirty.since_key) THEN EXCLUDED.since_key ELSE processing_dirty.since_key END)"
    " SELECT (SELECT count(*) FROM ins), coalesce((SELECT array_agg(device_id) FROM first), '{}')"
)


async def insert_rows(conn: AsyncConnection, rows: list[StoredPosition],
                      on_devices: Callable[[list[int]], None] | None = None) -> int:
    """COPY rows into a per-connection staging table, then merge, skipping duplicates.
    ``on_devices`` hears, after commit, which devices got new positions."""
    async with conn.transaction():
        await conn.execute(_STAGING)
        async with conn.cursor() as cur:
            async with cur.copy(_COPY) as copy:
                copy.set_types(list(COPY_TYPES))
                for r in rows:
                    await copy.write_row(r.row())
            await cur.execute(_MERGE)
            row = await cur.fetchone()
    inserted, devices = (int(row[0]), list(row[1])) if row else (0, [])
    if on_devices is not None and devices:
        on_devices(devices)
    return inserted


@dataclass
class _Submission:
    rows: list[StoredPosition]
    done: asyncio.Future[None]


@dataclass
class WriterStats:
    committed: int = 0
    spooled: int = 0
    drained: int = 0
    duplicates: int = 0
    rejected: int = 0
    batches: int = 0
    db_up: bool = True
    last_error: str | None = None
    extra: dict[str, int] = field(default_factory=dict)


class PositionWriter:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        spool: Spool,
        *,
        batch_max_rows: int = 5000,
        linger_s: float = 0.005,
        queue_rows: int = 100_000,
        connect_timeout_s: float = 3.0,
        drain_interval_s: float = 1.0,
        on_committed: Callable[[list[StoredPosition]], None] | None = None,
    ) -> None:
        self.pool = pool
        self.spool = spool
        self.batch_max_rows = batch_max_rows
        self.linger_s = linger_s
        self.queue_rows = queue_rows
        self.connect_timeout_s = connect_timeout_s
        self.drain_interval_s = drain_interval_s
        self.on_committed = on_committed
        # Wakes the processing runner; set by whoever runs one (the durable marker is in the table).
        self.on_new_positions: Callable[[list[int]], None] | None = None
        self.stats = WriterStats()
        self._queue: list[_Submission] = []
        self._queued_rows = 0
        self._wake = asyncio.Event()
        self._room = asyncio.Condition()
        self._closing = False

    async def write(self, rows: list[StoredPosition]) -> None:
        """Return when ``rows`` are durable; raise if they could be neither stored nor spooled."""
        if not rows:
            return
        if self._closing:
            raise RuntimeError("writer is closed")
        async with self._room:
            await self._room.wait_for(lambda: self._queued_rows < self.queue_rows)
            self._queued_rows += len(rows)
        sub = _Submission(rows, asyncio.get_running_loop().create_future())
        self._queue.append(sub)
        self._wake.set()
        await sub.done

    async def run(self) -> None:
        """Batching loop; ends after ``close()`` once the queue is empty."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.linger_s and not self._closing:
                await asyncio.sleep(self.linger_s)
            while self._queue:
                batch = self._take_batch()
                await self._flush(batch)
            if self._closing and not self._queue:
                return

    def _take_batch(self) -> list[_Submission]:
        taken: list[_Submission] = []
        n = 0
        while self._queue and (not taken or n + len(self._queue[0].rows) <= self.batch_max_rows):
            sub = self._queue.pop(0)
            taken.append(sub)
            n += len(sub.rows)
        return taken

    async def _flush(self, batch: list[_Submission]) -> None:
        rows = [r for sub in batch for r in sub.rows]
        error: BaseException | None = None
        stored = False
        if self.stats.db_up or self.spool.is_empty():
            try:
                inserted = await self._insert(rows)
                self.stats.committed += inserted
                self.stats.duplicates += len(rows) - inserted
                self.stats.batches += 1
                stored = True
                if self.on_committed:
                    self.on_committed(rows)
            except (psycopg.OperationalError, OSError) as exc:
                self._mark_down(exc)
            except psycopg.Error as exc:
                # A row the database refuses (not an outage): store the good ones one by one.
                log.warning("batch refused (%s); retrying row by row", exc)
                await self._insert_one_by_one(batch)
                self._release(rows)
                return
        if not stored:
            try:
                await asyncio.to_thread(self.spool.append, rows)
                self.stats.spooled += len(rows)
            except OSError as exc:
                log.error("spool write failed: %s; positions not acknowledged", exc)
                error = exc
        self._release(rows)
        for sub in batch:
            if not sub.done.done():
                if error is None:
                    sub.done.set_result(None)
                else:
                    sub.done.set_exception(error)

    async def _insert_one_by_one(self, batch: list[_Submission]) -> None:
        for sub in batch:
            failed: BaseException | None = None
            for row in sub.rows:
                try:
                    self.stats.committed += await self._insert([row])
                except psycopg.Error as exc:
                    self.stats.rejected += 1
                    failed = exc
                    log.warning("position of %s refused by the database: %s", row.unique_id, exc)
            if not sub.done.done():
                if failed is None:
                    sub.done.set_result(None)
                else:
                    sub.done.set_exception(failed)

    def _release(self, rows: list[StoredPosition]) -> None:
        self._queued_rows -= len(rows)

        async def notify() -> None:
            async with self._room:
                self._room.notify_all()

        asyncio.get_running_loop().create_task(notify())

    async def _insert(self, rows: list[StoredPosition]) -> int:
        async with self.pool.connection(timeout=self.connect_timeout_s) as conn:
            return await insert_rows(conn, rows, self.on_new_positions)

    def _mark_down(self, exc: BaseException) -> None:
        if self.stats.db_up:
            log.error("database unavailable (%s): spooling positions to %s", exc, self.spool.directory)
        self.stats.db_up = False
        self.stats.last_error = str(exc)

    async def drain_spool_once(self) -> int:
        """Move spooled rows into the database; returns rows moved. Safe to repeat after a crash."""
        moved = 0
        for segment in self.spool.sealed_segments():
            rows = await asyncio.to_thread(Spool.read_all, segment)
            for start in range(0, len(rows), self.batch_max_rows):
                chunk = rows[start : start + self.batch_max_rows]
                inserted = await self._insert(chunk)
                self.stats.committed += inserted
                if self.on_committed:
                    self.on_committed(chunk)
            self.spool.remove(segment)
            moved += len(rows)
        return moved

    async def drain_spool(self) -> None:
        """Background loop: retry the spool until empty, then watch again."""
        while not self._closing:
            if not self.spool.is_empty() or not self.stats.db_up:
                try:
                    await self._probe()
                    moved = await self.drain_spool_once()
                    if not self.stats.db_up:
                        log.info("database is back; drained %d spooled positions", moved)
                    self.stats.drained += moved
                    self.stats.db_up = True
                    self.stats.last_error = None
                except (psycopg.Error, OSError) as exc:
                    self._mark_down(exc)
            await asyncio.sleep(self.drain_interval_s)

    async def _probe(self) -> None:
        async with self.pool.connection(timeout=self.connect_timeout_s) as conn:
            await conn.execute("SELECT 1")

    async def close(self) -> None:
        """Stop taking writes; ``run`` flushes what is queued and returns."""
        self._closing = True
        self._wake.set()
