"""Processing a fleet: many devices with a few new positions each, the shape of live traffic
(20,000 trackers reporting every 10-30 s), where the runner's cost per device, not per
position, decides how far behind trips, stops and geofence events are.

    .venv/bin/python -m bench.fleet_processing --devices 2000 --positions 10 --concurrency 1,2,3,4

A warm-up round first gives every device its first positions and saved state (a device's first
processing also looks for checkpoints it does not have yet). Then, for each concurrency in turn,
every device gets ``--positions`` new positions (the next stretch of the real Reno drive, so
state carries over between rounds) and the runner processes them all with that many lanes.
Baseline in the same run: raw binary COPY of one round's rows; also printed, each concurrency
against the first one given.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import time
from datetime import UTC, datetime

import psycopg

from bench.dbsetup import raw_copy_seconds, scratch_database
from bench.latency import delayed, measured_rtt_ms
from bench.processors import reno_positions
from gateway.processing import ProcessingRunner
from storage import db
from storage.rows import StoredPosition
from storage.timescale import TimescalePolicy
from storage.writer import insert_rows


def register(url: str, devices: int) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.cursor().copy("COPY devices (unique_id, name) FROM STDIN") as copy:
            for k in range(devices):
                copy.write_row((f"fleet-{k}", f"fleet {k}"))
        return [r[0] for r in conn.execute("SELECT id FROM devices ORDER BY id").fetchall()]


async def rounds(url: str, ids: list[int], per_device: int, concurrencies: list[int],
                 runner_url: str | None = None) -> tuple[list[tuple[int, float, int]], float]:
    """[(concurrency, seconds, positions processed)], and the COPY baseline in rows/s. The runner
    connects to ``runner_url`` when given (the latency proxy), the rows go in directly."""
    # Every third sentence: the drive's RMC/GGA/GSA triples are one fix each.
    drive = reno_positions()[::3]
    needed = per_device * (len(concurrencies) + 1)
    if needed > len(drive):
        raise SystemExit(f"the drive has {len(drive)} fixes; asked for {needed}")
    now = datetime.now(UTC)
    results = []
    baseline = 0.0
    pool = db.open_pool(url, 2)
    await pool.open()
    runner_pool = db.open_pool(runner_url or url, max(concurrencies) + 1)
    await runner_pool.open()
    try:
        for k, concurrency in enumerate([max(concurrencies), *concurrencies]):
            stretch = drive[k * per_device:(k + 1) * per_device]
            rows = [StoredPosition(d, f"fleet-{d}", "nmea", now, p) for d in ids for p in stretch]
            if k == 0:
                copy_s = await asyncio.to_thread(raw_copy_seconds, url, [r.row() for r in rows])
                baseline = len(rows) / copy_s
            async with pool.connection() as conn:
                for start in range(0, len(rows), 5000):
                    await insert_rows(conn, rows[start:start + 5000])
            runner = ProcessingRunner(runner_pool, concurrency=concurrency)
            t = time.perf_counter()
            runner.wake(ids)
            task = asyncio.create_task(runner.run())
            await asyncio.sleep(0)
            await runner.idle()
            elapsed = time.perf_counter() - t
            runner.stop()
            await task
            if k > 0:
                results.append((concurrency, elapsed, runner.stats.positions))
    finally:
        await runner_pool.close()
        await pool.close()
    return results, baseline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--positions", type=int, default=10, help="new positions per device per round")
    parser.add_argument("--concurrency", default="1,2,3,4", help="one round per value, in this order")
    parser.add_argument("--rtt-ms", type=float, default=0.0,
                        help="round-trip time added between the runner and the database, as to a"
                        " database on another host (bench/latency.py; default none)")
    args = parser.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    with scratch_database() as (url, where):
        asyncio.run(db.prepare(url, TimescalePolicy()))
        ids = register(url, args.devices)
        with delayed(url, args.rtt_ms) if args.rtt_ms > 0 else contextlib.nullcontext(url) as runner_url:
            rtt = measured_rtt_ms(runner_url)
            results, baseline = asyncio.run(rounds(url, ids, args.positions, concurrencies, runner_url))
    print(f"fleet processing benchmark  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {platform.node()}  "
          f"{platform.python_version()}  database: {where}")
    print(f"  {args.devices} devices x {args.positions} new positions per round, after a warm-up round")
    print(f"  one query round trip between the runner and the database: {rtt:.2f} ms"
          + (f" (through a proxy adding {args.rtt_ms:g} ms)" if args.rtt_ms > 0 else ""))
    first = results[0][1]
    for concurrency, elapsed, processed in results:
        print(f"  concurrency {concurrency}: {processed} positions processed in {elapsed:.2f} s ="
              f" {args.devices / elapsed:,.0f} devices/s, {processed / elapsed:,.0f} positions/s;"
              f" {first / elapsed:.2f}x concurrency {results[0][0]};"
              f" ratio / raw COPY {processed / elapsed / baseline:.4f}")
    print(f"  baseline raw binary COPY of one round's rows: {baseline:,.0f} rows/s")
    if any(processed != args.devices * args.positions for _, _, processed in results):
        raise SystemExit("FAILED: not every position was processed")


if __name__ == "__main__":
    main()
