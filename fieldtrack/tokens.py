"""``fieldtrack token`` and ``fieldtrack user add``: write tokens and people directly in the
database (the first people of a new install, or a lost admin token)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from psycopg_pool import AsyncConnectionPool

from fieldtrack.settings import Settings
from storage import db
from storage.embedded import EmbeddedPostgres
from storage.timescale import TimescalePolicy
from storage.tokens import TokenStore, new_token
from storage.users import TeamStore, User, UserStore


@asynccontextmanager
async def _pool(settings: Settings) -> AsyncIterator[AsyncConnectionPool]:
    url = settings.database_url or EmbeddedPostgres(settings.pgdata_dir).start()
    await db.prepare(url, TimescalePolicy(settings.chunk_interval, settings.compress_after,
                                          settings.retain_for))
    pool = db.open_pool(url, 1)
    await pool.open(wait=True)
    try:
        yield pool
    finally:
        await pool.close()


async def create_token(settings: Settings, name: str, role: str) -> str:
    async with _pool(settings) as pool:
        token = new_token()
        await TokenStore(pool).add(token, name, role)
        return token


async def add_user(pool: AsyncConnectionPool, name: str, role: str, *, team: str | None = None,
                   email: str | None = None) -> tuple[User, str]:
    """The new user and their first token. ``team``: a team id, or a team name (created when no
    team has it). A manager given a team also manages it. ValueError for a bad role; Conflict
    for a taken email; NotFound for an unknown team id."""
    team_id = None
    if team is not None:
        teams = TeamStore(pool)
        if team.isdigit():
            team_id = (await teams.get(int(team))).id
        else:
            found = await teams.by_name(team)
            team_id = found.id if found is not None else (await teams.create(team)).id
    users = UserStore(pool)
    user = await users.create(name, role, email=email, team_id=team_id)
    if role == "manager" and team_id is not None:
        await TeamStore(pool).add_manager(team_id, user.id)
    _, token = await users.issue_token(user.id, "first token (fieldtrack user add)")
    return await users.get(user.id), token


async def create_user(settings: Settings, name: str, role: str, *, team: str | None = None,
                      email: str | None = None) -> tuple[User, str]:
    async with _pool(settings) as pool:
        return await add_user(pool, name, role, team=team, email=email)

