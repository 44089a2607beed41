"""``GET /api/dispatch/nearest``: the reps nearest to a point or a customer, for dispatchers.

For managers (their teams' reps) and admins; a rep asking who is nearest is not a use case. A
manager sees reps only on duty (storage.privacy): a rep whose newest fix was taken off duty is
never listed for a manager, with or without ``on_duty`` (which asks for reps on duty now).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel

from api.access import ManagerOrAdmin
from api.deps import Deps
from api.dispatch import RepLocator
from api.live import LiveHub
from api.routes.customers import access_of
from storage.customers import CustomerStore
from storage.dispatch import customers_at

router = APIRouter(tags=["dispatch"])


class NearestRep(BaseModel):
    user_id: int
    name: str
    team_id: int | None
    device_id: int | None
    latitude: float
    longitude: float
    distance_m: float
    travel_time_s: float
    fix_time: datetime | None
    fix_age_s: float
    status: str  # driving, stopped, at_customer, offline
    at_customer: int | None = None
    at_customer_name: str | None = None


class NearestAnswer(BaseModel):
    latitude: float
    longitude: float
    items: list[NearestRep]


def _locator(request: Request, d: Deps) -> RepLocator:
    locator: RepLocator | None = getattr(request.app.state, "dispatch", None)
    if locator is None:
        hub: LiveHub | None = getattr(request.app.state, "live", None)
        conninfo = d.db().conninfo
        if hub is None and isinstance(conninfo, str):
            hub = request.app.state.live = LiveHub(conninfo)
        locator = request.app.state.dispatch = RepLocator(d.db(), hub)
    return locator


@router.get("/dispatch/nearest", response_model=NearestAnswer,
            summary="The N reps nearest to a point or a customer, by their newest position")
async def nearest(
    request: Request, d: Deps, scope: ManagerOrAdmin,
    lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
    lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
    customer: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    n: Annotated[int, Query(ge=1, le=100)] = 5,
    team: Annotated[list[int] | None, Query(description="team id; repeatable")] = None,
    on_duty: Annotated[bool, Query(description="only reps inside their working hours now")] = False,
    max_km: Annotated[float, Query(gt=0, le=20_000)] = 20_000,
) -> NearestAnswer:
    if customer is not None:
        if lat is not None or lon is not None:
            raise HTTPException(422, "give either lat and lon, or customer, not both")
        found = await CustomerStore(d.db()).get(customer, access_of(scope))
        lat, lon = found.latitude, found.longitude
    elif lat is None or lon is None:
        raise HTTPException(422, "give lat and lon, or customer")
    locator = _locator(request, d)
    await locator.ready()
    users = scope.users_filter()
    teams = set(team) if team else None
    candidates = locator.nearest(lat, lon, n, users=users, teams=teams, duty_only=on_duty,
                                 max_m=max_km * 1000, private=not scope.everything)
    at = await customers_at(d.db(), [(c.rep.user_id, c.rep.latitude or 0.0, c.rep.longitude or 0.0)
                                     for c in candidates if c.status != "offline"])
    items = []
    for c in candidates:
        visit = at.get(c.rep.user_id)
        items.append(NearestRep(
            user_id=c.rep.user_id, name=c.rep.name, team_id=c.rep.team_id, device_id=c.rep.device_id,
            latitude=c.rep.latitude or 0.0, longitude=c.rep.longitude or 0.0,
            distance_m=round(c.distance_m, 1), travel_time_s=round(c.travel_time_s),
            fix_time=c.rep.fix_time, fix_age_s=round(c.age_s, 1),
            status="at_customer" if visit and c.status == "stopped" else c.status,
            at_customer=visit[0] if visit else None, at_customer_name=visit[1] if visit else None))
    return NearestAnswer(latitude=lat, longitude=lon, items=items)
