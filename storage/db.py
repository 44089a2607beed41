"""Opening the database: URL choice, pool, migrations and TimescaleDB, in one place."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from storage import migrate, timescale
from storage.errors import StorageUnavailable

log = logging.getLogger("fieldtrack.storage")


async def prepare(url: str, policy: timescale.TimescalePolicy) -> bool:
    """Apply migrations and TimescaleDB policy; returns whether TimescaleDB is in use."""
    try:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            applied = await migrate.apply(conn)
            for name in applied:
                log.info("applied migration %s", name)
            return await timescale.enable(conn, policy)
    except psycopg.OperationalError as exc:
        raise StorageUnavailable(str(exc)) from exc


def open_pool(url: str, size: int) -> AsyncConnectionPool:
    """An async pool (not yet opened) whose connections autocommit unless in a transaction."""
    return AsyncConnectionPool(
        url,
        min_size=1,
        max_size=size,
        kwargs={"autocommit": True},
        open=False,
        # An API call should fail fast with 503 while the database is away, not hang for 30 s.
        timeout=5.0,
    )


@asynccontextmanager
async def transaction(pool: AsyncConnectionPool) -> AsyncIterator[AsyncConnection]:
    """A pooled connection inside one transaction; the database being away is StorageUnavailable
    (503 at the API), not a driver error."""
    try:
        async with pool.connection() as conn, conn.transaction():
            yield conn
    except psycopg.OperationalError as exc:
        raise StorageUnavailable(str(exc)) from exc
