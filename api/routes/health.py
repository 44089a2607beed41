"""GET /api/health: database reachable, listeners up, version. No token needed."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Deps
from api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
async def health(d: Deps) -> Health:
    report = await d.health()
    return Health(version=d.version, **report)
