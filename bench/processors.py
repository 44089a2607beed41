"""Processor throughput: the Reno drive (4,469 real fixes, every sentence → 13,407 positions)
through the whole pipeline with 10,000 geofences scattered over the area it drives through.

    .venv/bin/python -m bench.processors --fences 10000 --repeat 3

Baselines in the same run: the same pipeline without geofences, and a bare loop computing the
haversine distance between consecutive fixes (the least any odometer must do). Then the
processing runner end to end on the database (read positions, step, write marks, records and
state), against raw binary COPY of the same rows.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import platform
import random
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench.dbsetup import raw_copy_seconds, scratch_database
from gateway.processing import ProcessingRunner
from processors import pipeline
from processors.fences import Fence, FenceIndex, fence_from_geojson
from processors.fix import Fix
from processors.geo import haversine_m
from protocols import nmea
from protocols.model import Position, Session
from storage import db
from storage.rows import StoredPosition
from storage.timescale import TimescalePolicy
from storage.writer import insert_rows

RENO = Path(__file__).resolve().parent.parent / "tests/data/nmea/nmeaparser__NmeaSampleData.nmea.gz"


def reno_positions() -> list[Position]:
    import gzip

    session = Session(transport="tcp", unique_id="reno")
    out: list[Position] = []
    for line in gzip.decompress(RENO.read_bytes()).splitlines():
        try:
            out.extend(nmea.PROTOCOL.decode(line.strip(), session).positions)
        except ValueError:
            continue  # the log's garbage first line
    return [p for p in out if p.latitude is not None]


def to_fixes(positions: list[Position]) -> list[Fix]:
    from processors.convert import fix_from_position

    fixes = [fix_from_position(p, key=k) for k, p in enumerate(positions)]
    return sorted((f for f in fixes if f is not None), key=lambda f: f.order)


def scatter_fences(fixes: list[Fix], count: int, seed: int = 7) -> list[Fence]:
    """Circles, polygons and corridors of 50 m-2 km over the drive's bounding box."""
    rng = random.Random(seed)
    lats = [f.latitude for f in fixes]
    lons = [f.longitude for f in fixes]
    south, north, west, east = min(lats), max(lats), min(lons), max(lons)
    fences = []
    for k in range(count):
        lat, lon = rng.uniform(south, north), rng.uniform(west, east)
        size = rng.uniform(0.0005, 0.02)
        kind = k % 3
        if kind == 0:
            fences.append(fence_from_geojson(k + 1, {"type": "Point", "coordinates": [lon, lat]},
                                             radius_m=size * 100_000))
        elif kind == 1:
            ring = [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]
            fences.append(fence_from_geojson(k + 1, {"type": "Polygon", "coordinates": [ring]}))
        else:
            line = [[lon, lat], [lon + size, lat + size / 2], [lon + 2 * size, lat]]
            fences.append(fence_from_geojson(k + 1, {"type": "LineString", "coordinates": line},
                                             width_m=50.0))
    return fences


def run_pipeline(fixes: list[Fix], index: FenceIndex) -> tuple[float, int]:
    state = pipeline.DeviceState()
    params = pipeline.PipelineParams()
    outputs = 0
    start = time.perf_counter()
    for fix in fixes:
        _, out = pipeline.step(state, fix, params, index)
        outputs += len(out)
    return time.perf_counter() - start, outputs


def bare_loop(fixes: list[Fix]) -> float:
    start = time.perf_counter()
    total = 0.0
    for a, b in itertools.pairwise(fixes):
        total += haversine_m(a.latitude, a.longitude, b.latitude, b.longitude)
    return time.perf_counter() - start


async def runner_end_to_end(url: str, positions: list[Position], devices: int) -> tuple[float, float, int]:
    """(runner seconds, COPY seconds, rows) for ``devices`` copies of the drive."""
    with psycopg.connect(url, autocommit=True) as conn:
        ids = [conn.execute("INSERT INTO devices (unique_id, name) VALUES (%s, %s) RETURNING id",
                            (f"reno-{k}", f"reno {k}")).fetchone()[0] for k in range(devices)]  # type: ignore[index]
    now = datetime.now(UTC)
    rows = [StoredPosition(d, f"reno-{d}", "nmea", now, p) for d in ids for p in positions]
    pool = db.open_pool(url, 2)
    await pool.open()
    try:
        async with pool.connection() as conn:
            for start in range(0, len(rows), 5000):
                await insert_rows(conn, rows[start:start + 5000])
        runner = ProcessingRunner(pool)
        t = time.perf_counter()
        for d in ids:
            await runner.process(d)
        runner_s = time.perf_counter() - t
    finally:
        await pool.close()
    copy_s = raw_copy_seconds(url, [r.row() for r in rows])
    return runner_s, copy_s, len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fences", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="passes over the drive (best is reported)")
    parser.add_argument("--devices", type=int, default=10, help="copies of the drive for the runner run")
    args = parser.parse_args()
    positions = reno_positions()
    fixes = to_fixes(positions)
    t = time.perf_counter()
    fences = scatter_fences(fixes, args.fences)
    index = FenceIndex(fences)
    build_s = time.perf_counter() - t
    empty = FenceIndex([])
    with_fences = min(run_pipeline(fixes, index) for _ in range(args.repeat))
    without = min(run_pipeline(fixes, empty) for _ in range(args.repeat))
    bare = min(bare_loop(fixes) for _ in range(args.repeat))
    with scratch_database() as (url, where):
        asyncio.run(db.prepare(url, TimescalePolicy()))
        runner_s, copy_s, rows = asyncio.run(runner_end_to_end(url, positions, args.devices))
    n = len(fixes)
    print(f"processor benchmark  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {platform.node()}  "
          f"{platform.python_version()}  database: {where}")
    print(f"  input: Reno drive, {n} positions (every NMEA sentence), best of {args.repeat}")
    print(f"  geofences: {len(fences)} (circles, polygons, corridors), built and indexed in {build_s:.2f} s")
    print(f"  pipeline with {len(fences)} geofences: {n / with_fences[0]:,.0f} positions/s"
          f" ({with_fences[1]} records and events)")
    print(f"  pipeline without geofences: {n / without[0]:,.0f} positions/s")
    print(f"  baseline bare haversine loop: {n / bare:,.0f} positions/s")
    print(f"  ratio pipeline with geofences / bare loop: {bare / with_fences[0]:.4f}")
    print(f"  runner end to end (read, process, write marks, records, state): {rows / runner_s:,.0f}"
          f" positions/s for {args.devices} devices x {len(positions)}")
    print(f"  baseline raw binary COPY of the same rows: {rows / copy_s:,.0f} rows/s")
    print(f"  ratio runner / raw COPY: {copy_s / runner_s:.3f}")


if __name__ == "__main__":
    main()
