"""Request and response bodies (these are what /docs shows)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, model_validator


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
    ingest: dict[str, Any] = Field(description="positions committed, spooled, refused; summed over "
                                   "the main process and the gateway workers")
    gateway_workers: list[dict[str, Any]] = Field(
        default_factory=list, description="one entry per gateway worker process (FIELDTRACK_GATEWAY_WORKERS):"
        " pid, up, restarts, connections, committed, spooled; empty when the main process serves TCP")
    processing: dict[str, Any] | None = None
    webhooks: dict[str, Any] | None = None
    visits: dict[str, Any] | None = None


# A bigint: larger numbers would reach PostgreSQL and fail there as a 500.
BigInt = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


class GeofenceIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    geometry: dict[str, Any] = Field(
        description="GeoJSON geometry: Point (circle, needs radius_m), Polygon or MultiPolygon, or "
        "LineString (corridor, needs width_m: the total width); [lon, lat], latitudes within ±85°")
    radius_m: float | None = None
    width_m: float | None = None
    speed_limit_kmh: float | None = None
    device_ids: list[BigInt] = Field(default_factory=list)
    group_ids: list[BigInt] = Field(default_factory=list,
                                 description="with device_ids: both empty = every device")
    attributes: dict[str, Any] = Field(default_factory=dict)


class GeofencePatch(BaseModel):
    """Only the fields sent change; the whole fence is validated again. Changing a circle into a
    polygon or corridor needs ``"radius_m": null`` (and the reverse ``"width_m": null``)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    geometry: dict[str, Any] | None = None
    radius_m: float | None = None
    width_m: float | None = None
    speed_limit_kmh: float | None = None
    device_ids: list[BigInt] | None = None
    group_ids: list[BigInt] | None = None
    attributes: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _not_null(self) -> GeofencePatch:
        nulls = [k for k in ("name", "geometry", "device_ids", "group_ids", "attributes")
                 if k in self.model_fields_set and getattr(self, k) is None]
        if nulls:
            raise ValueError(f"{', '.join(nulls)} cannot be null")
        return self


class GeofenceOut(BaseModel):
    id: int
    name: str
    kind: str = Field(description="circle, polygon or corridor (follows the geometry type)")
    geometry: dict[str, Any] = Field(description="as stored: altitudes dropped")
    radius_m: float | None
    width_m: float | None
    speed_limit_kmh: float | None
    device_ids: list[int]
    group_ids: list[int]
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    feature: dict[str, Any] = Field(description="the fence as a GeoJSON Feature")


class GeofencePage(BaseModel):
    items: list[GeofenceOut]
    next_after: int | None = Field(description="pass as `after` to get the next page; null at the end")


class EventOut(BaseModel):
    id: int
    device_id: int
    time: datetime
    type: str = Field(description="Traccar's names: geofenceEnter, geofenceExit, deviceOverspeed, ...")
    latitude: float
    longitude: float
    geofence_id: int | None
    attributes: dict[str, Any]


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str | None = Field(description="pass as `cursor` to get the next page; null at the end")


class GroupIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    attributes: dict[str, Any] = Field(default_factory=dict)


class GroupOut(BaseModel):
    id: int
    name: str
    attributes: dict[str, Any]
    created_at: datetime
    device_ids: list[int]


class GroupPage(BaseModel):
    items: list[GroupOut]
    next_after: int | None = Field(description="pass as `after` to get the next page; null at the end")


# Webhooks (api/routes/webhooks.py)

_EVENT_TYPE = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"


def _http_url(value: str) -> str:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise ValueError(f"url is not a URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
        raise ValueError("url must be an http:// or https:// URL with a host")
    return value


class WebhookIn(BaseModel):
    url: str = Field(max_length=2000, description="where events are POSTed (http or https)")
    secret: str | None = Field(default=None, min_length=16, max_length=200,
                               description="HMAC-SHA256 signing key; generated when omitted. "
                               "Shown only in this response.")
    event_types: list[Annotated[str, Field(pattern=_EVENT_TYPE)]] = Field(
        default_factory=list, max_length=100,
        description="e.g. geofenceEnter, geofenceExit, deviceOverspeed, deviceMoving, deviceStopped; "
        "empty: every type")
    device_ids: list[BigInt] = Field(default_factory=list, max_length=10_000,
                                  description="empty: every device")
    enabled: bool = True

    @model_validator(mode="after")
    def _url(self) -> WebhookIn:
        _http_url(self.url)
        return self


class WebhookPatch(BaseModel):
    url: str | None = Field(default=None, max_length=2000)
    event_types: list[Annotated[str, Field(pattern=_EVENT_TYPE)]] | None = Field(default=None, max_length=100)
    device_ids: list[BigInt] | None = Field(default=None, max_length=10_000)
    enabled: bool | None = None

    @model_validator(mode="after")
    def _url(self) -> WebhookPatch:
        if self.url is not None:
            _http_url(self.url)
        return self


class WebhookOut(BaseModel):
    id: int
    url: str
    event_types: list[str]
    device_ids: list[int]
    enabled: bool
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="the signing key; not shown again")


class WebhookPage(BaseModel):
    items: list[WebhookOut]
    total: int
    limit: int
    offset: int


class WebhookDeliveryOut(BaseModel):
    id: int
    event_id: int
    attempts: int
    next_attempt_at: datetime
    delivered_at: datetime | None
    failed_at: datetime | None
    last_error: str | None
    created_at: datetime


# Reports (api/routes/reports.py)


class ReportTripOut(BaseModel):
    start_time: datetime
    end_time: datetime
    start_latitude: float
    start_longitude: float
    end_latitude: float
    end_longitude: float
    distance_km: float
    duration_s: float
    average_speed_kmh: float
    max_speed_kmh: float
    start_odometer_km: float
    end_odometer_km: float
    open: bool = Field(description="still under way: it ends at the last processed position")


class TripReport(BaseModel):
    device_id: int
    name: str
    items: list[ReportTripOut]


class ReportStopOut(BaseModel):
    arrival: datetime
    departure: datetime
    duration_s: float
    latitude: float
    longitude: float
    odometer_km: float
    open: bool = Field(description="not left yet: it ends at the last processed position there")


class StopReport(BaseModel):
    device_id: int
    name: str
    items: list[ReportStopOut]


class SummaryRow(BaseModel):
    day: date | None = Field(description="the local date; null on the total row")
    start: datetime = Field(description="in the report's zone; the first day starts at `from`")
    end: datetime = Field(description="exclusive; the last day ends at `to`")
    distance_km: float = Field(description="odometer growth over the window (all movement, not only trips)")
    driving_time_s: float = Field(description="time in trips inside the window (the open trip included)")
    trips: int = Field(description="trips that began in the window")
    max_speed_kmh: float | None
    average_speed_kmh: float | None = Field(description="distance / driving time")
    start_odometer_km: float | None
    end_odometer_km: float | None
    pending: int = Field(description="positions in the window not processed yet: not in the numbers yet")


class DeviceSummaryOut(BaseModel):
    device_id: int
    name: str
    tz: str
    processed_until: datetime | None = Field(description="time of the last processed position")
    days: list[SummaryRow]
    total: SummaryRow


class SummaryReport(BaseModel):
    tz: str
    devices: list[DeviceSummaryOut]


class RoutePointOut(BaseModel):
    time: datetime
    latitude: float
    longitude: float
    speed_kmh: float | None
    course_deg: float | None
    altitude_m: float | None
    accuracy_m: float | None
    odometer_m: float | None = Field(description="the device's computed odometer; null until processed")
    filtered: str | None = Field(description="why the filters dropped it; null when kept or not processed")
    moving: bool | None
    attributes: dict[str, Any]


class RouteReport(BaseModel):
    device_id: int
    name: str
    count: int
    points: list[RoutePointOut]
