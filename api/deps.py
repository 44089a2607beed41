"""What the API needs from the rest of the process, passed in explicitly by the composition root."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import AsyncConnectionPool

from storage.devices import DeviceDirectory, DeviceStore
from storage.positions import PositionStore
from storage.tokens import TokenOwner, TokenStore


@dataclass
class ApiDeps:
    devices: DeviceStore
    positions: PositionStore
    tokens: TokenStore
    directory: DeviceDirectory
    health: Callable[[], Awaitable[dict[str, Any]]]
    version: str
    # For stores that are cheap to build per request (geofences, events, reports, webhooks).
    pool: AsyncConnectionPool | None = None

    def db(self) -> AsyncConnectionPool:
        if self.pool is None:
            raise RuntimeError("ApiDeps.pool is not set")
        return self.pool


def deps(request: Request) -> ApiDeps:
    value: ApiDeps = request.app.state.deps
    return value


_bearer = HTTPBearer(auto_error=False, description="API token: `Authorization: Bearer <token>`")


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenOwner:
    if credentials is None or not credentials.credentials:
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    owner = await deps(request).tokens.owner(credentials.credentials)
    if owner is None:
        raise HTTPException(401, "invalid or revoked token", headers={"WWW-Authenticate": "Bearer"})
    return owner


async def admin(owner: Annotated[TokenOwner, Depends(caller)]) -> TokenOwner:
    if owner.role != "admin":
        raise HTTPException(403, "this needs an admin token")
    return owner


Deps = Annotated[ApiDeps, Depends(deps)]
Caller = Annotated[TokenOwner, Depends(caller)]
Admin = Annotated[TokenOwner, Depends(admin)]
