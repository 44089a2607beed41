"""The API app on a real database, called in-process through httpx's ASGI transport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from api.app import create_app
from api.deps import ApiDeps
from storage import db
from storage.devices import DeviceDirectory, DeviceStore
from storage.positions import PositionStore
from storage.tokens import TokenStore

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
