"""API bearer tokens: only a SHA-256 of each token is stored.

A token belongs to a user (its role is the user's current role, and it stops working while the
user is disabled) or to nobody: a system token with the role it was made with (the bootstrap
admin, ``fieldtrack token``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from storage.errors import NotFound, StorageUnavailable


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "ft_" + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class TokenOwner:
    token_id: int
    name: str
    role: str
    user_id: int | None = None


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What may be shown of a token: never the secret, which is not stored."""

    id: int
    name: str
    role: str
    user_id: int | None
    created_at: datetime


class TokenStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def add(self, token: str, name: str, role: str, user_id: int | None = None) -> int:
        """Stores the token's hash (re-enabling it if it was revoked); returns its id."""
        rows = await self._rows(
            "INSERT INTO api_tokens (token_hash, name, role, user_id) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (token_hash) DO UPDATE SET revoked_at = NULL, role = EXCLUDED.role,"
            " user_id = EXCLUDED.user_id RETURNING id",
            (hash_token(token), name, role, user_id))
        return int(rows[0]["id"])

    async def has_admin(self) -> bool:
        rows = await self._rows(
            "SELECT 1 FROM api_tokens t LEFT JOIN users u ON u.id = t.user_id"
            " WHERE t.revoked_at IS NULL AND coalesce(u.role, t.role) = 'admin'"
            " AND NOT coalesce(u.disabled, false) LIMIT 1", ())
        return bool(rows)

    async def owner(self, token: str) -> TokenOwner | None:
        """None for an unknown or revoked token and for a token of a disabled user."""
        rows = await self._rows(
            "SELECT t.id AS token_id, t.name, coalesce(u.role, t.role) AS role, t.user_id"
            " FROM api_tokens t LEFT JOIN users u ON u.id = t.user_id"
            " WHERE t.token_hash = %s AND t.revoked_at IS NULL AND NOT coalesce(u.disabled, false)",
            (hash_token(token),))
        return TokenOwner(**rows[0]) if rows else None

    async def get(self, token_id: int) -> TokenInfo:
        rows = await self._rows(
            "SELECT t.id, t.name, coalesce(u.role, t.role) AS role, t.user_id, t.created_at"
            " FROM api_tokens t LEFT JOIN users u ON u.id = t.user_id WHERE t.id = %s", (token_id,))
        if not rows:
            raise NotFound(f"token {token_id}")
        return TokenInfo(**rows[0])

    async def for_user(self, user_id: int, *, limit: int, after: int | None = None) -> list[TokenInfo]:
        """The user's tokens that are not revoked, by id; ``after``: the last id of the previous page."""
        rows = await self._rows(
            "SELECT t.id, t.name, coalesce(u.role, t.role) AS role, t.user_id, t.created_at"
            " FROM api_tokens t JOIN users u ON u.id = t.user_id"
            " WHERE t.user_id = %s AND t.revoked_at IS NULL AND t.id > %s ORDER BY t.id LIMIT %s",
            (user_id, after if after is not None else 0, limit))
        return [TokenInfo(**r) for r in rows]

    async def revoke(self, token_id: int, *, user_id: int) -> None:
        """NotFound unless the token is the user's and not revoked yet."""
        rows = await self._rows(
            "UPDATE api_tokens SET revoked_at = now()"
            " WHERE id = %s AND user_id = %s AND revoked_at IS NULL RETURNING id", (token_id, user_id))
        if not rows:
            raise NotFound(f"token {token_id}")

    async def _rows(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        try:
            async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(sql.encode(), params)
                return await cur.fetchall() if cur.description else []
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(str(exc)) from exc
