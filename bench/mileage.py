"""Mileage report latency: every rep × a month, on data the real processing runner derived.

    .venv/bin/python -m bench.mileage --reps 200 --days 30

The reps' devices live bench.reports' simulated field month (weekday drives from 07:30-09:00 on,
weekends parked); each rep carries one device and works Mon-Fri 08:00-17:00 Europe/Amsterdam, so
early drives are partly personal. Measured: ``storage.mileage.mileage_days`` for all reps and the
HTTP report (JSON, CSV). Baseline in the same run: the naive report, one GROUP BY (device, local
day) summing the trips' distances, which knows nothing of working hours or of a trip cut at 17:00.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg

from bench.dbsetup import scratch_database
from bench.reports import (
    TOKEN,
    _midnight,
    api_client,
    last_saturday,
    local_days,
    process_all,
    store_month,
    timed,
)
from storage import db
from storage.mileage import mileage_days
from storage.timescale import TimescalePolicy
from storage.tokens import TokenStore

WEEKDAYS = {d: [["08:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}

BASELINE = """
SELECT device_id, date_trunc('day', start_time, %(tz)s), sum(distance_m)
FROM trips WHERE start_time >= %(from)s AND start_time < %(to)s GROUP BY 1, 2
"""


def people(url: str, reps: int, tz: str) -> tuple[list[int], list[int]]:
    """One team, ``reps`` reps each carrying one device: (device ids, rep ids)."""
    with psycopg.connect(url, autocommit=True) as conn:
        team = conn.execute("INSERT INTO teams (name, time_zone, working_hours, settings) VALUES"
                            " ('field', %s, %s, %s) RETURNING id",
                            (tz, json.dumps(WEEKDAYS), json.dumps({"mileage": {"rate": 0.23}}))).fetchone()
        assert team is not None
        with conn.cursor().copy("COPY devices (unique_id, name, protocol) FROM STDIN") as copy:
            for k in range(reps):
                copy.write_row((f"rep-{k:05d}", f"rep {k}", "gt06"))
        devices = [r[0] for r in conn.execute("SELECT id FROM devices ORDER BY id").fetchall()]
        users = [r[0] for r in conn.execute(
            "INSERT INTO users (name, role, team_id) SELECT 'rep ' || k, 'rep', %s"
            " FROM generate_series(1, %s) k RETURNING id", (team[0], reps)).fetchall()]
        conn.execute("INSERT INTO user_devices (user_id, device_id)"
                     " SELECT * FROM unnest(%s::int8[], %s::int8[])", (sorted(users), devices))
    return devices, sorted(users)


async def run(url: str, args: argparse.Namespace, days: list[date]) -> list[str]:
    zone = ZoneInfo(args.tz)
    devices, reps = people(url, args.reps, args.tz)
    pool = db.open_pool(url, args.workers + 2)
    await pool.open()
    try:
        rows = await store_month(pool, devices, days, zone, args.seed)
        errors = await process_all(pool, devices, args.workers)
        async with pool.connection() as conn:
            await conn.execute("VACUUM (ANALYZE) positions, trips, stops, processing_state")
        start, end = _midnight(days[0], zone), _midnight(days[-1] + timedelta(days=1), zone)
        out = [f"  data: {args.reps} reps x {len(days)} days ({days[0]} .. {days[-1]}, {args.tz}),"
               f" {rows:,} positions, runner errors {errors}"]
        found: list[float] = [0.0, 0.0, 0.0]

        async def store(_: int) -> int:
            result = await mileage_days(pool, reps, start, end)
            found[:] = [sum(d.business_m for d in result), sum(d.personal_m for d in result),
                        sum(d.total_m for d in result)]
            return len(result)

        text, p50 = await timed("store", args.runs, store, "rep-days")
        out += ["  mileage_days, all reps:", text]
        await TokenStore(pool).add(TOKEN, "bench", "admin")
        async with api_client(pool) as client:
            for fmt in ("json", "csv"):
                async def get(_: int, fmt: str = fmt) -> int:
                    r = await client.get("/api/reports/mileage", params={
                        "from": start.isoformat(), "to": end.isoformat(), "format": fmt})
                    r.raise_for_status()
                    return len(r.content)

                out.append((await timed(f"HTTP {fmt}", args.runs, get, "bytes"))[0])
        naive: list[float] = [0.0]

        async def baseline(_: int) -> int:
            async with pool.connection() as conn:
                cur = await conn.execute(BASELINE, {"tz": args.tz, "from": start, "to": end})
                got = await cur.fetchall()
            naive[0] = sum(r[2] or 0.0 for r in got)
            return len(got)

        text, base = await timed("baseline", args.runs, baseline, "rows")
        out += ["  baseline: naive GROUP BY (device, local day) over the trips:", text,
                f"  ratio mileage_days / baseline (p50): {p50 / base:.3f}",
                f"  check: business {found[0] / 1000:,.1f} km + personal {found[1] / 1000:,.1f} km ="
                f" {found[2] / 1000:,.1f} km (odometer); trips sum {naive[0] / 1000:,.1f} km"]
        return out
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tz", default="Europe/Amsterdam")
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    days = local_days(last_saturday(ZoneInfo(args.tz)), args.days)
    with scratch_database() as (url, where):
        asyncio.run(db.prepare(url, TimescalePolicy()))
        out = asyncio.run(run(url, args, days))
    print(f"mileage benchmark  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {platform.node()}  "
          f"{platform.python_version()}  database: {where}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
