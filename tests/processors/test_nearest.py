"""The nearest-neighbour grid agrees with a brute-force search everywhere, including across the
antimeridian and near the poles, with filters and distance limits, while keys move."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.geo import haversine_m
from processors.nearest import NearestIndex

lats = st.floats(-85, 85)
lons = st.floats(-180, 180)
points = st.lists(st.tuples(lats, lons), min_size=0, max_size=60)


def brute(pts: dict[int, tuple[float, float]], lat: float, lon: float, n: int, max_m: float = math.inf,
          accept: set[int] | None = None) -> list[tuple[int, float]]:
    found = sorted(((k, haversine_m(lat, lon, *p)) for k, p in pts.items()
                    if accept is None or k in accept), key=lambda item: (item[1], item[0]))
    return [item for item in found if item[1] <= max_m][:n]


@settings(max_examples=300, deadline=None)
@given(points, lats, lons, st.integers(1, 8), st.sampled_from([0.05, 0.5, 3.0]))
def test_agrees_with_brute_force(pts: list[tuple[float, float]], lat: float, lon: float, n: int,
                                 cell: float) -> None:
    index = NearestIndex(cell)
    table = dict(enumerate(pts))
    for k, (a, b) in table.items():
        index.put(k, a, b)
    got = index.nearest(lat, lon, n)
    want = brute(table, lat, lon, n)
    assert [round(d, 6) for _, d in got] == [round(d, 6) for _, d in want]


@settings(max_examples=200, deadline=None)
@given(points, lats, lons, st.floats(100, 2_000_000), st.data())
def test_limits_filters_and_moves(pts: list[tuple[float, float]], lat: float, lon: float, max_m: float,
                                  data: st.DataObject) -> None:
    index = NearestIndex(0.5)
    table = dict(enumerate(pts))
    for k, (a, b) in table.items():
        index.put(k, a, b)
    for k in list(table)[: len(table) // 3]:  # some move, some leave
        moved = (data.draw(lats), data.draw(lons))
        index.put(k, *moved)
        table[k] = moved
    for k in list(table)[len(table) // 3: len(table) // 2]:
        index.remove(k)
        del table[k]
    allowed = {k for k in table if k % 2 == 0}
    got = index.nearest(lat, lon, 5, max_m=max_m, accept=allowed.__contains__)
    want = brute(table, lat, lon, 5, max_m, allowed)
    assert [round(d, 6) for _, d in got] == [round(d, 6) for _, d in want]
    assert len(index) == len(table)


def test_across_the_antimeridian() -> None:
    index = NearestIndex(0.1)
    index.put(1, 0.0, 179.99)
    index.put(2, 0.0, -179.0)
    assert index.nearest(0.0, -179.99, 1) == [(1, pytest.approx(haversine_m(0, -179.99, 0, 179.99)))]


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        NearestIndex(0)
    with pytest.raises(ValueError):
        NearestIndex().put(1, 91.0, 0.0)
    assert NearestIndex().nearest(0, 0, 3) == []
