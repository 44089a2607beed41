"""Ingest benchmark: N simulated GT06 trackers over loopback TCP -> gateway -> committed rows,
every position acknowledged, against raw psycopg binary COPY of the same rows measured in the
same run on the same database.

    .venv/bin/python -m bench.ingest --devices 1000 --positions 20
    .venv/bin/python -m bench.ingest --devices 20000 --positions 10   # 2 load processes

The trackers are simulated by ``--load-processes`` processes (default: one per 10,000), each
under its own descriptor limit; all log in, then start reporting together. The server samples
how many connections it holds; the peak is printed, with the descriptor limits in force.

Uses the machine's PostgreSQL (127.0.0.1:5432) or FIELDTRACK_BENCH_DATABASE_URL, else embedded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import platform
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from bench.dbsetup import raw_copy_seconds, scratch_database
from fieldtrack.settings import Settings
from gateway.ingest import Ingest
from gateway.processing import ProcessingRunner
from gateway.service import EPHEMERAL, Gateway
from gateway.worker import WorkerConfig
from gateway.workers import GatewayWorkers
from protocols import gt06
from protocols.model import Position
from simulators.gt06_load import T0, imei_for, raise_fd_limit
from storage import db
from storage.devices import DeviceDirectory, DeviceStore
from storage.rows import StoredPosition
from storage.spool import Spool
from storage.timescale import TimescalePolicy
from storage.writer import PositionWriter

# As `fieldtrack serve` runs the processing runner.
PROCESSING_CONCURRENCY = Settings().processing_concurrency


def register(url: str, devices: int) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.cursor().copy("COPY devices (unique_id, name, protocol) FROM STDIN") as copy:
            for k in range(devices):
                copy.write_row((imei_for(k), f"bench {k}", "gt06"))
        return [r[0] for r in conn.execute("SELECT id FROM devices ORDER BY id").fetchall()]


def baseline_copy(url: str, device_ids: list[int], positions: int) -> float:
    """Rows/s of one binary COPY of the same rows into a bare copy of the positions table."""
    now = datetime.now(UTC)
    rows = [
        StoredPosition(did, imei_for(k), "gt06", now,
                       Position(fix_time=T0 + timedelta(seconds=10 * i), latitude=52.0 + i * 1e-4,
                                longitude=4.0, speed_kmh=40.0, course_deg=90.0, valid=True,
                                attributes={"satellites": 8, "ignition": False})).row()
        for k, did in enumerate(device_ids) for i in range(positions)
    ]
    return len(rows) / raw_copy_seconds(url, rows)


DEVICES_PER_LOAD_PROCESS = 10_000


def slices(devices: int, processes: int) -> list[tuple[int, int]]:
    """(first index, count) per load process, as even as the division allows."""
    base, extra = divmod(devices, processes)
    out, first = [], 0
    for k in range(processes):
        count = base + (k < extra)
        out.append((first, count))
        first += count
    return [s for s in out if s[1] > 0]


async def load_run(port: int, devices: int, positions: int, processes: int,
                   login_timeout_s: float) -> list[dict[str, Any]]:
    """Start the load processes, let all log in, then give every one the start signal at once."""
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulators.gt06_load", "--port", str(port), "--devices", str(count),
        "--positions", str(positions), "--first", str(first), "--wait-go",
        "--login-timeout", str(login_timeout_s),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**26)
        for first, count in slices(devices, processes)]
    for proc in procs:
        assert proc.stdout is not None
        ready = await proc.stdout.readline()
        if not ready:
            raise SystemExit(f"FAILED: a load process exited before logging in (rc {await proc.wait()})")
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    results = []
    for proc in procs:
        out, _ = await proc.communicate()
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return results


def merge_loads(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One report from the load processes: sums, the common span, percentiles of all latencies."""
    hist: dict[float, int] = {}
    for part in parts:
        for key, n in part["latency_hist_0.1ms"].items():
            hist[int(key) / 10_000] = hist.get(int(key) / 10_000, 0) + n

    def quantile(q: float) -> float:
        total, seen = sum(hist.values()), 0
        for value in sorted(hist):
            seen += hist[value]
            if seen > q * total:
                return value
        return math.nan

    first_errors = [p["first_error"] for p in parts if p["first_error"]]
    return {
        "acked": sum(p["acked"] for p in parts),
        "errors": sum(p["errors"] for p in parts),
        "first_error": first_errors[0] if first_errors else "",
        "elapsed_s": max(p["wall_end"] for p in parts) - min(p["wall_start"] for p in parts),
        "logged_in_at_start": sum(p["logged_in_at_start"] for p in parts),
        "client_open_peak": sum(p["open_peak"] for p in parts),
        "load_fd_limit": min(p["fd_limit"] for p in parts),
        "ack_p50_ms": quantile(0.5) * 1000,
        "ack_p99_ms": quantile(0.99) * 1000,
        "rss_mb": sum(p["rss_mb"] for p in parts),
        "load_processes": len(parts),
    }


async def _sample_connections(gateway: Gateway, peak: list[int]) -> None:
    while True:
        peak[0] = max(peak[0], sum(len(t.connections) for t in gateway.tcp))
        await asyncio.sleep(0.02)


async def workers_run(url: str, devices: int, positions: int, workers_n: int, processing: bool,
                      load_processes: int, login_timeout_s: float) -> dict[str, Any]:
    """The same load against gateway worker processes, as ``fieldtrack serve`` runs them with
    FIELDTRACK_GATEWAY_WORKERS: each worker its own TCP listener on the shared port, pool, writer."""
    import tempfile

    pool = db.open_pool(url, 4)
    await pool.open()
    runner = ProcessingRunner(pool, concurrency=PROCESSING_CONCURRENCY) if processing else None
    runner_task = asyncio.create_task(runner.run()) if runner else None
    template = WorkerConfig(0, url, tempfile.mkdtemp(prefix="ft-bench-spool-"), {"gt06": EPHEMERAL},
                            host="127.0.0.1", status_interval_s=0.1, log_level="WARNING")
    workers = GatewayWorkers(workers_n, template, on_wake=runner.wake if runner else None)
    await workers.start()
    load = merge_loads(await load_run(workers.ports["gt06"], devices, positions, load_processes,
                                      login_timeout_s))
    await workers.stop()
    finals = [w.last_status or {} for w in workers.workers]
    # Each worker counts its own peak; every device logs in before any reports or leaves (the
    # load's start signal), so their sum is the number held at once.
    load["server_connections_per_worker"] = [sum(r.get("peak_connections", 0) for r in f.get("listeners", []))
                                             for f in finals]
    load["server_connections_peak"] = sum(load["server_connections_per_worker"])
    await _finish(url, load, runner, runner_task)
    await pool.close()
    load["committed"] = _committed(url)
    load["batches"] = sum(int(f.get("batches", 0)) for f in finals)
    main_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load["server_rss_mb"] = main_rss + sum(float(f.get("rss_mb", 0.0)) for f in finals)
    load["server_processes"] = 1 + workers_n
    return load


async def gateway_run(url: str, devices: int, positions: int, processing: bool = False,
                      load_processes: int = 1, login_timeout_s: float = 120.0) -> dict[str, Any]:
    pool = db.open_pool(url, 4 + PROCESSING_CONCURRENCY)
    await pool.open()
    store = DeviceStore(pool)
    directory = DeviceDirectory(store)
    await directory.load()
    import tempfile

    writer = PositionWriter(pool, Spool(Path(tempfile.mkdtemp(prefix="ft-bench-spool-"))))
    writer_task = asyncio.create_task(writer.run())
    runner = ProcessingRunner(pool, concurrency=PROCESSING_CONCURRENCY) if processing else None
    runner_task = asyncio.create_task(runner.run()) if runner else None
    if runner is not None:
        writer.on_new_positions = runner.wake
    gateway = Gateway([gt06.PROTOCOL], {"gt06": EPHEMERAL}, Ingest(directory, store, writer),
                      host="127.0.0.1")
    await gateway.start()
    port = gateway.tcp[0].port
    peak = [0]
    sampler = asyncio.create_task(_sample_connections(gateway, peak))
    load = merge_loads(await load_run(port, devices, positions, load_processes, login_timeout_s))
    sampler.cancel()
    load["server_connections_peak"] = peak[0]
    await gateway.stop_accepting()
    await gateway.close()
    await writer.close()
    await writer_task
    await _finish(url, load, runner, runner_task)
    await pool.close()
    load["committed"] = _committed(url)
    load["batches"] = writer.stats.batches
    load["server_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load["server_processes"] = 1
    return load


async def _finish(url: str, load: dict[str, Any], runner: ProcessingRunner | None,
                  runner_task: asyncio.Task[None] | None) -> None:
    """The load is acked; with a runner, how long until every position is also processed."""
    if runner is None or runner_task is None:
        return
    t = time.perf_counter()
    while await _dirty(url):  # noqa: ASYNC110 - the state is in the database
        await asyncio.sleep(0.05)
    load["processing_catch_up_s"] = time.perf_counter() - t
    load["processed"] = runner.stats.positions
    runner.stop()
    await runner_task


def _committed(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM positions").fetchone()
    return int(row[0]) if row else 0


async def _dirty(url: str) -> int:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        row = await (await conn.execute("SELECT count(*) FROM processing_dirty")).fetchone()
        return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--positions", type=int, default=20, help="positions per device")
    parser.add_argument("--processing", action="store_true",
                        help="run the processing runner in the same process, as `fieldtrack serve` does")
    parser.add_argument("--load-processes", type=int, default=0,
                        help=f"load processes (default: one per {DEVICES_PER_LOAD_PROCESS:,} devices)")
    parser.add_argument("--gateway-workers", type=int, default=0,
                        help="serve the devices from this many gateway worker processes (as"
                        " FIELDTRACK_GATEWAY_WORKERS); 0: in the benchmark's own process")
    parser.add_argument("--login-timeout", type=float, default=120.0,
                        help="seconds the load waits for every device to log in before it starts anyway")
    args = parser.parse_args()
    processes = args.load_processes or max(1, math.ceil(args.devices / DEVICES_PER_LOAD_PROCESS))
    fd_soft, fd_hard = raise_fd_limit()
    with scratch_database() as (url, where):
        asyncio.run(db.prepare(url, TimescalePolicy()))
        device_ids = register(url, args.devices)
        copy_rate = baseline_copy(url, device_ids, args.positions)
        if args.gateway_workers > 0:
            job = workers_run(url, args.devices, args.positions, args.gateway_workers, args.processing,
                              processes, args.login_timeout)
        else:
            job = gateway_run(url, args.devices, args.positions, args.processing, processes,
                              args.login_timeout)
        try:
            import uvloop

            runner: Any = uvloop.run
        except ImportError:
            runner = asyncio.run
        load = runner(job)
    total = args.devices * args.positions
    rate = load["acked"] / load["elapsed_s"] if load["elapsed_s"] else 0.0
    print(f"ingest benchmark  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {platform.node()}  "
          f"{platform.python_version()}  database: {where}")
    print(f"  devices (TCP connections) {args.devices}, positions per device {args.positions}, total {total}")
    print(f"  connections: {load['logged_in_at_start']} logged in when reporting started;"
          f" held at peak: {load['server_connections_peak']} by the server"
          f" ({load['server_processes']} process{'es' if load['server_processes'] > 1 else ''}),"
          f" {load['client_open_peak']} open by the load generator")
    print(f"  load generator: {load['load_processes']} processes; descriptor limit (RLIMIT_NOFILE)"
          f" server {fd_soft}/{fd_hard} soft/hard, each load process {load['load_fd_limit']}")
    print(f"  end to end: {load['acked']} acked, {load['committed']} committed, {load['errors']} errors"
          f" {load['first_error']}")
    print(f"  end to end: {rate:,.0f} positions/s acked in {load['elapsed_s']:.2f} s"
          f" ({load['batches']} writer batches)")
    print(f"  ack latency p50 {load['ack_p50_ms']:.1f} ms, p99 {load['ack_p99_ms']:.1f} ms")
    if "server_connections_per_worker" in load:
        print(f"  gateway workers: {args.gateway_workers}; peak connections per worker"
              f" {load['server_connections_per_worker']}")
    print(f"  RSS: server {load['server_rss_mb']:.0f} MB, load generator {load['rss_mb']:.0f} MB"
          f" (sum of {load['load_processes']} processes)")
    print(f"  baseline raw binary COPY of the same rows: {copy_rate:,.0f} rows/s")
    print(f"  ratio end-to-end / raw COPY: {rate / copy_rate:.3f}")
    if args.processing:
        print(f"  processing in the same process: {load['processed']} positions processed; caught up"
              f" {load['processing_catch_up_s']:.2f} s after the last ack")
    if load["committed"] != total or load["acked"] != total:
        raise SystemExit("FAILED: not every position was acked and committed")


if __name__ == "__main__":
    main()
