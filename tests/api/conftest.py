"""The API app on a real database, called in-process through httpx's ASGI transport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from api.app import create_app
from api.deps import ApiDeps
from gateway.http import server_for
from storage import db
from storage.devices import DeviceDirectory, DeviceStore
from storage.positions import PositionStore
from storage.tokens import TokenStore
from tests.ports import free_port

ADMIN = "test-admin-token"
REP = "test-rep-token"


@dataclass
class Api:
    client: httpx.AsyncClient
    pool: AsyncConnectionPool
    deps: ApiDeps

    def auth(self, token: str = ADMIN) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    pool = db.open_pool(database_url, 4)
    await pool.open()
    devices = DeviceStore(pool)
    tokens = TokenStore(pool)
    await tokens.add(ADMIN, "admin", "admin")
    await tokens.add(REP, "rep", "rep")

    async def health() -> dict[str, Any]:
        return {"status": "ok", "database": {"reachable": True}, "listeners": [], "ingest": {}}

    deps = ApiDeps(devices, PositionStore(pool), tokens, DeviceDirectory(devices), health, "test",
                   pool)
    app = create_app(deps)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield Api(client, pool, deps)
    await pool.close()


@pytest.fixture
async def ws_url(api: Api) -> AsyncIterator[str]:
    """The app served by a real uvicorn on a free port: WebSockets need a real server."""
    port = free_port()
    server = server_for(create_app(api.deps), "127.0.0.1", port)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    yield f"ws://127.0.0.1:{port}/api/stream"
    server.should_exit = True
    await task
