"""Devices CRUD, position history and latest positions, auth and error bodies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from protocols.model import Position
from storage.rows import StoredPosition
from storage.writer import insert_rows
from tests.api.conftest import REP, Api

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


async def add_positions(api: Api, device_id: int, unique_id: str, n: int) -> None:
    rows = [
        StoredPosition(device_id, unique_id, "gt06", datetime.now(UTC),
                       Position(fix_time=T0 + timedelta(minutes=i), latitude=52 + i / 1000, longitude=4.9,
                                speed_kmh=10.0 * i, attributes={"battery_pct": 90 - i}))
        for i in range(n)
    ]
    async with api.pool.connection() as conn:
        await insert_rows(conn, rows)


async def test_health_needs_no_token(api: Api) -> None:
    r = await api.client.get("/api/health")
    assert r.status_code == 200
    assert r.json()["version"] == "test"


@pytest.mark.parametrize("path", ["/api/devices", "/api/positions/latest", "/api/devices/1/positions"])
async def test_everything_else_needs_a_valid_token(api: Api, path: str) -> None:
    r = await api.client.get(path)
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    r = await api.client.get(path, headers=api.auth("wrong"))
    assert r.status_code == 401


async def test_device_lifecycle(api: Api) -> None:
    r = await api.client.post("/api/devices", json={"unique_id": "123456789012345", "name": "Van 1",
                                                    "protocol": "gt06"}, headers=api.auth())
    assert r.status_code == 201, r.text
    dev = r.json()
    assert r.headers["location"] == f"/api/devices/{dev['id']}"
    assert (await api.deps.directory.resolve("123456789012345")) is not None
    r = await api.client.post("/api/devices", json={"unique_id": "123456789012345", "name": "dup"},
                              headers=api.auth())
    assert r.status_code == 409 and r.json()["error"] == "conflict"
    r = await api.client.patch(f"/api/devices/{dev['id']}", json={"name": "Van One"}, headers=api.auth())
    assert r.status_code == 200 and r.json()["name"] == "Van One"
    r = await api.client.get("/api/devices?limit=10", headers=api.auth())
    assert r.json()["total"] == 1 and r.json()["items"][0]["name"] == "Van One"
    r = await api.client.delete(f"/api/devices/{dev['id']}", headers=api.auth())
    assert r.status_code == 204
    assert (await api.client.get(f"/api/devices/{dev['id']}", headers=api.auth())).status_code == 404
    api.deps.directory.negative_ttl_s = 0
    assert (await api.deps.directory.resolve("123456789012345")) is None


async def test_bad_device_input_is_a_clear_422(api: Api) -> None:
    r = await api.client.post("/api/devices", json={"unique_id": "", "name": "x"}, headers=api.auth())
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "invalid" and any("unique_id" in p["where"] for p in body["detail"])


async def test_rep_token_cannot_change_devices(api: Api) -> None:
    r = await api.client.post("/api/devices", json={"unique_id": "x1", "name": "x"}, headers=api.auth(REP))
    assert r.status_code == 403 and r.json()["error"] == "forbidden"


async def test_positions_paginate_in_both_orders(api: Api) -> None:
    dev = (await api.client.post("/api/devices", json={"unique_id": "p1", "name": "P"},
                                 headers=api.auth())).json()
    await add_positions(api, dev["id"], "p1", 25)
    params = {"from": T0.isoformat(), "to": (T0 + timedelta(hours=1)).isoformat(), "limit": "10"}
    for order, first in (("asc", T0), ("desc", T0 + timedelta(minutes=24))):
        seen: list[str] = []
        cursor = None
        while True:
            q = {**params, "order": order} | ({"cursor": cursor} if cursor else {})
            r = await api.client.get(f"/api/devices/{dev['id']}/positions", params=q, headers=api.auth())
            assert r.status_code == 200, r.text
            page = r.json()
            seen += [p["fix_time"] for p in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert len(seen) == 25 and len(set(seen)) == 25
        assert datetime.fromisoformat(seen[0]) == first
        assert seen == sorted(seen, reverse=order == "desc")
    item = r.json()["items"][0]
    assert {"fix_time", "server_time", "latitude", "longitude", "speed_kmh", "course_deg", "altitude_m",
            "accuracy_m", "hdop", "valid", "protocol", "attributes", "device_id"} <= item.keys()


async def test_position_time_rules(api: Api) -> None:
    dev = (await api.client.post("/api/devices", json={"unique_id": "p2", "name": "P"},
                                 headers=api.auth())).json()
    url = f"/api/devices/{dev['id']}/positions"
    naive = await api.client.get(url, params={"from": "2026-11-20T08:00:00"}, headers=api.auth())
    assert naive.status_code == 422 and "zone" in naive.json()["detail"]
    backwards = {"from": "2026-11-21T00:00:00Z", "to": "2026-11-20T00:00:00Z"}
    reversed_ = await api.client.get(url, params=backwards, headers=api.auth())
    assert reversed_.status_code == 422
    garbage = await api.client.get(url, params={"from": "yesterday"}, headers=api.auth())
    assert garbage.status_code == 422
    missing = await api.client.get("/api/devices/999999/positions", headers=api.auth())
    assert missing.status_code == 404


async def test_latest_has_one_row_per_device_with_the_newest_fix(api: Api) -> None:
    ids = []
    for uid in ("a", "b"):
        dev = (await api.client.post("/api/devices", json={"unique_id": uid, "name": uid},
                                     headers=api.auth())).json()
        ids.append(dev["id"])
    await add_positions(api, ids[0], "a", 5)
    await add_positions(api, ids[1], "b", 3)
    r = await api.client.get("/api/positions/latest", headers=api.auth())
    latest = {p["unique_id"]: p for p in r.json()}
    assert set(latest) == {"a", "b"}
    assert datetime.fromisoformat(latest["a"]["fix_time"]) == T0 + timedelta(minutes=4)
    assert datetime.fromisoformat(latest["b"]["fix_time"]) == T0 + timedelta(minutes=2)
    assert latest["a"]["attributes"]["battery_pct"] == 86
