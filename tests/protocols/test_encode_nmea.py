"""NMEA encoders (RMC, GGA, the IMEI line) through our own framer and decoder."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import nmea
from protocols.model import Session

MINUTE_5 = 0.5e-5 / 60  # half of the last digit of ddmm.mmmmm, in degrees
# RMC/GGA carry hundredths of a second; the decoder refuses fixes from the future.
times = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2026, 11, 30), timezones=st.just(UTC)
                     ).map(lambda t: t.replace(microsecond=t.microsecond // 10000 * 10000))
lats = st.floats(min_value=-89.99, max_value=89.99, allow_nan=False)
lons = st.floats(min_value=-179.99, max_value=179.99, allow_nan=False)


def near(value: float | None, expected: float, tolerance: float) -> bool:
    return value is not None and abs(value - expected) <= tolerance


def frames(stream: bytes) -> list[bytes]:
    out = []
    while stream:
        frame, used = nmea.next_frame(stream)
        if used == 0:
            break
        stream = stream[used:]
        if frame is not None:
            out.append(frame)
    return out


@settings(max_examples=200, deadline=None)
@given(times, lats, lons, st.floats(min_value=0, max_value=250), st.floats(min_value=0, max_value=359.99),
       st.floats(min_value=-400, max_value=8000), st.floats(min_value=0.5, max_value=20), st.integers(3, 24))
def test_rmc_then_gga_round_trip(t: datetime, lat: float, lon: float, speed: float, course: float,
                                 altitude: float, hdop: float, sats: int) -> None:
    stream = (nmea.encode_rmc(t, lat, lon, speed, course)
              + nmea.encode_gga(t, lat, lon, altitude, hdop=hdop, satellites=sats) + b"$")
    rmc, gga = frames(stream)
    # "strict" (the default) refuses a wrong checksum, "required" a missing one: both pass here.
    session = Session(unique_id="356307042441013", config={"checksum": "required"})
    first = nmea.decode(rmc, session).positions
    second = nmea.decode(gga, session).positions
    assert len(first) == len(second) == 1
    for p in (first[0], second[0]):
        assert p.fix_time == t and p.valid
        assert near(p.latitude, lat, MINUTE_5 + 1e-12) and near(p.longitude, lon, MINUTE_5 + 1e-12)
        assert near(p.speed_kmh, speed, 0.005 * 1.852 + 1e-9)  # knots, 2 decimals
        assert near(p.course_deg, course, 0.005 + 1e-9)
    # GGA completes the epoch: altitude (0.1 m), HDOP (0.1) and satellites.
    assert near(second[0].altitude_m, altitude, 0.05 + 1e-9)
    assert near(second[0].hdop, hdop, 0.05 + 1e-9)
    assert second[0].attributes["satellites"] == sats
    assert nmea.stats(session).bad_checksum == 0


def test_a_corrupted_sentence_fails_its_checksum() -> None:
    sentence = nmea.encode_rmc(datetime(2026, 11, 2, 9, 30, tzinfo=UTC), 52.5, 4.25, 30, 90)
    corrupted = sentence.replace(b"5230.00000", b"5231.00000")
    session = Session(unique_id="x")
    try:
        nmea.decode(corrupted.rstrip(), session)
    except ValueError:
        assert nmea.stats(session).bad_checksum == 1
        return
    raise AssertionError("a wrong checksum must be refused")


def test_identity_line_names_the_device_and_releases_the_pending_fix() -> None:
    session = Session()
    t = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    pending = nmea.decode(nmea.encode_rmc(t, 52.5, 4.25).rstrip(), session)
    assert pending.positions == []  # anonymous until the device names itself
    named = nmea.decode(frames(nmea.encode_identity("356307042441013"))[0], session)
    assert named.unique_id == "356307042441013"
    assert [(p.latitude, p.longitude, p.fix_time) for p in named.positions] == [(52.5, 4.25, t)]
