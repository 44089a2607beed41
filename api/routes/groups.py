"""Device groups: create, list, read, remove, and put devices in or take them out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from api.deps import Admin, Caller, Deps
from api.schemas import GroupIn, GroupOut, GroupPage
from storage.groups import Group, GroupStore

router = APIRouter(prefix="/groups", tags=["groups"])
Id = Annotated[int, Path(ge=-(2**63), le=2**63 - 1)]  # a bigint, so an absurd id is a 422, not a 500


def _out(g: Group) -> GroupOut:
    return GroupOut(id=g.id, name=g.name, attributes=g.attributes, created_at=g.created_at,
                    device_ids=g.device_ids)


@router.post("", response_model=GroupOut, status_code=201)
async def create_group(body: GroupIn, d: Deps, _: Admin, response: Response) -> GroupOut:
    group = await GroupStore(d.db()).create(body.name, body.attributes)
    response.headers["Location"] = f"/api/groups/{group.id}"
    return _out(group)


@router.get("", response_model=GroupPage)
async def list_groups(
    d: Deps,
    _: Caller,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1, description="next_after of the last page")] = None,
) -> GroupPage:
    rows = await GroupStore(d.db()).list(limit=limit + 1, after=after)
    more = len(rows) > limit
    rows = rows[:limit]
    return GroupPage(items=[_out(g) for g in rows], next_after=rows[-1].id if more else None)


@router.get("/{group_id}", response_model=GroupOut)
async def get_group(group_id: Id, d: Deps, _: Caller) -> GroupOut:
    return _out(await GroupStore(d.db()).get(group_id))


@router.delete("/{group_id}", status_code=204, responses={409: {"description": "a geofence names the group"}})
async def delete_group(group_id: Id, d: Deps, _: Admin) -> Response:
    await GroupStore(d.db()).delete(group_id)
    return Response(status_code=204)


@router.put("/{group_id}/devices/{device_id}", status_code=204)
async def add_device(group_id: Id, device_id: Id, d: Deps, _: Admin) -> Response:
    """Puts the device into this group; a device is in one group at most, so this moves it."""
    await GroupStore(d.db()).add_device(group_id, device_id)
    return Response(status_code=204)


@router.delete("/{group_id}/devices/{device_id}", status_code=204)
async def remove_device(group_id: Id, device_id: Id, d: Deps, _: Admin) -> Response:
    await GroupStore(d.db()).remove_device(group_id, device_id)
    return Response(status_code=204)
