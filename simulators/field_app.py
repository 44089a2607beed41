"""A rep's field-sales app, simulated: it checks in at each planned customer with the phone's fix,
files the visit report (answers and photos, when given a ``reporter``) and checks out when the rep
leaves, through the API as the real app does (``POST /api/visits/{id}/checkin``, ``PUT
/api/visits/{id}/report``, ``POST /api/visits/{id}/checkout`` with the rep's token).

Used by ``fieldtrack demo``, so a manager sees verified check-ins next to the visits found in the
tracks. A check-in must carry a fresh fix (the server refuses one over 2 minutes old), so the app
only checks in once the simulated clock follows the wall clock: the replayed past has detected
visits only. ``early_bird`` makes a rep who also tries to check in from the road a couple of
minutes before arriving, which the server refuses (``too_far``) and records for the manager.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import httpx

from simulators.movement import Fix, to_latlon
from simulators.replay import haversine_m
from simulators.shifts import CatchUpClock, ShiftPlan

log = logging.getLogger("fieldtrack.simulators.field_app")


@dataclass(frozen=True, slots=True)
class Call:
    """A planned call on a customer: when the rep arrives and leaves (simulated time)."""

    customer_id: int
    latitude: float  # the customer's
    longitude: float
    arrive: datetime
    leave: datetime


@dataclass(frozen=True, slots=True)
class VisitReport:
    """What the rep fills in before leaving: answers to the team's form, notes, photos (JPEG)."""

    answers: dict[str, Any]
    notes: str = ""
    photos: tuple[bytes, ...] = ()


# Writes the report of a visit (its id, the call, the phone's fix then); None: no report.
Reporter = Callable[[int, Call, Fix], VisitReport | None]


@dataclass(slots=True)
class AppCounters:
    checkins: int = 0
    checkouts: int = 0
    reports: int = 0
    refused: int = 0  # answered 422/409: the server's verdict, with a reason
    failed: int = 0  # no answer, or one the app cannot use (no plan, 5xx, network)


@dataclass(frozen=True, slots=True)
class AppTiming:
    checkin_after_s: float = 60.0  # the rep parks and walks in before tapping "check in"
    checkout_before_s: float = 30.0  # taps "check out" on the way out
    early_s: float = 120.0  # the early bird's try, this long before arriving
    early_min_m: float = 400.0  # and only when that far out (else it would be a fair check-in)


class FieldApp:
    """One rep's app. ``phone(t)`` is the phone's fix at simulated time ``t`` (asked with times
    that never go back); ``sim_now()`` is the simulated time now and ``sleep_until(t)`` waits for
    it; ``day_of(t)`` is the rep's local date (a visit's day)."""

    def __init__(self, client: httpx.AsyncClient, token: str, rep_id: int, phone_device_id: int | None,
                 phone: Callable[[datetime], Fix | None], sim_now: Callable[[], datetime],
                 sleep_until: Callable[[datetime], Awaitable[None]], day_of: Callable[[datetime], date], *,
                 timing: AppTiming | None = None, early_bird: bool = False,
                 reporter: Reporter | None = None) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}
        self.rep_id = rep_id
        self.phone_device_id = phone_device_id
        self.phone = phone
        self.sim_now = sim_now
        self.sleep_until = sleep_until
        self.day_of = day_of
        self.timing = timing or AppTiming()
        self.early_bird = early_bird
        self.reporter = reporter
        self.counters = AppCounters()

    async def run(self, calls: Iterable[Call]) -> None:
        """Work through ``calls`` (in time order); the ones already past are skipped."""
        for call in calls:
            try:
                await self._call_on(call)
            except Exception:
                # A bug or an answer the app cannot read costs this call, not the rep's day.
                self.counters.failed += 1
                log.exception("rep %d: call on customer %d failed", self.rep_id, call.customer_id)

    async def _call_on(self, call: Call) -> None:
        t = self.timing
        checkin_at = call.arrive + timedelta(seconds=t.checkin_after_s)
        if checkin_at < self.sim_now():
            return
        visit_id = await self._visit_id(call)
        if visit_id is None:
            return
        if self.early_bird:
            early = call.arrive - timedelta(seconds=t.early_s)
            if early >= self.sim_now():
                await self.sleep_until(early)
                await self._check(visit_id, "checkin", far_from_m=t.early_min_m, call=call)
        await self.sleep_until(checkin_at)
        if not await self._check(visit_id, "checkin"):
            return
        await self.sleep_until(max(checkin_at, call.leave - timedelta(seconds=t.checkout_before_s)))
        await self._report(visit_id, call)
        await self._check(visit_id, "checkout")

    async def _report(self, visit_id: int, call: Call) -> None:
        fix = self.phone(self.sim_now())
        report = self.reporter(visit_id, call, fix) if self.reporter is not None and fix else None
        if report is None:
            return
        parts: list[tuple[str, tuple[str | None, bytes, str]]] = [
            ("report", (None, json.dumps({"answers": report.answers, "notes": report.notes}).encode(),
                        "application/json"))]
        parts += [("photo", (f"IMG_{visit_id}_{n}.jpg", data, "image/jpeg"))
                  for n, data in enumerate(report.photos, start=1)]
        try:
            resp = await self.client.put(f"/api/visits/{visit_id}/report", files=parts, headers=self.headers)
        except httpx.HTTPError as exc:
            self.counters.failed += 1
            log.warning("rep %d: report of visit %d not sent (%s)", self.rep_id, visit_id, exc)
            return
        if resp.status_code == 200:
            self.counters.reports += 1
            log.info("rep %d: report of visit %d stored with %d photos", self.rep_id, visit_id,
                     len(report.photos))
        else:
            self.counters.failed += 1
            log.warning("rep %d: report of visit %d: HTTP %d %s", self.rep_id, visit_id, resp.status_code,
                        resp.text[:200])

    async def _visit_id(self, call: Call) -> int | None:
        day = self.day_of(call.arrive).isoformat()
        params: dict[str, str | int] = {"rep_id": self.rep_id, "customer_id": call.customer_id,
                                        "day_from": day, "day_to": day}
        try:
            resp = await self.client.get("/api/visits", params=params, headers=self.headers)
            resp.raise_for_status()
            items = resp.json()["items"]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            self.counters.failed += 1
            log.warning("rep %d: visits of customer %d not listed (%s)", self.rep_id, call.customer_id, exc)
            return None
        open_ = [v for v in items
                 if v["status"] in ("approved", "planned", "done") and v["checkin_at"] is None]
        return int(open_[0]["id"]) if open_ else None

    async def _check(self, visit_id: int, kind: str, far_from_m: float | None = None,
                     call: Call | None = None) -> bool:
        """Send the phone's current fix; True when the server accepted it. With ``far_from_m``,
        only sent when the phone is at least that far from the customer of ``call``."""
        fix = self.phone(self.sim_now())
        if fix is None:
            self.counters.failed += 1
            return False
        if far_from_m is not None and call is not None and \
                haversine_m(fix.lat, fix.lon, call.latitude, call.longitude) < far_from_m:
            return False
        body = {"latitude": fix.lat, "longitude": fix.lon, "fix_time": fix.time.isoformat(),
                "accuracy_m": fix.accuracy_m, "mock": fix.mock, "device_id": self.phone_device_id}
        try:
            resp = await self.client.post(f"/api/visits/{visit_id}/{kind}", json=body, headers=self.headers)
        except httpx.HTTPError as exc:
            self.counters.failed += 1
            log.warning("rep %d: %s of visit %d not sent (%s)", self.rep_id, kind, visit_id, exc)
            return False
        if resp.status_code == 200:
            if kind == "checkin":
                self.counters.checkins += 1
            else:
                self.counters.checkouts += 1
            log.info("rep %d: %s at visit %d accepted", self.rep_id, kind, visit_id)
            return True
        if resp.status_code in (409, 422):
            self.counters.refused += 1
            reason = _reason(resp)
            log.info("rep %d: %s at visit %d refused (%s)", self.rep_id, kind, visit_id, reason)
            return False
        self.counters.failed += 1
        log.warning("rep %d: %s at visit %d: HTTP %d", self.rep_id, kind, visit_id, resp.status_code)
        return False


def _reason(resp: httpx.Response) -> str:
    try:
        detail = resp.json().get("detail")
    except ValueError:
        return resp.text[:200]
    if isinstance(detail, dict):
        return f"{detail.get('reason')}: {detail.get('message', '')}"
    return str(detail)


def clock_timers(clock: CatchUpClock, t0: float) -> tuple[Callable[[], datetime],
                                                         Callable[[datetime], Awaitable[None]]]:
    """``sim_now`` and ``sleep_until`` for a :class:`CatchUpClock` whose wall offset 0 is the
    event loop's time ``t0`` (the simulated devices count from their start the same way)."""
    loop = asyncio.get_running_loop()

    def sim_now() -> datetime:
        return clock.at(loop.time() - t0)

    async def sleep_until(t: datetime) -> None:
        await asyncio.sleep(max(0.0, t0 + clock.wall_for(t) - loop.time()))

    return sim_now, sleep_until


def live_calls(plan: ShiftPlan, clock: CatchUpClock, center: tuple[float, float],
               customer_ids: Sequence[int]) -> Iterator[Call]:
    """The calls of a rep's chained shifts from the moment ``clock`` runs live (before it, a fix
    would be too old for a check-in); ``customer_ids`` in the order of ``plan.customers``."""
    for stop in plan.visit_stops_between(clock.start, clock.live_from, clock.now + timedelta(days=3650)):
        lat, lon = to_latlon(center, stop.x, stop.y)
        yield Call(customer_ids[plan.customers.index((stop.x, stop.y))], lat, lon, stop.start, stop.end)
