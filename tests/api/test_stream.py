"""``/api/stream`` over a real WebSocket (uvicorn on a free port) with the real database: what the
processing runner commits reaches subscribed clients, filtered by device, kind and token."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import websockets

from gateway.processing import ProcessingRunner
from protocols.model import Position
from storage.rows import StoredPosition
from storage.writer import insert_rows
from tests.api.conftest import ADMIN, REP, Api

T0 = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)


async def device(api: Api, name: str) -> int:
    return (await api.deps.devices.create(name, name)).id


async def store_and_process(api: Api, device_id: int, positions: list[Position]) -> None:
    rows = [StoredPosition(device_id, "x", "test", p.fix_time, p) for p in positions]
    async with api.pool.connection() as conn:
        await insert_rows(conn, rows)
    await ProcessingRunner(api.pool).process(device_id)


async def receive(ws: Any, within_s: float = 5.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), within_s))


async def test_positions_and_events_reach_a_subscriber(api: Api, ws_url: str) -> None:
    watched, other = await device(api, "watched"), await device(api, "other")
    async with websockets.connect(f"{ws_url}?device={watched}",
                                  additional_headers={"Authorization": f"Bearer {ADMIN}"}) as ws:
        hello = await receive(ws)
        assert hello == {"kind": "hello", "kinds": ["event", "position"], "devices": [watched]}
        await asyncio.sleep(0.3)  # the hub starts listening with its first subscriber
        await store_and_process(api, other, [Position(fix_time=T0, latitude=1.0, longitude=2.0)])
        await store_and_process(api, watched, [
            Position(fix_time=T0, latitude=52.0, longitude=4.0),
            Position(fix_time=T0 + timedelta(seconds=10), latitude=52.0, longitude=4.0,
                     attributes={"alarm": "sos"})])
        got = [await receive(ws), await receive(ws)]
        kinds = sorted(m["kind"] for m in got)
        assert kinds == ["event", "position"], got
        event = next(m for m in got if m["kind"] == "event")
        position = next(m for m in got if m["kind"] == "position")
        assert event["type"] == "alarm" and event["attributes"] == {"alarm": "sos"}
        assert event["device_id"] == watched and position["device_id"] == watched
        assert position["odometer_m"] == 0.0 and position["filtered"] is None
        with psycopg.connect(api_url(api)) as conn:
            assert conn.execute("SELECT id FROM events WHERE device_id = %s", (watched,)).fetchone() == (
                event["id"],)


def api_url(api: Api) -> str:
    conninfo = api.pool.conninfo
    assert isinstance(conninfo, str)
    return conninfo


async def test_kind_filter_and_token_in_query(api: Api, ws_url: str) -> None:
    d = await device(api, "only-events")
    async with websockets.connect(f"{ws_url}?kind=event&token={ADMIN}") as ws:
        assert (await receive(ws))["kinds"] == ["event"]
        await asyncio.sleep(0.3)
        await store_and_process(api, d, [Position(fix_time=T0, latitude=52.0, longitude=4.0,
                                                  attributes={"alarm": "powerCut"})])
        message = await receive(ws)
        assert message["kind"] == "event" and message["type"] == "alarm"


async def test_a_rep_token_without_a_user_sees_no_device(api: Api, ws_url: str) -> None:
    d = await device(api, "not-theirs")
    async with websockets.connect(f"{ws_url}?token={REP}") as ws:
        assert (await receive(ws))["devices"] == []
        await asyncio.sleep(0.3)
        await store_and_process(api, d, [Position(fix_time=T0, latitude=52.0, longitude=4.0,
                                                  attributes={"alarm": "sos"})])
        with pytest.raises(TimeoutError):
            await receive(ws, within_s=1.0)


@pytest.mark.parametrize("query", ["", "?token=nope", f"?token={ADMIN}&kind=weather"])
async def test_refused_without_a_valid_token_or_with_a_bad_kind(api: Api, ws_url: str, query: str) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(f"{ws_url}{query}") as ws:
            await receive(ws)
    assert refused.value.response.status_code == 403
