"""OsmAnd / Traccar Client HTTP: Traccar's vectors, parameters, Transistorsoft JSON, fuzzing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import keys
from protocols.model import Decoded, DecodeError, Session
from protocols.osmand import MAX_BODY, PROTOCOL
from tests.protocols.fuzz import (
    all_finite,
    check_decoder,
    chunk_mutations,
    fuzz_settings,
    real_frames,
)
from tests.protocols.vectors import replay_method, vectors_for

VECTORS = vectors_for("osmand")
ALL = [v for items in VECTORS.values() for v in items]
REAL_FRAMES = real_frames(VECTORS)
FUZZ = fuzz_settings(300)
KMH_PER_KNOT = 1.852
KMH_PER_MPS = 3.6


def decode(frame: bytes | str) -> Decoded:
    raw = frame.encode() if isinstance(frame, str) else frame
    return PROTOCOL.decode(raw, Session(transport="http"))


def transistorsoft(location: Any, device_id: Any = "4711") -> bytes:
    return json.dumps({"location": location, "device_id": device_id}).encode()


def test_vector_count() -> None:
    assert len(ALL) == 15


@pytest.mark.parametrize("method", sorted(VECTORS))
def test_traccar_vectors(method: str) -> None:
    replay_method(PROTOCOL, VECTORS[method])


# --- framing: one HTTP request body is one frame ---------------------------------------------


# --- query / form parameters ------------------------------------------------------------------


def test_query_position_fields_and_units() -> None:
    d = decode("/?id=42&lat=52.5&lon=13.4&timestamp=1700000000&speed=10&bearing=90.5"
               "&altitude=34.5&accuracy=7&hdop=1.2&batt=64&driverUniqueId=DRV7&valid=false")
    assert d.reply is None
    assert d.unique_id == "42"
    (p,) = d.positions
    assert p.unique_id == "42"
    assert (p.latitude, p.longitude) == (52.5, 13.4)
    assert p.fix_time == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert p.speed_kmh == pytest.approx(10 * KMH_PER_KNOT)  # OsmAnd sends knots
    assert p.course_deg == 90.5
    assert p.altitude_m == 34.5
    assert p.accuracy_m == 7
    assert p.hdop == 1.2
    assert p.valid is False
    assert p.attributes[keys.BATTERY_PCT] == 64
    assert p.attributes[keys.DRIVER_UNIQUE_ID] == "DRV7"


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("1377177267", datetime(2013, 8, 22, 13, 14, 27, tzinfo=UTC)),
        ("1442068686579", datetime(2015, 9, 12, 14, 38, 6, 579000, tzinfo=UTC)),
        ("2016-01-27T18%3A55%3A47Z", datetime(2016, 1, 27, 18, 55, 47, tzinfo=UTC)),
        ("2016-01-27T20%3A55%3A47%2B02%3A00", datetime(2016, 1, 27, 18, 55, 47, tzinfo=UTC)),
        ("2014-06-04+09%3A10%3A11", datetime(2014, 6, 4, 9, 10, 11, tzinfo=UTC)),
    ],
)
def test_timestamp_forms(stamp: str, expected: datetime) -> None:
    (p,) = decode(f"/?id=1&lat=1&lon=2&timestamp={stamp}").positions
    assert p.fix_time == expected


def test_aliases_deviceid_heading_location() -> None:
    (p,) = decode("/?deviceid=77&location=-33.5,151.25&heading=270").positions
    assert p.unique_id == "77"
    assert (p.latitude, p.longitude) == (-33.5, 151.25)
    assert p.course_deg == 270


def test_form_body_is_read_like_a_query() -> None:
    d = decode(b"id=900&lat=48.1&lon=11.6&timestamp=1700000000&charge=true&mock=true&rpm=933")
    (p,) = d.positions
    assert d.unique_id == "900" and p.unique_id == "900"
    assert (p.latitude, p.longitude) == (48.1, 11.6)
    assert p.attributes[keys.CHARGE] is True
    assert p.attributes[keys.MOCK] is True
    assert p.attributes[keys.RPM] == 933


def test_cells_and_wifi_without_fix_make_a_status_report() -> None:
    (p,) = decode("/?id=5&cell=257,02,16,2224,-90&wifi=00-14-22-01-23-45,-80").positions
    assert p.latitude is None and p.longitude is None
    assert p.attributes[keys.CELL_TOWERS] == [{"mcc": 257, "mnc": 2, "lac": 16, "cid": 2224, "rssi": -90}]
    assert p.attributes[keys.WIFI] == [{"mac": "00:14:22:01:23:45", "rssi": -80}]


def test_cell_and_wifi_numbers_are_read_as_checked() -> None:
    # Found by fuzzing: str.strip() drops \x1c-\x1f, int() does not, and a ValueError escaped.
    (p,) = decode("/?id=5&cell=257,02,16,2224\x1c&wifi=00-14-22-01-23-45,-80\x1d").positions
    assert p.attributes[keys.CELL_TOWERS] == [{"mcc": 257, "mnc": 2, "lac": 16, "cid": 2224, "rssi": None}]
    assert p.attributes[keys.WIFI] == [{"mac": "00:14:22:01:23:45", "rssi": -80}]


def test_zero_zero_is_no_fix() -> None:
    (p,) = decode("/?id=5&lat=0&lon=0").positions
    assert p.latitude is None and p.longitude is None


def test_request_without_device_id_gives_nothing() -> None:
    d = decode("/?lat=60.0&lon=30.0&timestamp=1377177267")
    assert d.positions == [] and d.unique_id is None


@pytest.mark.parametrize(
    "frame",
    ["/?id=1&lat=abc&lon=1", "/?id=1&lat=91&lon=1", "/?id=1&lat=1&lon=-181", "/?id=1&timestamp=yesterday",
     "/?id=1&cell=1,2", "/?id=1&wifi=aa-bb", "/?id=1&location=1;2", "/?id=1&speed=1e999", "", "  ",
     # zone offsets that push the instant outside datetime's range
     "/?id=1&timestamp=0001-01-01T00:00:00%2B01:00", "/?id=1&timestamp=9999-12-31T23:59:59-01:00"],
)
def test_malformed_parameters_raise_decode_error(frame: str) -> None:
    with pytest.raises(DecodeError):
        decode(frame)


# --- Transistorsoft JSON ----------------------------------------------------------------------


def test_transistorsoft_location() -> None:
    body = transistorsoft({
        "timestamp": "2021-07-21T08:06:34.444Z",
        "coords": {"latitude": -6.1148096, "longitude": 106.6837015, "accuracy": 3.8, "speed": 18.67,
                   "heading": 63, "altitude": 35.7},
        "is_moving": True, "odometer": 1234.5, "event": "motionchange",
        "activity": {"type": "in_vehicle", "confidence": 100},
        "battery": {"is_charging": True, "level": 0.79},
        "mock": True,
        "extras": {"route": "north", "mock": False},
    }, device_id="8737767034")
    d = decode(body)
    assert d.reply is None and d.unique_id == "8737767034"
    (p,) = d.positions
    assert p.unique_id == "8737767034"
    assert p.fix_time == datetime(2021, 7, 21, 8, 6, 34, 444000, tzinfo=UTC)
    assert (p.latitude, p.longitude) == (-6.1148096, 106.6837015)
    assert p.speed_kmh == pytest.approx(18.67 * KMH_PER_MPS)  # the SDK sends m/s
    assert p.course_deg == 63 and p.altitude_m == 35.7 and p.accuracy_m == 3.8
    assert p.attributes[keys.MOTION] is True
    assert p.attributes[keys.ODOMETER_M] == 1234.5
    assert p.attributes[keys.EVENT] == "motionchange"
    assert p.attributes[keys.ACTIVITY] == "in_vehicle"
    assert p.attributes[keys.BATTERY_PCT] == pytest.approx(79)
    assert p.attributes[keys.CHARGE] is True
    assert p.attributes[keys.MOCK] is True  # an app extra cannot clear the SDK's mock flag
    assert p.attributes["route"] == "north"


def test_transistorsoft_unknown_values_are_left_out() -> None:
    body = transistorsoft({
        "timestamp": "2025-05-09T04:11:30.579Z",
        "coords": {"latitude": 37.785834, "longitude": -122.406417, "speed": -1, "heading": -1},
        "battery": {"level": -1, "is_charging": False},
    })
    (p,) = decode(body).positions
    assert p.speed_kmh is None and p.course_deg is None
    assert keys.BATTERY_PCT not in p.attributes
    assert keys.MOCK not in p.attributes


def test_transistorsoft_batch_of_locations() -> None:
    batch = [
        {"timestamp": f"2024-01-01T00:0{i}:00Z", "coords": {"latitude": 10 + i, "longitude": 20}}
        for i in range(3)
    ]
    d = decode(transistorsoft(batch, device_id=123))
    assert d.unique_id == "123"
    assert [p.latitude for p in d.positions] == [10, 11, 12]
    assert [p.fix_time.minute for p in d.positions] == [0, 1, 2]
    assert all(p.unique_id == "123" for p in d.positions)


def test_transistorsoft_without_device_id_gives_nothing() -> None:
    assert decode(json.dumps({"location": {"coords": {"latitude": 1, "longitude": 2}}})).positions == []


def test_flat_json_parameters() -> None:
    (p,) = decode(json.dumps({"id": "55", "lat": 1.5, "lon": 2.5, "speed": 10, "ignition": True})).positions
    assert p.unique_id == "55"
    assert p.speed_kmh == pytest.approx(10 * KMH_PER_KNOT)
    assert p.attributes[keys.IGNITION] is True


@pytest.mark.parametrize(
    "body",
    [b"{", b"[1, 2]", b'{"location": 5, "device_id": "1"}', b'{"location": [null], "device_id": "1"}',
     b"{" * 100_000, b'{"location": {"extras": {"x": 1e999}}, "device_id": "1"}',
     b'{"location": {"extras": {"x": NaN}}, "device_id": "1"}',
     transistorsoft({"coords": {"latitude": 95, "longitude": 0}})],
)
def test_malformed_json_raises_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(body)


def test_oversize_body_is_refused() -> None:
    with pytest.raises(DecodeError):
        decode(b"id=1&x=" + b"a" * MAX_BODY)


def test_garbage_is_not_a_position() -> None:
    garbage = bytes(range(0x80, 0x100)) * 8
    try:
        d = decode(garbage)
    except DecodeError:
        return
    assert d.positions == []


# --- fuzzing ----------------------------------------------------------------------------------


def _check_decode(frame: bytes) -> None:
    decoded = check_decoder(PROTOCOL, frame, Session(transport="http"))
    for p in decoded.positions if decoded else []:
        assert p.unique_id
        assert all_finite(p.attributes)


@FUZZ
@given(st.binary(max_size=2048))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    _check_decode(data)


@FUZZ
@given(chunk_mutations(REAL_FRAMES, b'0123456789-.,&=%+{}[]":eE'))
def test_fuzz_mutated_frames(frame: bytes) -> None:
    _check_decode(frame)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
LOCATION_KEYS = st.sampled_from(
    ["timestamp", "coords", "mock", "battery", "activity", "extras", "odometer", "event", "is_moving"]
)


@FUZZ
@given(
    st.dictionaries(LOCATION_KEYS, JSON_VALUES, max_size=9),
    st.dictionaries(st.sampled_from(["latitude", "longitude", "speed", "heading", "altitude", "accuracy"]),
                    JSON_VALUES, max_size=6),
    JSON_VALUES,
)
def test_fuzz_transistorsoft_shapes(location: dict[str, Any], coords: dict[str, Any], device: Any) -> None:
    if "coords" not in location:
        location["coords"] = coords
    _check_decode(transistorsoft(location, device_id=device))
    _check_decode(transistorsoft([location, location], device_id=device))


@FUZZ
@given(st.dictionaries(st.sampled_from(["id", "lat", "lon", "timestamp", "speed", "bearing", "cell", "wifi",
                                        "location", "valid", "batt", "hours", "x"]),
                       st.text(max_size=20), max_size=10))
def test_fuzz_query_values(params: dict[str, str]) -> None:
    _check_decode(("/?" + urlencode(params)).encode())
    _check_decode(json.dumps(params).encode())


OFFSETS = st.builds(timezone, st.timedeltas(min_value=timedelta(hours=-23, minutes=-59),
                                             max_value=timedelta(hours=23, minutes=59)))


@FUZZ
@given(st.datetimes(timezones=OFFSETS | st.none()), st.sampled_from(["T", " "]))
def test_fuzz_timestamps(when: datetime, sep: str) -> None:
    _check_decode(("/?id=1&lat=1&lon=1&timestamp=" + urlencode({"t": when.isoformat(sep)})[2:]).encode())
