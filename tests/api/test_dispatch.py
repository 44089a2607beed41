"""``/api/dispatch/nearest`` on the real database: nearest reps by their newest position, within
the caller's reach, with their status; live positions move them without a reload."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg

from gateway.processing import ProcessingRunner
from processors.geo import haversine_m
from protocols.model import Position
from storage.rows import StoredPosition
from storage.writer import insert_rows
from tests.api.conftest import Api
from tests.api.people import World, call, world

__all__ = ["world"]


def last_fixes(api: Api, w: World) -> dict[int, tuple[float, float]]:
    """Each rep's newest position, read straight from the table (independent of the locator)."""
    conninfo = api.pool.conninfo
    assert isinstance(conninfo, str)
    out = {}
    with psycopg.connect(conninfo) as conn:
        for rep in w.reps.values():
            row = conn.execute("SELECT latitude, longitude FROM positions WHERE device_id = %s"
                               " ORDER BY fix_time DESC LIMIT 1", (rep.device,)).fetchone()
            assert row is not None
            out[rep.id] = (row[0], row[1])
    return out


async def fresh_fix(api: Api, device: int, lat: float, lon: float, later_s: float = 0) -> None:
    now = datetime.now(UTC) + timedelta(seconds=later_s)
    async with api.pool.connection() as conn:
        await insert_rows(conn, [StoredPosition(device, "x", "test", now, Position(
            fix_time=now, latitude=lat, longitude=lon, speed_kmh=0.0))])
    await ProcessingRunner(api.pool).process(device)


async def test_nearest_reps_in_order_within_reach(api: Api, world: World) -> None:
    fixes = last_fixes(api, world)
    here = fixes[world.reps["north-1"].id]
    point = (here[0] + 0.001, here[1])
    body = await call(api, "GET", "/api/dispatch/nearest",
                      params={"lat": point[0], "lon": point[1], "n": 10})
    expected = sorted(fixes, key=lambda u: haversine_m(*point, *fixes[u]))
    assert [r["user_id"] for r in body["items"]] == expected
    assert body["items"][0]["distance_m"] == round(haversine_m(*point, *here), 1)
    assert all(r["status"] == "offline" for r in body["items"])  # their fixes are from October
    assert body["items"][0]["travel_time_s"] > body["items"][0]["distance_m"] / 30  # slower than 108 km/h

    north = await call(api, "GET", "/api/dispatch/nearest", world.managers["north"].token,
                       params={"lat": point[0], "lon": point[1], "n": 10})
    assert {r["user_id"] for r in north["items"]} == {world.reps["north-1"].id, world.reps["north-2"].id}
    await call(api, "GET", "/api/dispatch/nearest", world.reps["north-1"].token, expect=403,
               params={"lat": point[0], "lon": point[1]})
    south = await call(api, "GET", "/api/dispatch/nearest",
                       params={"lat": point[0], "lon": point[1], "team": world.teams["south"], "n": 1})
    assert [r["user_id"] for r in south["items"]] == [min(
        (world.reps["south-1"].id, world.reps["south-2"].id), key=lambda u: haversine_m(*point, *fixes[u]))]
    far = await call(api, "GET", "/api/dispatch/nearest",
                     params={"lat": point[0], "lon": point[1], "max_km": 0.5, "n": 10})
    assert [r["user_id"] for r in far["items"]] == [world.reps["north-1"].id]


async def test_at_a_customer_and_moved_by_live_positions(api: Api, world: World) -> None:
    rep = world.reps["south-2"]
    assert rep.device is not None
    customer = await call(api, "POST", "/api/customers", expect=201, json={
        "name": "Bakery", "latitude": 51.5, "longitude": 5.0, "radius_m": 150,
        "team_id": world.teams["south"]})
    await fresh_fix(api, rep.device, 51.5003, 5.0)  # 33 m from the bakery, now
    body = await call(api, "GET", "/api/dispatch/nearest", params={"customer": customer["id"], "n": 1})
    top = body["items"][0]
    assert (top["user_id"], top["status"], top["at_customer"]) == (rep.id, "at_customer", customer["id"])
    assert abs(top["distance_m"] - 33.4) < 1

    await fresh_fix(api, rep.device, 51.518, 5.0, later_s=120)  # 2 km north; heard live
    for _ in range(100):
        body = await call(api, "GET", "/api/dispatch/nearest", params={"customer": customer["id"], "n": 1})
        if body["items"][0]["distance_m"] > 1000:
            break
        await asyncio.sleep(0.05)
    top = body["items"][0]
    assert top["user_id"] == rep.id and abs(top["distance_m"] - haversine_m(51.5, 5.0, 51.518, 5.0)) < 1
    assert top["at_customer"] is None


async def test_bad_requests(api: Api, world: World) -> None:
    await call(api, "GET", "/api/dispatch/nearest", expect=422, params={"lat": 52.0})
    await call(api, "GET", "/api/dispatch/nearest", expect=422, params={"lat": 95, "lon": 4})
    await call(api, "GET", "/api/dispatch/nearest", expect=422, params={"lat": 52, "lon": 4, "customer": 1})
    await call(api, "GET", "/api/dispatch/nearest", expect=404, params={"customer": 999_999})
