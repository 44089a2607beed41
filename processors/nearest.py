"""Nearest moving things to a point: a grid over latitude/longitude searched in rings.

The dispatcher's "who is nearest to this customer" must answer in milliseconds for 100k reps whose
positions change every few seconds. A uniform grid makes an update O(1) (move a key between two
cells) and a query touch only the cells around the point: rings of cells are visited outward
until the n-th best distance is closer than anything the next ring could hold. A tree (k-d,
R-tree) would answer as fast but must be rebuilt or rebalanced as everyone moves.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

from processors.geo import haversine_m

M_PER_DEG = 111_195.0  # metres per degree of latitude on the mean-radius sphere


class NearestIndex:
    def __init__(self, cell_deg: float = 0.1) -> None:
        if not 0 < cell_deg <= 10:
            raise ValueError("cell_deg must be in (0, 10]")
        self.cell_deg = cell_deg
        self._columns = round(360 / cell_deg)
        self._cells: dict[tuple[int, int], set[int]] = {}
        self._where: dict[int, tuple[float, float, tuple[int, int]]] = {}

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, key: object) -> bool:
        return key in self._where

    def _cell(self, lat: float, lon: float) -> tuple[int, int]:
        return math.floor((lat + 90) / self.cell_deg), math.floor((lon + 180) / self.cell_deg) % self._columns

    def put(self, key: int, lat: float, lon: float) -> None:
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ValueError(f"({lat}, {lon}) is not a position")
        cell = self._cell(lat, lon)
        old = self._where.get(key)
        if old is not None and old[2] != cell:
            self._discard(key, old[2])
        self._cells.setdefault(cell, set()).add(key)
        self._where[key] = (lat, lon, cell)

    def remove(self, key: int) -> None:
        old = self._where.pop(key, None)
        if old is not None:
            self._discard(key, old[2])

    def _discard(self, key: int, cell: tuple[int, int]) -> None:
        members = self._cells.get(cell)
        if members is not None:
            members.discard(key)
            if not members:
                del self._cells[cell]

    def position(self, key: int) -> tuple[float, float] | None:
        found = self._where.get(key)
        return None if found is None else (found[0], found[1])

    def nearest(self, lat: float, lon: float, n: int, max_m: float = math.inf,
                accept: Callable[[int], bool] | None = None) -> list[tuple[int, float]]:
        """Up to ``n`` (key, metres) nearest first, within ``max_m``, among keys ``accept`` allows."""
        if n <= 0 or not self._where:
            return []
        row, col = self._cell(lat, lon)
        best: list[tuple[float, int]] = []  # max-heap by negated distance, at most n entries
        seen: set[int] = set()

        def consider(key: int) -> None:
            seen.add(key)
            if accept is not None and not accept(key):
                return
            klat, klon, _ = self._where[key]
            d = haversine_m(lat, lon, klat, klon)
            if d > max_m:
                return
            if len(best) < n:
                heapq.heappush(best, (-d, key))
            elif d < -best[0][0]:
                heapq.heapreplace(best, (-d, key))

        ring = 0
        while True:
            bound = self._ring_bound_m(lat, ring)
            if bound > max_m or (len(best) == n and bound > -best[0][0]):
                break
            if 8 * ring >= len(self._where) - len(seen):
                # Sparse around here: the next ring has more cells than keys are left, so
                # looking at every remaining key is cheaper than walking empty cells.
                for key in self._where.keys() - seen:
                    consider(key)
                break
            for cell in self._ring(row, col, ring):
                for key in self._cells.get(cell, ()):
                    if key not in seen:
                        consider(key)
            ring += 1
        return sorted(((key, -neg) for neg, key in best), key=lambda item: (item[1], item[0]))

    def _ring_bound_m(self, lat: float, ring: int) -> float:
        """No point in ring ``ring`` is nearer than this: it is at least ring - 1 whole cells away
        along latitude or along longitude (whose cells narrow towards the poles)."""
        if ring <= 1:
            return 0.0
        reach = min(89.999, abs(lat) + ring * self.cell_deg)
        width = self.cell_deg * M_PER_DEG * math.cos(math.radians(reach))
        return (ring - 1) * min(self.cell_deg * M_PER_DEG, width)

    def _ring(self, row: int, col: int, ring: int) -> list[tuple[int, int]]:
        if ring == 0:
            return [(row, col)]
        span = range(-ring, ring + 1)
        cells = {(row + dr, (col + dc) % self._columns) for dr in span for dc in (-ring, ring)}
        cells |= {(row + dr, (col + dc) % self._columns) for dr in (-ring, ring) for dc in span}
        return list(cells)
