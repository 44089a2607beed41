"""Fences: signed distances against an independent haversine computation, the index against a
brute-force loop over every fence, GeoJSON round trips and refused input.

The independent expectation (:func:`expected`) shares no code with ``processors.fences``: the
boundary is sampled every metre along its GeoJSON edges (straight in lon/lat), the distance is
the least haversine distance to a sample, and inside is decided by even-odd ray casting.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.fences import (
    Fence,
    FenceIndex,
    fence_from_feature,
    fence_from_geojson,
    fence_to_geojson,
)
from processors.geo import EARTH_RADIUS_M

M_PER_DEG = EARTH_RADIUS_M * math.pi / 180
STEP_M = 1.0  # boundary sampling for the expectation: it adds at most STEP_M / 2 of error


# --- an independent expectation -----------------------------------------------------------------


def haversine(lat1: Any, lon1: Any, lat2: float, lon2: float) -> Any:
    p1, p2 = np.radians(lat1), math.radians(lat2)
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * math.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(h))


def samples(line: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    lons, lats = [], []
    for (lon1, lat1), (lon2, lat2) in itertools.pairwise(line):
        n = max(2, math.ceil(float(haversine(lat1, lon1, lat2, lon2)) / STEP_M) + 1)
        t = np.linspace(0.0, 1.0, n)
        lons.append(lon1 + t * (lon2 - lon1))
        lats.append(lat1 + t * (lat2 - lat1))
    return np.concatenate(lats), np.concatenate(lons)


def ray_inside(rings: list[list[list[float]]], lat: float, lon: float) -> bool:
    inside = False
    for ring in rings:
        for (x1, y1), (x2, y2) in itertools.pairwise(ring):
            if (y1 > lat) != (y2 > lat) and lon < x1 + (lat - y1) * (x2 - x1) / (y2 - y1):
                inside = not inside
    return inside


def expected(feature: dict[str, Any], lat: float, lon: float) -> float:
    geometry, props = feature["geometry"], feature["properties"]
    if geometry["type"] == "Point":
        clon, clat = geometry["coordinates"]
        return float(haversine(clat, clon, lat, lon)) - props["radius_m"]
    if geometry["type"] == "LineString":
        lats, lons = samples(geometry["coordinates"])
        return float(haversine(lats, lons, lat, lon).min()) - props["width_m"] / 2
    polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    rings = [ring for poly in polygons for ring in poly]
    near = min(float(haversine(*samples(ring), lat, lon).min()) for ring in rings)
    first = rings[0][0][0]
    unwrapped = lon + 360 if lon - first < -180 else lon - 360 if lon - first > 180 else lon
    return -near if ray_inside(rings, lat, unwrapped) else near


def tolerance(feature: dict[str, Any], lat: float, want: float) -> float:
    """The module's stated error: east-west scale off by cos φ0 / cos φ − 1 at the worst latitude
    between the point and the fence (circles are exact), plus the sampling error."""
    if feature["geometry"]["type"] == "Point":
        return 1e-6
    lats = all_lats(feature["geometry"])
    lat0 = (min(lats) + max(lats)) / 2
    rel = max(abs(math.cos(math.radians(lat0)) / math.cos(math.radians(x)) - 1)
              for x in (lat, min(lats), max(lats)))
    return STEP_M / 2 + (rel + 1e-5) * abs(want)


def all_points(geometry: dict[str, Any]) -> list[list[float]]:
    def walk(c: Any) -> list[list[float]]:
        return [c] if isinstance(c[0], int | float) else [x for sub in c for x in walk(sub)]
    return walk(geometry["coordinates"])


def all_lats(geometry: dict[str, Any]) -> list[float]:
    return [p[1] for p in all_points(geometry)]


# --- fences near a point, in metres --------------------------------------------------------------


def offset(lat: float, lon: float, north_m: float, east_m: float) -> list[float]:
    return [lon + east_m / (M_PER_DEG * math.cos(math.radians(lat))), lat + north_m / M_PER_DEG]


def square(lat: float, lon: float, half_m: float) -> list[list[float]]:
    corners = [(-1, -1), (-1, 1), (1, 1), (1, -1), (-1, -1)]
    return [offset(lat, lon, n * half_m, e * half_m) for n, e in corners]


PLACES = [(52.372, 4.9097), (39.2348, -120.0224), (0.0, 0.0), (-33.87, 151.21), (69.65, 18.96),
          (-84.0, 30.0)]


def fences_at(lat: float, lon: float) -> list[Fence]:
    hole = [list(reversed(square(lat, lon, 150)))]
    south, south_east = offset(lat, lon, -2000, 0), offset(lat, lon, -2000, 400)
    return [
        fence_from_geojson(1, {"type": "Point", "coordinates": [lon, lat]}, radius_m=300),
        fence_from_geojson(2, {"type": "Polygon", "coordinates": [square(lat, lon, 500), *hole]}),
        fence_from_geojson(3, {"type": "Polygon", "coordinates": [
            [offset(lat, lon, n, e) for n, e in [(0, 0), (900, 200), (300, 400), (800, 1200), (-200, 700),
                                                 (0, 0)]]]}),
        fence_from_geojson(4, {"type": "MultiPolygon", "coordinates": [
            [square(south[1], south[0], 100)], [square(south_east[1], south_east[0], 80)]]}),
        fence_from_geojson(5, {"type": "LineString", "coordinates": [
            offset(lat, lon, n, e) for n, e in [(-1500, -1500), (-1000, 200), (300, 300), (1500, -900)]]},
            width_m=60),
    ]


@pytest.mark.parametrize(("lat", "lon"), PLACES)
def test_signed_distances_agree_with_haversine(lat: float, lon: float) -> None:
    fences = fences_at(lat, lon)
    index = FenceIndex(fences)
    rng = np.random.default_rng(7)
    signs: dict[int, set[bool]] = {f.id: set() for f in fences}
    # Points all over, and points within 150 m of each fence's vertices, so each is met on both sides.
    queries = [offset(lat, lon, n, e) for n, e in rng.uniform(-2500, 2500, size=(60, 2))]
    for f in fences:
        vertices = all_points(f.geometry)
        for k in rng.integers(0, len(vertices), 12):
            queries.append(offset(vertices[k][1], vertices[k][0], *rng.uniform(-150, 150, 2)))
    for qlon, qlat in queries:
        got = index.signed_distances(qlat, qlon, 10_000)
        assert set(got) == {f.id for f in fences}
        for f in fences:
            feature = fence_to_geojson(f)
            want = expected(feature, qlat, qlon)
            assert got[f.id] == pytest.approx(want, abs=tolerance(feature, qlat, want)), f.id
            assert f.signed_distance_m(qlat, qlon) == pytest.approx(got[f.id], abs=1e-6)
            signs[f.id].add(want < 0)
    assert all(s == {True, False} for s in signs.values()), "each fence had points inside and out"


def test_hole_and_known_values() -> None:
    lat, lon = 52.372, 4.9097
    index = FenceIndex(fences_at(lat, lon))
    centre = index.signed_distances(lat, lon, 1000)
    # In the hole of fence 2 (150 m from its edges), at the centre of circle 1 and at a vertex of 3.
    assert centre[2] == pytest.approx(150, abs=0.05)
    assert centre[1] == pytest.approx(-300, abs=1e-6)
    assert centre[3] == pytest.approx(0, abs=1e-6)
    qlon, qlat = offset(lat, lon, 0, 300)  # between the hole and the outer edge: 200 m deep
    assert index.signed_distances(qlat, qlon, 0.0)[2] == pytest.approx(-150, abs=0.05)


def test_large_fence_error_stays_within_the_stated_bound() -> None:
    """A 20 km square at 52° N: near its edge the error is about 0.2 % of the distance."""
    lat, lon = 52.0, 5.0
    big = {"type": "Polygon", "coordinates": [square(lat, lon, 10_000)]}
    feature = fence_to_geojson(fence_from_geojson(9, big))
    fence = fence_from_feature(feature)
    rng = np.random.default_rng(3)
    worst = 0.0
    for along, across in zip(rng.uniform(-9000, 9000, 25), rng.uniform(-400, 400, 25), strict=True):
        for north, east in ((10_000 + across, along), (along, 10_000 + across)):
            qlon, qlat = offset(lat, lon, north, east)
            want = expected(feature, qlat, qlon)
            tol = tolerance(feature, qlat, want)
            assert tol - STEP_M / 2 <= 0.0022 * abs(want) + 1e-9
            got = fence.signed_distance_m(qlat, qlon)
            assert got == pytest.approx(want, abs=tol)
            worst = max(worst, abs(got - want))
    assert worst < 2.0


def test_antimeridian() -> None:
    circle = fence_from_geojson(1, {"type": "Point", "coordinates": [179.9995, 10.0]}, radius_m=200)
    poly = fence_from_geojson(2, {"type": "Polygon", "coordinates": [[[179.99, 9.99], [180.0, 9.99],
                                                                        [180.0, 10.01], [179.99, 10.01],
                                                                        [179.99, 9.99]]]})
    index = FenceIndex([circle, poly])
    got = index.signed_distances(10.0, -179.9995, 500)
    for f in (circle, poly):
        want = expected(fence_to_geojson(f), 10.0, -179.9995)
        assert got[f.id] == pytest.approx(want, abs=0.6)
    assert got[1] < 0 < got[2]  # 110 m inside the circle, 55 m east of the polygon
    assert index.signed_distances(10.0, -179.99, 0.0) == {}


# --- the index against brute force ----------------------------------------------------------------


def in_range(points: list[list[float]]) -> list[list[float]] | None:
    for shift in (0.0, 360.0, -360.0):
        moved = [[p[0] + shift, p[1]] for p in points]
        if all(-180 <= p[0] <= 180 for p in moved):
            return moved
    return None


Scene = tuple[list[Fence], float, float, float]  # fences, query latitude, longitude, margin


@st.composite
def scenes(draw: st.DrawFn) -> Scene:
    lat, lon = draw(st.floats(-80, 80)), draw(st.floats(-180, 180))
    metres = st.floats(-20_000, 20_000)
    fences: list[Fence] = []
    for i in range(draw(st.integers(1, 20))):
        north, east = draw(metres), draw(metres)
        kind = draw(st.sampled_from(["circle", "polygon", "corridor"]))
        if kind == "circle":
            pts = in_range([offset(lat, lon, north, east)])
            if pts:
                geometry = {"type": "Point", "coordinates": pts[0]}
                fences.append(fence_from_geojson(i, geometry, radius_m=draw(st.floats(1, 5000))))
            continue
        if kind == "polygon":
            # Star-shaped around the centre, vertices 20° to 120° apart: always a valid polygon.
            angles = [20 * a for a in sorted({0, 6, 12} | draw(st.sets(st.integers(0, 17), max_size=8)))]
            radii = [draw(st.floats(20, 5000)) for _ in angles]
            ring = [offset(lat, lon, north + r * math.sin(math.radians(a)),
                           east + r * math.cos(math.radians(a)))
                    for a, r in zip(angles, radii, strict=True)]
            pts = in_range([*ring, ring[0]])
            if pts:
                fences.append(fence_from_geojson(i, {"type": "Polygon", "coordinates": [pts]}))
            continue
        steps = draw(st.lists(st.tuples(metres, metres), min_size=1, max_size=5))
        line = [offset(lat, lon, north, east)]
        for dn, de in steps:
            north, east = north + dn / 4, east + de / 4
            line.append(offset(lat, lon, north, east))
        pts = in_range(line)
        if pts and any(p != pts[0] for p in pts):
            fences.append(fence_from_geojson(i, {"type": "LineString", "coordinates": pts},
                                             width_m=draw(st.floats(1, 500))))
    qlon, qlat = offset(lat, lon, draw(metres), draw(metres))
    qlon = (qlon + 180) % 360 - 180
    return fences, qlat, qlon, draw(st.floats(0, 8000))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenes(), st.data())
def test_index_agrees_with_brute_force(scene: Scene, data: st.DataObject) -> None:
    fences, lat, lon, margin = scene
    index = FenceIndex(fences)
    brute = {f.id: f.signed_distance_m(lat, lon) for f in fences}
    want = {i: d for i, d in brute.items() if d <= margin}
    got = index.signed_distances(lat, lon, margin)
    on_edge = {i for i, d in brute.items() if abs(d - margin) < 1e-6}
    assert set(got) - on_edge == set(want) - on_edge
    for i in set(got) & set(want):
        assert got[i] == pytest.approx(want[i], abs=1e-6)
    assert [f.id for f in index.near(lat, lon, margin)] == sorted(got, key=lambda i: (got[i], i))
    only = data.draw(st.sets(st.sampled_from([f.id for f in fences]))) if fences else set()
    limited = index.signed_distances(lat, lon, margin, only=only)
    assert set(limited) == set(got) & only


def test_many_fences_agree_with_brute_force() -> None:
    rng = np.random.default_rng(11)
    lat, lon = 39.3, -119.9
    fences = []
    for i in range(1500):
        north, east = rng.uniform(-30_000, 30_000, 2)
        if i % 3 == 0:
            centre = {"type": "Point", "coordinates": offset(lat, lon, north, east)}
            fences.append(fence_from_geojson(i, centre, radius_m=float(rng.uniform(20, 2000))))
        elif i % 3 == 1:
            lat_c, lon_c = offset(lat, lon, north, east)[::-1]
            fences.append(fence_from_geojson(i, {"type": "Polygon", "coordinates": [
                square(lat_c, lon_c, float(rng.uniform(20, 2000)))]}))
        else:
            end = [north + rng.uniform(-3000, 3000), east + rng.uniform(-3000, 3000)]
            fences.append(fence_from_geojson(i, {"type": "LineString", "coordinates": [
                offset(lat, lon, north, east), offset(lat, lon, *end)]}, width_m=float(rng.uniform(10, 300))))
    index = FenceIndex(fences)
    hits = 0
    for north, east in rng.uniform(-30_000, 30_000, size=(150, 2)):
        qlon, qlat = offset(lat, lon, north, east)
        got = index.signed_distances(qlat, qlon, 1000)
        want = {f.id: d for f in fences if (d := f.signed_distance_m(qlat, qlon)) <= 1000}
        assert got.keys() == want.keys()
        assert all(got[i] == pytest.approx(want[i], abs=1e-6) for i in got)
        hits += len(got)
    assert hits > 150  # the queries did meet fences


# --- GeoJSON ------------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(scenes())
def test_geojson_round_trip(scene: Scene) -> None:
    fences, lat, lon, _ = scene
    for f in fences:
        again = fence_from_feature(json.loads(json.dumps(fence_to_geojson(f))))
        assert again == f
        assert again.signed_distance_m(lat, lon) == f.signed_distance_m(lat, lon)


def test_round_trip_keeps_limits_and_attributes_and_drops_altitude() -> None:
    f = fence_from_geojson(7, {"type": "LineString", "coordinates": [[4.9, 52.37, 3.5], [4.91, 52.371]]},
                           width_m=40, speed_limit_kmh=30, attributes={"name": "Dam", "colour": "red"})
    feature = fence_to_geojson(f)
    assert feature["geometry"]["coordinates"] == [[4.9, 52.37], [4.91, 52.371]]
    assert feature["properties"] == {"kind": "corridor", "width_m": 40.0, "speed_limit_kmh": 30.0,
                                     "attributes": {"name": "Dam", "colour": "red"}}
    assert fence_from_feature(feature) == f
    assert f != fence_from_geojson(7, feature["geometry"], width_m=41, speed_limit_kmh=30,
                                   attributes=f.attributes)


BOX = [[4.9, 52.37], [4.91, 52.37], [4.91, 52.38], [4.9, 52.38], [4.9, 52.37]]
BAD: list[tuple[dict[str, Any], dict[str, Any], str]] = [
    ({"type": "Point", "coordinates": [181.0, 10.0]}, {"radius_m": 50}, "longitude 181.0 out of range"),
    ({"type": "Point", "coordinates": [10.0, -91.0]}, {"radius_m": 50}, "latitude -91.0 out of range"),
    ({"type": "Point", "coordinates": [10.0, 86.0]}, {"radius_m": 50}, "near the poles"),
    ({"type": "Point", "coordinates": [10.0, float("nan")]}, {"radius_m": 50}, "finite number"),
    ({"type": "Point", "coordinates": [True, 1.0]}, {"radius_m": 50}, "finite number"),
    ({"type": "Point", "coordinates": [10.0]}, {"radius_m": 50}, r"position \[lon, lat\]"),
    ({"type": "Point", "coordinates": [10.0, 50.0]}, {}, "needs radius_m"),
    ({"type": "Point", "coordinates": [10.0, 50.0]}, {"radius_m": 0.5},
     r"radius_m 0.5 out of range \[1, 100000\]"),
    ({"type": "Point", "coordinates": [10.0, 50.0]}, {"radius_m": 150_000}, "out of range"),
    ({"type": "Point", "coordinates": [10.0, 50.0]}, {"radius_m": 10, "width_m": 5}, "only for corridors"),
    ({"type": "Point", "coordinates": [10.0, 50.0]}, {"radius_m": 10, "speed_limit_kmh": -5},
     "speed_limit_kmh must be positive"),
    ({"type": "Polygon", "coordinates": [BOX[:-1]]}, {}, "not closed"),
    ({"type": "Polygon", "coordinates": [[BOX[0], BOX[1], BOX[0]]]}, {}, "at least 4"),
    ({"type": "Polygon", "coordinates": [[BOX[0], BOX[2], BOX[1], BOX[3], BOX[0]]]}, {}, "Self-intersection"),
    ({"type": "Polygon", "coordinates": [[[4.9, 52.37], [4.91, 52.37], [4.92, 52.37], [4.9, 52.37]]]}, {},
     "invalid polygon|no area"),
    ({"type": "Polygon", "coordinates": []}, {}, "no rings"),
    ({"type": "Polygon", "coordinates": [BOX]}, {"radius_m": 10}, "only for circles"),
    ({"type": "Polygon", "coordinates": [[[0.0, 0.0], [6.0, 0.0], [6.0, 1.0], [0.0, 1.0], [0.0, 0.0]]]}, {},
     "spans 667 km; the limit is 500 km"),
    ({"type": "Polygon", "coordinates": [[[179.9, 0.0], [-179.9, 0.0], [-179.9, 0.1], [179.9, 0.1],
                                          [179.9, 0.0]]]}, {}, "antimeridian"),
    ({"type": "MultiPolygon", "coordinates": [[BOX], [BOX]]}, {}, "invalid polygon"),
    ({"type": "MultiPolygon", "coordinates": []}, {}, "no polygons"),
    ({"type": "LineString", "coordinates": [[4.9, 52.37], [4.9, 52.37]]}, {"width_m": 20}, "two distinct"),
    ({"type": "LineString", "coordinates": [[4.9, 52.37], [4.91, 52.37]]}, {}, "needs width_m"),
    ({"type": "LineString", "coordinates": "4.9,52.37"}, {"width_m": 20}, "must be an array"),
    ({"type": "MultiPoint", "coordinates": [[4.9, 52.37]]}, {}, "expected Point, Polygon"),
    ({"coordinates": [4.9, 52.37]}, {"radius_m": 20}, "geometry type None"),
]


@pytest.mark.parametrize(("geometry", "extra", "message"), BAD)
def test_invalid_input_is_refused(geometry: dict[str, Any], extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fence_from_geojson(1, geometry, **extra)


def test_other_refusals() -> None:
    circle = {"type": "Point", "coordinates": [4.9, 52.37]}
    with pytest.raises(ValueError, match="fence id must be an integer"):
        fence_from_geojson("7", circle, radius_m=10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot make a polygon fence"):
        Fence(1, "polygon", circle)
    with pytest.raises(ValueError, match="expected one of"):
        Fence(1, "square", circle)
    with pytest.raises(ValueError, match="does not match the geometry"):
        fence_from_feature({"id": 1, "geometry": circle, "properties": {"kind": "polygon", "radius_m": 5}})
    one = fence_from_geojson(1, circle, radius_m=10)
    with pytest.raises(ValueError, match="unique"):
        FenceIndex([one, one])
    # An index of no fences answers nothing.
    assert FenceIndex([]).signed_distances(52.37, 4.9, 1000) == {}
