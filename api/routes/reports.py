"""Reports: a device's trips, stops and route, and daily summaries of one device or many.

Ranges are [from, to) with a zone, at most 366 days. Distances and times come from what the
processing runner has derived; positions it has not processed yet are counted as ``pending``.

A viewer who sees a rep's device only on duty (storage.privacy: a manager) gets its route, trips
and stops cut to the rep's working hours: off-duty points are left out, a trip or stop wholly off
duty is left out, and one that crosses an edge of the working hours is cut there (``clipped``).
The daily and fleet summaries (kilometres, not places) are not cut here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, tzinfo
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Path, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.access import Scope, Visible, require_device, require_devices
from api.deps import Deps
from api.duty_reports import (
    DutyStopOut,
    DutyStopReport,
    DutyTripOut,
    DutyTripReport,
    on_duty_stops,
    on_duty_trips,
    stop_out,
    trip_out,
    view_of,
)
from api.formats import RoutePoint, route_csv, route_geojson, route_gpx, table_csv, table_xlsx
from api.schemas import (
    BigInt,
    DeviceSummaryOut,
    RoutePointOut,
    RouteReport,
    SummaryReport,
    SummaryRow,
)
from api.timerange import checked_range
from storage.groups import GroupStore
from storage.privacy import multirange
from storage.reports import (
    DaySummary,
    DeviceSummary,
    ReportStore,
    ReportTooLarge,
    day_windows,
)

router = APIRouter(tags=["reports"])

MAX_RANGE = timedelta(days=366)
MAX_ROUTE_POINTS = 100_000
# Rows of a summary (devices × days): 1,000 devices for a year, or more devices for less.
MAX_SUMMARY_ROWS = 400_000

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_TABLES: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {}, XLSX: {}}}}
_ROUTES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/geo+json": {}, "application/gpx+xml": {}, "text/csv": {}}}}
DeviceId = Annotated[int, Path(ge=-(2**63), le=2**63 - 1)]
From = Annotated[datetime, Query(alias="from", description="ISO 8601 with a zone, inclusive")]
To = Annotated[datetime, Query(alias="to", description="ISO 8601 with a zone, exclusive")]
Zone = Annotated[str, Query(max_length=64, description="IANA time zone of the days, e.g. Europe/Amsterdam")]
TableFormat = Literal["json", "csv", "xlsx"]


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError) as exc:
        raise HTTPException(422, f"unknown time zone {name!r}; use an IANA name like Europe/Amsterdam"
                            ) from exc


def _km(metres: float) -> float:
    return round(metres / 1000.0, 3)


def _km_or_none(metres: float | None) -> float | None:
    return None if metres is None else _km(metres)


def _kmh(speed: float | None) -> float | None:
    return None if speed is None else round(speed, 2)


def _attachment(body: bytes | str, media_type: str, name: str) -> Response:
    return Response(body, media_type=media_type, headers=_disposition(name))


def _disposition(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


def _file_stem(kind: str, device_id: int | None, start: datetime, end: datetime) -> str:
    """ASCII only (never the device's name), so the header needs no encoding."""
    who = f"-device-{device_id}" if device_id is not None else ""
    return f"fieldtrack-{kind}{who}-{start:%Y%m%dT%H%M%SZ}-{end:%Y%m%dT%H%M%SZ}"


def _table(fmt: TableFormat, kind: str, columns: Sequence[str], rows: list[list[Any]], stem: str) -> Response:
    if fmt == "csv":
        return _attachment(table_csv(columns, rows), "text/csv; charset=utf-8", f"{stem}.csv")
    return _attachment(table_xlsx(columns, rows, sheet_name=kind), XLSX, f"{stem}.xlsx")


def _model_rows(model: type[BaseModel], items: Sequence[BaseModel]) -> tuple[list[str], list[list[Any]]]:
    columns = list(model.model_fields)
    return columns, [[getattr(item, c) for c in columns] for item in items]


@router.get("/devices/{device_id}/trips", response_model=DutyTripReport, responses=_TABLES)
async def device_trips(device_id: DeviceId, d: Deps, scope: Visible, start: From, end: To,
                       format: TableFormat = "json") -> DutyTripReport | Response:
    """Trips overlapping the range, whole (not cut at its ends); the trip under way last, flagged open."""
    start, end = checked_range(start, end)
    require_device(scope, device_id)
    device = await d.devices.get(device_id)
    found = await ReportStore(d.db()).trips(device_id, start, end)
    view = await view_of(d, scope, device_id)
    items = (await on_duty_trips(d, view, device_id, found, start, end) if view.limits(device_id)
             else [trip_out(r) for r in found])
    if format == "json":
        return DutyTripReport(device_id=device.id, name=device.name, items=items)
    return _table(format, "trips", *_model_rows(DutyTripOut, items),
                  _file_stem("trips", device_id, start, end))


@router.get("/devices/{device_id}/stops", response_model=DutyStopReport, responses=_TABLES)
async def device_stops(device_id: DeviceId, d: Deps, scope: Visible, start: From, end: To,
                       format: TableFormat = "json") -> DutyStopReport | Response:
    """Stops overlapping the range, whole; the stop not yet left last, flagged open."""
    start, end = checked_range(start, end)
    require_device(scope, device_id)
    device = await d.devices.get(device_id)
    found = await ReportStore(d.db()).stops(device_id, start, end)
    view = await view_of(d, scope, device_id)
    items = (on_duty_stops(view, device_id, found, start, end) if view.limits(device_id)
             else [stop_out(s) for s in found])
    if format == "json":
        return DutyStopReport(device_id=device.id, name=device.name, items=items)
    return _table(format, "stops", *_model_rows(DutyStopOut, items),
                  _file_stem("stops", device_id, start, end))


def _row(s: DaySummary, zone: tzinfo) -> SummaryRow:
    return SummaryRow(day=s.day, start=s.start.astimezone(zone), end=s.end.astimezone(zone),
                      distance_km=_km(s.distance_m), driving_time_s=round(s.driving_s, 3), trips=s.trips,
                      max_speed_kmh=_kmh(s.max_speed_kmh), average_speed_kmh=_kmh(s.average_speed_kmh),
                      start_odometer_km=_km_or_none(s.start_odometer_m),
                      end_odometer_km=_km_or_none(s.end_odometer_m),
                      pending=s.pending)


def _device_out(s: DeviceSummary, tz: str, zone: tzinfo) -> DeviceSummaryOut:
    return DeviceSummaryOut(device_id=s.device_id, name=s.name, tz=tz, processed_until=s.processed_until,
                            days=[_row(x, zone) for x in s.days], total=_row(s.total, zone))


def _summary_table(devices: Sequence[DeviceSummaryOut]) -> tuple[list[str], list[list[Any]]]:
    """One row per device and day, then the device's total row (``day`` = total)."""
    measures = [c for c in SummaryRow.model_fields if c != "day"]
    columns = ["device_id", "device", "day", *measures]
    rows = [[dev.device_id, dev.name, "total" if row.day is None else row.day,
             *(getattr(row, c) for c in measures)] for dev in devices for row in (*dev.days, dev.total)]
    return columns, rows


async def _summaries(d: Deps, start: datetime, end: datetime, zone: tzinfo, *, device_ids: Sequence[int] = (),
                     group_ids: Sequence[int] = (), every: bool = False) -> list[DeviceSummary]:
    try:
        windows = day_windows(start, end, zone)
    except OverflowError as exc:
        raise HTTPException(422, "the range reaches beyond the year 9999") from exc
    try:
        return await ReportStore(d.db()).summary(windows, device_ids=device_ids, group_ids=group_ids,
                                                 every=every, max_rows=MAX_SUMMARY_ROWS)
    except ReportTooLarge as exc:
        raise HTTPException(422, f"{exc}; ask for fewer devices or a shorter range") from exc


@router.get("/devices/{device_id}/summary", response_model=DeviceSummaryOut, responses=_TABLES)
async def device_summary(device_id: DeviceId, d: Deps, scope: Visible, start: From, end: To, tz: Zone = "UTC",
                         format: TableFormat = "json") -> DeviceSummaryOut | Response:
    """Per local day of `tz` (every day of the range, also those without positions) and in total:
    distance from the odometer marks (a trip over midnight is split where the device was at midnight),
    driving time in trips cut at the day's edges, trips begun, top and average speed, odometer."""
    start, end = checked_range(start, end)
    zone = _zone(tz)
    require_device(scope, device_id)
    (summary,) = await _summaries(d, start, end, zone, device_ids=[device_id])
    out = _device_out(summary, tz, zone)
    if format == "json":
        return out
    return _table(format, "summary", *_summary_table([out]), _file_stem("summary", device_id, start, end))


@router.get("/reports/summary", response_model=SummaryReport, responses=_TABLES)
async def fleet_summary(
    d: Deps, scope: Visible, start: From, end: To, tz: Zone = "UTC",
    group: Annotated[list[BigInt] | None, Query(description="group id; repeatable")] = None,
    device: Annotated[list[BigInt] | None, Query(description="device id; repeatable")] = None,
    format: TableFormat = "json",
) -> SummaryReport | Response:
    """The daily summary of many devices in one go: those named plus those in the groups named
    (neither: every device), by device id, each with its days and its total. Only devices the
    caller may see count: one it may not see is answered as unknown (404), and a group stands for
    its devices that the caller sees."""
    start, end = checked_range(start, end)
    zone = _zone(tz)
    if scope.everything:
        summaries = await _summaries(d, start, end, zone, device_ids=device or (), group_ids=group or (),
                                     every=not device and not group)
    else:
        summaries = await _summaries(d, start, end, zone, device_ids=await _seen(d, scope, device, group))
    devices = [_device_out(s, tz, zone) for s in summaries]
    if format == "json":
        return SummaryReport(tz=tz, devices=devices)
    return _table(format, "summary", *_summary_table(devices), _file_stem("summary", None, start, end))


async def _seen(d: Deps, scope: Scope, device: Sequence[int] | None,
                group: Sequence[int] | None) -> list[int]:
    require_devices(scope, device or ())
    if not device and not group:
        return sorted(scope.device_ids)
    ids = set(device or ())
    groups = GroupStore(d.db())
    for g in group or ():
        ids |= set((await groups.get(g)).device_ids) & scope.device_ids
    return sorted(ids)


def _point(p: Any) -> RoutePoint:
    return RoutePoint(time=p.time, latitude=p.latitude, longitude=p.longitude, speed_kmh=p.speed_kmh,
                      course_deg=p.course_deg, altitude_m=p.altitude_m, accuracy_m=p.accuracy_m,
                      odometer_m=p.odometer_m, filtered=p.filtered, attributes=p.attributes)


@router.get("/devices/{device_id}/route", response_model=RouteReport, responses=_ROUTES)
async def device_route(
    device_id: DeviceId, d: Deps, scope: Visible, start: From, end: To,
    format: Literal["json", "geojson", "gpx", "csv"] = "json",
    include_filtered: Annotated[bool, Query(description="also positions the filters dropped")] = False,
) -> RouteReport | Response:
    """Positions with a location in time order with their marks; at most 100,000 (ask for a shorter
    range beyond that). Positions not processed yet are included, with null marks."""
    start, end = checked_range(start, end)
    require_device(scope, device_id)
    device = await d.devices.get(device_id)
    duty = (await view_of(d, scope, device_id)).intervals(device_id, start, end)
    found = await ReportStore(d.db()).route(device_id, start, end, include_filtered=include_filtered,
                                            limit=MAX_ROUTE_POINTS + 1,
                                            within=None if duty is None else multirange(duty))
    if len(found) > MAX_ROUTE_POINTS:
        raise HTTPException(422, f"more than {MAX_ROUTE_POINTS} positions in the range;"
                            " ask for a shorter range")
    if format == "json":
        return RouteReport(device_id=device.id, name=device.name, count=len(found), points=[
            RoutePointOut(time=p.time, latitude=p.latitude, longitude=p.longitude, speed_kmh=p.speed_kmh,
                          course_deg=p.course_deg, altitude_m=p.altitude_m, accuracy_m=p.accuracy_m,
                          odometer_m=p.odometer_m, filtered=p.filtered, moving=p.moving,
                          attributes=p.attributes) for p in found])
    points = [_point(p) for p in found]
    name = f"{_file_stem('route', device_id, start, end)}.{format}"
    if format == "geojson":
        return JSONResponse(route_geojson(device.name, points, include_filtered),
                            media_type="application/geo+json", headers=_disposition(name))
    if format == "gpx":
        return _attachment(route_gpx(device.name, points, include_filtered), "application/gpx+xml", name)
    return _attachment(route_csv(points), "text/csv; charset=utf-8", name)
