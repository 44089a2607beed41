"""Geofences: create, list (JSON or GeoJSON), read, change, remove.

Fences are company-wide: every caller reads them all; admins and managers change them, and a
manager may name only devices they see (api.access)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response
from fastapi.responses import JSONResponse

from api.access import ManagerOrAdmin, require_devices
from api.deps import Caller, Deps
from api.schemas import GeofenceIn, GeofenceOut, GeofencePage, GeofencePatch
from processors.fences import fence_to_geojson
from storage.geofences import Geofence, GeofenceStore

router = APIRouter(prefix="/geofences", tags=["geofences"])
GEOJSON = "application/geo+json"
FenceId = Annotated[int, Path(ge=-(2**63), le=2**63 - 1)]  # a bigint, so an absurd id is a 422, not a 500


def _feature(g: Geofence) -> dict[str, Any]:
    feature = fence_to_geojson(g.fence())
    # Extra properties: fence_from_feature ignores them, so the feature still rebuilds the fence.
    feature["properties"] |= {"name": g.name, "device_ids": g.device_ids, "group_ids": g.group_ids}
    return feature


def _out(g: Geofence) -> GeofenceOut:
    return GeofenceOut(id=g.id, name=g.name, kind=g.kind, geometry=g.geometry, radius_m=g.radius_m,
                       width_m=g.width_m, speed_limit_kmh=g.speed_limit_kmh, device_ids=g.device_ids,
                       group_ids=g.group_ids, attributes=g.attributes, created_at=g.created_at,
                       updated_at=g.updated_at, feature=_feature(g))


def _invalid(exc: ValueError) -> HTTPException:
    return HTTPException(422, str(exc))


@router.post("", response_model=GeofenceOut, status_code=201)
async def create_geofence(body: GeofenceIn, d: Deps, scope: ManagerOrAdmin,
                          response: Response) -> GeofenceOut:
    require_devices(scope, body.device_ids)
    try:
        fence = await GeofenceStore(d.db()).create(
            body.name, body.geometry, radius_m=body.radius_m, width_m=body.width_m,
            speed_limit_kmh=body.speed_limit_kmh, device_ids=body.device_ids, group_ids=body.group_ids,
            attributes=body.attributes)
    except ValueError as exc:
        raise _invalid(exc) from exc
    response.headers["Location"] = f"/api/geofences/{fence.id}"
    return _out(fence)


@router.get("", response_model=GeofencePage,
            responses={200: {"content": {GEOJSON: {}},
                             "description": "with format=geojson: a FeatureCollection with `next_after`"}})
async def list_geofences(
    d: Deps,
    _: Caller,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1, description="next_after of the last page")] = None,
    format: Annotated[Literal["json", "geojson"], Query()] = "json",
) -> GeofencePage | JSONResponse:
    rows = await GeofenceStore(d.db()).list(limit=limit + 1, after=after)
    more = len(rows) > limit
    rows = rows[:limit]
    next_after = rows[-1].id if more else None
    if format == "geojson":
        # next_after is a foreign member, which RFC 7946 §6.1 allows.
        return JSONResponse({"type": "FeatureCollection", "features": [_feature(g) for g in rows],
                             "next_after": next_after}, media_type=GEOJSON)
    return GeofencePage(items=[_out(g) for g in rows], next_after=next_after)


@router.get("/{fence_id}", response_model=GeofenceOut)
async def get_geofence(fence_id: FenceId, d: Deps, _: Caller) -> GeofenceOut:
    return _out(await GeofenceStore(d.db()).get(fence_id))


@router.patch("/{fence_id}", response_model=GeofenceOut)
async def patch_geofence(fence_id: FenceId, body: GeofencePatch, d: Deps,
                         scope: ManagerOrAdmin) -> GeofenceOut:
    require_devices(scope, body.device_ids or ())
    try:
        fence = await GeofenceStore(d.db()).update(fence_id, body.model_dump(exclude_unset=True))
    except ValueError as exc:
        raise _invalid(exc) from exc
    return _out(fence)


@router.delete("/{fence_id}", status_code=204)
async def delete_geofence(fence_id: FenceId, d: Deps, _: ManagerOrAdmin) -> Response:
    await GeofenceStore(d.db()).delete(fence_id)
    return Response(status_code=204)
