"""A rep's trips and stops as a viewer who sees them only on duty gets them (storage.privacy: a
manager): a trip or stop wholly in working hours is shown whole, one that crosses an edge of the
working hours is cut there (``clipped``), the off-duty rest is left out."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import Field

from api.access import Scope
from api.deps import Deps
from api.schemas import ReportStopOut, ReportTripOut, StopReport, TripReport
from storage.privacy import DutyView, duty_view, on_duty_pieces, piece_ends
from storage.reports import ReportStop, ReportTrip


def _km(metres: float) -> float:
    return round(metres / 1000.0, 3)


_CLIPPED = "cut to the rep's working hours (the viewer sees this rep only on duty)"


class DutyTripOut(ReportTripOut):
    clipped: bool = Field(default=False, description=_CLIPPED)


class DutyTripReport(TripReport):
    items: list[DutyTripOut]  # type: ignore[assignment]


class DutyStopOut(ReportStopOut):
    clipped: bool = Field(default=False, description=_CLIPPED)


class DutyStopReport(StopReport):
    items: list[DutyStopOut]  # type: ignore[assignment]


async def view_of(d: Deps, scope: Scope, device_id: int) -> DutyView:
    return await duty_view(d.db(), [device_id], everything=scope.everything, viewer=scope.user_id)


def _overlaps(start: datetime, end: datetime, lo: datetime, hi: datetime) -> bool:
    return start < hi and (end > lo or start >= lo)


def trip_out(r: ReportTrip) -> DutyTripOut:
    t = r.trip
    return DutyTripOut(
        start_time=t.start_time, end_time=t.end_time, start_latitude=t.start_latitude,
        start_longitude=t.start_longitude, end_latitude=t.end_latitude, end_longitude=t.end_longitude,
        distance_km=_km(t.distance_m), duration_s=t.duration_s,
        average_speed_kmh=round(t.average_speed_kmh, 2),
        max_speed_kmh=round(t.max_speed_kmh, 2), start_odometer_km=_km(t.start_odometer_m),
        end_odometer_km=_km(t.end_odometer_m), open=r.open)


async def on_duty_trips(d: Deps, view: DutyView, device_id: int, found: list[ReportTrip],
                         start: datetime, end: datetime) -> list[DutyTripOut]:
    """Each trip whole when it lies in working hours, else its on-duty pieces that overlap the
    range: times cut at the edges, place and odometer from the first and last processed position
    inside each piece (a piece without one shows nothing and is left out)."""
    plan: list[tuple[ReportTrip, int | None]] = []
    pieces: list[tuple[datetime, datetime, datetime]] = []
    for r in found:
        t = r.trip
        duty = view.intervals(device_id, t.start_time, t.end_time + timedelta(microseconds=1)) or []
        parts = on_duty_pieces(t.start_time, t.end_time, duty)
        if len(parts) == 1 and parts[0][:2] == (t.start_time, t.end_time):
            plan.append((r, None))
            continue
        for part in parts:
            if _overlaps(part[0], part[1], start, end):
                plan.append((r, len(pieces)))
                pieces.append(part)
    ends = await piece_ends(d.db(), device_id, pieces)
    out = []
    for r, k in plan:
        if k is None:
            out.append(trip_out(r))
            continue
        found_ends = ends[k]
        if found_ends is None:
            continue
        lo, hi, _ = pieces[k]
        first, last = found_ends.first, found_ends.last
        metres = last.odometer_m - first.odometer_m
        seconds = (hi - lo).total_seconds()
        out.append(DutyTripOut(
            start_time=lo, end_time=hi, start_latitude=first.latitude, start_longitude=first.longitude,
            end_latitude=last.latitude, end_longitude=last.longitude, distance_km=_km(metres),
            duration_s=seconds, average_speed_kmh=round(metres / seconds * 3.6, 2) if seconds > 0 else 0.0,
            max_speed_kmh=round(found_ends.max_speed_kmh or 0.0, 2), start_odometer_km=_km(first.odometer_m),
            end_odometer_km=_km(last.odometer_m), open=r.open and hi == r.trip.end_time, clipped=True))
    return out


def stop_out(s: ReportStop) -> DutyStopOut:
    return DutyStopOut(arrival=s.stop.start_time, departure=s.stop.end_time, duration_s=s.stop.duration_s,
                       latitude=s.stop.latitude, longitude=s.stop.longitude,
                       odometer_km=_km(s.stop.odometer_m), open=s.open)


def on_duty_stops(view: DutyView, device_id: int, found: list[ReportStop], start: datetime,
                   end: datetime) -> list[DutyStopOut]:
    """A stop keeps its place (the device stood there during the on-duty part too); its times
    are cut to the working hours."""
    out = []
    for s in found:
        st = s.stop
        duty = view.intervals(device_id, st.start_time, st.end_time + timedelta(microseconds=1)) or []
        parts = on_duty_pieces(st.start_time, st.end_time, duty)
        if len(parts) == 1 and parts[0][:2] == (st.start_time, st.end_time):
            out.append(stop_out(s))
            continue
        out += [DutyStopOut(arrival=lo, departure=hi, duration_s=(hi - lo).total_seconds(),
                            latitude=st.latitude, longitude=st.longitude, odometer_km=_km(st.odometer_m),
                            open=s.open and hi == st.end_time, clipped=True)
                for lo, hi, _ in parts if _overlaps(lo, hi, start, end)]
    return out
