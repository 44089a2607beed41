"""Round trips of the Queclink (gl200), Meitrack, watch and GpsGate encoders through our own
decoders: ``decode(encode(x))`` gives back x on every field the protocol carries, within its wire
resolution; the keep-alives get the answers the protocols define and store nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import gl200, gpsgate, meitrack, nmea, watch
from protocols.base import Framer
from protocols.model import Decoded, Session

IMEI = "353358017784062"
T = datetime(2026, 12, 2, 10, 15, 30, tzinfo=UTC)
# Half a unit of the sixth decimal of a degree; half of 0.00001 minute of arc, in degrees.
MICRO_DEG = 0.5e-6
MINUTE_5 = 0.5e-5 / 60

times = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2090, 12, 31),
                     timezones=st.just(UTC)).map(lambda t: t.replace(microsecond=0))
# Off the exact 0/0 spot some protocols use for "no fix".
lats = st.floats(min_value=-89.99, max_value=89.99, allow_nan=False).filter(lambda x: abs(x) > 1e-5)
lons = st.floats(min_value=-179.99, max_value=179.99, allow_nan=False).filter(lambda x: abs(x) > 1e-5)
speeds = st.floats(min_value=0, max_value=250, allow_nan=False)
courses = st.floats(min_value=0, max_value=359.4, allow_nan=False)
altitudes = st.floats(min_value=-400, max_value=8000, allow_nan=False)


def near(value: float | None, expected: float, tolerance: float) -> bool:
    return value is not None and abs(value - expected) <= tolerance


def one_frame(framer: Framer, data: bytes, follower: bytes) -> bytes:
    """The frame the gateway's framer cuts from ``data`` followed by the start of another frame:
    all of ``data`` is consumed (a line framer may leave the line end, skipped next), none of the
    follower."""
    frame, used = framer(data + follower)
    assert frame is not None and used <= len(data), (data, frame, used)
    assert data[used:] in (b"", b"\n", b"\r\n"), (data, frame, used)
    return frame


def checksum_ok(line: bytes) -> bool:
    """An NMEA-style ``$body*hh\\r\\n``: XOR of the bytes between ``$`` and ``*``."""
    body, star, tail = line.rstrip(b"\r\n").partition(b"*")
    x = 0
    for b in body[1:]:
        x ^= b
    return bool(star) and tail == b"%02X" % x


# --- Queclink ----------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(times, lats, lons, speeds, courses, altitudes, st.booleans(), st.integers(0, 0xFFFF))
def test_gl200_fri_round_trip(t: datetime, lat: float, lon: float, speed: float, course: float,
                              altitude: float, ignition: bool, count: int) -> None:
    data = gl200.encode_fri(IMEI, count, t, lat, lon, speed, course, altitude, ignition=ignition)
    assert data.endswith(b"$") and data.startswith(b"+RESP:GTFRI,")
    decoded = gl200.decode(one_frame(gl200.next_frame, data, b"+RESP"), Session())
    (p,) = decoded.positions
    assert decoded.unique_id == p.unique_id == IMEI and decoded.reply is None  # no SACK by default
    assert p.fix_time == t and p.valid
    assert near(p.latitude, lat, MICRO_DEG + 1e-12) and near(p.longitude, lon, MICRO_DEG + 1e-12)
    assert near(p.speed_kmh, speed, 0.05 + 1e-9)  # 0.1 km/h on the wire
    assert near(p.course_deg, course, 0.5 + 1e-9)  # whole degrees
    assert near(p.altitude_m, altitude, 0.05 + 1e-9)
    assert p.attributes["ignition"] is ignition and p.attributes["motion"] is (speed > 0)
    # Queclink's count is four hex digits echoed by a SACK: the last field.
    assert data.rstrip(b"$").split(b",")[-1] == b"%04X" % count


def test_gl200_fri_is_acknowledged_with_its_count_when_the_device_asks_for_sack() -> None:
    data = gl200.encode_fri(IMEI, 0x1A2B, T, 52.37, 4.89)
    decoded = gl200.decode(one_frame(gl200.next_frame, data, b""), Session(config={"ack": True}))
    assert decoded.reply == b"+SACK:1A2B$" and len(decoded.positions) == 1


def test_gl200_heartbeat_answer_echoes_version_and_count_and_stores_nothing() -> None:
    data = gl200.encode_heartbeat(IMEI, 0x00FF, T)
    assert data == b"+ACK:GTHBD,270403,353358017784062,,20261202101530,00FF$"
    decoded = gl200.decode(one_frame(gl200.next_frame, data, b"+ACK"), Session())
    assert decoded.positions == [] and decoded.unique_id == IMEI
    assert decoded.reply == b"+SACK:GTHBD,270403,00FF$"


def test_gl200_encoder_refuses_what_is_not_an_imei() -> None:
    with pytest.raises(ValueError):
        gl200.encode_fri("35335801778406", 1, T, 1, 1)  # 14 digits
    with pytest.raises(ValueError):
        gl200.encode_heartbeat("35335801778406x", 1, T)


# --- Meitrack ----------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(times, lats, lons, speeds, courses, altitudes, st.booleans(),
       st.integers(0x41, 0x7A).map(lambda b: bytes([b])), st.integers(0, 10**9))
def test_meitrack_aaa_round_trip(t: datetime, lat: float, lon: float, speed: float, course: float,
                                 altitude: float, ignition: bool, flag: bytes, odometer: int) -> None:
    data = meitrack.encode_aaa(flag, IMEI, t, lat, lon, speed, course, altitude, ignition=ignition,
                               odometer_m=odometer)
    # The length field counts from the comma after it through the CRLF.
    head = data.index(b",")
    assert int(data[3:head]) == len(data) - head and data[2:3] == flag
    # The checksum: the sum of every byte up to and including '*', two hex digits.
    assert data[-4:-2] == b"%02X" % (sum(data[:-4]) & 0xFF)
    decoded = meitrack.decode(one_frame(meitrack.next_frame, data, b"$$"), Session())
    (p,) = decoded.positions
    assert decoded.unique_id == p.unique_id == IMEI and decoded.reply is None
    assert p.fix_time == t and p.valid
    assert near(p.latitude, lat, MICRO_DEG + 1e-12) and near(p.longitude, lon, MICRO_DEG + 1e-12)
    assert near(p.speed_kmh, speed, 0.05 + 1e-9)
    assert near(p.course_deg, course, 0.5 + 1e-9)
    assert near(p.altitude_m, altitude, 0.5 + 1e-9)  # whole metres
    assert p.attributes["event"] == 35 and p.attributes["odometer_m"] == odometer
    assert p.attributes["input"] == int(ignition)
    assert (p.attributes["battery_v"], p.attributes["power_v"]) == (4.0, 12.5)  # 0x190, 0x4E2 hundredths


def test_meitrack_aac_is_answered_with_the_flag_echoed_and_stores_nothing() -> None:
    data = meitrack.encode_aac(b"q", IMEI)
    decoded = meitrack.decode(one_frame(meitrack.next_frame, data, b"$"), Session())
    assert decoded.positions == [] and decoded.unique_id == IMEI
    # ",353358017784062,AAC,1*" is 23 bytes, + 2 checksum digits + CRLF = 27.
    body = b"@@q27,353358017784062,AAC,1*"
    assert decoded.reply == body + b"%02X" % (sum(body) & 0xFF) + b"\r\n"


def test_meitrack_encoder_refuses_a_bad_flag_or_id() -> None:
    with pytest.raises(ValueError):
        meitrack.encode_aac(b"@", IMEI)
    with pytest.raises(ValueError):
        meitrack.encode_aac(b"A", "35335801778406x")


# --- watch -------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(times, lats, lons, speeds, courses, altitudes, st.sampled_from(["3G", "SG", "CS"]),
       st.from_regex(r"[0-9]{10}|[0-9]{15}", fullmatch=True))
def test_watch_ud_round_trip(t: datetime, lat: float, lon: float, speed: float, course: float,
                             altitude: float, manufacturer: str, uid: str) -> None:
    data = watch.encode_report(uid, t, lat, lon, speed, course, altitude, manufacturer=manufacturer)
    content = data[data.index(b"UD,"):-1]
    assert data.startswith(f"[{manufacturer}*{uid}*{len(content):04X}*".encode())
    decoded = watch.decode(one_frame(watch.next_frame, data, b"["), Session())
    (p,) = decoded.positions
    assert decoded.unique_id == p.unique_id == uid and decoded.reply is None
    assert p.fix_time == t and p.valid
    assert near(p.latitude, lat, MICRO_DEG + 1e-12) and near(p.longitude, lon, MICRO_DEG + 1e-12)
    assert near(p.speed_kmh, speed, 0.005 + 1e-9)
    assert near(p.course_deg, course % 360, 0.05 + 1e-9)
    assert near(p.altitude_m, altitude, 0.05 + 1e-9)
    assert p.attributes.get("motion", False) is (speed > 0)


def test_watch_keep_alive_is_echoed_and_the_short_form_stores_nothing() -> None:
    data = watch.encode_keep_alive("8800000015")
    assert data == b"[3G*8800000015*0002*LK]"
    decoded = watch.decode(one_frame(watch.next_frame, data, b"["), Session())
    assert decoded.positions == [] and decoded.reply == b"[3G*8800000015*0002*LK]"
    long = watch.decode(watch.encode_keep_alive("8800000015", steps=1200, battery_pct=77), Session())
    assert long.reply == b"[3G*8800000015*0002*LK]"
    (status,) = long.positions
    assert status.latitude is None and status.attributes["steps"] == 1200
    assert status.attributes["battery_pct"] == 77


def test_watch_envelope_refuses_what_the_text_framing_cannot_carry() -> None:
    with pytest.raises(ValueError):
        watch.envelope("3G", "88*1", "LK")
    with pytest.raises(ValueError):
        watch.envelope("3G", "8800000015", "UD,[x]")


# --- GpsGate -----------------------------------------------------------------------------------


def logged_in(uid: str) -> tuple[Session, Decoded]:
    session = Session()
    login = gpsgate.decode(one_frame(gpsgate.PROTOCOL.next_frame, gpsgate.encode_login(uid), b"$"), session)
    session.unique_id = login.unique_id  # what the gateway does once the device is found
    return session, login


def test_gpsgate_login_is_answered_with_a_session_and_names_the_device() -> None:
    data = gpsgate.encode_login(IMEI)
    assert data.startswith(b"$FRLIN,IMEI,353358017784062,*") and checksum_ok(data)
    _, login = logged_in(IMEI)
    assert login.unique_id == IMEI and login.positions == []
    assert login.reply is not None and login.reply.startswith(b"$FRSES,") and checksum_ok(login.reply)
    assert login.reject_reply is not None and login.reject_reply.startswith(b"$FRERR,AuthError")


@settings(max_examples=200, deadline=None)
@given(times, lats, lons, speeds, courses, altitudes)
def test_gpsgate_send_message_round_trip(t: datetime, lat: float, lon: float, speed: float, course: float,
                                         altitude: float) -> None:
    session, _ = logged_in(IMEI)
    data = gpsgate.encode_send_message(IMEI, t, lat, lon, speed, course, altitude)
    assert checksum_ok(data)
    decoded = gpsgate.decode(one_frame(gpsgate.PROTOCOL.next_frame, data, b"$"), session)
    (p,) = decoded.positions
    assert decoded.unique_id == p.unique_id == IMEI and decoded.reply is None
    assert p.fix_time == t and p.valid
    assert near(p.latitude, lat, MINUTE_5 + 1e-12) and near(p.longitude, lon, MINUTE_5 + 1e-12)
    assert near(p.speed_kmh, speed, 0.005 * 1.852 + 1e-9)  # 0.01 knot
    assert near(p.course_deg, course, 0.005 + 1e-9)
    assert near(p.altitude_m, altitude, 0.05 + 1e-9)


def test_gpsgate_plain_rmc_after_login_is_a_position_of_the_logged_in_device() -> None:
    session, _ = logged_in(IMEI)
    data = nmea.encode_rmc(T, -33.8688, 151.2093, 40.0, 123.0)
    decoded = gpsgate.decode(one_frame(gpsgate.PROTOCOL.next_frame, data, b"$"), session)
    (p,) = decoded.positions
    assert p.fix_time == T
    assert near(p.latitude, -33.8688, MINUTE_5) and near(p.longitude, 151.2093, MINUTE_5)


def test_gpsgate_version_is_answered_and_stores_nothing() -> None:
    session, _ = logged_in(IMEI)
    data = gpsgate.encode_version()
    assert data.startswith(b"$FRVER,1,1,") and checksum_ok(data)
    decoded = gpsgate.decode(one_frame(gpsgate.PROTOCOL.next_frame, data, b"$"), session)
    assert decoded.positions == []
    assert decoded.reply is not None and decoded.reply.startswith(b"$FRVER,") and checksum_ok(decoded.reply)


def test_gpsgate_login_refuses_an_id_with_a_separator() -> None:
    with pytest.raises(ValueError):
        gpsgate.encode_login("35,3")
