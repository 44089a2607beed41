"""The batched writer on a real database: stored, deduplicated, spooled across an outage."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from protocols.model import Position
from storage import db
from storage.devices import DeviceStore
from storage.rows import StoredPosition
from storage.spool import Spool
from storage.writer import PositionWriter
from tests.proxy import proxied

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def rows_for(device_id: int, n: int, start: int = 0, **attrs: object) -> list[StoredPosition]:
    return [
        StoredPosition(
            device_id, "dev", "test", datetime.now(UTC),
            Position(fix_time=T0 + timedelta(seconds=i), latitude=52.0 + i * 1e-4, longitude=4.0,
                     speed_kmh=30.0, attributes={"i": i, **attrs}),
        )
        for i in range(start, start + n)
    ]


def count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM positions").fetchone()
        assert row is not None
        return int(row[0])


async def make_device(url: str) -> int:
    pool = db.open_pool(url, 1)
    await pool.open()
    try:
        return (await DeviceStore(pool).create("dev", "Dev")).id
    finally:
        await pool.close()


async def test_writes_are_committed_and_resends_stored_once(database_url: str, tmp_path: Path) -> None:
    device_id = await make_device(database_url)
    pool = db.open_pool(database_url, 2)
    await pool.open()
    writer = PositionWriter(pool, Spool(tmp_path / "spool"))
    task = asyncio.create_task(writer.run())
    try:
        await asyncio.gather(*(writer.write(rows_for(device_id, 10, start=k * 10)) for k in range(20)))
        assert count(database_url) == 200
        await writer.write(rows_for(device_id, 10, start=0))  # a resend after a lost ack
        assert count(database_url) == 200
        assert writer.stats.duplicates == 10
        # Same fix time, different content: a second report, kept.
        await writer.write(rows_for(device_id, 1, start=0, alarm="sos"))
        assert count(database_url) == 201
    finally:
        await writer.close()
        await task
        await pool.close()


async def test_outage_spools_then_drains(database_url: str, tmp_path: Path) -> None:
    device_id = await make_device(database_url)
    proxy, url = proxied(database_url)
    pool = db.open_pool(url, 2)
    await pool.open()
    spool = Spool(tmp_path / "spool")
    writer = PositionWriter(pool, spool, connect_timeout_s=1.0, drain_interval_s=0.2)
    tasks = [asyncio.create_task(writer.run()), asyncio.create_task(writer.drain_spool())]
    try:
        await writer.write(rows_for(device_id, 5))
        assert count(database_url) == 5
        proxy.cut()
        # Durable while the database is away: write() returns because the rows are fsynced.
        for k in range(1, 4):
            await asyncio.wait_for(writer.write(rows_for(device_id, 5, start=k * 5)), 30)
        assert not writer.stats.db_up
        assert spool.row_count() == 15
        assert count(database_url) == 5
        proxy.start()
        for _ in range(200):
            if spool.is_empty() and writer.stats.db_up:
                break
            await asyncio.sleep(0.1)
        assert spool.is_empty()
        assert count(database_url) == 20
        await writer.write(rows_for(device_id, 5, start=20))
        assert count(database_url) == 25
    finally:
        await writer.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await pool.close()
        proxy.close()


async def test_spool_left_by_a_dead_process_is_drained(database_url: str, tmp_path: Path) -> None:
    device_id = await make_device(database_url)
    Spool(tmp_path / "spool").append(rows_for(device_id, 7))  # what a killed process left behind
    with (tmp_path / "spool" / "000000000001.jsonl").open("ab") as fh:
        fh.write(b'{"torn": tr')  # a write cut short by the crash: never acknowledged
    pool = db.open_pool(database_url, 1)
    await pool.open()
    writer = PositionWriter(pool, Spool(tmp_path / "spool"))
    try:
        assert await writer.drain_spool_once() == 7
        assert count(database_url) == 7
        assert Spool(tmp_path / "spool").is_empty()
        # Replaying the same segment again (crash after commit, before delete) adds nothing.
        Spool(tmp_path / "spool").append(rows_for(device_id, 7))
        await writer.drain_spool_once()
        assert count(database_url) == 7
    finally:
        await pool.close()


async def test_a_row_the_database_refuses_does_not_sink_the_batch(database_url: str, tmp_path: Path) -> None:
    device_id = await make_device(database_url)
    pool = db.open_pool(database_url, 2)
    await pool.open()
    writer = PositionWriter(pool, Spool(tmp_path / "spool"), linger_s=0.05)
    task = asyncio.create_task(writer.run())
    try:
        bad = rows_for(999_999, 1)  # no such device: the foreign key refuses it
        results = await asyncio.gather(
            writer.write(rows_for(device_id, 3)), writer.write(bad), writer.write(rows_for(device_id, 3, 3)),
            return_exceptions=True,
        )
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], psycopg.Error)
        assert count(database_url) == 6
        assert writer.stats.rejected == 1
    finally:
        await writer.close()
        await task
        await pool.close()


@pytest.mark.parametrize("text", ["nul\x00inside", "lone \ud800 surrogate", float("nan"),
                                  {"deep": [float("inf")]}])
async def test_hostile_attribute_text_is_stored(database_url: str, tmp_path: Path, text: object) -> None:
    device_id = await make_device(database_url)
    pool = db.open_pool(database_url, 1)
    await pool.open()
    writer = PositionWriter(pool, Spool(tmp_path / "spool"))
    task = asyncio.create_task(writer.run())
    try:
        await writer.write(rows_for(device_id, 1, note=text))
        assert count(database_url) == 1
    finally:
        await writer.close()
        await task
        await pool.close()


async def test_queue_is_bounded_and_writers_wait(database_url: str, tmp_path: Path) -> None:
    device_id = await make_device(database_url)
    pool = db.open_pool(database_url, 1)
    await pool.open()
    writer = PositionWriter(pool, Spool(tmp_path / "spool"), queue_rows=10)
    try:
        first = asyncio.create_task(writer.write(rows_for(device_id, 10)))
        second = asyncio.create_task(writer.write(rows_for(device_id, 10, start=10)))
        await asyncio.sleep(0.2)
        # Nothing is flushing yet: the first fills the queue, the second must wait outside it.
        assert writer._queued_rows == 10
        assert not first.done() and not second.done()
        runner = asyncio.create_task(writer.run())
        await asyncio.wait_for(asyncio.gather(first, second), 10)
        assert count(database_url) == 20
        await writer.close()
        await runner
    finally:
        await pool.close()
