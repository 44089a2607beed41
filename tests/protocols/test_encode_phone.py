"""Phone-app encoders (OsmAnd query, OwnTracks location, Fieldtrack JSON) through our own decoders."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import fieldtrack_json, osmand, owntracks
from protocols.model import Position, Session

times = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2090, 12, 31),
                     timezones=st.just(UTC))
whole_seconds = times.map(lambda t: t.replace(microsecond=0))
lats = st.floats(min_value=-90, max_value=90, allow_nan=False)
lons = st.floats(min_value=-180, max_value=180, allow_nan=False)
maybe = st.one_of(st.none(), st.floats(min_value=0, max_value=1000, allow_nan=False))


@settings(max_examples=200, deadline=None)
@given(whole_seconds, lats, lons, maybe, st.one_of(st.none(), st.floats(min_value=0, max_value=359.9)),
       maybe, maybe, st.one_of(st.none(), st.integers(0, 100)), st.booleans())
def test_osmand_query_round_trip(t: datetime, lat: float, lon: float, speed: float | None,
                                 course: float | None, altitude: float | None, accuracy: float | None,
                                 battery: int | None, mock: bool) -> None:
    query = osmand.encode_query("rep-7", t, lat, lon, speed_kmh=speed, course_deg=course, altitude_m=altitude,
                                accuracy_m=accuracy, battery_pct=battery, extra={"mock": mock})
    for frame in (f"/?{query}".encode(), query.encode()):  # GET target and POST form body
        decoded = osmand.decode(frame, Session())
        assert decoded.unique_id == "rep-7" and len(decoded.positions) == 1
        p = decoded.positions[0]
        assert p.fix_time == t
        if (lat, lon) != (0, 0):  # 0,0 is the apps' "no fix" and decodes without a location
            assert (p.latitude, p.longitude) == (lat, lon)
        if speed is None:
            assert p.speed_kmh is None
        else:
            assert p.speed_kmh is not None
            assert abs(p.speed_kmh - speed) <= 1e-9 * max(1, speed)  # knots and back, floats in full
        assert (p.course_deg, p.altitude_m, p.accuracy_m) == (course, altitude, accuracy)
        assert p.attributes.get("battery_pct") == battery
        assert p.attributes["mock"] is mock


def test_osmand_keeps_milliseconds() -> None:
    t = datetime(2026, 11, 2, 9, 30, 15, 250000, tzinfo=UTC)
    p = osmand.decode(osmand.encode_query("a", t, 1.5, 2.5).encode(), Session()).positions[0]
    assert p.fix_time == t


@settings(max_examples=200, deadline=None)
@given(whole_seconds, lats, lons, maybe, maybe, maybe, st.one_of(st.none(), st.floats(0, 359.4)),
       st.one_of(st.none(), st.integers(0, 100)), st.one_of(st.none(), st.booleans()))
def test_owntracks_location_round_trip(t: datetime, lat: float, lon: float, accuracy: float | None,
                                       altitude: float | None, speed: float | None, course: float | None,
                                       battery: int | None, mock: bool | None) -> None:
    payload = owntracks.encode_location(t, lat, lon, accuracy_m=accuracy, altitude_m=altitude,
                                        speed_kmh=speed, course_deg=course, battery_pct=battery,
                                        tracker_id="jd", mock=mock)
    decoded = owntracks.decode(payload, Session(unique_id="jane/phone"))
    p = decoded.positions[0]
    assert decoded.unique_id == p.unique_id == "jane/phone"
    assert (p.fix_time, p.latitude, p.longitude) == (t, lat, lon)

    def whole(value: float | None) -> float | None:  # the apps send integers for these
        return None if value is None else round(value)

    assert (p.accuracy_m, p.altitude_m, p.speed_kmh) == (whole(accuracy), whole(altitude), whole(speed))
    assert p.course_deg == (None if course is None else round(course) % 360)
    assert p.attributes.get("battery_pct") == battery and p.attributes["tracker_id"] == "jd"
    assert p.attributes.get("mock") == mock


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)
positions = st.builds(
    Position,
    fix_time=times,
    latitude=lats,
    longitude=lons,
    valid=st.booleans(),
    speed_kmh=st.one_of(st.none(), st.floats(0, 500)),
    course_deg=st.one_of(st.none(), st.floats(0, 359.99)),
    altitude_m=st.one_of(st.none(), finite),
    accuracy_m=st.one_of(st.none(), st.floats(0, 5000)),
    hdop=st.one_of(st.none(), st.floats(0, 50)),
    unique_id=st.just("dev-1"),
    attributes=st.fixed_dictionaries({}, optional={
        "battery_pct": st.integers(0, 100), "mock": st.booleans(),
        "visit_id": st.text(min_size=1, max_size=8), "steps": st.integers(0, 10**6)}),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(positions, min_size=1, max_size=5))
def test_fieldtrack_json_round_trip_is_exact(sent: list[Position]) -> None:
    decoded = fieldtrack_json.decode(fieldtrack_json.encode(sent), Session(unique_id="dev-1"))
    assert decoded.unique_id == "dev-1"
    assert decoded.positions == sent
