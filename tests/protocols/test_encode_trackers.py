"""Round trips of the tracker encoders (H02, TK103, GPS103, Teltonika) through our own decoders:
``decode(encode(x))`` gives back x on every field the protocol carries, within its wire resolution."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from protocols import gps103, h02, teltonika, tk103
from protocols.model import Session

# Half a unit of the last digit of ddmm.mmmm, in degrees.
MINUTE_4 = 0.5e-4 / 60
# H02 and GPS103 carry knots with 2 decimals: half of 0.01 knot, in km/h.
KNOT_CENT_KMH = 0.005 * 1.852

times = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2090, 12, 31),
                     timezones=st.just(UTC)).map(lambda t: t.replace(microsecond=0))
lats = st.floats(min_value=-89.99, max_value=89.99, allow_nan=False)
lons = st.floats(min_value=-179.99, max_value=179.99, allow_nan=False)
speeds = st.floats(min_value=0, max_value=250, allow_nan=False)
courses = st.floats(min_value=0, max_value=359.4, allow_nan=False)


def near(value: float | None, expected: float, tolerance: float) -> bool:
    return value is not None and abs(value - expected) <= tolerance


@settings(max_examples=200, deadline=None)
@given(times, lats, lons, speeds, courses, st.booleans())
def test_h02_report_round_trip(t: datetime, lat: float, lon: float, speed: float, course: float,
                               ignition: bool) -> None:
    frame = h02.encode_report("4209917484", t, lat, lon, speed, course, ignition=ignition)
    assert h02.next_frame(frame + b"*HQ,") == (frame, len(frame))
    decoded = h02.decode(frame, Session())
    p = decoded.positions[0]
    assert len(decoded.positions) == 1 and decoded.unique_id == p.unique_id == "4209917484"
    assert p.fix_time == t and p.valid
    assert near(p.latitude, lat, MINUTE_4 + 1e-12) and near(p.longitude, lon, MINUTE_4 + 1e-12)
    assert near(p.speed_kmh, speed, KNOT_CENT_KMH + 1e-9)
    assert p.course_deg == round(course) % 360  # whole degrees on the wire
    assert p.attributes["ignition"] is ignition
    # A V1 report is answered "*HQ,<id>,V4,V1,<yyyyMMddHHmmss>#" (what the simulated device checks).
    assert decoded.reply is not None and decoded.reply.startswith(b"*HQ,4209917484,V4,V1,")


def test_h02_heartbeat_is_echoed_and_stores_nothing() -> None:
    decoded = h02.decode(h02.encode_heartbeat("4209917484"), Session())
    assert decoded.positions == [] and decoded.reply == b"*HQ,4209917484,V0#"


def test_h02_rejects_a_non_numeric_id() -> None:
    try:
        h02.encode_report("abc", datetime(2026, 1, 1, tzinfo=UTC), 1, 1)
    except ValueError:
        return
    raise AssertionError("expected ValueError")


@settings(max_examples=200, deadline=None)
@given(times, lats, lons, st.floats(min_value=0, max_value=999.9), courses, st.booleans(),
       st.integers(min_value=0, max_value=2**32 - 1))
def test_tk103_report_and_login_round_trip(t: datetime, lat: float, lon: float, speed: float, course: float,
                                           ignition: bool, odometer: int) -> None:
    for frame in (tk103.encode_report("027044702512", t, lat, lon, speed, course, ignition=ignition,
                                      odometer_m=odometer),
                  tk103.encode_login("027044702512", "356307042441013", t, lat, lon, speed, course,
                                     ignition=ignition, odometer_m=odometer)):
        assert tk103.next_frame(frame + b"(") == (frame, len(frame))
        decoded = tk103.decode(frame, Session())
        p = decoded.positions[0]
        assert len(decoded.positions) == 1 and p.unique_id == "027044702512"
        assert p.fix_time == t
        assert near(p.latitude, lat, MINUTE_4 + 1e-12) and near(p.longitude, lon, MINUTE_4 + 1e-12)
        assert near(p.speed_kmh, speed, 0.05 + 1e-9)  # 0.1 km/h on the wire
        assert near(p.course_deg, course, 0.005 + 1e-9)
        assert p.attributes["ignition"] is ignition and p.attributes["odometer_m"] == odometer
    login = tk103.decode(tk103.encode_login("027044702512", "356307042441013", t, lat, lon), Session())
    assert login.reply == b"(027044702512AP05)"
    report = tk103.decode(tk103.encode_report("027044702512", t, lat, lon), Session())
    assert report.reply is None  # the protocol does not answer reports


def test_tk103_heartbeat_is_answered_and_stores_nothing() -> None:
    decoded = tk103.decode(tk103.encode_heartbeat("027044702512"), Session())
    assert decoded.positions == [] and decoded.reply == b"(027044702512AP01HSO)"


@settings(max_examples=200, deadline=None)
@given(times, lats, lons, speeds, courses, st.floats(min_value=-400, max_value=8000))
def test_gps103_report_round_trip(t: datetime, lat: float, lon: float, speed: float, course: float,
                                  altitude: float) -> None:
    frame = gps103.encode_report("356307042441013", t, lat, lon, speed, course, altitude)
    assert gps103.next_frame(frame + b"imei") == (frame, len(frame))
    decoded = gps103.decode(frame, Session())
    p = decoded.positions[0]
    assert len(decoded.positions) == 1 and p.unique_id == "356307042441013"
    assert p.fix_time == t and p.valid
    assert near(p.latitude, lat, MINUTE_4 + 1e-12) and near(p.longitude, lon, MINUTE_4 + 1e-12)
    assert near(p.speed_kmh, speed, KNOT_CENT_KMH + 1e-9)
    assert near(p.course_deg, course, 0.005 + 1e-9)
    assert near(p.altitude_m, altitude, 0.05 + 1e-9)


def test_gps103_login_and_heartbeat_answers() -> None:
    assert gps103.decode(gps103.encode_login("356307042441013"), Session()).reply == b"LOAD"
    beat = gps103.decode(gps103.encode_heartbeat("356307042441013"), Session())
    assert beat.reply == b"ON" and beat.unique_id == "356307042441013" and beat.positions == []


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(times, lats, lons, st.integers(-100, 3000), st.integers(0, 359),
                          st.integers(0, 300), st.booleans()), min_size=1, max_size=20))
def test_teltonika_codec8_round_trip(records: list[tuple[datetime, float, float, int, int, int, bool]],
                                     ) -> None:
    # 0/0 on the wire (units of 1e-7 degree) is the protocol's "no fix": no location is decoded.
    assume(all((round(lat * 1e7), round(lon * 1e7)) != (0, 0) for _t, lat, lon, *_rest in records))
    avl = [teltonika.AvlRecord(t, lat, lon, alt, course, speed, io1=((239, int(ign)),))
           for t, lat, lon, alt, course, speed, ign in records]
    frame = teltonika.encode_avl(avl)
    assert teltonika.next_frame(frame + b"\x00") == (frame, len(frame))
    # Strict mode checks the data length and the CRC the encoder wrote.
    decoded = teltonika.decode(frame, Session(unique_id="356307042441013", config={"checksum": "strict"}))
    assert decoded.reply == len(records).to_bytes(4, "big")
    assert len(decoded.positions) == len(records)
    for p, (t, lat, lon, alt, course, speed, ign) in zip(decoded.positions, records, strict=True):
        assert p.fix_time == t
        assert near(p.latitude, lat, 0.5e-7 + 1e-12) and near(p.longitude, lon, 0.5e-7 + 1e-12)
        assert (p.altitude_m, p.course_deg, p.speed_kmh) == (alt, course, speed)
        assert p.attributes["ignition"] is ign


def test_teltonika_handshake_round_trip() -> None:
    decoded = teltonika.decode(teltonika.encode_imei("356307042441013"), Session())
    assert decoded.unique_id == "356307042441013" and decoded.reply == b"\x01"


def test_degrees_minutes_carry_into_the_degree() -> None:
    # 10.99999999 degrees is 10 deg 59.9999994': rounded to 4 decimals it must read 11 deg 00.0000'.
    frame = h02.encode_report("1", datetime(2026, 1, 1, tzinfo=UTC), 10.99999999, 0)
    assert b",1100.0000,N," in frame
