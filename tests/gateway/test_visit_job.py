"""The visit job on the real database with real processing: a rep's phone drives to a customer,
stops there and drives on; positions go through insert_rows and the ProcessingRunner, visits and
check-ins are set by SQL (the plans API is not needed for the detector), and the job reconciles
with a ``now`` passed in.

Times (hand-derived): T0 = Monday 2026-10-05 07:00 UTC, 09:00 in Amsterdam (CEST, UTC+2), so the
rep's day is 2026-10-05 and it ends at 2026-10-05 22:00 UTC.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from gateway.processing import ProcessingRunner
from gateway.visit_job import VisitJob
from protocols.model import Position
from storage import db
from storage.rows import StoredPosition
from storage.writer import insert_rows

T0 = datetime(2026, 10, 5, 7, 0, tzinfo=UTC)
DAY = date(2026, 10, 5)
DAY_END = datetime(2026, 10, 5, 22, 0, tzinfo=UTC)
LAT, LON = 52.0, 4.0
M_PER_DEG_LAT = 111_320.0
M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(LAT))
# The phone parks 60 s, drives 2 km east in 240 s (30 km/h, a fix every 10 s) and arrives here:
ARRIVAL = T0 + timedelta(seconds=300)
STOP_LAT, STOP_LON = LAT, LON + 2000 / M_PER_DEG_LON


def haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    r = 6_371_008.8
    a = math.sin(math.radians(lat2 - lat1) / 2) ** 2 + math.cos(math.radians(lat1)) * math.cos(
        math.radians(lat2)) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


def fix(device_id: int, at: datetime, east_m: float, speed: float, north_m: float = 0.0) -> StoredPosition:
    p = Position(fix_time=at, latitude=LAT + north_m / M_PER_DEG_LAT, longitude=LON + east_m / M_PER_DEG_LON,
                 speed_kmh=speed, course_deg=90.0 if speed else None)
    return StoredPosition(device_id, f"phone-{device_id}", "test", at, p)


def approach(device_id: int) -> list[StoredPosition]:
    """Parked 60 s at the start, then 2 km east in 240 s; the last fix is the arrival."""
    out = [fix(device_id, T0 + timedelta(seconds=10 * i), 0.0, 0.0) for i in range(6)]
    out += [fix(device_id, T0 + timedelta(seconds=60 + 10 * i), 2000 * i / 24, 30.0) for i in range(1, 25)]
    return out


def leave(device_id: int, dwell_s: int) -> list[StoredPosition]:
    """From the end of the dwell: 2 km further east in 240 s, then parked 10 min."""
    start = ARRIVAL + timedelta(seconds=dwell_s)
    out = [fix(device_id, start + timedelta(seconds=10 * i), 2000 + 2000 * i / 24, 30.0)
           for i in range(1, 25)]
    end = start + timedelta(seconds=240)
    out += [fix(device_id, end + timedelta(seconds=10 * i), 4000.0, 0.0) for i in range(1, 61)]
    return out


def visit_track(device_id: int, dwell_s: int) -> list[StoredPosition]:
    """Arrives at ARRIVAL, rests ``dwell_s`` at the stop (a fix every 10 s), drives on."""
    rest = [fix(device_id, ARRIVAL + timedelta(seconds=10 * i), 2000.0, 0.0)
            for i in range(1, dwell_s // 10 + 1)]
    return approach(device_id) + rest + leave(device_id, dwell_s)


@dataclass
class Rep:
    url: str
    pool: AsyncConnectionPool
    job: VisitJob
    rep_id: int
    team_id: int
    device_id: int
    customer_id: int  # 40 m north of the stop, radius 100 m
    far_customer_id: int  # 3 km north of the stop

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(query.encode(), params)
            return cur.fetchall() if cur.description else []

    async def store(self, rows: list[StoredPosition]) -> None:
        async with self.pool.connection() as conn:
            await insert_rows(conn, rows)

    async def process(self) -> None:
        await ProcessingRunner(self.pool).process(self.device_id)

    def plan(self, customer_id: int, status: str = "approved", **columns: Any) -> int:
        names = ", ".join(["customer_id", "rep_id", "team_id", "day", "status", *columns])
        marks = ", ".join(["%s"] * (5 + len(columns)))
        return int(self.sql(f"INSERT INTO visits ({names}) VALUES ({marks}) RETURNING id",
                            (customer_id, self.rep_id, self.team_id, DAY, status, *columns.values()))[0][0])

    def visits(self) -> list[dict[str, Any]]:
        cols = ("id, customer_id, day, status, source, detected_device_id, detected_start, detected_end,"
                " detected_distance_m, flags, status_before_detection, updated_at")
        names = [c.strip() for c in cols.split(",")]
        return [dict(zip(names, r, strict=True)) for r in self.sql(f"SELECT {cols} FROM visits ORDER BY id")]

    def stops(self) -> list[tuple[datetime, datetime, float, float]]:
        return [(r[0], r[1], r[2], r[3]) for r in self.sql(
            "SELECT start_time, end_time, latitude, longitude FROM stops WHERE device_id = %s"
            " ORDER BY start_time", (self.device_id,))]


@pytest.fixture
async def rep(database_url: str) -> AsyncIterator[Rep]:
    pool = db.open_pool(database_url, 4)
    await pool.open()
    with psycopg.connect(database_url, autocommit=True) as conn:
        def one(q: str, p: tuple[Any, ...]) -> int:
            row = conn.execute(q.encode(), p).fetchone()
            assert row is not None
            return int(row[0])
        team = one("INSERT INTO teams (name, time_zone) VALUES ('north', 'Europe/Amsterdam')"
                   " RETURNING id", ())
        user = one("INSERT INTO users (name, role, team_id) VALUES ('rep', 'rep', %s) RETURNING id", (team,))
        device = one("INSERT INTO devices (unique_id, name) VALUES ('phone', 'phone') RETURNING id", ())
        conn.execute("INSERT INTO user_devices (user_id, device_id) VALUES (%s, %s)", (user, device))
        near = one("INSERT INTO customers (name, latitude, longitude, radius_m, team_id, assigned_rep_id)"
                   " VALUES ('shop', %s, %s, 100, %s, %s) RETURNING id",
                   (STOP_LAT + 40 / M_PER_DEG_LAT, STOP_LON, team, user))
        far = one("INSERT INTO customers (name, latitude, longitude, radius_m, team_id)"
                  " VALUES ('far shop', %s, %s, 150, %s) RETURNING id",
                  (STOP_LAT + 3000 / M_PER_DEG_LAT, STOP_LON, team))
    yield Rep(database_url, pool, VisitJob(pool), user, team, device, near, far)
    await pool.close()


AFTER_DAY = DAY_END + timedelta(hours=2)


async def test_a_seven_minute_stop_is_a_detected_visit(rep: Rep) -> None:
    await rep.store(visit_track(rep.device_id, 420))
    await rep.process()
    # Motion rules: the stop begins at the arrival fix and ends at the last fix before leaving.
    stop = next(s for s in rep.stops() if s[0] == ARRIVAL)
    assert stop[1] == ARRIVAL + timedelta(seconds=420)
    outcome = await rep.job.reconcile(rep.rep_id, now=AFTER_DAY)
    assert DAY in outcome.days
    [visit] = rep.visits()
    assert (visit["customer_id"], visit["day"], visit["status"], visit["source"]) == (
        rep.customer_id, DAY, "done", "detected")
    assert (visit["detected_device_id"], visit["detected_start"], visit["detected_end"]) == (
        rep.device_id, stop[0], stop[1])
    shop = rep.sql("SELECT latitude, longitude FROM customers WHERE id = %s", (rep.customer_id,))[0]
    assert visit["detected_distance_m"] == pytest.approx(haversine(stop[2], stop[3], *shop), abs=0.01)
    assert visit["detected_distance_m"] == pytest.approx(40.0, abs=0.5)
    assert visit["flags"] == []


async def test_a_rep_still_at_the_customer_is_detected_from_the_open_stop(rep: Rep) -> None:
    track = visit_track(rep.device_id, 420)
    arrived = approach(rep.device_id)
    await rep.store(track[:len(arrived) + 42])  # up to the last fix at the shop: still there
    await rep.process()
    assert rep.stops() == []  # nothing closed yet: the stop is only in the processor's state
    await rep.job.reconcile(rep.rep_id, now=ARRIVAL + timedelta(seconds=425))
    [visit] = rep.visits()
    assert (visit["source"], visit["detected_start"], visit["detected_end"]) == (
        "detected", ARRIVAL, ARRIVAL + timedelta(seconds=420))
    await rep.store(track[len(arrived) + 42:])  # leaves: the stop is closed with the same times
    await rep.process()
    again = await rep.job.reconcile(rep.rep_id, now=AFTER_DAY)
    assert (again.created, again.updated, again.deleted) == (0, 0, 0)
    assert rep.visits() == [visit]


async def test_a_three_minute_stop_is_not_a_visit(rep: Rep) -> None:
    await rep.store(visit_track(rep.device_id, 180))
    await rep.process()
    # The track does have a (3 min) stop at the shop: the detector had something to turn down.
    assert any(s[0] == ARRIVAL and (s[1] - s[0]).total_seconds() == 180 for s in rep.stops())
    await rep.job.reconcile(rep.rep_id, now=AFTER_DAY)
    assert rep.visits() == []


async def test_a_plan_at_the_customer_becomes_done_without_a_second_row(rep: Rep) -> None:
    plan = rep.plan(rep.customer_id, "approved")
    await rep.store(visit_track(rep.device_id, 420))
    await rep.process()
    await rep.job.reconcile(rep.rep_id, now=ARRIVAL + timedelta(minutes=30))
    [visit] = rep.visits()
    assert visit["id"] == plan
    assert (visit["status"], visit["source"], visit["status_before_detection"]) == (
        "done", "plan", "approved")
    assert (visit["detected_start"], visit["detected_end"]) == (ARRIVAL, ARRIVAL + timedelta(seconds=420))
    assert visit["flags"] == ["presence_without_checkin"]


async def test_a_plan_elsewhere_is_missed_once_the_day_is_over_and_processed(rep: Rep) -> None:
    plan = rep.plan(rep.far_customer_id, "planned")
    await rep.store(visit_track(rep.device_id, 420))
    await rep.process()

    def status() -> str:
        return str(next(v["status"] for v in rep.visits() if v["id"] == plan))

    await rep.job.reconcile(rep.rep_id, now=DAY_END - timedelta(minutes=1))
    assert status() == "planned"
    await rep.job.reconcile(rep.rep_id, now=DAY_END + timedelta(minutes=30))  # inside the 1 h grace
    assert status() == "planned"
    # A buffered upload from that evening is stored but not processed yet: the day is not judged.
    await rep.store([fix(rep.device_id, DAY_END - timedelta(hours=1), 4000.0, 0.0)])
    await rep.job.reconcile(rep.rep_id, now=DAY_END + timedelta(hours=2))
    assert status() == "planned"
    await rep.process()
    await rep.job.reconcile(rep.rep_id, now=DAY_END + timedelta(hours=2))
    assert status() == "missed"
    # The stop at the other (served) customer is still a detected visit of its own.
    assert [(v["customer_id"], v["source"]) for v in rep.visits() if v["id"] != plan] == [
        (rep.customer_id, "detected")]


async def test_a_checkin_the_track_does_not_show_is_flagged(rep: Rep) -> None:
    at_shop = ARRIVAL + timedelta(minutes=3)
    # Checked in at the far shop (3 km from the track) while the phone stood at the near one.
    far = rep.plan(rep.far_customer_id, "done", checkin_at=at_shop)
    # Checked in at the near shop at the same moment: the track agrees.
    near = rep.plan(rep.customer_id, "done", checkin_at=at_shop)
    # Checked in at the far shop hours after the last position: no data, no disagreement.
    silent = rep.plan(rep.far_customer_id, "done", checkin_at=T0 + timedelta(hours=5))
    await rep.store(visit_track(rep.device_id, 420))
    await rep.process()
    await rep.job.reconcile(rep.rep_id, now=AFTER_DAY)
    flags = {v["id"]: v["flags"] for v in rep.visits()}
    assert flags == {far: ["checkin_without_presence"], near: [], silent: []}


async def test_running_twice_changes_nothing(rep: Rep) -> None:
    rep.plan(rep.customer_id, "approved")
    rep.plan(rep.far_customer_id, "approved")
    rep.plan(rep.far_customer_id, "done", checkin_at=ARRIVAL + timedelta(minutes=3))
    await rep.store(visit_track(rep.device_id, 420))
    await rep.process()
    first = await rep.job.reconcile(rep.rep_id, now=AFTER_DAY)
    assert first.updated == 3  # done + flag, missed, flagged check-in
    before = rep.visits()
    again = await rep.job.reconcile(rep.rep_id, now=AFTER_DAY)
    assert (again.created, again.updated, again.deleted) == (0, 0, 0)
    assert rep.visits() == before  # updated_at included: not even rewritten


async def test_a_late_upload_turns_a_missed_plan_done(rep: Rep) -> None:
    plan = rep.plan(rep.customer_id, "approved")
    await rep.store(approach(rep.device_id)[:-1])  # the phone's buffer from the shop on is not sent yet
    await rep.process()
    await rep.job.reconcile(rep.rep_id, now=AFTER_DAY)
    assert [(v["id"], v["status"]) for v in rep.visits()] == [(plan, "missed")]
    await rep.store(visit_track(rep.device_id, 420)[len(approach(rep.device_id)) - 1:])
    await rep.process()
    await rep.job.reconcile(rep.rep_id, now=AFTER_DAY + timedelta(hours=1))
    [visit] = rep.visits()
    assert (visit["id"], visit["status"], visit["status_before_detection"]) == (plan, "done", "missed")
    assert (visit["detected_start"], visit["detected_end"]) == (ARRIVAL, ARRIVAL + timedelta(seconds=420))


@pytest.mark.parametrize("reported", [False, True])
async def test_a_replay_that_breaks_the_stop_removes_the_detection(rep: Rep, reported: bool) -> None:
    # The phone rests silently: a fix just after arriving and one 7 min in (a silent gap near the
    # same place is rest), so the stop is [ARRIVAL, ARRIVAL + 420 s].
    sparse = [fix(rep.device_id, ARRIVAL + timedelta(seconds=s), 2000.0, 0.0) for s in (10, 420)]
    await rep.store(approach(rep.device_id) + sparse + leave(rep.device_id, 420))
    await rep.process()
    await rep.job.reconcile(rep.rep_id, now=AFTER_DAY)
    [visit] = rep.visits()
    assert (visit["source"], visit["detected_start"]) == ("detected", ARRIVAL)
    if reported:
        rep.sql("INSERT INTO visit_reports (visit_id) VALUES (%s)", (visit["id"],))
    # The buffer arrives late: the rep drove 1 km away and back in the gap (36 km/h), and was at
    # the shop only from ARRIVAL + 210 s: a 210 s stop, too short for a visit.
    out = [fix(rep.device_id, ARRIVAL + timedelta(seconds=20 + 10 * i), 100.0 * (i + 1) + 2000, 36.0)
           for i in range(10)]
    back = [fix(rep.device_id, ARRIVAL + timedelta(seconds=120 + 10 * i), 2900.0 - 100.0 * i, 36.0)
            for i in range(10)]
    rest = [fix(rep.device_id, ARRIVAL + timedelta(seconds=220 + 10 * i), 2000.0, 0.0) for i in range(20)]
    await rep.store(out + back + rest)
    await rep.process()
    assert not any(s[1] - s[0] >= timedelta(minutes=5) and s[0] <= ARRIVAL + timedelta(seconds=420) <= s[1]
                   for s in rep.stops())
    await rep.job.reconcile(rep.rep_id, now=AFTER_DAY)
    if reported:
        [kept] = rep.visits()
        assert (kept["id"], kept["status"], kept["detected_start"], kept["detected_end"]) == (
            visit["id"], "done", None, None)
    else:
        assert rep.visits() == []


async def test_the_periodic_pass_reconciles_every_rep_with_devices(rep: Rep) -> None:
    await rep.store(visit_track(rep.device_id, 420))
    await rep.process()
    assert await rep.job.run_once(now=AFTER_DAY) == 1
    assert [(v["customer_id"], v["source"]) for v in rep.visits()] == [(rep.customer_id, "detected")]


async def test_the_loop_survives_a_database_outage() -> None:
    # Port 1 on loopback refuses connections: every pass fails, the loop logs and waits.
    pool = AsyncConnectionPool("postgresql://postgres@127.0.0.1:1/none", min_size=1, max_size=1,
                               open=False, timeout=0.2)
    await pool.open(wait=False)
    job = VisitJob(pool, interval_s=0.05)
    task = asyncio.create_task(job.run())
    try:
        async with asyncio.timeout(10):
            while job.stats.errors < 2:  # noqa: ASYNC110 - the job exposes counters, not events
                await asyncio.sleep(0.05)
        assert not task.done()
    finally:
        job.stop()
        await asyncio.wait_for(task, 5)
        await pool.close()
    assert job.stats.passes == 0


async def test_off_duty_stops_prove_plans_but_make_no_visits(rep: Rep) -> None:
    """The stop is at 09:05 local on a Monday. With the team working only Monday afternoons it is
    off duty: private, so no detected visit; a plan for that customer still counts it."""
    rep.sql("UPDATE teams SET working_hours = %s WHERE id = %s",
            ('{"mon": [["13:00", "17:00"]]}', rep.team_id))
    await rep.store(visit_track(rep.device_id, 420))
    await rep.process()
    await rep.job.reconcile(rep.rep_id, now=AFTER_DAY)
    assert rep.visits() == []
    plan = rep.plan(rep.customer_id, "approved")
    await rep.job.reconcile(rep.rep_id, now=AFTER_DAY)
    assert [(v["id"], v["status"]) for v in rep.visits()] == [(plan, "done")]
    # On duty (the morning added to the calendar) the same stop makes its own visit again.
    rep.sql("DELETE FROM visits")
    rep.sql("UPDATE teams SET working_hours = %s WHERE id = %s",
            ('{"mon": [["08:00", "12:00"], ["13:00", "17:00"]]}', rep.team_id))
    await rep.job.reconcile(rep.rep_id, now=AFTER_DAY)
    assert [(v["source"], v["status"]) for v in rep.visits()] == [("detected", "done")]
