"""Report latency: one device-day (trips, stops, summary, route) and the fleet summary of
1,000 devices × 30 days, on data the real processing runner derived from simulated field days.

    .venv/bin/python -m bench.reports --devices 1000 --days 30

Each device lives a month of a field rep in the Netherlands: on weekdays it leaves home in the
morning, makes 4-7 drives of 5-30 minutes with visits of 5-60 minutes between them and drives
home; weekends it stays parked. The fixes are stored through the writer's insert path and
processed with ``ProcessingRunner`` device by device, so trips, stops and odometer marks are the
project's own. Baseline in the same run: the naive fleet summary, one GROUP BY over every
position of the range (odometer spread and top speed per device and day).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import platform
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
from psycopg_pool import AsyncConnectionPool

from api.app import create_app
from api.deps import ApiDeps
from bench.dbsetup import scratch_database
from gateway.processing import ProcessingRunner
from protocols.model import Position
from storage import db
from storage.devices import DeviceDirectory, DeviceStore
from storage.positions import PositionStore
from storage.reports import DayWindow, ReportStore, day_windows
from storage.rows import StoredPosition
from storage.timescale import TimescalePolicy
from storage.tokens import TokenStore
from storage.writer import insert_rows

# Fix intervals of a vehicle tracker: every minute while driving (fine enough for the motion
# detector's 200 m / 3 min thresholds and for a route on a map), every 5 minutes parked with the
# ignition off, hourly overnight and at weekends. Denser fixes would only lengthen the setup.
DRIVE_S, PARK_S, NIGHT_S = 60, 300, 3600
M_PER_DEG = 111_195.0
TOKEN = "bench-reports-admin"


def _moved(lat: float, lon: float, heading_deg: float, metres: float) -> tuple[float, float]:
    h = math.radians(heading_deg)
    return (lat + metres * math.cos(h) / M_PER_DEG,
            lon + metres * math.sin(h) / (M_PER_DEG * math.cos(math.radians(lat))))


class FieldRep:
    """One device's fixes over consecutive local days, in time order."""

    def __init__(self, rng: random.Random, zone: tzinfo) -> None:
        self.rng, self.zone = rng, zone
        self.home = (rng.uniform(51.6, 52.9), rng.uniform(4.3, 6.8))
        self.lat, self.lon = self.home
        self.out: list[Position] = []

    def report(self, t: datetime, speed: float, course: float | None, ignition: bool,
             jitter_m: float = 0.0) -> None:
        lat, lon = self.lat, self.lon
        if jitter_m:
            lat, lon = _moved(lat, lon, self.rng.uniform(0, 360), abs(self.rng.gauss(0, jitter_m)))
        self.out.append(Position(fix_time=t, latitude=lat, longitude=lon, speed_kmh=round(speed, 1),
                                 course_deg=course, hdop=round(self.rng.uniform(0.7, 2.5), 1),
                                 attributes={"ignition": ignition, "satellites": self.rng.randint(6, 12)}))

    def _bearing_home(self) -> float:
        dlat, dlon = self.home[0] - self.lat, (self.home[1] - self.lon) * math.cos(math.radians(self.lat))
        return math.degrees(math.atan2(dlon, dlat)) % 360

    def _km_from_home(self) -> float:
        dlat, dlon = self.home[0] - self.lat, (self.home[1] - self.lon) * math.cos(math.radians(self.lat))
        return math.hypot(dlat, dlon) * M_PER_DEG / 1000

    def park(self, t: datetime, until: datetime, every_s: int) -> datetime:
        """Parked fixes after ``t`` (the arrival, already reported) and before ``until``."""
        last = t
        while (t := t + timedelta(seconds=every_s)) < until:
            self.report(t, self.rng.uniform(0.0, 1.5), None, False, jitter_m=4.0)
        return max(until, last)

    def drive(self, t: datetime, minutes: float, home: bool = False) -> datetime:
        """From here at ``t``: along a wandering heading, or towards home; ends with the arrival."""
        self.report(t, 0.0, None, True)
        heading, cruise = self._bearing_home() + self.rng.gauss(0, 45), self.rng.uniform(35, 90)
        if not home and self._km_from_home() < 30:  # far out, the next customer is likelier homeward
            heading = self.rng.uniform(0, 360)
        for k in range(300):
            t += timedelta(seconds=DRIVE_S)
            if home:
                heading = self._bearing_home()
                if self._km_from_home() * 1000 < cruise / 3.6 * DRIVE_S:
                    break
            elif k >= minutes:
                break
            heading = (heading + self.rng.gauss(0, 15 if home else 25)) % 360
            if self.rng.random() < 0.1:  # a traffic light or a jam: slow now, less way made since
                speed, moved = self.rng.uniform(0, 5), cruise / 3.6 * DRIVE_S * self.rng.uniform(0.2, 0.6)
            else:
                speed = max(10.0, self.rng.gauss(cruise, 10))
                moved = speed / 3.6 * DRIVE_S
            self.lat, self.lon = _moved(self.lat, self.lon, heading, moved)
            self.report(t, speed, round(heading, 1), True)
        if home:
            self.lat, self.lon = self.home
        self.report(t, 0.0, None, False)
        return t

    def day(self, t: datetime, day: date) -> datetime:
        """``t``: the last fix so far, parked; returns the last fix of this day."""
        if day.weekday() < 5:
            leave = _midnight(day, self.zone) + timedelta(minutes=self.rng.uniform(450, 540))  # 07:30-09:00
            t = self.park(t, leave, NIGHT_S)
            for _ in range(self.rng.randint(4, 7)):
                t = self.drive(t, self.rng.uniform(5, 30))
                t = self.park(t, t + timedelta(minutes=self.rng.uniform(5, 60)), PARK_S)
            t = self.drive(t, 0, home=True)
        self.park(t, _midnight(day + timedelta(days=1), self.zone), NIGHT_S)
        return self.out[-1].fix_time

    def month(self, days: list[date]) -> list[Position]:
        t = _midnight(days[0], self.zone)
        self.report(t, 0.0, None, False)
        for day in days:
            t = self.day(t, day)
        return self.out


def _midnight(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, datetime.min.time(), zone).astimezone(UTC)


def local_days(end: date, days: int) -> list[date]:
    return [end - timedelta(days=days - k) for k in range(days)]


def last_saturday(zone: tzinfo) -> date:
    """The range ends at the latest Saturday 00:00, so its last day is a Friday (a work day)."""
    today = datetime.now(zone).date()
    return today - timedelta(days=(today.weekday() - 5) % 7)


def register(url: str, devices: int) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.cursor().copy("COPY devices (unique_id, name, protocol) FROM STDIN") as copy:
            for k in range(devices):
                copy.write_row((f"rep-{k:05d}", f"rep {k}", "gt06"))
        return [r[0] for r in conn.execute("SELECT id FROM devices ORDER BY id").fetchall()]


async def store_month(pool: AsyncConnectionPool, ids: list[int], days: list[date], zone: tzinfo,
                      seed: int) -> int:
    """Every device's month through the writer's insert path (COPY, merge, dirty marker), ten
    devices per transaction; arrival two seconds after each fix."""
    rng = random.Random(seed)
    rows = 0
    async with pool.connection() as conn:
        for k in range(0, len(ids), 10):
            batch = [StoredPosition(d, f"rep-{d}", "gt06", p.fix_time + timedelta(seconds=2), p)
                     for d in ids[k:k + 10] for p in FieldRep(random.Random(rng.random()), zone).month(days)]
            rows += await insert_rows(conn, batch)
    return rows


async def process_all(pool: AsyncConnectionPool, ids: list[int], workers: int) -> int:
    """The runner over every device, ``workers`` devices at a time; returns its error count."""
    runner = ProcessingRunner(pool)
    queue = list(reversed(ids))

    async def work() -> None:
        while queue:
            await runner.process(queue.pop())

    await asyncio.gather(*(work() for _ in range(workers)))
    return runner.stats.errors


_COUNTS = """
SELECT (SELECT count(*) FROM trips), (SELECT count(*) FROM stops),
       (SELECT count(*) FILTER (WHERE filtered IS NOT NULL) FROM positions),
       (SELECT count(*) FROM processing_dirty), pg_size_pretty(pg_total_relation_size('positions')),
       (SELECT count(*) FROM processing_checkpoints),
       pg_size_pretty(pg_total_relation_size('processing_checkpoints'))
"""


async def setup(pool: AsyncConnectionPool, url: str, args: argparse.Namespace, days: list[date]
                ) -> tuple[list[int], list[str]]:
    ids = register(url, args.devices)
    t0 = time.perf_counter()
    rows = await store_month(pool, ids, days, ZoneInfo(args.tz), args.seed)
    t1 = time.perf_counter()
    errors = await process_all(pool, ids, args.workers)
    t2 = time.perf_counter()
    async with pool.connection() as conn:
        # What autovacuum would have done by the time anyone asks for last month's report.
        await conn.execute("VACUUM (ANALYZE) positions, trips, stops, processing_state")
        t3 = time.perf_counter()
        row = await (await conn.execute(_COUNTS)).fetchone()
    trips, stops, filtered, dirty, size, checkpoints, cp_size = row or (0,) * 7
    out = [
        f"  data: {args.devices} devices x {len(days)} days ({days[0]} .. {days[-1]}, {args.tz}), fixes"
        f" every {DRIVE_S} s driving, {PARK_S} s parked, {NIGHT_S} s overnight and at weekends",
        f"  setup: generate + insert {rows:,} positions {t1 - t0:.1f} s ({rows / (t1 - t0):,.0f} rows/s);"
        f" runner {t2 - t1:.1f} s ({rows / (t2 - t1):,.0f} positions/s, {args.workers} workers);"
        f" VACUUM ANALYZE {t3 - t2:.1f} s; total {t3 - t0:.1f} s",
        f"  derived: {trips:,} trips, {stops:,} stops, {filtered:,} positions filtered, {dirty} devices"
        f" left dirty, {errors} runner errors; positions {size}; {checkpoints:,} checkpoints ({cp_size})",
    ]
    if dirty or errors:
        raise SystemExit("\n".join([*out, "FAILED: the runner did not process everything"]))
    return ids, out


def pct(samples: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(samples)
    return s[max(0, math.ceil(q * len(s)) - 1)]


Call = Callable[[int], Awaitable[int]]


async def timed(label: str, runs: int, call: Call, unit: str = "") -> tuple[str, float]:
    """One untimed warm-up (``call(runs)``), then ``call(0)`` .. ``call(runs - 1)``: the printed
    line (with the mean of what the calls return, in ``unit``) and the p50 in seconds."""
    await call(runs)
    samples, sizes = [], 0
    for k in range(runs):
        t = time.perf_counter()
        sizes += await call(k)
        samples.append(time.perf_counter() - t)
    p50, p95 = pct(samples, 0.5), pct(samples, 0.95)
    size = f"(mean {sizes / runs:,.1f} {unit})" if unit else ""
    return f"    {label:<9} p50 {p50 * 1000:9.1f} ms  p95 {p95 * 1000:9.1f} ms  {size}", p50


async def _count(result: Awaitable[list[Any]]) -> int:
    return len(await result)


def device_day_calls(store: ReportStore, picks: list[tuple[int, list[DayWindow]]]) -> dict[str, Call]:
    def trips(k: int) -> Awaitable[int]:
        d, (w,) = picks[k]
        return _count(store.trips(d, w.start, w.end))

    def stops(k: int) -> Awaitable[int]:
        d, (w,) = picks[k]
        return _count(store.stops(d, w.start, w.end))

    def summary(k: int) -> Awaitable[int]:
        d, windows = picks[k]
        return _count(store.summary(windows, device_ids=[d]))

    def route(k: int) -> Awaitable[int]:
        d, (w,) = picks[k]
        return _count(store.route(d, w.start, w.end, include_filtered=False, limit=100_001))

    return {"trips": trips, "stops": stops, "summary": summary, "route": route}


def api_client(pool: AsyncConnectionPool) -> httpx.AsyncClient:
    devices = DeviceStore(pool)

    async def health() -> dict[str, Any]:
        return {"status": "ok"}

    app = create_app(ApiDeps(devices, PositionStore(pool), TokenStore(pool), DeviceDirectory(devices),
                             health, "bench", pool))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench",
                             headers={"Authorization": f"Bearer {TOKEN}"}, timeout=600)


def _windows(first: date, days: int, zone: tzinfo) -> list[DayWindow]:
    return day_windows(_midnight(first, zone), _midnight(first + timedelta(days=days), zone), zone)


def _device_path(picks: list[tuple[int, list[DayWindow]]], report: str) -> Callable[[int], str]:
    return lambda k: f"/api/devices/{picks[k][0]}/{report}"


def http_get(client: httpx.AsyncClient, path: Callable[[int], str], params: Callable[[int], dict[str, str]]
             ) -> Call:
    async def get(k: int) -> int:
        r = await client.get(path(k), params=params(k))
        r.raise_for_status()
        return len(r.content)

    return get


# What a naive implementation would ask for: per device and local day, the odometer's spread and
# the top speed, one aggregate over every position of the range.
BASELINE = """
SELECT device_id, date_trunc('day', fix_time, %(tz)s), max(odometer_m) - min(odometer_m), max(speed_kmh)
FROM positions WHERE fix_time >= %(from)s AND fix_time < %(to)s GROUP BY 1, 2
"""


async def measure(pool: AsyncConnectionPool, ids: list[int], days: list[date], args: argparse.Namespace
                  ) -> list[str]:
    zone, runs = ZoneInfo(args.tz), args.runs
    store = ReportStore(pool)
    rng = random.Random(args.seed + 1)
    workdays = [d for d in days if d.weekday() < 5] or days
    # Other device-days for the HTTP runs, so these do not find the pages the direct runs just read.
    picks, other = ([(rng.choice(ids), _windows(rng.choice(workdays), 1, zone)) for _ in range(runs + 1)]
                    for _ in range(2))
    out = [f"  one device-day, ReportStore directly ({runs} random device-workdays after a warm-up):"]
    units = {"trips": "rows", "stops": "rows", "summary": "devices", "route": "points"}
    for name, call in device_day_calls(store, picks).items():
        out.append((await timed(name, runs, call, units[name]))[0])
    await TokenStore(pool).add(TOKEN, "bench", "admin")
    windows = _windows(days[0], len(days), zone)
    start, end = windows[0].start, windows[-1].end
    async with api_client(pool) as client:
        out.append(f"  one device-day through the HTTP API (in process, JSON; {runs} other device-days):")
        day_range = lambda k: {"from": other[k][1][0].start.isoformat(),  # noqa: E731
                               "to": other[k][1][0].end.isoformat(), "tz": args.tz}
        for name in ("trips", "stops", "summary", "route"):
            get = http_get(client, _device_path(other, name), day_range)
            out.append((await timed(name, runs, get, "bytes"))[0])
        summaries = await store.summary(windows, every=True)
        rows = sum(len(s.days) for s in summaries)
        out.append(f"  fleet summary, {len(summaries)} devices x {len(windows)} days ({rows:,} day rows),"
                   f" {args.fleet_runs} runs after a warm-up:")
        text, fleet_p50 = await timed("store", args.fleet_runs,
                                      lambda _: _count(store.summary(windows, every=True)), "devices")
        out.append(text)
        get = http_get(client, lambda _: "/api/reports/summary",
                       lambda _: {"from": start.isoformat(), "to": end.isoformat(), "tz": args.tz})
        out.append((await timed("HTTP", args.fleet_runs, get, "bytes"))[0])
    naive_m: list[float] = []

    async def baseline(_: int) -> int:
        async with pool.connection() as conn:
            rows = await (await conn.execute(BASELINE, {"tz": args.tz, "from": start, "to": end})).fetchall()
        naive_m[:] = [sum(r[2] or 0.0 for r in rows)]
        return len(rows)

    text, base_p50 = await timed("baseline", args.fleet_runs, baseline, "rows")
    out += ["  baseline: naive GROUP BY (device, local day) over every position of the range:", text,
            f"  ratio fleet summary / baseline (p50): {fleet_p50 / base_p50:.3f}",
            f"  check: fleet distance {sum(s.total.distance_m for s in summaries) / 1000:,.1f} km by the"
            f" summary, {naive_m[0] / 1000:,.1f} km by the baseline"]
    return out


async def run(url: str, args: argparse.Namespace, days: list[date]) -> list[str]:
    pool = db.open_pool(url, args.workers + 2)
    await pool.open()
    try:
        ids, out = await setup(pool, url, args, days)
        return out + await measure(pool, ids, days, args)
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=50, help="runs of each device-day report")
    parser.add_argument("--fleet-runs", type=int, default=5, help="runs of the fleet summary and baseline")
    parser.add_argument("--workers", type=int, default=3, help="devices processed concurrently in setup")
    parser.add_argument("--tz", default="Europe/Amsterdam")
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    days = local_days(last_saturday(ZoneInfo(args.tz)), args.days)
    with scratch_database() as (url, where):
        asyncio.run(db.prepare(url, TimescalePolicy()))
        out = asyncio.run(run(url, args, days))
    print(f"report benchmark  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {platform.node()}  "
          f"{platform.python_version()}  database: {where}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
