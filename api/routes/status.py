"""``GET /api/status``: every device's state now, for the dispatcher's map and list.

Online means a message within ``offline_after_s`` (device attribute, default 10 minutes: phones
batch their uploads for minutes to save battery, trackers report every 30 s to 2 min).

A device the caller sees only on duty (storage.privacy: a manager looking at a rep's device) whose
newest position is off duty is shown with ``off_duty: true`` and without anything that tells
where it is or what it does (position, speed, geofences, open trip or stop, odometer): whether it
is online, and an alarm, still show.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from api.access import Visible, visible_devices
from api.deps import Deps
from processors import geofences, motion
from storage.privacy import duty_view
from storage.status import device_status

router = APIRouter(tags=["status"])

OFFLINE_AFTER_S = 600.0
_WHERE_AND_WHAT = ("fix_time", "latitude", "longitude", "speed_kmh", "course_deg", "moving", "filtered")


def _status(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    state = row.pop("state") or {}
    limit = row.pop("offline_after_s")
    numeric = isinstance(limit, int | float) and not isinstance(limit, bool)
    limit = float(limit) if numeric else OFFLINE_AFTER_S
    seen = row["last_seen"]
    open_trip = open_stop = None
    inside: list[int] = []
    alarm = None
    if state:
        machine = motion.MotionState.from_json(state["motion"])
        trip, stop = motion.open_trip(machine), motion.open_stop(machine)
        open_trip = None if trip is None else {"start_time": trip.start_time,
                                               "distance_km": round(trip.distance_m / 1000, 3)}
        open_stop = None if stop is None else {"start_time": stop.start_time, "latitude": stop.latitude,
                                               "longitude": stop.longitude}
        inside = sorted(geofences.inside(geofences.GeofenceState.from_json(state["geofences"])))
        alarm = state.get("status", {}).get("alarm")
    odometer = row.pop("odometer_m")
    online = seen is not None and (now - seen).total_seconds() <= limit and not row["disabled"]
    return {**row, "online": online, "status": "offline" if not online else (
        "moving" if row["moving"] else "stopped"), "alarm": alarm, "geofences": inside,
        "odometer_km": None if odometer is None else round(odometer / 1000, 3),
        "open_trip": open_trip, "open_stop": open_stop, "off_duty": False}


def _off_duty(status: dict[str, Any]) -> dict[str, Any]:
    return {**status, **dict.fromkeys(_WHERE_AND_WHAT),
            "status": "off_duty" if status["online"] else "offline", "geofences": [], "odometer_km": None,
            "open_trip": None, "open_stop": None, "off_duty": True}


@router.get("/status", summary="Every device now: online, moving or stopped, alarm, geofences")
async def status(d: Deps, scope: Visible,
                 device: Annotated[list[int] | None, Query(description="device id; repeatable")] = None,
                 ) -> list[dict[str, Any]]:
    if device is not None and any(x < 1 for x in device):
        raise HTTPException(422, "device ids are positive integers")
    now = datetime.now(UTC)
    # Devices the caller may not see drop out, as unknown ids do.
    ids = visible_devices(scope, device)
    view = await duty_view(d.db(), ids, everything=scope.everything, viewer=scope.user_id)
    out = []
    for row in await device_status(d.db(), ids):
        hide = row["fix_time"] is not None and not view.on_duty(row["id"], row["fix_time"])
        out.append(_off_duty(_status(row, now)) if hide else _status(row, now))
    return out
