"""``fieldtrack token``: mint an API token directly in the database (e.g. a lost admin token)."""

from __future__ import annotations

from fieldtrack.settings import Settings
from storage import db
from storage.embedded import EmbeddedPostgres
from storage.timescale import TimescalePolicy
from storage.tokens import TokenStore, new_token


async def create_token(settings: Settings, name: str, role: str) -> str:
    url = settings.database_url or EmbeddedPostgres(settings.pgdata_dir).start()
    await db.prepare(url, TimescalePolicy(settings.chunk_interval, settings.compress_after,
                                          settings.retain_for))
    pool = db.open_pool(url, 1)
    await pool.open(wait=True)
    try:
        token = new_token()
        await TokenStore(pool).add(token, name, role)
        return token
    finally:
        await pool.close()
