"""Devices: register, list, read, change, remove."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.access import Visible, require_device
from api.deps import Admin, Deps
from api.schemas import DeviceIn, DeviceOut, DevicePage, DevicePatch
from storage.devices import Device

router = APIRouter(prefix="/devices", tags=["devices"])


def _out(d: Device) -> DeviceOut:
    return DeviceOut(id=d.id, unique_id=d.unique_id, name=d.name, protocol=d.protocol,
                     disabled=d.disabled, attributes=d.attributes, created_at=d.created_at)


@router.post("", response_model=DeviceOut, status_code=201)
async def create_device(body: DeviceIn, d: Deps, _: Admin, response: Response) -> DeviceOut:
    device = await d.devices.create(body.unique_id, body.name, body.protocol, body.attributes)
    d.directory.remember(device)
    response.headers["Location"] = f"/api/devices/{device.id}"
    return _out(device)


@router.get("", response_model=DevicePage)
async def list_devices(
    d: Deps,
    scope: Visible,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DevicePage:
    """The devices the caller may see (api.access): admins every device, managers their teams'
    devices, reps their own."""
    items, total = await d.devices.page(limit, offset, scope.devices_filter())
    return DevicePage(items=[_out(x) for x in items], total=total, limit=limit, offset=offset)


@router.get("/{device_id}", response_model=DeviceOut)
async def get_device(device_id: int, d: Deps, scope: Visible) -> DeviceOut:
    require_device(scope, device_id)
    return _out(await d.devices.get(device_id))


@router.patch("/{device_id}", response_model=DeviceOut)
async def patch_device(device_id: int, body: DevicePatch, d: Deps, _: Admin) -> DeviceOut:
    before = await d.devices.get(device_id)
    device = await d.devices.update(device_id, body.model_dump(exclude_unset=True))
    d.directory.forget(before.unique_id)
    d.directory.remember(device)
    return _out(device)


@router.delete("/{device_id}", status_code=204)
async def delete_device(device_id: int, d: Deps, _: Admin) -> Response:
    device = await d.devices.delete(device_id)
    d.directory.forget(device.unique_id)
    return Response(status_code=204)
