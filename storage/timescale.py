"""TimescaleDB features, used only when the extension is available on the server.

The positions table becomes a hypertable chunked by fix time, with native compression
(segmented by device, so one device's day decompresses alone) and an optional retention policy.
Everything here is idempotent: it runs at every start and converges on the configured policy.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import AsyncConnection


@dataclass(frozen=True, slots=True)
class TimescalePolicy:
    chunk_interval: str = "1 day"
    compress_after: str | None = "7 days"
    retain_for: str | None = None


async def available(conn: AsyncConnection) -> bool:
    cur = await conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    return await cur.fetchone() is not None


async def enable(conn: AsyncConnection, policy: TimescalePolicy) -> bool:
    """Turn on hypertable, compression and retention; False when the extension is absent."""
    if not await available(conn):
        return False
    await conn.set_autocommit(True)
    await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    await conn.execute(
        "SELECT create_hypertable('positions', 'fix_time', chunk_time_interval => %s::interval,"
        " if_not_exists => true, migrate_data => true)",
        (policy.chunk_interval,),
    )
    if policy.compress_after:
        await conn.execute(
            "ALTER TABLE positions SET (timescaledb.compress,"
            " timescaledb.compress_segmentby = 'device_id', timescaledb.compress_orderby = 'fix_time DESC')"
        )
        await conn.execute("SELECT remove_compression_policy('positions', if_exists => true)")
        await conn.execute(
            "SELECT add_compression_policy('positions', %s::interval)", (policy.compress_after,)
        )
    await conn.execute("SELECT remove_retention_policy('positions', if_exists => true)")
    if policy.retain_for:
        await conn.execute("SELECT add_retention_policy('positions', %s::interval)", (policy.retain_for,))
    return True
