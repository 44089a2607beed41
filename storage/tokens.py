"""API bearer tokens: only a SHA-256 of each token is stored."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import psycopg
from psycopg_pool import AsyncConnectionPool

from storage.errors import StorageUnavailable


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "ft_" + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class TokenOwner:
    token_id: int
    name: str
    role: str


class TokenStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def add(self, token: str, name: str, role: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO api_tokens (token_hash, name, role) VALUES (%s, %s, %s)"
                " ON CONFLICT (token_hash) DO UPDATE SET revoked_at = NULL, role = EXCLUDED.role",
                (hash_token(token), name, role),
            )

    async def has_admin(self) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT 1 FROM api_tokens WHERE role = 'admin' AND revoked_at IS NULL LIMIT 1"
            )
            return await cur.fetchone() is not None

    async def owner(self, token: str) -> TokenOwner | None:
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT id, name, role FROM api_tokens WHERE token_hash = %s AND revoked_at IS NULL",
                    (hash_token(token),),
                )
                row = await cur.fetchone()
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(str(exc)) from exc
        return TokenOwner(*row) if row else None
