"""Dispatch benchmark: "the N reps nearest to this point" among 100,000 reps spread over a
country-sized area (the Netherlands and Belgium, 50.5-53.5 N, 3-7.2 E), as the API's locator
answers it: a grid lookup, with and without a team filter, while reps move.

    .venv/bin/python -m bench.dispatch --reps 100000 --queries 2000

Baseline in the same run: the straightforward answer, a haversine to every rep and a partial sort
(numpy, vectorized). Target (field-sales issue): p99 at most 5 ms for 100k reps.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import time
from datetime import UTC, datetime
from functools import partial

import numpy as np

from processors.nearest import NearestIndex

SOUTH, NORTH, WEST, EAST = 50.5, 53.5, 3.0, 7.2
EARTH_M = 6_371_008.8


def in_team(teams: list[int], team: int, key: int) -> bool:
    return teams[key] == team


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--n", type=int, default=10)
    args = parser.parse_args()
    rng = random.Random(5)
    lats = [rng.uniform(SOUTH, NORTH) for _ in range(args.reps)]
    lons = [rng.uniform(WEST, EAST) for _ in range(args.reps)]
    teams = [k % 50 for k in range(args.reps)]
    index = NearestIndex(0.05)
    t = time.perf_counter()
    for k in range(args.reps):
        index.put(k, lats[k], lons[k])
    build_s = time.perf_counter() - t
    queries = [(rng.uniform(SOUTH, NORTH), rng.uniform(WEST, EAST)) for _ in range(args.queries)]

    plain, filtered, moves = [], [], []
    for q, (lat, lon) in enumerate(queries):
        t = time.perf_counter()
        index.nearest(lat, lon, args.n)
        plain.append(time.perf_counter() - t)
        t = time.perf_counter()
        index.nearest(lat, lon, args.n, accept=partial(in_team, teams, q % 50))
        filtered.append(time.perf_counter() - t)
        mover = rng.randrange(args.reps)  # reps move between queries, as live positions do
        t = time.perf_counter()
        index.put(mover, lats[mover] + rng.uniform(-0.01, 0.01), lons[mover] + rng.uniform(-0.01, 0.01))
        moves.append(time.perf_counter() - t)

    lat_r, lon_r = np.radians(np.array(lats)), np.radians(np.array(lons))
    cos_lat = np.cos(lat_r)
    brute = []
    for lat, lon in queries[: max(1, args.queries // 4)]:
        t = time.perf_counter()
        la, lo = np.radians(lat), np.radians(lon)
        a = np.sin((lat_r - la) / 2) ** 2 + np.cos(la) * cos_lat * np.sin((lon_r - lo) / 2) ** 2
        idx = np.argpartition(a, args.n)[: args.n]
        (2 * EARTH_M * np.arcsin(np.sqrt(a[idx[np.argsort(a[idx])]]))).tolist()
        brute.append(time.perf_counter() - t)

    ms = 1000.0
    print(f"dispatch benchmark  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {platform.node()}  "
          f"{platform.python_version()}")
    print(f"  reps {args.reps} over {NORTH - SOUTH:.1f} x {EAST - WEST:.1f} degrees, grid built in"
          f" {build_s:.2f} s; {args.queries} queries for the {args.n} nearest")
    print(f"  grid: p50 {statistics.median(plain) * ms:.3f} ms, p99 {percentile(plain, 0.99) * ms:.3f} ms")
    print(f"  grid, one team of 50: p50 {statistics.median(filtered) * ms:.3f} ms,"
          f" p99 {percentile(filtered, 0.99) * ms:.3f} ms")
    print(f"  a rep moving: p50 {statistics.median(moves) * 1e6:.1f} us")
    print(f"  baseline numpy haversine to every rep: p50 {statistics.median(brute) * ms:.3f} ms,"
          f" p99 {percentile(brute, 0.99) * ms:.3f} ms")
    print(f"  ratio grid p99 / baseline p99: {percentile(plain, 0.99) / percentile(brute, 0.99):.3f}")


if __name__ == "__main__":
    main()
