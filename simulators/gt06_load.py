"""Many simulated GT06 trackers over real TCP: log in, report positions, wait for every ack.

Used by the ingest benchmark (``bench/ingest.py``) as a separate process, so the load generator
does not share the server's event loop. Prints one JSON line with counts and ack latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import resource
import sys
import time
from datetime import UTC, datetime, timedelta

from protocols.gt06 import encode_gps, encode_login

ACK_SIZE = 10  # 78 78 05 <type> <serial:2> <crc:2> 0D 0A
T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def imei_for(index: int) -> str:
    return f"86{index:013d}"


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def device(index: int, host: str, port: int, positions: int, start: asyncio.Event,
                 logged_in: list[int], latencies: list[float]) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(encode_login(imei_for(index), 1))
        await reader.readexactly(ACK_SIZE)
        logged_in.append(index)
        await start.wait()
        acked = 0
        lat0, lon0 = 52.0 + (index % 100) * 0.01, 4.0 + (index // 100) * 0.01
        for i in range(positions):
            packet = encode_gps(T0 + timedelta(seconds=10 * i), lat0 + i * 1e-4, lon0, 40, 90, 2 + i % 60000)
            sent = time.perf_counter()
            writer.write(packet)
            ack = await reader.readexactly(ACK_SIZE)
            latencies.append(time.perf_counter() - sent)
            if ack[3] == packet[3]:
                acked += 1
        return acked
    finally:
        writer.close()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(host: str, port: int, devices: int, positions: int) -> dict[str, float | str]:
    start = asyncio.Event()
    latencies: list[float] = []
    logged_in: list[int] = []
    tasks = []
    for k in range(devices):
        tasks.append(asyncio.create_task(device(k, host, port, positions, start, logged_in, latencies)))
        if k % 200 == 199:
            await asyncio.sleep(0.05)  # stagger connects, as a real fleet does
    # Measure steady state: every device connected and logged in before the first report.
    deadline = time.monotonic() + 120
    while len(logged_in) + sum(t.done() for t in tasks) < devices and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    t_start = time.perf_counter()
    start.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.perf_counter() - t_start
    errors = [r for r in results if isinstance(r, BaseException)]
    acked = sum(r for r in results if isinstance(r, int))
    return {
        "devices": devices,
        "acked": acked,
        "errors": len(errors),
        "first_error": repr(errors[0]) if errors else "",
        "elapsed_s": elapsed,
        "ack_p50_ms": percentile(latencies, 0.5) * 1000,
        "ack_p99_ms": percentile(latencies, 0.99) * 1000,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--positions", type=int, default=20)
    args = parser.parse_args()
    raise_fd_limit()
    try:
        import uvloop

        result = uvloop.run(run(args.host, args.port, args.devices, args.positions))
    except ImportError:
        result = asyncio.run(run(args.host, args.port, args.devices, args.positions))
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
