"""Reps that work shift after shift for as long as a demo runs, on a clock that first replays the
recent past fast and then follows the wall clock.

A :class:`~simulators.movement.Track` plans one round of customer visits and then parks its rep at
home until the next day. A demo that shows moving reps at any hour cannot wait for tomorrow, so
:class:`ShiftTrack` starts the same round again after a short stay at home (``park_s``). A Track's
plan comes from its seed alone, so every shift of a rep visits the same customers in the same
order at the same offsets: :func:`shift_plan` reads them once, and the visits a rep will make
are known in advance (the demo plans exactly those).

The clock (:class:`CatchUpClock`): simulated time starts ``backlog_s`` in the past and runs
``speed`` times faster than the wall clock until it reaches the present, then at the wall clock's
pace, a little behind it. No fix is ever in the future (servers refuse those), and within a minute
of starting there are finished trips, stops and visits to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from simulators.device import FixSource
from simulators.movement import Fix, MovementConfig, Point, Stop, Track

# Simulated seconds between probe samples when reading a shift's plan: pieces are generated as
# sampling passes them, and no piece of a plan is shorter than a second.
_PROBE_STEP_S = 30.0


@dataclass(frozen=True, slots=True)
class ShiftPlan:
    """One shift of a rep, in seconds after the shift's start."""

    home: Point
    customers: tuple[Point, ...]  # every customer of the rep (x, y metres from the centre)
    visits: tuple[Stop, ...]  # the visit stops of a shift started at ``origin``
    origin: datetime
    length_s: float  # until the rep is back home
    park_s: float  # at home before the next shift

    @property
    def period_s(self) -> float:
        return self.length_s + self.park_s

    def visits_between(self, start: datetime, first: datetime,
                       last: datetime) -> Iterator[tuple[datetime, Point]]:
        """(arrival, customer) of each visit of the shifts chained from ``start`` that arrives in
        [first, last]."""
        for stop in self.visit_stops_between(start, first, last):
            yield stop.start, (stop.x, stop.y)

    def visit_stops_between(self, start: datetime, first: datetime, last: datetime) -> Iterator[Stop]:
        """The visit stops (arrival to departure) of the shifts chained from ``start`` that arrive
        in [first, last], in time order."""
        period = timedelta(seconds=self.period_s)
        k = max(0, int((first - start) / period) - 1)
        while start + k * period <= last:
            shift = start + k * period - self.origin
            for visit in self.visits:
                if first <= visit.start + shift <= last:
                    yield replace(visit, start=visit.start + shift, end=visit.end + shift)
            k += 1


def shift_plan(config: MovementConfig, seed: str, park_s: float, origin: datetime) -> ShiftPlan:
    """The plan every shift of ``seed`` follows (its visits relative to ``origin``)."""
    probe = Track(config, seed, origin)
    t = origin
    while True:
        t += timedelta(seconds=_PROBE_STEP_S)
        probe.at(t)
        home = [s for s in probe.stops if s.kind == "home" and s.start > origin]
        if home:
            break
    visits = tuple(s for s in probe.stops if s.kind == "visit")
    return ShiftPlan(probe.rep.home, tuple(probe.rep.customers), visits, origin,
                     (home[0].start - origin).total_seconds(), park_s)


class ShiftTrack:
    """The rep's track over chained shifts from ``start``: sample with non-decreasing times."""

    def __init__(self, config: MovementConfig, seed: str, start: datetime, plan: ShiftPlan) -> None:
        self.config, self.seed, self.start, self.plan = config, seed, start, plan
        self._shift = -1
        self._track: Track | None = None

    def at(self, t: datetime) -> Fix | None:
        k = max(0, int((t - self.start).total_seconds() // self.plan.period_s))
        if k != self._shift or self._track is None:
            self._shift = k
            begins = self.start + timedelta(seconds=k * self.plan.period_s)
            self._track = Track(self.config, self.seed, begins)
        return self._track.at(t)


@dataclass(frozen=True, slots=True)
class CatchUpClock:
    """Simulated time for a wall offset: from ``now - backlog_s``, ``speed`` times the wall clock's
    pace until ``lag_s`` behind the wall clock, then at its pace."""

    now: datetime  # the wall clock when the devices start
    backlog_s: float
    speed: float
    lag_s: float = 2.0  # behind the wall clock (a fix is never ahead of the server's clock)

    def __post_init__(self) -> None:
        if self.speed <= 1 or self.backlog_s <= self.lag_s:
            raise ValueError("speed must be above 1 and the backlog longer than the lag")

    @property
    def start(self) -> datetime:
        return self.now - timedelta(seconds=self.backlog_s)

    @property
    def caught_up_after_s(self) -> float:
        """Wall seconds until simulated time reaches ``lag_s`` behind the wall clock."""
        return (self.backlog_s - self.lag_s) / (self.speed - 1)

    @property
    def live_from(self) -> datetime:
        """The simulated time at which the clock starts following the wall clock."""
        return self.at(self.caught_up_after_s)

    def wall_for(self, t: datetime) -> float:
        """The wall offset at which simulated time reaches ``t`` (0 for a time before the start)."""
        ahead = (t - self.start).total_seconds()
        if ahead <= 0:
            return 0.0
        if ahead < self.caught_up_after_s * self.speed:
            return ahead / self.speed
        return (t - self.now).total_seconds() + self.lag_s

    def at(self, wall_s: float) -> datetime:
        if wall_s < self.caught_up_after_s:
            return self.start + timedelta(seconds=wall_s * self.speed)
        return self.now + timedelta(seconds=wall_s - self.lag_s)


def shift_source(track: ShiftTrack, clock: CatchUpClock, fast_every_s: float, live_every_s: float,
                 phase_s: float = 0.0) -> FixSource:
    """Endless (wall offset, fix): every ``fast_every_s`` while catching up, then every
    ``live_every_s``. Pass it to a simulated device; cancel the device to stop."""

    def fixes() -> Iterator[tuple[float, Fix | None]]:
        wall = phase_s
        while True:
            yield wall, track.at(clock.at(wall))
            wall += fast_every_s if wall < clock.caught_up_after_s else live_every_s

    return fixes()
