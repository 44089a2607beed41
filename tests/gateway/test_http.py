"""OsmAnd over HTTP through the real listener: 200 only once stored, clear statuses otherwise."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from protocols import osmand
from tests.gateway.conftest import Running, start_gateway, stop_gateway

T = 1_763_900_000


@pytest.fixture
async def phone_gateway(database_url: str, tmp_path: Path) -> AsyncIterator[Running]:
    running, tasks = await start_gateway(database_url, tmp_path / "spool", [osmand.PROTOCOL])
    try:
        running.directory.remember(await running.devices.create("phone-1", "Rep phone", "osmand"))
        yield running
    finally:
        await stop_gateway(running, tasks)


async def test_get_query_is_stored_before_200(phone_gateway: Running) -> None:
    base = f"http://127.0.0.1:{phone_gateway.http_port('osmand')}"
    async with httpx.AsyncClient(base_url=base) as client:
        r = await client.get("/", params={"id": "phone-1", "lat": "52.37", "lon": "4.89", "timestamp": str(T),
                                          "speed": "10", "batt": "77"})
        assert r.status_code == 200
        assert phone_gateway.count("phone-1") == 1


async def test_json_post_from_background_geolocation_app(phone_gateway: Running) -> None:
    body = {"device_id": "phone-1", "location": {
        "timestamp": "2026-11-20T08:00:00.000Z", "is_moving": True, "mock": True,
        "coords": {"latitude": 52.1, "longitude": 4.3, "accuracy": 8, "speed": 5, "heading": 90,
                   "altitude": 3},
        "battery": {"level": 0.5, "is_charging": False}}}
    base = f"http://127.0.0.1:{phone_gateway.http_port('osmand')}"
    async with httpx.AsyncClient(base_url=base) as client:
        r = await client.post("/", content=json.dumps(body), headers={"Content-Type": "application/json"})
        assert r.status_code == 200
    assert phone_gateway.count("phone-1") == 1


async def test_errors_are_distinguishable(phone_gateway: Running) -> None:
    base = f"http://127.0.0.1:{phone_gateway.http_port('osmand')}"
    async with httpx.AsyncClient(base_url=base) as client:
        unknown = await client.get("/", params={"id": "who", "lat": "1", "lon": "1", "timestamp": str(T)})
        assert unknown.status_code == 403
        no_id = await client.get("/", params={"lat": "1", "lon": "1"})
        assert no_id.status_code == 400
        garbage = await client.post("/", content=b"{not json", headers={"Content-Type": "application/json"})
        assert garbage.status_code == 400
        huge = await client.post("/", content=b"x" * (2 << 20))
        assert huge.status_code == 413
    assert phone_gateway.count() == 0


async def test_owntracks_http_mode(database_url: str, tmp_path: Path) -> None:
    from starlette.applications import Starlette

    from gateway.http import add_owntracks
    from protocols import owntracks

    running, tasks = await start_gateway(database_url, tmp_path / "spool", [])
    try:
        running.directory.remember(await running.devices.create("anna/phone", "Anna", "owntracks"))
        app = Starlette()
        add_owntracks(app, owntracks.PROTOCOL, running.gateway.ingest)
        body = b'{"_type":"location","lat":52.37,"lon":4.89,"tst":1763884800,"acc":9,"batt":70}'
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            r = await client.post("/owntracks/pub", content=body,
                                  headers={"X-Limit-U": "anna", "X-Limit-D": "phone",
                                           "Content-Type": "application/json"})
            assert r.status_code == 200 and r.json() == []
            lwt = await client.post("/owntracks/pub", content=b'{"_type":"lwt","tst":1}',
                                    headers={"X-Limit-U": "anna", "X-Limit-D": "phone"})
            assert lwt.status_code == 200
            other = await client.post("/owntracks/pub", content=body,
                                      headers={"X-Limit-U": "bob", "X-Limit-D": "phone"})
            assert other.status_code == 403
            # The app's URL set to /owntracks itself: stored too, not redirected.
            later = body.replace(b"1763884800", b"1763884860")
            bare = await client.post("/owntracks", content=later,
                                     headers={"X-Limit-U": "anna", "X-Limit-D": "phone"})
            assert bare.status_code == 200 and bare.json() == []
        assert running.count("anna/phone") == 2
    finally:
        await stop_gateway(running, tasks)
