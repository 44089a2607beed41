"""Working hours as privacy, through the API on the real database: a manager sees a rep's device
only on duty (positions, route, trips cut at the edge of the working day, stops, events, status,
latest, live stream, dispatch); the rep and admins see everything; another team's manager sees
nothing (404)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from gateway.processing import ProcessingRunner
from protocols.model import Position
from storage.privacy import DeviceCalendar, DutyClock, multirange
from storage.rows import StoredPosition
from storage.writer import insert_rows
from tests.api.conftest import Api
from tests.api.people import Person, call, new_user

AMS = ZoneInfo("Europe/Amsterdam")
HOURS = {d: [["08:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
LAT, LON = 52.1, 4.3
KMH = 36.0  # 10 m/s: 100 m between fixes 10 s apart


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    r = 6371008.8
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * r * math.asin(math.sqrt(a))


def local(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), AMS).astimezone(UTC)


def on_duty(t: datetime) -> bool:
    """The calendar read by hand: 08:00 to 17:00 local, every day."""
    return time(8) <= t.astimezone(AMS).time() < time(17)


def track(day: date) -> list[Position]:
    """Parked at home from 07:00 local (an SOS there), driving east 07:45-08:15 at 36 km/h (fixes
    every 10 s, so the trip crosses the 08:00 start of the working day), parked at the office
    until 10:05 (an SOS at 10:00)."""
    out: list[Position] = []
    per_deg = 111_320 * math.cos(math.radians(LAT))
    t, lon = local(day, 7), LON
    while t < local(day, 7, 45):
        out.append(Position(fix_time=t, latitude=LAT, longitude=lon, speed_kmh=0.0,
                            attributes={"alarm": "sos"} if t == local(day, 7) else {}))
        t += timedelta(seconds=60)
    while t < local(day, 8, 15):
        lon += 100 / per_deg
        out.append(Position(fix_time=t, latitude=LAT, longitude=lon, speed_kmh=KMH, course_deg=90.0))
        t += timedelta(seconds=10)
    while t <= local(day, 10, 5):
        out.append(Position(fix_time=t, latitude=LAT, longitude=lon, speed_kmh=0.0,
                            attributes={"alarm": "sos"} if t == local(day, 10) else {}))
        t += timedelta(seconds=60)
    return out


async def store(api: Api, device: int, positions: list[Position]) -> None:
    async with api.pool.connection() as conn:
        await insert_rows(conn, [StoredPosition(device, f"d{device}", "test", p.fix_time, p)
                                 for p in positions])
    await ProcessingRunner(api.pool).process(device)


async def company(api: Api) -> tuple[Person, Person, Person, int]:
    """Team "field" (calendar above) with its manager and a rep carrying a phone; team "other"
    with its own manager. Returns (rep, manager, other manager, device)."""
    field = await call(api, "POST", "/api/teams", expect=201,
                       json={"name": "field", "time_zone": "Europe/Amsterdam", "working_hours": HOURS})
    other = await call(api, "POST", "/api/teams", expect=201, json={"name": "other"})
    manager = await new_user(api, "boss", "manager", field["id"])
    await call(api, "PUT", f"/api/teams/{field['id']}/managers/{manager.id}", expect=204)
    stranger = await new_user(api, "stranger", "manager", other["id"])
    await call(api, "PUT", f"/api/teams/{other['id']}/managers/{stranger.id}", expect=204)
    rep = await new_user(api, "rep", "rep", field["id"])
    dev = await call(api, "POST", "/api/devices", expect=201, json={"unique_id": "phone", "name": "phone"})
    await call(api, "PUT", f"/api/users/{rep.id}/devices/{dev['id']}", expect=204)
    return rep, manager, stranger, int(dev["id"])


async def test_a_manager_sees_a_rep_only_on_duty(api: Api) -> None:
    rep, manager, stranger, dev = await company(api)
    # Three days back: a whole day in the past, so "latest" and the stream see it as history.
    day = (datetime.now(AMS) - timedelta(days=3)).date()
    positions = track(day)
    await store(api, dev, positions)
    span = {"from": local(day, 6).isoformat(), "to": local(day, 11).isoformat()}
    every = [p.fix_time for p in positions]
    working = [t for t in every if on_duty(t)]
    assert local(day, 7) in every and local(day, 7) not in working and local(day, 10) in working

    async def seen(token: str | None, path: str, **params: Any) -> Any:
        return await call(api, "GET", path, token, params={**span, **params})

    # Positions: the manager gets the on-duty ones only; the rep and the admin all of them.
    for token, want in ((manager.token, working), (rep.token, every), (None, every)):
        got = await seen(token, f"/api/devices/{dev}/positions", order="asc", limit=10_000)
        assert [datetime.fromisoformat(p["fix_time"]) for p in got["items"]] == want
    page = await seen(manager.token, f"/api/devices/{dev}/positions", order="asc", limit=50)
    rest = await seen(manager.token, f"/api/devices/{dev}/positions", order="asc", limit=10_000,
                      cursor=page["next_cursor"])
    assert [datetime.fromisoformat(p["fix_time"]) for p in page["items"] + rest["items"]] == working

    # Route (filtered points too, so every stored fix counts).
    for token, want in ((manager.token, working), (rep.token, every), (None, every)):
        got = await seen(token, f"/api/devices/{dev}/route", include_filtered="true")
        assert [datetime.fromisoformat(p["time"]) for p in got["points"]] == want

    # Trips: the one trip crosses 08:00; the manager gets it cut there.
    whole = (await seen(None, f"/api/devices/{dev}/trips"))["items"]
    assert len(whole) == 1 and not whole[0]["clipped"]
    assert datetime.fromisoformat(whole[0]["start_time"]) < local(day, 8) < datetime.fromisoformat(
        whole[0]["end_time"])
    assert (await seen(rep.token, f"/api/devices/{dev}/trips"))["items"] == whole
    (cut,) = (await seen(manager.token, f"/api/devices/{dev}/trips"))["items"]
    assert cut["clipped"] and datetime.fromisoformat(cut["start_time"]) == local(day, 8)
    assert cut["end_time"] == whole[0]["end_time"] and cut["end_longitude"] == whole[0]["end_longitude"]
    at_eight = next(p for p in positions if p.fix_time == local(day, 8))
    assert (cut["start_latitude"], cut["start_longitude"]) == (at_eight.latitude, at_eight.longitude)
    # The distance from 08:00 to the trip's end along the fixes, measured here independently.
    end = datetime.fromisoformat(whole[0]["end_time"])
    leg = [p for p in positions if local(day, 8) <= p.fix_time <= end]
    metres = sum(haversine_m(a.latitude or 0, a.longitude or 0, b.latitude or 0, b.longitude or 0)
                 for a, b in pairwise(leg))
    assert abs(cut["distance_km"] - metres / 1000) <= 0.02, (cut, metres)
    assert cut["distance_km"] < whole[0]["distance_km"]
    assert cut["duration_s"] == (end - local(day, 8)).total_seconds()

    # Stops: the stop at home (07:00-07:45 local) is off duty; the office stop shows from its arrival.
    for token in (rep.token, None):
        stops = (await seen(token, f"/api/devices/{dev}/stops"))["items"]
        assert any(datetime.fromisoformat(s["arrival"]) < local(day, 8) for s in stops)
    stops = (await seen(manager.token, f"/api/devices/{dev}/stops"))["items"]
    assert stops and all(on_duty(datetime.fromisoformat(s["arrival"])) for s in stops)

    # Events: the manager hears of the 10:00 SOS, not of the 07:00 one.
    async def alarms(token: str | None) -> list[datetime]:
        got = await seen(token, "/api/events", device=dev, order="asc")
        return [datetime.fromisoformat(e["time"]) for e in got["items"] if e["type"] == "alarm"]

    assert await alarms(manager.token) == [local(day, 10)]
    assert await alarms(rep.token) == await alarms(None) == [local(day, 7), local(day, 10)]
    managed = await seen(manager.token, "/api/events", device=dev)
    assert managed["items"] and all(on_duty(datetime.fromisoformat(e["time"])) for e in managed["items"])

    # Status with an on-duty newest fix: shown to the manager as it is.
    (st,) = await call(api, "GET", "/api/status", manager.token)
    assert not st["off_duty"] and st["latitude"] == LAT and st["fix_time"] is not None

    # Another team's manager: an unknown device.
    for path in ("positions", "route", "trips", "stops"):
        await call(api, "GET", f"/api/devices/{dev}/{path}", stranger.token, expect=404, params=span)
    assert (await seen(stranger.token, "/api/events", device=dev))["items"] == []

    # An evening fix (19:00 local, off duty) becomes the newest one.
    evening = Position(fix_time=local(day, 19), latitude=LAT + 0.05, longitude=LON, speed_kmh=0.0)
    await store(api, dev, [evening])
    (st,) = await call(api, "GET", "/api/status", manager.token)
    assert st["off_duty"] and st["status"] == "offline"
    assert all(st[k] is None for k in ("latitude", "longitude", "fix_time", "speed_kmh", "odometer_km"))
    assert st["open_stop"] is None and st["open_trip"] is None and st["geofences"] == []
    for token in (rep.token, None):
        (st,) = await call(api, "GET", "/api/status", token)
        assert not st["off_duty"] and st["latitude"] == LAT + 0.05
    latest = {t: (await call(api, "GET", "/api/positions/latest", t))[0]["fix_time"]
              for t in (manager.token, rep.token)}
    assert datetime.fromisoformat(latest[manager.token]) == working[-1]
    assert datetime.fromisoformat(latest[rep.token]) == local(day, 19)

    # Dispatch: the admin finds the rep (at the evening place); the manager never gets that place.
    near = {"lat": LAT + 0.05, "lon": LON, "n": 5}
    found = await call(api, "GET", "/api/dispatch/nearest", params=near)
    assert [(r["user_id"], r["latitude"]) for r in found["items"]] == [(rep.id, LAT + 0.05)]
    for filtered in ("false", "true"):
        found = await call(api, "GET", "/api/dispatch/nearest", manager.token,
                           params={**near, "on_duty": filtered})
        assert found["items"] == []


def test_live_messages_of_a_device_seen_on_duty_only() -> None:
    from api.live import Subscriber

    calendar = DeviceCalendar(7, 1, HOURS, "Europe/Amsterdam", True)
    sub = Subscriber({7, 8}, frozenset({"position", "event"}), duty={7: DutyClock(calendar)})
    day = date(2026, 11, 30)
    for t, want in ((local(day, 7, 59), False), (local(day, 8), True), (local(day, 16, 59), True),
                    (local(day, 17), False), (local(day + timedelta(days=1), 9), True)):
        assert sub.wants({"kind": "position", "device_id": 7, "time": t.isoformat()}) is want
        assert sub.wants({"kind": "event", "device_id": 7, "time": t.isoformat()}) is want
        assert sub.wants({"kind": "position", "device_id": 8, "time": t.isoformat()})  # no calendar
    assert not sub.wants({"kind": "position", "device_id": 7, "time": "not a time"})
    assert not sub.wants({"kind": "position", "device_id": 9, "time": local(day, 9).isoformat()})


def test_multirange_literal_reads_back_in_postgres(database_url: str) -> None:
    import psycopg

    day = date(2026, 3, 29)  # a DST day in Amsterdam: 08:00 local is 06:00 UTC
    calendar = DeviceCalendar(1, 1, HOURS, "Europe/Amsterdam", True)
    intervals = calendar.intervals(local(day, 0), local(day + timedelta(days=2), 0))
    assert intervals[0] == (datetime(2026, 3, 29, 6, tzinfo=UTC), datetime(2026, 3, 29, 15, tzinfo=UTC))
    with psycopg.connect(database_url) as conn:
        for t, want in ((datetime(2026, 3, 29, 5, 59, 59, tzinfo=UTC), False),
                        (datetime(2026, 3, 29, 6, tzinfo=UTC), True),
                        (datetime(2026, 3, 30, 15, tzinfo=UTC), False),
                        (datetime(2026, 3, 30, 14, 59, tzinfo=UTC), True)):
            row = conn.execute("SELECT %s::timestamptz <@ %s::tstzmultirange",
                               (t, multirange(intervals))).fetchone()
            assert row is not None and row[0] is want, t
        row = conn.execute("SELECT now() <@ %s::tstzmultirange", (multirange([]),)).fetchone()
        assert row is not None and row[0] is False
