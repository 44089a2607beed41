"""Who sees what (api/access.py), proved on every device-scoped route with two teams, each with a
manager and two reps who carry a device that drove a trip: a rep sees only their own, a manager
their team's, an admin everything; what a caller may not see is answered like what does not exist."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
import websockets

from gateway.processing import ProcessingRunner
from protocols.model import Position
from storage.rows import StoredPosition
from storage.writer import insert_rows
from tests.api.conftest import ADMIN, Api
from tests.api.people import DAY, T0, World, call, world

__all__ = ["world"]  # the fixture, imported so pytest finds it here

DEVICE_READS = ("", "/positions", "/trips", "/stops", "/summary", "/route")


async def status_of(api: Api, path: str, token: str, **params: Any) -> int:
    r = await api.client.get(path, params=params, headers=api.auth(token))
    return r.status_code


async def device_read(api: Api, dev: int, kind: str, token: str) -> Any:
    params = DAY if kind else {}
    return await api.client.get(f"/api/devices/{dev}{kind}", params=params, headers=api.auth(token))


async def test_a_rep_sees_their_own_device_and_nothing_of_another_rep(api: Api, world: World) -> None:
    me, colleague, stranger = world.reps["north-1"], world.reps["north-2"], world.reps["south-1"]
    assert me.device is not None
    for kind in DEVICE_READS:
        r = await device_read(api, me.device, kind, me.token)
        assert r.status_code == 200, (kind, r.text)
    trips = (await device_read(api, me.device, "/trips", me.token)).json()["items"]
    assert len(trips) == 1 and trips[0]["distance_km"] > 2.5
    unknown = await device_read(api, 987654, "/trips", ADMIN)
    for other in (colleague, stranger):
        assert other.device is not None
        for kind in DEVICE_READS:
            r = await device_read(api, other.device, kind, me.token)
            # Exactly the answer for a device that does not exist.
            assert r.status_code == 404 and r.json() == {"error": "not_found",
                                                         "detail": f"device {other.device} not found"}
            assert unknown.json()["detail"] == "device 987654 not found"
    listed = await call(api, "GET", "/api/devices", me.token)
    assert [d["id"] for d in listed["items"]] == [me.device] and listed["total"] == 1
    latest = await call(api, "GET", "/api/positions/latest", me.token)
    assert [p["device_id"] for p in latest] == [me.device]


async def test_a_rep_gets_only_their_own_status_events_and_summary(api: Api, world: World) -> None:
    me, other = world.reps["north-1"], world.reps["south-2"]
    assert [s["id"] for s in await call(api, "GET", "/api/status", me.token)] == [me.device]
    assert await call(api, "GET", "/api/status", me.token, params={"device": [other.device]}) == []
    events = await call(api, "GET", "/api/events", me.token, params=DAY)
    assert {e["device_id"] for e in events["items"]} == {me.device} and len(events["items"]) >= 1
    narrowed = await call(api, "GET", "/api/events", me.token, params={**DAY, "device": other.device})
    assert narrowed["items"] == []
    # The admin does see the other rep's event, so the empty answer above is the filter at work.
    assert (await call(api, "GET", "/api/events", params={**DAY, "device": other.device}))["items"]
    summary = await call(api, "GET", "/api/reports/summary", me.token, params=DAY)
    assert [d["device_id"] for d in summary["devices"]] == [me.device]
    r = await api.client.get("/api/reports/summary", params={**DAY, "device": [me.device, other.device]},
                             headers=api.auth(me.token))
    assert r.status_code == 404 and r.json()["detail"] == f"device {other.device} not found"


async def test_a_manager_sees_their_team_and_not_the_other(api: Api, world: World) -> None:
    north = world.managers["north"]
    mine, theirs = world.devices("north"), world.devices("south")
    listed = await call(api, "GET", "/api/devices", north.token)
    assert [d["id"] for d in listed["items"]] == mine
    for dev in mine:
        for kind in DEVICE_READS:
            assert (await device_read(api, dev, kind, north.token)).status_code == 200
    for dev in theirs:
        for kind in DEVICE_READS:
            assert (await device_read(api, dev, kind, north.token)).status_code == 404
    assert [s["id"] for s in await call(api, "GET", "/api/status", north.token)] == mine
    events = await call(api, "GET", "/api/events", north.token, params=DAY)
    assert {e["device_id"] for e in events["items"]} == set(mine)
    users = await call(api, "GET", "/api/users", north.token)
    assert sorted(u["id"] for u in users["items"]) == sorted(
        [north.id, world.reps["north-1"].id, world.reps["north-2"].id])
    assert (await api.client.get(f"/api/users/{world.reps['south-1'].id}",
                                 headers=api.auth(north.token))).status_code == 404
    teams = await call(api, "GET", "/api/teams", north.token)
    assert [t["id"] for t in teams["items"]] == [world.teams["north"]]
    assert (await api.client.get(f"/api/teams/{world.teams['south']}",
                                 headers=api.auth(north.token))).status_code == 404


async def test_a_managers_fleet_summary_covers_only_their_team(api: Api, world: World) -> None:
    north = world.managers["north"]
    everyone = await call(api, "GET", "/api/reports/summary", params=DAY)
    by_device = {d["device_id"]: d["total"]["distance_km"] for d in everyone["devices"]}
    assert sorted(by_device) == sorted(world.devices("north") + world.devices("south"))
    mine = await call(api, "GET", "/api/reports/summary", north.token, params=DAY)
    assert [d["device_id"] for d in mine["devices"]] == world.devices("north")
    assert [d["total"]["distance_km"] for d in mine["devices"]] == [
        by_device[x] for x in world.devices("north")]
    # A group holding devices of both teams stands for the manager's devices in it only.
    group = await call(api, "POST", "/api/groups", expect=201, json={"name": "mixed"})
    for dev in (world.devices("north")[0], *world.devices("south")):
        await call(api, "PUT", f"/api/groups/{group['id']}/devices/{dev}", expect=204)
    grouped = await call(api, "GET", "/api/reports/summary", north.token,
                         params={**DAY, "group": group["id"]})
    assert [d["device_id"] for d in grouped["devices"]] == [world.devices("north")[0]]
    r = await api.client.get("/api/reports/summary", params={**DAY, "group": 987654},
                             headers=api.auth(north.token))
    assert r.status_code == 404


async def test_an_admin_sees_everything(api: Api, world: World) -> None:
    every = sorted(world.devices("north") + world.devices("south"))
    assert [d["id"] for d in (await call(api, "GET", "/api/devices"))["items"]] == every
    assert [s["id"] for s in await call(api, "GET", "/api/status")] == every
    for dev in every:
        assert (await device_read(api, dev, "/trips", ADMIN)).json()["items"]
    me = await call(api, "GET", "/api/me")
    assert me["user"] is None and me["role"] == "admin" and me["scope"]["everything"] is True


async def test_me_tells_who_and_what(api: Api, world: World) -> None:
    rep = world.reps["south-2"]
    me = await call(api, "GET", "/api/me", rep.token)
    assert me["user"]["id"] == rep.id and me["role"] == "rep" and me["token_name"] == "phone"
    assert me["scope"] == {"everything": False, "user_ids": [rep.id], "team_ids": [world.teams["south"]],
                           "managed_team_ids": [], "device_ids": [rep.device]}
    manager = await call(api, "GET", "/api/me", world.managers["south"].token)
    assert manager["scope"]["device_ids"] == world.devices("south")
    assert manager["scope"]["managed_team_ids"] == [world.teams["south"]]


async def test_linking_devices(api: Api, world: World) -> None:
    north, south = world.managers["north"], world.managers["south"]
    one, two, stranger = world.reps["north-1"], world.reps["north-2"], world.reps["south-1"]
    # A device carried by one rep cannot be linked to another: 409, by the admin or a manager.
    r = await api.client.put(f"/api/users/{two.id}/devices/{one.device}", headers=api.auth())
    assert r.status_code == 409 and r.json()["error"] == "conflict"
    r = await api.client.put(f"/api/users/{two.id}/devices/{stranger.device}", headers=api.auth(north.token))
    assert r.status_code == 409
    # Linking it again to the same rep changes nothing.
    await call(api, "PUT", f"/api/users/{one.id}/devices/{one.device}", north.token, expect=204)
    # A manager links a new tracker to their rep, who then sees it; the other manager cannot.
    van = await call(api, "POST", "/api/devices", expect=201, json={"unique_id": "van-7", "name": "Van 7"})
    assert (await api.client.put(f"/api/users/{one.id}/devices/{van['id']}",
                                 headers=api.auth(south.token))).status_code == 404
    assert (await api.client.put(f"/api/users/{one.id}/devices/{van['id']}",
                                 headers=api.auth(one.token))).status_code == 403
    await call(api, "PUT", f"/api/users/{one.id}/devices/{van['id']}", north.token, expect=204)
    assert (await device_read(api, van["id"], "", one.token)).status_code == 200
    assert (await device_read(api, van["id"], "", north.token)).status_code == 200
    assert (await device_read(api, van["id"], "", two.token)).status_code == 404
    await call(api, "DELETE", f"/api/users/{one.id}/devices/{van['id']}", north.token, expect=204)
    assert (await device_read(api, van["id"], "", one.token)).status_code == 404
    r = await api.client.delete(f"/api/users/{one.id}/devices/{van['id']}", headers=api.auth(north.token))
    assert r.status_code == 404


async def test_calendars_set_by_the_teams_manager(api: Api, world: World) -> None:
    rep = world.reps["north-2"]
    body = {"working_hours": {"tue": [["07:30", "16:00"]]}, "time_zone": "Europe/Berlin"}
    got = await call(api, "PUT", f"/api/users/{rep.id}/calendar", world.managers["north"].token, json=body)
    assert got["working_hours"] == body["working_hours"] and got["time_zone"] == "Europe/Berlin"
    assert (await api.client.put(f"/api/users/{rep.id}/calendar", json=body,
                                 headers=api.auth(world.managers["south"].token))).status_code == 404
    assert (await api.client.put(f"/api/users/{rep.id}/calendar", json=body,
                                 headers=api.auth(rep.token))).status_code == 403
    for bad in ({"working_hours": {"tue": [["16:00", "07:30"]]}, "time_zone": None},
                {"working_hours": None, "time_zone": "Mars/Olympus"}):
        r = await api.client.put(f"/api/users/{rep.id}/calendar", json=bad,
                                 headers=api.auth(world.managers["north"].token))
        assert r.status_code == 422 and r.json()["error"] == "invalid"
    cleared = await call(api, "PUT", f"/api/users/{rep.id}/calendar", json={"working_hours": None,
                                                                           "time_zone": None})
    assert cleared["working_hours"] is None and cleared["time_zone"] is None


async def test_geofence_writes_need_a_manager_who_sees_the_devices(api: Api, world: World) -> None:
    circle = {"name": "depot", "geometry": {"type": "Point", "coordinates": [4.0, 52.0]}, "radius_m": 200}
    north = world.managers["north"]
    fence = await call(api, "POST", "/api/geofences", north.token, expect=201,
                       json={**circle, "device_ids": world.devices("north")})
    r = await api.client.post("/api/geofences", json={**circle, "device_ids": world.devices("south")},
                              headers=api.auth(north.token))
    assert r.status_code == 404
    r = await api.client.post("/api/geofences", json=circle, headers=api.auth(world.reps["north-1"].token))
    assert r.status_code == 403
    got = await call(api, "GET", f"/api/geofences/{fence['id']}", world.reps["south-1"].token)
    assert got["device_ids"] == world.devices("north")
    await call(api, "DELETE", f"/api/geofences/{fence['id']}", north.token, expect=204)


async def test_the_stream_gives_a_rep_only_their_own_devices(api: Api, world: World, ws_url: str) -> None:
    me, other = world.reps["north-2"], world.reps["north-1"]
    assert me.device is not None and other.device is not None
    async with websockets.connect(f"{ws_url}?kind=position&token={me.token}") as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert hello["devices"] == [me.device]
        await asyncio.sleep(0.3)  # the hub starts listening with its first subscriber
        for dev in (other.device, me.device):  # one more position on each, an hour after the drive
            later = T0 + timedelta(hours=1)
            async with api.pool.connection() as conn:
                await insert_rows(conn, [StoredPosition(dev, f"dev-{dev}", "test", later, Position(
                    fix_time=later, latitude=52.5, longitude=4.5, speed_kmh=0.0))])
            await ProcessingRunner(api.pool).process(dev)
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert message["kind"] == "position" and message["device_id"] == me.device
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 1.0)
