"""Request and response bodies (these are what /docs shows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class DeviceIn(BaseModel):
    unique_id: str = Field(min_length=1, max_length=64, pattern=r"^\S+$",
                           description="what the device reports as its id (IMEI, serial, app id)")
    name: str = Field(min_length=1, max_length=200)
    protocol: str | None = Field(default=None, max_length=32)
    attributes: dict[str, Any] = Field(default_factory=dict,
                                       description='e.g. {"decoder": {"model": "VL103"}} for GT06 variants')


class DevicePatch(BaseModel):
    unique_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^\S+$")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    protocol: str | None = Field(default=None, max_length=32)
    disabled: bool | None = None
    attributes: dict[str, Any] | None = None


class DeviceOut(BaseModel):
    id: int
    unique_id: str
    name: str
    protocol: str | None
    disabled: bool
    attributes: dict[str, Any]
    created_at: datetime


class DevicePage(BaseModel):
    items: list[DeviceOut]
    total: int
    limit: int
    offset: int


class PositionOut(BaseModel):
    device_id: int
    unique_id: str
    fix_time: datetime
    server_time: datetime
    device_time: datetime | None
    latitude: float | None
    longitude: float | None
    valid: bool
    speed_kmh: float | None
    course_deg: float | None
    altitude_m: float | None
    accuracy_m: float | None
    hdop: float | None
    protocol: str
    attributes: dict[str, Any]


class PositionPage(BaseModel):
    items: list[PositionOut]
    next_cursor: str | None = Field(description="pass as `cursor` to get the next page; null at the end")


class Health(BaseModel):
    status: str
    version: str
    database: dict[str, Any]
    listeners: list[dict[str, Any]]
    mqtt: dict[str, Any] | None = Field(default=None, description="broker connection, when MQTT is on")
    ingest: dict[str, Any]
