"""The composed pipeline: filtered positions move nothing, device alarms and ignition, overspeed
against device and geofence limits, per-device settings, and state surviving a restart."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from processors import pipeline
from processors.fences import FenceIndex, fence_from_geojson
from processors.fix import Fix
from processors.records import ALARM, GEOFENCE_ENTER, IGNITION_OFF, IGNITION_ON, OVERSPEED, Event
from tests.processors.tracks import RENO, nmea_fixes

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def fix(second: float, lat: float = 52.0, lon: float = 4.0, **kw: Any) -> Fix:
    return Fix(time=T0 + timedelta(seconds=second), latitude=lat, longitude=lon, key=int(second * 10), **kw)


def run(fixes: list[Fix], params: pipeline.PipelineParams | None = None,
        fences: FenceIndex = pipeline.EMPTY_INDEX) -> tuple[list[Any], list[Any]]:
    state = pipeline.DeviceState()
    marks, outputs = [], []
    for f in fixes:
        mark, out = pipeline.step(state, f, params or pipeline.PipelineParams(), fences)
        marks.append(mark)
        outputs.extend(out)
    return marks, outputs


def events(outputs: list[Any], kind: str) -> list[Event]:
    return [o for o in outputs if isinstance(o, Event) and o.type == kind]


def test_a_filtered_position_moves_nothing() -> None:
    track = [fix(0), fix(10, 52.001), fix(20, 53.0), fix(30, 52.002)]  # 53.0: a 110 km teleport
    marks, _ = run(track)
    assert [m.filtered for m in marks] == [None, None, "jump", None]
    assert marks[2].odometer_m == marks[1].odometer_m
    assert marks[3].odometer_m < 1000  # the teleport added nothing


def test_an_alarm_in_a_status_report_without_a_fix_is_one_event() -> None:
    track = [fix(0), fix(10, valid=False, alarm="sos"), fix(20, valid=False, alarm="sos"), fix(30),
             fix(40, alarm="sos")]
    marks, outputs = run(track)
    assert marks[1].filtered == "invalid"
    raised = events(outputs, ALARM)
    assert [(e.time, e.attributes) for e in raised] == [
        (T0 + timedelta(seconds=10), {"alarm": "sos"}), (T0 + timedelta(seconds=40), {"alarm": "sos"})]


def test_ignition_changes_are_events() -> None:
    _, outputs = run([fix(0, ignition=False), fix(10, ignition=True), fix(20, ignition=True),
                      fix(30, ignition=False)])
    assert [e.type for e in outputs if e.type in (IGNITION_ON, IGNITION_OFF)] == [IGNITION_ON, IGNITION_OFF]


def driving(speeds: Sequence[float], start_lat: float = 52.0) -> list[Fix]:
    """One fix a second at the given speeds, moving north as fast as the speed says."""
    out, lat = [], start_lat
    for k, kmh in enumerate(speeds):
        lat += kmh / 3.6 / 111_195
        out.append(fix(k, lat, speed_kmh=kmh))
    return out


def test_overspeed_needs_the_minimum_duration() -> None:
    params = pipeline.PipelineParams.from_mapping({"status": {"speed_limit_kmh": 80}})
    _, brief = run(driving([60] * 5 + [95] * 10 + [60] * 5), params)
    assert events(brief, OVERSPEED) == []
    _, sustained = run(driving([60] * 5 + [95] * 40 + [60] * 5 + [100] * 30), params)
    found = events(sustained, OVERSPEED)
    assert len(found) == 2
    assert found[0].time == T0 + timedelta(seconds=5 + 15)
    assert found[0].attributes["limit_kmh"] == 80 and found[0].attributes["speed_kmh"] == 95


def test_a_geofence_speed_limit_applies_inside_it() -> None:
    track = driving([50] * 60)
    fence = fence_from_geojson(7, {"type": "Point", "coordinates": [4.0, 52.0]}, radius_m=2000,
                               speed_limit_kmh=30)
    _, outputs = run(track, fences=FenceIndex([fence]))
    assert [e.type for e in outputs if e.type in (GEOFENCE_ENTER, OVERSPEED)] == [GEOFENCE_ENTER, OVERSPEED]
    _, without = run(track)
    assert events(without, OVERSPEED) == []


@pytest.mark.parametrize(("settings", "message"), [
    ({"weather": {}}, "unknown processing sections"),
    ({"status": {"speed_limit_kmh": -5}}, "processing.status"),
    ({"motion": []}, "processing.motion must be an object"),
])
def test_bad_settings_are_refused_with_their_section(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pipeline.PipelineParams.from_mapping(settings)


def test_state_through_json_at_any_point_gives_the_same_results_on_the_reno_drive() -> None:
    fixes = sorted(nmea_fixes(RENO), key=lambda f: f.order)[::3]
    middle = fixes[len(fixes) // 2]
    fence = fence_from_geojson(1, {"type": "Point", "coordinates": [middle.longitude, middle.latitude]},
                               radius_m=500, speed_limit_kmh=40)
    index = FenceIndex([fence])
    params = pipeline.PipelineParams()
    straight = run(fixes, params, index)
    state = pipeline.DeviceState()
    marks, outputs = [], []
    for k, f in enumerate(fixes):
        if k % 101 == 0:
            state = pipeline.DeviceState.from_json(json.loads(json.dumps(state.to_json())))
        mark, out = pipeline.step(state, f, params, index)
        marks.append(mark)
        outputs.extend(out)
    assert (marks, outputs) == straight
    assert events(outputs, GEOFENCE_ENTER), "the drive passes through the fence"
