"""Deterministic movement of a field rep: driving between customers on a street grid, visiting them,
stopping at lights, parked at home at night; plus the cheats anti-cheat must find.

Everything comes from one seed: the same seed and start give the same track, sample for sample.
The model, in a local plane (metres east/north of ``MovementConfig.center``):

- streets form a grid of ``block_m`` blocks aligned north/east; homes and customers sit on its
  intersections and a drive follows an L-shaped route (one street, a turn, another street);
- speed follows bounded acceleration and braking (1 s steps): up to the leg's cruise speed, down to
  ``turn_kmh`` at the corner and to 0 at red lights (``light_probability`` per intersection, a
  ``light_s`` wait) and at the destination;
- a workday visits ``visits_per_day`` of the rep's customers in nearest-neighbour order, each for
  ``visit_minutes``; then home, parked until the next day, with a few metres of GPS jitter;
- a tunnel (``tunnel_probability`` per leg) is a stretch of a leg without fixes (``at`` gives None);
- a dead zone (``dead_zone_probability`` per leg) is a time without mobile data: fixes go on, marked
  ``online=False``, and devices keep them to upload as a buffer once the network is back;
- cheats: ``mock`` pins the phone at one customer with ``mock=True`` and no jitter at all (what a
  mock-location app reports); ``teleport`` shifts the track ``teleport_km`` away for ``teleport_s``.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

EARTH_M_PER_DEG = 111_320.0
CHEATS = ("mock", "teleport")
Point = tuple[float, float]  # metres east, north of the centre


@dataclass(frozen=True, slots=True)
class MovementConfig:
    center: tuple[float, float] = (52.3702, 4.8952)  # lat, lon of the city
    territory_m: float = 3000.0  # customers lie within this of the rep's territory centre
    spread_m: float = 6000.0  # territory centres lie within this of the city centre
    customers: int = 20
    visits_per_day: int = 6
    block_m: float = 150.0
    cruise_kmh: tuple[float, float] = (30.0, 50.0)
    turn_kmh: float = 15.0
    accel_ms2: float = 1.5
    brake_ms2: float = 2.5
    light_probability: float = 0.2
    light_s: tuple[float, float] = (15.0, 60.0)
    visit_minutes: tuple[float, float] = (6.0, 20.0)
    first_leave_s: tuple[float, float] = (0.0, 300.0)  # after the track's start, each day
    jitter_m: float = 3.0  # parked and visiting: GPS noise (standard deviation per axis)
    moving_jitter_m: float = 1.0
    tunnel_probability: float = 0.05
    tunnel_m: tuple[float, float] = (150.0, 500.0)
    dead_zone_probability: float = 0.05
    dead_zone_s: tuple[float, float] = (60.0, 300.0)
    teleport_after_s: float = 900.0
    teleport_s: float = 300.0
    teleport_km: float = 40.0

    def __post_init__(self) -> None:
        if self.accel_ms2 <= 0 or self.brake_ms2 <= 0 or self.block_m <= 0:
            raise ValueError("accelerations and block size must be positive")
        if not 0 < self.cruise_kmh[0] <= self.cruise_kmh[1]:
            raise ValueError("cruise_kmh must be (low, high) with 0 < low <= high")
        if self.visit_minutes[0] < 0 or self.visit_minutes[0] > self.visit_minutes[1]:
            raise ValueError("visit_minutes must be (low, high) with 0 <= low <= high")


@dataclass(frozen=True, slots=True)
class Fix:
    time: datetime
    lat: float
    lon: float
    speed_kmh: float
    course_deg: float
    accuracy_m: float
    altitude_m: float
    ignition: bool
    mock: bool = False
    online: bool = True  # False in a dead zone: no mobile data to send it now


@dataclass(frozen=True, slots=True)
class Stop:
    """A stationary piece of the plan: ``kind`` is home, visit, light or mock."""

    start: datetime
    end: datetime
    x: float
    y: float
    kind: str


@dataclass(slots=True)
class _Leg:
    start: datetime
    samples: list[tuple[float, float, float, float]]  # x, y, speed m/s, course, one per second
    dark: tuple[int, int] = (0, 0)  # sample indexes [from, to) inside a tunnel

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=len(self.samples) - 1)


@dataclass(slots=True)
class _Rep:
    home: tuple[float, float]
    customers: list[tuple[float, float]] = field(default_factory=list)


class Track:
    """One device's movement, sampled at non-decreasing times with :meth:`at`."""

    def __init__(self, config: MovementConfig, seed: str | int, start: datetime,
                 cheat: str | None = None) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if cheat is not None and cheat not in CHEATS:
            raise ValueError(f"unknown cheat {cheat!r} (known: {', '.join(CHEATS)})")
        self.config = config
        self.seed = str(seed)
        self.start = start
        self.cheat = cheat
        self.rng = random.Random(f"plan:{self.seed}")
        self._noise_key = int.from_bytes(hashlib.blake2b(self.seed.encode(), digest_size=8).digest(), "big")
        self.rep = self._rep()
        self.stops: list[Stop] = []  # every stationary piece planned so far (for tests and reports)
        self.dead_zones: list[tuple[datetime, datetime]] = []  # planned so far, by start time
        self._zones_from = 0
        self._pieces = self._timeline()
        self._piece: Stop | _Leg = next(self._pieces)
        self._last: datetime | None = None

    # --- the plan -------------------------------------------------------------------------

    def _grid(self, x: float, y: float) -> tuple[float, float]:
        b = self.config.block_m
        return (round(x / b) * b, round(y / b) * b)

    def _around(self, cx: float, cy: float, radius: float) -> tuple[float, float]:
        r = radius * math.sqrt(self.rng.random())
        a = self.rng.uniform(0, 2 * math.pi)
        return self._grid(cx + r * math.cos(a), cy + r * math.sin(a))

    def _rep(self) -> _Rep:
        c = self.config
        tx, ty = self._around(0, 0, c.spread_m)
        rep = _Rep(home=self._around(tx, ty, c.territory_m))
        while len(rep.customers) < max(c.customers, 1):
            point = self._around(tx, ty, c.territory_m)
            if point != rep.home and point not in rep.customers:
                rep.customers.append(point)
        return rep

    def _stop(self, start: datetime, seconds: float, x: float, y: float, kind: str) -> Stop:
        stop = Stop(start, start + timedelta(seconds=seconds), x, y, kind)
        self.stops.append(stop)
        return stop

    def _timeline(self) -> Iterator[Stop | _Leg]:
        c = self.config
        if self.cheat == "mock":
            x, y = self.rep.customers[0]
            yield self._stop(self.start, 10 * 365 * 86400.0, x, y, "mock")
            return
        day = self.start
        while True:
            now = day
            here = self.rep.home
            leave = self.rng.uniform(*c.first_leave_s)
            if leave > 0:
                yield self._stop(now, leave, *here, "home")
                now += timedelta(seconds=leave)
            picked = self.rng.sample(self.rep.customers, min(c.visits_per_day, len(self.rep.customers)))
            for target in [*_nearest_first(here, picked), self.rep.home]:
                for piece in self._drive(now, here, target):
                    yield piece
                    now = piece.end
                here = target
                if target != self.rep.home:
                    stay = self.rng.uniform(*c.visit_minutes) * 60
                    yield self._stop(now, stay, *target, "visit")
                    now += timedelta(seconds=stay)
            day = max(day + timedelta(days=1), now + timedelta(hours=1))
            yield self._stop(now, (day - now).total_seconds(), *here, "home")

    def _drive(self, start: datetime, a: Point, b: Point) -> Iterator[Stop | _Leg]:
        """Legs between red lights (each light a Stop) along an L-shaped route from a to b."""
        c = self.config
        corner = (b[0], a[1]) if self.rng.random() < 0.5 else (a[0], b[1])
        route = [a]
        for p in (corner, b):
            if p != route[-1]:
                route.append(p)
        ends = [0.0]
        for p, q in itertools.pairwise(route):
            ends.append(ends[-1] + math.dist(p, q))
        if ends[-1] == 0:
            return
        lights: list[tuple[float, float]] = []  # (distance along the route, wait s)
        for i in range(1, len(route)):
            span = ends[i] - ends[i - 1]
            blocks = round(span / c.block_m)
            for k in range(1, blocks):
                if self.rng.random() < c.light_probability:
                    lights.append((ends[i - 1] + span * k / blocks, self.rng.uniform(*c.light_s)))
        corners = ends[1:-1]
        now, here = start, 0.0
        for there, wait in [*lights, (ends[-1], 0.0)]:
            leg = self._run(now, route, ends, here, there, [d for d in corners if here < d < there])
            yield leg
            now, here = leg.end, there
            if wait > 0:
                x, y, _ = _along(route, ends, there)
                yield self._stop(now, wait, x, y, "light")
                now += timedelta(seconds=wait)

    def _run(self, start: datetime, route: list[tuple[float, float]], ends: list[float], begin: float,
             finish: float, corners: list[float]) -> _Leg:
        """Drive the route from ``begin`` to ``finish`` (metres along it), standstill to standstill,
        in 1 s steps, slowing to ``turn_kmh`` at ``corners``."""
        c = self.config
        cruise = self.rng.uniform(*c.cruise_kmh) / 3.6
        limits = [(d, c.turn_kmh / 3.6) for d in corners] + [(finish, 0.0)]
        s, v = begin, 0.0
        samples = [(*_along(route, ends, s)[:2], 0.0, _along(route, ends, s + 1e-3)[2])]
        b = c.brake_ms2
        while s < finish - 1e-6:
            allowed = cruise
            for at, target in limits:
                if at > s:
                    # The fastest speed from which braking by b per 1 s step still reaches ``target``
                    # at ``at``: u^2/2b + u/2 metres are needed to stop from u, and this step travels
                    # (v + u)/2 first. So the speed never drops by more than b in a step.
                    room = max(at - s - v / 2, 0.0)
                    allowed = min(allowed, target + b * (math.sqrt(1 + 2 * room / b) - 1))
            v_new = max(min(v + c.accel_ms2, allowed), v - b, 0.0)
            if v_new == 0 and v == 0:
                v_new = min(0.5, c.accel_ms2)  # creep the last centimetres
            s = min(s + (v + v_new) / 2, finish)
            v = 0.0 if s >= finish - 1e-6 else v_new
            x, y, course = _along(route, ends, s)
            samples.append((x, y, v, course))
        leg = _Leg(start, samples)
        if len(samples) > 2 and self.rng.random() < c.tunnel_probability:
            length = self.rng.uniform(*c.tunnel_m)
            first = self.rng.randrange(1, len(samples) - 1)
            last = first
            while last < len(samples) - 1 and math.dist(samples[first][:2], samples[last][:2]) < length:
                last += 1
            leg.dark = (first, last)
        if self.rng.random() < c.dead_zone_probability:
            begins = start + timedelta(seconds=self.rng.uniform(0, len(samples)))
            self.dead_zones.append((begins, begins + timedelta(seconds=self.rng.uniform(*c.dead_zone_s))))
        return leg

    # --- sampling -------------------------------------------------------------------------

    def at(self, t: datetime) -> Fix | None:
        """Where the device is at ``t`` (>= start, non-decreasing); None when it has no fix (tunnel)."""
        if t < self.start or (self._last is not None and t < self._last):
            raise ValueError("Track.at needs non-decreasing times from the start")
        self._last = t
        while self._piece.end <= t:
            self._piece = next(self._pieces)
        noise = _Noise(self._noise_key, round(t.timestamp() * 1000))
        c = self.config
        piece = self._piece
        if isinstance(piece, Stop):
            if piece.kind == "mock":
                return self._fix(t, piece.x, piece.y, 0.0, 0.0, 5.0, False, mock=True)
            jx, jy = noise.pair(c.jitter_m)
            ignition = piece.kind == "light"
            return self._fix(t, piece.x + jx, piece.y + jy, 0.0, 0.0, 4 * c.jitter_m, ignition)
        k = (t - piece.start).total_seconds()
        i = min(int(k), len(piece.samples) - 2)
        if piece.dark[0] <= i < piece.dark[1]:
            return None
        f = k - i
        (x0, y0, v0, c0), (x1, y1, v1, _c1) = piece.samples[i], piece.samples[i + 1]
        jx, jy = noise.pair(c.moving_jitter_m)
        return self._fix(t, x0 + (x1 - x0) * f + jx, y0 + (y1 - y0) * f + jy, (v0 + (v1 - v0) * f) * 3.6,
                         c0, 4 * c.moving_jitter_m, True)

    def _fix(self, t: datetime, x: float, y: float, speed_kmh: float, course: float, accuracy: float,
             ignition: bool, *, mock: bool = False) -> Fix:
        if self.cheat == "teleport":
            away = (t - self.start).total_seconds() - self.config.teleport_after_s
            if 0 <= away < self.config.teleport_s:
                x += self.config.teleport_km * 1000
        lat, lon = to_latlon(self.config.center, x, y)
        zones = self.dead_zones
        while self._zones_from < len(zones) and zones[self._zones_from][1] <= t:
            self._zones_from += 1  # over (times only grow): keeps the check below short
        online = not any(begins <= t < ends for begins, ends in zones[self._zones_from:])
        return Fix(t, lat, lon, round(speed_kmh, 2), round(course, 1), accuracy, 10.0, ignition, mock,
                   online)

    def fixes(self, every_s: float, count: int) -> Iterator[Fix | None]:
        for k in range(count):
            yield self.at(self.start + timedelta(seconds=k * every_s))


def to_latlon(center: tuple[float, float], x: float, y: float) -> tuple[float, float]:
    """Metres east/north of ``center`` to degrees (equirectangular: exact enough over a city)."""
    lat0, lon0 = center
    return (lat0 + y / EARTH_M_PER_DEG, lon0 + x / (EARTH_M_PER_DEG * math.cos(math.radians(lat0))))


def to_xy(center: tuple[float, float], lat: float, lon: float) -> tuple[float, float]:
    lat0, lon0 = center
    return ((lon - lon0) * EARTH_M_PER_DEG * math.cos(math.radians(lat0)), (lat - lat0) * EARTH_M_PER_DEG)


def _course(p: tuple[float, float], q: tuple[float, float]) -> float:
    return math.degrees(math.atan2(q[0] - p[0], q[1] - p[1])) % 360


def _along(path: list[tuple[float, float]], ends: list[float], s: float) -> tuple[float, float, float]:
    for i in range(1, len(path)):
        if s <= ends[i] or i == len(path) - 1:
            p, q = path[i - 1], path[i]
            span = ends[i] - ends[i - 1]
            f = 0.0 if span == 0 else min(max((s - ends[i - 1]) / span, 0.0), 1.0)
            return (p[0] + (q[0] - p[0]) * f, p[1] + (q[1] - p[1]) * f, _course(p, q))
    return (*path[-1], 0.0)


class _Noise:
    """Gaussian noise that depends only on (key, time): a sample at a given time is the same
    whatever was sampled before (a seeded Random per fix would cost ~50 us to build)."""

    def __init__(self, key: int, ms: int) -> None:
        self.state = (key ^ (ms * 0x9E3779B97F4A7C15)) & _MASK

    def _uniform(self) -> float:
        # splitmix64 (Steele, Lea, Flood 2014): a strong, tiny mixing function.
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return ((z ^ (z >> 31)) >> 11) / float(1 << 53)

    def pair(self, sigma: float) -> tuple[float, float]:
        """Two independent N(0, sigma) values (Box-Muller gives both from one pair of uniforms)."""
        r = sigma * math.sqrt(-2.0 * math.log(1.0 - self._uniform()))
        a = 2 * math.pi * self._uniform()
        return (r * math.cos(a), r * math.sin(a))


_MASK = (1 << 64) - 1


def _nearest_first(start: Point, points: list[Point]) -> list[Point]:
    left, here, order = list(points), start, []
    while left:
        nearest = min(left, key=lambda p: math.dist(here, p))
        left.remove(nearest)
        order.append(nearest)
        here = nearest
    return order
