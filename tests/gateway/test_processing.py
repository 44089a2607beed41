"""The processing runner on the real database: late data, restarts, announced events.

The Liverpool route 14 buses (tests/data/fleet, rows not time-sorted) are stored twice: once in
time order, once in the file's order in small batches with processing after each, as a server
receiving them would. Trips, stops and per-position marks must be the same for both.
"""

from __future__ import annotations

import asyncio
import csv
import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from gateway.processing import ProcessingRunner
from processors import pipeline
from protocols.model import Position
from storage import db
from storage.rows import StoredPosition
from storage.writer import insert_rows
from tests.processors.tracks import BUSES


def bus_rows() -> list[dict[str, Any]]:
    with BUSES.open(newline="") as f:
        return list(csv.DictReader(f))


def stored(device_id: int, row: dict[str, Any]) -> StoredPosition:
    time = datetime.strptime(row["timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    return StoredPosition(device_id, f"bus-{row['vehicle_id']}", "test", time, Position(
        fix_time=time, latitude=float(row["latitude"]), longitude=float(row["longitude"]),
        course_deg=float(row["bearing"]) if row["bearing"] else None))


def register(url: str, names: Iterable[str]) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {name: conn.execute("INSERT INTO devices (unique_id, name) VALUES (%s, %s) RETURNING id",
                                   (name, name)).fetchone()[0]  # type: ignore[index]
                for name in names}


def derived(url: str, device_id: int) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return {
            "trips": conn.execute(
                "SELECT start_time, end_time, round(distance_m::numeric, 3), round(max_speed_kmh::numeric, 3)"
                " FROM trips WHERE device_id = %s ORDER BY start_time", (device_id,)).fetchall(),
            "stops": conn.execute(
                "SELECT start_time, end_time, round(latitude::numeric, 7), round(longitude::numeric, 7)"
                " FROM stops WHERE device_id = %s ORDER BY start_time", (device_id,)).fetchall(),
            "marks": conn.execute(
                "SELECT fix_time, fingerprint, filtered, round(odometer_m::numeric, 3), moving FROM positions"
                " WHERE device_id = %s ORDER BY fix_time, fingerprint", (device_id,)).fetchall(),
            "events": conn.execute(
                "SELECT type, time FROM events WHERE device_id = %s ORDER BY time, type",
                (device_id,)).fetchall(),
        }


async def store(url: str, rows: list[StoredPosition]) -> None:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await insert_rows(conn, rows)


@pytest.fixture
async def runner(database_url: str) -> Any:
    pool = db.open_pool(database_url, 2)
    await pool.open()
    yield ProcessingRunner(pool)
    await pool.close()


async def drain(runner: ProcessingRunner, device_ids: Iterable[int]) -> None:
    for device_id in device_ids:
        await runner.process(device_id)


async def check_arrival_order(database_url: str, runner: ProcessingRunner, arrival: list[dict[str, Any]],
                              batch: int) -> None:
    """Store the bus rows in time order for one set of devices and in ``arrival`` order (in
    batches, processed as they arrive) for another; everything derived must be equal."""
    rows = bus_rows()
    buses = sorted({r["vehicle_id"] for r in rows})
    in_order = register(database_url, [f"sorted-{b}" for b in buses])
    arrived = register(database_url, [f"late-{b}" for b in buses])
    by_time = sorted(rows, key=lambda r: r["timestamp"])
    await store(database_url, [stored(in_order[f"sorted-{r['vehicle_id']}"], r) for r in by_time])
    await drain(runner, in_order.values())
    for start in range(0, len(arrival), batch):
        chunk = arrival[start:start + batch]
        await store(database_url, [stored(arrived[f"late-{r['vehicle_id']}"], r) for r in chunk])
        await drain(runner, {arrived[f"late-{r['vehicle_id']}"] for r in chunk})
    total_trips = total_stops = 0
    for bus in buses:
        expected = derived(database_url, in_order[f"sorted-{bus}"])
        got = derived(database_url, arrived[f"late-{bus}"])
        assert got == expected, f"bus {bus}"
        assert all(m[3] is not None for m in got["marks"]), "every position processed"
        total_trips += len(expected["trips"])
        total_stops += len(expected["stops"])
    assert total_trips > 0 and total_stops > 0  # the comparison is about something


async def test_buses_in_file_order_give_the_same_trips_as_in_time_order(
        database_url: str, runner: ProcessingRunner) -> None:
    """The file's own order interleaves the buses out of time order (each bus's rows are in
    order within the file, so this is the interleaving case)."""
    await check_arrival_order(database_url, runner, bus_rows(), batch=25)


async def test_buses_uploading_their_black_box_late_give_the_same_trips(
        database_url: str, runner: ProcessingRunner) -> None:
    """The hard case: each bus delivers its later trip first and then replays its earlier one
    (a tracker's black box after a coverage gap), in shuffled batches."""
    rows = bus_rows()
    trips_newest_first = sorted({(r["vehicle_id"], r["trip_id"], min(x["timestamp"] for x in rows
                                                                      if x["trip_id"] == r["trip_id"]))
                                 for r in rows}, key=lambda t: t[2], reverse=True)
    arrival = [r for _, trip, _ in trips_newest_first for r in rows if r["trip_id"] == trip]
    random.Random(14).shuffle(chunks := [arrival[i:i + 40] for i in range(0, len(arrival), 40)])
    await check_arrival_order(database_url, runner, [r for c in chunks for r in c], batch=40)
    assert runner.stats.replays > 10, "late positions must actually have been delivered"


async def test_a_late_position_in_a_stop_replaces_the_records_after_it(
        database_url: str, runner: ProcessingRunner) -> None:
    """One bus's day with a quarter of its rows held back, then delivered: the records equal a
    straight run."""
    rows = [r for r in bus_rows() if r["vehicle_id"] == bus_rows()[0]["vehicle_id"]]
    rows.sort(key=lambda r: r["timestamp"])
    ids = register(database_url, ["straight", "held"])
    await store(database_url, [stored(ids["straight"], r) for r in rows])
    await drain(runner, [ids["straight"]])
    held = rows[len(rows) // 2: len(rows) // 2 + len(rows) // 4]
    first = [r for r in rows if r not in held]
    await store(database_url, [stored(ids["held"], r) for r in first])
    await drain(runner, [ids["held"]])
    before = derived(database_url, ids["held"])
    await store(database_url, [stored(ids["held"], r) for r in held])
    await drain(runner, [ids["held"]])
    assert derived(database_url, ids["held"]) == derived(database_url, ids["straight"])
    assert before != derived(database_url, ids["held"])  # the held rows changed something


async def test_state_survives_a_new_runner(database_url: str, runner: ProcessingRunner) -> None:
    """A restart is a new runner on the same database: processing in many small pieces, each
    by a fresh runner, equals one pass."""
    rows = sorted((r for r in bus_rows() if r["vehicle_id"] == bus_rows()[0]["vehicle_id"]),
                  key=lambda r: r["timestamp"])
    ids = register(database_url, ["once", "pieces"])
    await store(database_url, [stored(ids["once"], r) for r in rows])
    await drain(runner, [ids["once"]])
    for start in range(0, len(rows), 17):
        await store(database_url, [stored(ids["pieces"], r) for r in rows[start:start + 17]])
        fresh = ProcessingRunner(runner.pool, chunk=5)  # small chunks: continuation across chunks too
        await fresh.process(ids["pieces"])
    assert derived(database_url, ids["pieces"]) == derived(database_url, ids["once"])


async def test_resent_positions_do_not_mark_the_device_dirty(database_url: str,
                                                              runner: ProcessingRunner) -> None:
    rows = sorted(bus_rows()[:50], key=lambda r: r["timestamp"])
    ids = register(database_url, ["resend"])
    await store(database_url, [stored(ids["resend"], r) for r in rows])
    await drain(runner, [ids["resend"]])
    await store(database_url, [stored(ids["resend"], r) for r in rows])  # lost acks: all resent
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM processing_dirty").fetchone() == (0,)


async def test_new_events_are_announced_once(database_url: str) -> None:
    """A device alarm becomes one event; a replay of its period produces it again, which keeps
    the row and announces nothing new."""
    announced: list[int] = []

    async def hook(conn: psycopg.AsyncConnection, ids: list[int]) -> None:
        announced.extend(ids)

    pool = db.open_pool(database_url, 2)
    await pool.open()
    try:
        runner = ProcessingRunner(pool, on_events=hook)
        device = register(database_url, ["sos"])["sos"]
        t0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)

        def at(second: int, **attributes: Any) -> StoredPosition:
            when = t0.replace(second=second)
            return StoredPosition(device, "sos", "test", when, Position(
                fix_time=when, latitude=52.0, longitude=4.0, attributes=attributes))

        await store(database_url, [at(10), at(20, alarm="sos"), at(30, alarm="sos"), at(40)])
        await runner.process(device)
        assert len(announced) == 1
        await store(database_url, [at(5)])  # late: replays everything after it
        await runner.process(device)
        assert runner.stats.replays == 1
        assert len(announced) == 1
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT id, type FROM events").fetchall() == [(announced[0], "alarm")]
    finally:
        await pool.close()


async def test_a_device_that_breaks_processing_does_not_stop_the_others(
        database_url: str, runner: ProcessingRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug met by one device's data: logged, that device held and retried later (still
    dirty), every other device processed."""
    rows = sorted(bus_rows()[:40], key=lambda r: r["timestamp"])
    ids = register(database_url, ["poison", "fine"])
    poison = dict(rows[10], latitude="10.0")  # the position the "bug" trips over
    await store(database_url, [stored(ids["poison"], r) for r in [*rows[:10], poison, *rows[11:]]])
    await store(database_url, [stored(ids["fine"], r) for r in rows])
    real_step = pipeline.step

    def buggy_step(state: Any, fix: Any, *args: Any) -> Any:
        if fix.latitude == 10.0:
            raise ZeroDivisionError("a bug")
        return real_step(state, fix, *args)

    monkeypatch.setattr("gateway.processing.pipeline.step", buggy_step)
    task = asyncio.create_task(runner.run())
    try:
        runner.wake([ids["poison"], ids["fine"]])
        await asyncio.sleep(0.1)
        await asyncio.wait_for(runner.idle(), 10)
    finally:
        runner.stop()
        await asyncio.wait_for(task, 10)
    assert runner.stats.errors == 1 and "a bug" in (runner.stats.last_error or "")
    with psycopg.connect(database_url) as conn:
        dirty = [r[0] for r in conn.execute("SELECT device_id FROM processing_dirty").fetchall()]
        fine = conn.execute("SELECT count(*) FROM positions WHERE device_id = %s AND odometer_m IS NOT NULL",
                            (ids["fine"],)).fetchone()
    assert dirty == [ids["poison"]]
    assert fine == (len(rows),)


async def test_online_and_offline_are_one_event_each_and_survive_replays(
        database_url: str, runner: ProcessingRunner) -> None:
    announced: list[int] = []

    async def hook(conn: psycopg.AsyncConnection, ids: list[int]) -> None:
        announced.extend(ids)

    runner.on_events = hook
    ids = register(database_url, ["phone"])
    now = datetime.now(UTC).replace(microsecond=0)

    def report(ago_s: int) -> StoredPosition:
        when = now - timedelta(seconds=ago_s)
        return StoredPosition(ids["phone"], "phone", "test", when,
                              Position(fix_time=when, latitude=52.0, longitude=4.0))

    await store(database_url, [report(3600)])
    assert await runner.sweep_presence() == 0  # silent for an hour and never online: no change
    await store(database_url, [report(30)])
    await runner.process(ids["phone"])
    assert await runner.sweep_presence() == 1
    assert await runner.sweep_presence() == 0  # still online: nothing new
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE positions SET server_time = server_time - interval '1 hour'")
    assert await runner.sweep_presence() == 1
    await store(database_url, [report(2400)])  # a late position: its period is replayed
    await runner.process(ids["phone"])
    assert runner.stats.replays == 1
    with psycopg.connect(database_url) as conn:
        events = conn.execute("SELECT id, type, time FROM events WHERE type LIKE 'deviceO%' ORDER BY id"
                              ).fetchall()
    assert [(e[1], e[2]) for e in events] == [
        ("deviceOnline", now - timedelta(seconds=30)),
        ("deviceOffline", now - timedelta(seconds=30) - timedelta(hours=1) + timedelta(seconds=600))]
    assert [i for i in announced if i in {e[0] for e in events}] == [e[0] for e in events]
    assert len(announced) == len(set(announced))  # nothing announced twice


def commuter(device_id: int, days: int) -> list[StoredPosition]:
    """A fix every 10 minutes for ``days`` days: parked at home, 08:00-08:50 driving 10 km east
    at 60 km/h, parked, 17:00-17:50 back."""
    start = datetime(2026, 9, 1, tzinfo=UTC)
    out = []
    for k in range(days * 144):
        when = start + timedelta(minutes=10 * k)
        slot = (k % 144) - 48  # 08:00 is slot 48 of the day
        east = 0.0 if slot < 0 else min(slot, 5) * 2.0 if slot < 54 else max(0.0, 10.0 - (slot - 54) * 2.0)
        moving = 0 < slot <= 5 or 54 < slot <= 59
        out.append(StoredPosition(device_id, "c", "test", when, Position(
            fix_time=when, latitude=52.0, longitude=4.0 + east / 68.6, speed_kmh=60.0 if moving else 0.0)))
    return out


async def test_checkpoints_are_thinned_and_late_data_still_replays_exactly(
        database_url: str, runner: ProcessingRunner) -> None:
    ids = register(database_url, ["daily", "straight"])
    rows = commuter(ids["daily"], 45)
    late = rows[20 * 144 + 30]  # a position from 25 days before the end, held back
    for day in range(45):
        await store(database_url, [r for r in rows[day * 144:(day + 1) * 144] if r is not late])
        await runner.process(ids["daily"])
    with psycopg.connect(database_url) as conn:
        kept = conn.execute("SELECT count(*) FROM processing_checkpoints WHERE device_id = %s",
                            (ids["daily"],)).fetchone()
    assert kept is not None and kept[0] <= 100, f"{kept[0]} checkpoints kept for 45 days (1,080 hours)"
    await store(database_url, [late])
    await runner.process(ids["daily"])
    assert runner.stats.replays == 1
    await store(database_url, commuter(ids["straight"], 45))
    await runner.process(ids["straight"])
    got, want = derived(database_url, ids["daily"]), derived(database_url, ids["straight"])
    assert len(want["trips"]) == 2 * 45
    assert got == want


class _WatchedRunner(ProcessingRunner):
    """Counts how many devices were in process at once."""

    peak = 0

    async def process(self, device_id: int) -> None:
        self.peak = max(self.peak, len(self._active))
        await super().process(device_id)


async def test_lanes_give_the_same_results_as_one_device_at_a_time(database_url: str) -> None:
    """Several devices processed at once, woken in batches while the lanes run (so a device is
    woken again while a lane holds it): every derived record equals the one-at-a-time result."""
    rows = bus_rows()
    buses = sorted({r["vehicle_id"] for r in rows})
    one = register(database_url, [f"one-{b}" for b in buses])
    many = register(database_url, [f"many-{b}" for b in buses])
    pool = db.open_pool(database_url, 5)
    await pool.open()
    try:
        await store(database_url, [stored(one[f"one-{r['vehicle_id']}"], r)
                                   for r in sorted(rows, key=lambda r: r["timestamp"])])
        await drain(ProcessingRunner(pool), one.values())
        lanes = _WatchedRunner(pool, concurrency=4, chunk=50)
        task = asyncio.create_task(lanes.run())
        try:
            for start in range(0, len(rows), 150):
                batch = rows[start:start + 150]
                await store(database_url, [stored(many[f"many-{r['vehicle_id']}"], r) for r in batch])
                lanes.wake({many[f"many-{r['vehicle_id']}"] for r in batch})
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)
            await asyncio.wait_for(lanes.idle(), 60)
        finally:
            lanes.stop()
            await asyncio.wait_for(task, 30)
    finally:
        await pool.close()
    assert lanes.peak >= 2, "the lanes never overlapped"
    trips = 0
    for bus in buses:
        expected = derived(database_url, one[f"one-{bus}"])
        assert derived(database_url, many[f"many-{bus}"]) == expected, f"bus {bus}"
        trips += len(expected["trips"])
    assert trips > 0
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM processing_dirty").fetchone() == (0,)


def test_concurrency_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ProcessingRunner(None, concurrency=0)  # type: ignore[arg-type]
