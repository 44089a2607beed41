"""Many simulated GT06 trackers over real TCP: log in, report positions, wait for every ack.

Used by the ingest benchmark (``bench/ingest.py``) as one or more separate processes, so the load
generator does not share the server's event loop (and each process stays under its descriptor
limit). Prints one JSON line with counts and ack latencies. With ``--wait-go`` it first prints
``{"ready": <logged in>}`` once every device has logged in (or the login timeout passed) and waits
for a line on stdin, so several processes start reporting at the same moment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from protocols.gt06 import encode_gps, encode_login

ACK_SIZE = 10  # 78 78 05 <type> <serial:2> <crc:2> 0D 0A
T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def imei_for(index: int) -> str:
    return f"86{index:013d}"


def raise_fd_limit() -> tuple[int, int]:
    """Soft descriptor limit up to the hard one (raising the hard one needs CAP_SYS_RESOURCE);
    returns the limits now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


@dataclass
class Fleet:
    """What the devices of one process share: the start signal and the tallies."""

    start: asyncio.Event = field(default_factory=asyncio.Event)
    logged_in: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    open_now: int = 0
    open_peak: int = 0


async def device(index: int, host: str, port: int, positions: int, fleet: Fleet) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    fleet.open_now += 1
    fleet.open_peak = max(fleet.open_peak, fleet.open_now)
    try:
        writer.write(encode_login(imei_for(index), 1))
        await reader.readexactly(ACK_SIZE)
        fleet.logged_in.append(index)
        await fleet.start.wait()
        acked = 0
        lat0, lon0 = 52.0 + (index % 100) * 0.01, 4.0 + (index // 100) * 0.01
        for i in range(positions):
            packet = encode_gps(T0 + timedelta(seconds=10 * i), lat0 + i * 1e-4, lon0, 40, 90, 2 + i % 60000)
            sent = time.perf_counter()
            writer.write(packet)
            ack = await reader.readexactly(ACK_SIZE)
            fleet.latencies.append(time.perf_counter() - sent)
            if ack[3] == packet[3]:
                acked += 1
        return acked
    finally:
        fleet.open_now -= 1
        writer.close()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency_histogram(latencies: list[float]) -> dict[str, int]:
    """Latencies in 0.1 ms steps: small enough to print, exact enough to merge processes' p99."""
    return {str(k): n for k, n in Counter(round(x * 10_000) for x in latencies).items()}


async def _go_signal() -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)


async def run(host: str, port: int, devices: int, positions: int, *, first: int = 0,
              wait_go: bool = False, login_timeout_s: float = 120.0) -> dict[str, object]:
    fleet = Fleet()
    tasks = []
    for k in range(devices):
        tasks.append(asyncio.create_task(device(first + k, host, port, positions, fleet)))
        if k % 200 == 199:
            await asyncio.sleep(0.05)  # stagger connects, as a real fleet does
    # Measure steady state: every device connected and logged in before the first report.
    deadline = time.monotonic() + login_timeout_s
    while len(fleet.logged_in) + sum(t.done() for t in tasks) < devices and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    logged_in_at_start, open_at_start = len(fleet.logged_in), fleet.open_now
    if wait_go:
        print(json.dumps({"ready": logged_in_at_start}), flush=True)
        await _go_signal()
    t_start = time.perf_counter()
    wall_start = time.time()
    fleet.start.set()
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
        "wall_start": wall_start,
        "wall_end": wall_start + elapsed,
        "logged_in_at_start": logged_in_at_start,
        "open_at_start": open_at_start,
        "open_peak": fleet.open_peak,
        "fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "ack_p50_ms": percentile(fleet.latencies, 0.5) * 1000,
        "ack_p99_ms": percentile(fleet.latencies, 0.99) * 1000,
        "latency_hist_0.1ms": latency_histogram(fleet.latencies),
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--positions", type=int, default=20)
    parser.add_argument("--first", type=int, default=0, help="index of the first device (IMEIs follow it)")
    parser.add_argument("--wait-go", action="store_true",
                        help='print {"ready": n} once logged in, start reporting on a line on stdin')
    parser.add_argument("--login-timeout", type=float, default=120.0, help="seconds to wait for logins")
    args = parser.parse_args()
    raise_fd_limit()
    work = run(args.host, args.port, args.devices, args.positions, first=args.first, wait_go=args.wait_go,
               login_timeout_s=args.login_timeout)
    try:
        import uvloop

        result = uvloop.run(work)
    except ImportError:
        result = asyncio.run(work)
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
