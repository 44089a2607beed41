"""Geofences from GeoJSON, their signed distance in metres, and an index for thousands of them.

Kinds: ``circle`` (GeoJSON Point + ``radius_m``), ``polygon`` (Polygon or MultiPolygon, holes
allowed) and ``corridor`` (LineString + ``width_m``, the total width: ``width_m / 2`` each side,
round ends). Signed distance to the boundary is negative inside, positive outside.

Metres: a circle uses haversine to its centre (exact on the sphere of :mod:`processors.geo`).
Polygons and corridors are drawn in a local equirectangular frame around the centre of their
bounding box (x = Δlon·cos φ0, y = Δlat, both in metres). That map is affine in lon/lat, and
GeoJSON edges are straight lines in lon/lat (RFC 7946 §3.1.1), so edges stay straight and the
inside/outside test is exact. Only the east-west scale is off, by cos φ0 / cos φ − 1 ≈ tan φ0·Δφ
at latitude φ, so a distance is off by at most that fraction of itself (the worst φ between the
point and the fence): a fence 20 km tall at 52° N errs by about 0.2 % near its edge (0.05 m on a
25 m hysteresis margin); one 500 km tall, by about 5 % (more nearer the poles).

Input is refused, never repaired: an unclosed ring or a self-intersecting polygon raises
ValueError naming the problem, because a silent repair (shapely's make_valid splits a bow-tie
into two triangles) may not be the area the person meant to draw. Fences stay within ±85°
latitude (the east-west scale degenerates at the poles) and within 500 km; a fence across the
antimeridian must be split there, as RFC 7946 §3.1.9 asks. Queries do wrap at the antimeridian.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from processors.geo import EARTH_RADIUS_M, haversine_m

M_PER_DEG_LAT = EARTH_RADIUS_M * math.pi / 180
MIN_SIZE_M = 1.0  # radius or width: below GPS noise a fence means nothing
MAX_SIZE_M = 100_000.0
MAX_EXTENT_M = 500_000.0
MAX_FENCE_LAT = 85.0
KINDS = ("circle", "polygon", "corridor")
_SLACK = 1.01  # degree boxes are widened by 1 %: spherical curvature over ≤ 600 km is far less


@dataclass(frozen=True, slots=True)
class _Local:
    """A fence in its own metric frame (derived, never compared)."""

    lat0: float
    lon0: float
    kx: float  # metres per degree of longitude at lat0
    bounds: tuple[float, float, float, float]  # min lon, min lat, max lon, max lat, degrees
    area: BaseGeometry | None  # polygon kind: the area, for the inside test
    edges: BaseGeometry | None  # polygon: its boundary; corridor: its centre line
    depth_m: float  # largest inside depth the fence allows (inscribed radius)


@dataclass(frozen=True, slots=True)
class Fence:
    """Build with :func:`fence_from_geojson`; constructing directly validates the same way.
    ``geometry`` is the normalized GeoJSON geometry (altitudes dropped); do not mutate it."""

    id: int
    kind: str
    geometry: dict[str, Any] = field(hash=False)
    radius_m: float | None = None
    width_m: float | None = None
    speed_limit_kmh: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict, hash=False)
    _local: _Local = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "geometry", _normalize(self.kind, self.geometry))
        object.__setattr__(self, "_local", _validate(self))
        for name in ("radius_m", "width_m", "speed_limit_kmh"):
            if getattr(self, name) is not None:  # validated numbers: stored as floats for JSON
                object.__setattr__(self, name, float(getattr(self, name)))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return self._local.bounds

    @property
    def depth_m(self) -> float:
        """How deep inside a point can be: radius, half width, or the polygon's inscribed radius."""
        return self._local.depth_m

    def signed_distance_m(self, lat: float, lon: float) -> float:
        loc = self._local
        if self.kind == "circle":
            lon_c, lat_c = self.geometry["coordinates"]
            return haversine_m(lat_c, lon_c, lat, lon) - (self.radius_m or 0.0)
        x, y = _wrap(lon - loc.lon0) * loc.kx, (lat - loc.lat0) * M_PER_DEG_LAT
        d = float(shapely.distance(loc.edges, shapely.Point(x, y)))
        if self.kind == "corridor":
            return d - (self.width_m or 0.0) / 2
        return -d if shapely.contains_xy(loc.area, x, y) else d


def fence_from_geojson(id: int, geometry: Mapping[str, Any], radius_m: float | None = None,
                       width_m: float | None = None, speed_limit_kmh: float | None = None,
                       attributes: Mapping[str, Any] | None = None) -> Fence:
    """The kind follows the geometry: Point → circle, (Multi)Polygon → polygon, LineString →
    corridor. Raises ValueError with the reason when the fence cannot be used."""
    gtype = geometry.get("type") if isinstance(geometry, Mapping) else None
    kind = _KIND_OF.get(gtype) if isinstance(gtype, str) else None
    if kind is None:
        raise ValueError(f"geometry type {gtype!r}: expected Point, Polygon, MultiPolygon or LineString")
    return Fence(id, kind, dict(geometry), radius_m, width_m, speed_limit_kmh, dict(attributes or {}))


def fence_to_geojson(fence: Fence) -> dict[str, Any]:
    """A GeoJSON Feature carrying everything :func:`fence_from_feature` needs to rebuild it."""
    props: dict[str, Any] = {"kind": fence.kind, "radius_m": fence.radius_m, "width_m": fence.width_m,
                             "speed_limit_kmh": fence.speed_limit_kmh, "attributes": dict(fence.attributes)}
    return {"type": "Feature", "id": fence.id, "geometry": _copy(fence.geometry),
            "properties": {k: v for k, v in props.items() if v is not None}}


def fence_from_feature(feature: Mapping[str, Any]) -> Fence:
    props = feature.get("properties") or {}
    fence = fence_from_geojson(feature.get("id"), feature.get("geometry"),  # type: ignore[arg-type]
                               props.get("radius_m"), props.get("width_m"),
                               props.get("speed_limit_kmh"), props.get("attributes"))
    if props.get("kind", fence.kind) != fence.kind:
        raise ValueError(f"properties.kind {props['kind']!r} does not match the geometry ({fence.kind})")
    return fence


# --- validation and the local frame ------------------------------------------------------------


def _copy(coords: Any) -> Any:
    if isinstance(coords, dict):
        return {k: _copy(v) for k, v in coords.items()}
    return [_copy(c) for c in coords] if isinstance(coords, list) else coords


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


_KIND_OF = {"Point": "circle", "Polygon": "polygon", "MultiPolygon": "polygon", "LineString": "corridor"}
_NESTING = {"Point": 0, "LineString": 1, "Polygon": 2, "MultiPolygon": 3}


def _normalize(kind: str, geometry: Any) -> dict[str, Any]:
    if kind not in KINDS:
        raise ValueError(f"fence kind {kind!r}: expected one of {KINDS}")
    if not isinstance(geometry, Mapping):
        raise ValueError("geometry must be a GeoJSON geometry object")
    gtype = geometry.get("type")
    if not isinstance(gtype, str) or _KIND_OF.get(gtype) != kind:
        raise ValueError(f"geometry type {gtype!r} cannot make a {kind} fence")
    return {"type": gtype, "coordinates": _positions(geometry.get("coordinates"), _NESTING[gtype],
                                                     "coordinates")}


def _positions(value: Any, depth: int, where: str) -> Any:
    """Nested lists down to [lon, lat] floats, checked against the fence latitude limits."""
    if not isinstance(value, list | tuple):
        raise ValueError(f"{where} must be an array")
    if depth:
        return [_positions(v, depth - 1, f"{where}[{i}]") for i, v in enumerate(value)]
    if len(value) not in (2, 3):
        raise ValueError(f"{where} must be a position [lon, lat] (altitude optional)")
    lon, lat = _number(value[0], f"{where} longitude"), _number(value[1], f"{where} latitude")
    if not -180 <= lon <= 180:
        raise ValueError(f"{where}: longitude {lon} out of range [-180, 180]")
    if not -MAX_FENCE_LAT <= lat <= MAX_FENCE_LAT:
        raise ValueError(f"{where}: latitude {lat} out of range [-{MAX_FENCE_LAT}, {MAX_FENCE_LAT}]"
                         " (fences near the poles are not supported)")
    return [lon, lat]


def _size(value: float | None, what: str, kind: str) -> float:
    if value is None:
        raise ValueError(f"a {kind} fence needs {what}")
    v = _number(value, what)
    if not MIN_SIZE_M <= v <= MAX_SIZE_M:
        raise ValueError(f"{what} {v} out of range [{MIN_SIZE_M:g}, {MAX_SIZE_M:g}] m")
    return v


def _rings(polygon: list[Any], where: str) -> None:
    if not polygon:
        raise ValueError(f"{where} has no rings")
    for i, ring in enumerate(polygon):
        if len(ring) < 4:
            raise ValueError(f"{where} ring {i} has {len(ring)} positions; a closed ring needs at least 4")
        if ring[0] != ring[-1]:
            raise ValueError(f"{where} ring {i} is not closed: its first and last positions differ "
                             "(RFC 7946 §3.1.6)")


def _validate(f: Fence) -> _Local:
    if isinstance(f.id, bool) or not isinstance(f.id, int):
        raise ValueError(f"fence id must be an integer, got {f.id!r}")
    if f.speed_limit_kmh is not None and _number(f.speed_limit_kmh, "speed_limit_kmh") <= 0:
        raise ValueError(f"speed_limit_kmh must be positive, got {f.speed_limit_kmh}")
    if f.kind != "circle" and f.radius_m is not None:
        raise ValueError(f"radius_m is only for circles, not a {f.kind}")
    if f.kind != "corridor" and f.width_m is not None:
        raise ValueError(f"width_m is only for corridors, not a {f.kind}")
    gtype, coords = f.geometry["type"], f.geometry["coordinates"]
    if f.kind == "circle":
        radius = _size(f.radius_m, "radius_m", "circle")
        lon, lat = coords
        return _Local(lat, lon, 0.0, _degree_box(lon, lon, lat, lat, radius), None, None, radius)
    if f.kind == "corridor":
        half = _size(f.width_m, "width_m", "corridor") / 2
        if len(coords) < 2 or all(p == coords[0] for p in coords):
            raise ValueError("a corridor LineString needs at least two distinct positions")
        return _frame(coords, half, lambda shift: shapely.LineString(shift(coords)), None, half)
    polygons = [coords] if gtype == "Polygon" else coords
    if not polygons:
        raise ValueError("MultiPolygon has no polygons")
    for i, poly in enumerate(polygons):
        _rings(poly, f"polygon {i}")
    points = [p for poly in polygons for ring in poly for p in ring]
    raw = shapely.MultiPolygon([(poly[0], poly[1:]) for poly in polygons])
    if not raw.is_valid:
        raise ValueError(f"invalid polygon: {shapely.is_valid_reason(raw)}")

    def build(shift: Any) -> BaseGeometry:
        return shapely.MultiPolygon([(shift(poly[0]), [shift(h) for h in poly[1:]]) for poly in polygons])

    return _frame(points, 0.0, lambda shift: build(shift).boundary, build, None)


def _frame(points: list[list[float]], pad_m: float, edges: Any, area: Any, depth: float | None) -> _Local:
    lons, lats = [p[0] for p in points], [p[1] for p in points]
    lat0, lon0 = (min(lats) + max(lats)) / 2, (min(lons) + max(lons)) / 2
    kx = M_PER_DEG_LAT * math.cos(math.radians(lat0))
    width, height = (max(lons) - min(lons)) * kx, (max(lats) - min(lats)) * M_PER_DEG_LAT
    if max(width, height) > MAX_EXTENT_M:
        raise ValueError(f"fence spans {max(width, height) / 1000:.0f} km; the limit is "
                         f"{MAX_EXTENT_M / 1000:.0f} km (split it, and split at the antimeridian)")

    def shift(ring: list[list[float]]) -> list[tuple[float, float]]:
        return [((lon - lon0) * kx, (lat - lat0) * M_PER_DEG_LAT) for lon, lat in ring]

    shape = area(shift) if area else None
    if shape is not None and shape.area < MIN_SIZE_M**2:
        raise ValueError("polygon has (almost) no area")
    if depth is None:
        depth = shapely.maximum_inscribed_circle(shape).length
    line = edges(shift)
    shapely.prepare(line)
    if shape is not None:
        shapely.prepare(shape)
    return _Local(lat0, lon0, kx, _degree_box(min(lons), max(lons), min(lats), max(lats), pad_m),
                  shape, line, depth)


def _degree_box(lon1: float, lon2: float, lat1: float, lat2: float, pad_m: float
                ) -> tuple[float, float, float, float]:
    dlat = pad_m / M_PER_DEG_LAT
    dlon = _dlon(max(abs(lat1), abs(lat2)) + dlat, pad_m)
    return (lon1 - dlon, lat1 - dlat, lon2 + dlon, lat2 + dlat)


def _dlon(abs_lat: float, metres: float) -> float:
    """Degrees of longitude covering ``metres`` everywhere up to ``abs_lat``, conservatively."""
    cos = math.cos(math.radians(min(abs_lat, 90.0)))
    return 180.0 if cos * 180 * M_PER_DEG_LAT <= metres * _SLACK else metres * _SLACK / (M_PER_DEG_LAT * cos)


def _wrap(dlon: Any) -> Any:
    return (dlon + 180.0) % 360.0 - 180.0


# --- the index ---------------------------------------------------------------------------------

_CIRCLE, _POLYGON, _CORRIDOR = 0, 1, 2


class FenceIndex:
    """Many fences, queried per fix. An STRtree over the fences' degree boxes finds the few
    candidates; their distances are then computed together by numpy and shapely's vectorized
    functions, so a query costs the same with 10 fences or 10,000 around the world."""

    def __init__(self, fences: Iterable[Fence]) -> None:
        self._fences = list(fences)
        self._by_id = {f.id: f for f in self._fences}
        if len(self._by_id) != len(self._fences):
            raise ValueError("fence ids must be unique in an index")
        fs, locs = self._fences, [f._local for f in self._fences]
        self._ids = np.array([f.id for f in fs], dtype=np.int64)
        self._kind = np.array([KINDS.index(f.kind) for f in fs], dtype=np.int8)
        self._lat0 = np.array([loc.lat0 for loc in locs], dtype=float)
        self._lon0 = np.array([loc.lon0 for loc in locs], dtype=float)
        self._kx = np.array([loc.kx for loc in locs], dtype=float)
        self._offset = np.array([f.radius_m or (f.width_m or 0.0) / 2 for f in fs], dtype=float)
        self._area = np.array([loc.area for loc in locs] + [None], dtype=object)[:-1]
        self._edges = np.array([loc.edges for loc in locs] + [None], dtype=object)[:-1]
        boxes = np.array([loc.bounds for loc in locs], dtype=float).reshape(-1, 4)
        self._tree = shapely.STRtree(shapely.box(boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]))
        self._overhang = float(np.max(np.r_[boxes[:, 2] - 180, -180 - boxes[:, 0]], initial=0.0))
        # Half the tallest fence: how far a fence's frame latitude can be from a point near it.
        self._half_tall = float(np.max((boxes[:, 3] - boxes[:, 1]) / 2, initial=0.0))

    def __len__(self) -> int:
        return len(self._fences)

    def __contains__(self, fence_id: object) -> bool:
        return fence_id in self._by_id

    def __getitem__(self, fence_id: int) -> Fence:
        return self._by_id[fence_id]

    @property
    def fences(self) -> list[Fence]:
        return list(self._fences)

    def near(self, lat: float, lon: float, margin_m: float) -> list[Fence]:
        """Fences the point is inside or within ``margin_m`` of, nearest boundary first."""
        found = self.signed_distances(lat, lon, margin_m)
        return [self._by_id[i] for i in sorted(found, key=lambda i: (found[i], i))]

    def signed_distances(self, lat: float, lon: float, margin_m: float,
                         only: Collection[int] | None = None) -> dict[int, float]:
        """Signed distance in metres to every fence whose distance is at most ``margin_m`` (so
        every fence the point is inside), limited to the ids in ``only`` when given."""
        cand = self._candidates(lat, lon, max(margin_m, 0.0))
        if only is not None and len(cand):
            cand = cand[np.fromiter((int(i) in only for i in self._ids[cand]), bool, len(cand))]
        if not len(cand):
            return {}
        dist = np.empty(len(cand))
        kind = self._kind[cand]
        circle = kind == _CIRCLE
        if circle.any():
            c = cand[circle]
            dist[circle] = _haversine(self._lat0[c], self._lon0[c], lat, lon) - self._offset[c]
        if not circle.all():
            c = cand[~circle]
            x = _wrap(lon - self._lon0[c]) * self._kx[c]
            y = (lat - self._lat0[c]) * M_PER_DEG_LAT
            d = shapely.distance(self._edges[c], shapely.points(x, y))
            inside = shapely.contains_xy(self._area[c], x, y)  # False for corridors (no area)
            dist[~circle] = np.where(kind[~circle] == _CORRIDOR, d - self._offset[c], np.where(inside, -d, d))
        keep = dist <= margin_m
        return dict(zip(self._ids[cand][keep].tolist(), dist[keep].tolist(), strict=True))

    def _candidates(self, lat: float, lon: float, margin_m: float) -> np.ndarray:
        if not self._fences:
            return np.empty(0, dtype=np.intp)
        dlat = margin_m * _SLACK / M_PER_DEG_LAT
        dlon = _dlon(abs(lat) + dlat + self._half_tall, margin_m)
        centres = [lon]
        if lon - dlon - self._overhang < -180:
            centres.append(lon + 360)
        if lon + dlon + self._overhang > 180:
            centres.append(lon - 360)
        boxes = shapely.box([c - dlon for c in centres], lat - dlat, [c + dlon for c in centres], lat + dlat)
        found = self._tree.query(boxes)[1]
        return np.unique(found) if len(centres) > 1 else found


def _haversine(lat1: np.ndarray, lon1: np.ndarray, lat2: float, lon2: float) -> np.ndarray:
    p1, p2 = np.radians(lat1), math.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * math.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, np.sqrt(a)))
