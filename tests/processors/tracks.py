"""Real tracks as lists of :class:`Fix`, and the processors chained as the pipeline will chain them.

NMEA logs go through the project's own decoder (``protocols.nmea``) with its default
``positions="sentence"`` setting, as a t55 device would be decoded live: one position per RMC, GGA
and GLL, so an epoch arrives as up to three fixes with the same time. :func:`pipeline` puts them
through the filters first, which keep the first fix of each epoch; the others are duplicates.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from processors import filters, motion, odometer
from processors.convert import fix_from_position
from processors.fix import Fix
from processors.records import Event, Output, Stop, Trip
from protocols.model import DecodeError, Session
from protocols.nmea import PROTOCOL

DATA = Path(__file__).resolve().parent.parent / "data"
RENO = "nmeaparser__NmeaSampleData.nmea.gz"
PARKED = "signalk__gps.log"
BUSES = DATA / "fleet" / "movingpandas__liverpool_bus_route14_outbound.csv"


def nmea_fixes(name: str, config: Mapping[str, Any] | None = None) -> list[Fix]:
    """Every position the decoder emits for a log under ``tests/data/nmea``, in stream order."""
    path = DATA / "nmea" / name
    data = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
    # The device has already named itself (the gateway's IMEI handshake): the decoder holds back
    # anonymous fixes until it has.
    session = Session(transport="tcp", unique_id="123456789012345", config=dict(config or {}))
    fixes: list[Fix] = []
    buf = b""
    for at in range(0, len(data), 65536):
        buf += data[at : at + 65536]
        while buf:
            frame, used = PROTOCOL.next_frame(buf)
            if used == 0:
                break
            buf = buf[used:]
            if frame is None:
                continue
            try:
                decoded = PROTOCOL.decode(frame, session)
            except DecodeError:
                continue  # the garbage first line of the Reno log
            for position in decoded.positions:
                fix = fix_from_position(position, key=len(fixes))
                if fix is not None:
                    fixes.append(fix)
    return fixes


def bus_fixes() -> dict[str, list[Fix]]:
    """Liverpool route 14 per ``vehicle_id``, sorted by time (the file is not): no speed given,
    bearing on most rows; ``key`` is the row id so equal times still have one order."""
    by_bus: dict[str, list[Fix]] = defaultdict(list)
    with BUSES.open(newline="") as f:
        for row in csv.DictReader(f):
            time = datetime.strptime(row["timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            bearing = float(row["bearing"]) if row["bearing"] else None
            by_bus[row["vehicle_id"]].append(Fix(
                time=time, latitude=float(row["latitude"]), longitude=float(row["longitude"]),
                course_deg=bearing, key=int(row["id"]), attributes={"trip_id": row["trip_id"]}))
    return {bus: sorted(fixes, key=lambda f: f.order) for bus, fixes in sorted(by_bus.items())}


@dataclass
class Run:
    """What the three processors made of one device's stream."""

    fixes: list[Fix]
    reasons: list[str | None] = field(default_factory=list)  # per fix: filter reason or None
    odometer_m: list[float] = field(default_factory=list)  # per fix, after it
    moving: list[bool] = field(default_factory=list)  # per fix
    trips: list[Trip] = field(default_factory=list)
    stops: list[Stop] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    open_trip: Trip | None = None
    open_stop: Stop | None = None

    @property
    def accepted(self) -> list[Fix]:
        return [f for f, r in zip(self.fixes, self.reasons, strict=True) if r is None]


@dataclass
class States:
    filters: filters.FilterState = field(default_factory=filters.FilterState)
    odometer: odometer.OdometerState = field(default_factory=odometer.OdometerState)
    motion: motion.MotionState = field(default_factory=motion.MotionState)


@dataclass(frozen=True)
class Params:
    filters: filters.FilterParams = field(default_factory=filters.FilterParams)
    odometer: odometer.OdometerParams = field(default_factory=odometer.OdometerParams)
    motion: motion.MotionParams = field(default_factory=motion.MotionParams)


def step_all(states: States, fix: Fix, params: Params, run: Run) -> None:
    """One fix through filters → odometer → motion; a filtered fix keeps the last odometer and
    motion flag, as the pipeline stores it."""
    states.filters, reason = filters.step(states.filters, fix, params.filters)
    run.reasons.append(reason)
    if reason is not None:
        run.odometer_m.append(run.odometer_m[-1] if run.odometer_m else states.odometer.total_m)
        run.moving.append(run.moving[-1] if run.moving else False)
        return
    states.odometer, total = odometer.step(states.odometer, fix, params.odometer)
    states.motion, moving, outputs = motion.step(states.motion, fix, total, params.motion)
    run.odometer_m.append(total)
    run.moving.append(moving)
    collect(run, outputs)


def collect(run: Run, outputs: Iterable[Output]) -> None:
    for out in outputs:
        if isinstance(out, Trip):
            run.trips.append(out)
        elif isinstance(out, Stop):
            run.stops.append(out)
        else:
            run.events.append(out)


def pipeline(fixes: Iterable[Fix], params: Params | None = None, restart_at: Iterable[int] = ()) -> Run:
    """Step every fix in ``Fix.order``. Before each index in ``restart_at`` the three states go
    through JSON text and back, as they do across a server restart."""
    params = params or Params()
    states = States()
    restarts = set(restart_at)
    run = Run(fixes=sorted(fixes, key=lambda f: f.order))  # the order the pipeline steps them in
    for index, fix in enumerate(run.fixes):
        if index in restarts:
            states = States(
                filters.FilterState.from_json(json.loads(json.dumps(states.filters.to_json()))),
                odometer.OdometerState.from_json(json.loads(json.dumps(states.odometer.to_json()))),
                motion.MotionState.from_json(json.loads(json.dumps(states.motion.to_json()))))
        step_all(states, fix, params, run)
    run.open_trip = motion.open_trip(states.motion)
    run.open_stop = motion.open_stop(states.motion)
    return run


def results(run: Run) -> tuple[Any, ...]:
    """Everything a run produced, for comparing two runs."""
    return (run.reasons, run.odometer_m, run.moving, run.trips, run.stops, run.events, run.open_trip,
            run.open_stop)


def check_timeline(run: Run, params: motion.MotionParams) -> None:
    """The invariants every run must keep, on any data."""
    assert all(a <= b for a, b in pairwise(run.odometer_m)), "the odometer went back"
    assert run.trips == sorted(run.trips, key=lambda t: t.start_time)
    assert run.stops == sorted(run.stops, key=lambda s: s.start_time)
    spans: list[tuple[datetime, datetime, str]] = []
    for trip in [*run.trips, *([run.open_trip] if run.open_trip else [])]:
        assert trip.start_time <= trip.end_time
        assert trip.distance_m == trip.end_odometer_m - trip.start_odometer_m >= 0
        if params.min_trip_duration_s is None:
            assert trip.distance_m >= params.min_trip_distance_m or trip is run.open_trip
        assert trip.start_odometer_m in run.odometer_m and trip.end_odometer_m in run.odometer_m
        spans.append((trip.start_time, trip.end_time, "trip"))
    for stop in [*run.stops, *([run.open_stop] if run.open_stop else [])]:
        assert stop.duration_s >= params.min_stop_duration_s, f"a stop of {stop.duration_s} s"
        spans.append((stop.start_time, stop.end_time, "stop"))
    assert not (run.open_trip and run.open_stop), "a trip and a stop both open"
    spans.sort()
    for a, b in pairwise(spans):
        assert a[1] <= b[0], f"{a} overlaps {b}"
    times = [f.time for f, r in zip(run.fixes, run.reasons, strict=True) if r is None]
    if times:
        assert all(times[0] <= start and end <= times[-1] for start, end, _ in spans)


# --- random tracks for property tests ----------------------------------------------------------

SEGMENTS = ("rest", "drive", "crawl", "gap_still", "gap_moved", "glitch")


@st.composite
def random_tracks(draw: st.DrawFn) -> list[Fix]:
    """A device's day from random pieces: resting with jitter and speed noise, driving, crawling,
    silent gaps with and without travel, and glitches (invalid, zero, repeated time, a far
    outlier, poor HDOP or accuracy). Numbers come from a seeded generator so a failure replays."""
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    pieces = draw(st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=12))
    reports_speed = draw(st.booleans())
    reports_ignition = draw(st.booleans())
    time = datetime(2024, 3, 1, 8, tzinfo=UTC)
    lat, lon = rng.uniform(-60, 60), rng.uniform(-179, 179)
    heading = rng.uniform(0, 2 * math.pi)
    fixes: list[Fix] = []

    def add(speed: float | None, ignition: bool, **changes: Any) -> None:
        values: dict[str, Any] = {"speed_kmh": speed if reports_speed else None,
                                  "hdop": rng.choice([None, 0.9, 1.5, 3.0]),
                                  "ignition": ignition if reports_ignition else None, **changes}
        fixes.append(Fix(time=time, latitude=lat, longitude=lon, key=len(fixes), **values))

    def move(north_m: float, east_m: float) -> tuple[float, float]:
        return (lat + north_m / 111_195,
                lon + east_m / (111_195 * math.cos(math.radians(lat))))

    for piece in pieces:
        if piece in ("rest", "drive", "crawl"):
            centre = (lat, lon)
            sigma = rng.uniform(0, 12)
            for _ in range(rng.randint(1, 40)):
                dt = rng.uniform(1, 30)
                time += timedelta(seconds=dt)
                if piece == "rest":
                    lat, lon = centre
                    lat, lon = move(rng.gauss(0, sigma), rng.gauss(0, sigma))
                    add(abs(rng.gauss(0, 2)), False)
                else:
                    speed = rng.uniform(10, 130) if piece == "drive" else rng.uniform(0.5, 6)
                    heading += rng.gauss(0, 0.3)
                    step = speed / 3.6 * dt
                    lat, lon = move(step * math.cos(heading), step * math.sin(heading))
                    add(speed, True)
        elif piece.startswith("gap"):
            time += timedelta(seconds=rng.uniform(200, 8000))
            reach = rng.uniform(0, 80) if piece == "gap_still" else rng.uniform(200, 30_000)
            angle = rng.uniform(0, 2 * math.pi)
            lat, lon = move(reach * math.cos(angle), reach * math.sin(angle))
            add(0.0, False)
        else:
            glitch = rng.choice(["invalid", "zero", "repeat", "outlier", "hdop", "accuracy"])
            if glitch != "repeat":
                time += timedelta(seconds=rng.uniform(1, 10))
            if glitch == "outlier":
                far = move(50_000, 0)
                fixes.append(Fix(time=time, latitude=far[0], longitude=far[1], key=len(fixes)))
            elif glitch == "zero":
                fixes.append(Fix(time=time, latitude=0.0, longitude=0.0, key=len(fixes)))
            else:
                add(None, False, valid=glitch != "invalid", hdop=50.0 if glitch == "hdop" else None,
                    accuracy_m=500.0 if glitch == "accuracy" else None)
    return fixes
