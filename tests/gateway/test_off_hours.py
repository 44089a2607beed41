"""A team that keeps no off-duty positions (``store_off_hours: false``), through the real HTTP
listener, ingest and writer into the real database: off-duty fixes are answered 200 (acknowledged)
but not stored, on-duty fixes and status reports without a fix are stored, and a policy change
takes effect within the refresh period."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest

from gateway.privacy_cache import OffHoursPolicy
from protocols import osmand
from tests.gateway.conftest import Running, start_gateway, stop_gateway

AMS = ZoneInfo("Europe/Amsterdam")
DAY = date(2026, 11, 30)
HOURS = {d: [["08:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def epoch(hh: int, mm: int = 0, ss: int = 0) -> int:
    return int(datetime.combine(DAY, time(hh, mm, ss), AMS).timestamp())


@pytest.fixture
async def field_gateway(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Running, OffHoursPolicy]]:
    """Rep phone "phone-1" in team "field" (08:00-17:00 Amsterdam, store_off_hours false); "van-1"
    is carried by nobody."""
    running, tasks = await start_gateway(database_url, tmp_path / "spool", [osmand.PROTOCOL])
    try:
        phone = await running.devices.create("phone-1", "Rep phone", "osmand")
        running.directory.remember(phone)
        running.directory.remember(await running.devices.create("van-1", "Van", "osmand"))
        with psycopg.connect(database_url, autocommit=True) as conn:
            team = conn.execute(
                "INSERT INTO teams (name, time_zone, working_hours, settings) VALUES ('field',"
                " 'Europe/Amsterdam', %s, %s) RETURNING id",
                (json.dumps(HOURS), json.dumps({"store_off_hours": False}))).fetchone()
            assert team is not None
            user = conn.execute("INSERT INTO users (name, role, team_id) VALUES ('rep', 'rep', %s)"
                                " RETURNING id", (team[0],)).fetchone()
            assert user is not None
            conn.execute("INSERT INTO user_devices (user_id, device_id) VALUES (%s, %s)", (user[0], phone.id))
        policy = OffHoursPolicy(running.writer.pool, refresh_s=0.2)
        running.gateway.ingest.off_hours = policy
        yield running, policy
    finally:
        await stop_gateway(running, tasks)
        await policy.close()


def stored(url: str, unique_id: str) -> list[tuple[datetime, float | None]]:
    with psycopg.connect(url) as conn:
        return [(t, lat) for t, lat in conn.execute(
            "SELECT p.fix_time, p.latitude FROM positions p JOIN devices d ON d.id = p.device_id"
            " WHERE d.unique_id = %s ORDER BY p.fix_time", (unique_id,)).fetchall()]


async def test_off_duty_fixes_are_acknowledged_not_stored(
        field_gateway: tuple[Running, OffHoursPolicy]) -> None:
    running, _ = field_gateway
    base = f"http://127.0.0.1:{running.http_port('osmand')}"
    async with httpx.AsyncClient(base_url=base) as client:
        async def send(unique_id: str, ts: int, fix: bool = True) -> None:
            params = {"id": unique_id, "timestamp": str(ts), "batt": "50"}
            if fix:
                params |= {"lat": "52.37", "lon": "4.89"}
            r = await client.get("/", params=params)
            assert r.status_code == 200, r.text  # acknowledged either way

        await send("phone-1", epoch(7))  # 07:00 local: off duty, dropped
        await send("phone-1", epoch(7, 30), fix=False)  # a status report without a fix: kept
        await send("phone-1", epoch(10))  # on duty: stored
        await send("phone-1", epoch(17, 0, 1))  # just after the end of the day: dropped
        await send("van-1", epoch(7))  # nobody carries the van: stored

    at = [datetime.fromtimestamp(epoch(*hm), UTC) for hm in ((7, 30), (10, 0))]
    # The status report is stored without a place: the dropped 07:00 fix is not its last location.
    assert stored(running.url, "phone-1") == [(at[0], None), (at[1], 52.37)]
    assert stored(running.url, "van-1") == [(datetime.fromtimestamp(epoch(7), UTC), 52.37)]
    assert running.gateway.ingest.dropped_off_hours == 2


async def test_a_policy_change_takes_effect_within_the_refresh(
        field_gateway: tuple[Running, OffHoursPolicy]) -> None:
    running, policy = field_gateway
    base = f"http://127.0.0.1:{running.http_port('osmand')}"
    async with httpx.AsyncClient(base_url=base) as client:
        r = await client.get("/", params={"id": "phone-1", "timestamp": str(epoch(6)), "lat": "52.3",
                                          "lon": "4.8"})
        assert r.status_code == 200 and stored(running.url, "phone-1") == []
        with psycopg.connect(running.url, autocommit=True) as conn:
            conn.execute("UPDATE teams SET settings = '{\"store_off_hours\": true}'")
        # Within a few refresh periods (0.2 s) an off-duty fix is stored again.
        for second in range(1, 50):
            r = await client.get("/", params={"id": "phone-1", "timestamp": str(epoch(6, 0, second)),
                                              "lat": "52.3", "lon": "4.8"})
            assert r.status_code == 200
            if stored(running.url, "phone-1"):
                break
            await asyncio.sleep(0.05)
        assert len(stored(running.url, "phone-1")) == 1
    assert policy.refresh_s == 0.2 and running.gateway.ingest.dropped_off_hours >= 1
