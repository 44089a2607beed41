"""OwnTracks: the booklet's and the OwnTracks JSON-schema project's payloads, every _type, refusals,
framing, and fuzzing. Traccar has no vectors for it; expected values are read off the spec by hand
(times converted with ``date -u -d @<tst>``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import keys
from protocols.json_fields import MAX_PAYLOAD
from protocols.model import Decoded, DecodeError, Position, Session
from protocols.owntracks import MAX_MESSAGES, NO_POSITION_TYPES, PROTOCOL
from tests.protocols.fuzz import (
    all_finite,
    check_decoder,
    chunk_mutations,
    fuzz_settings,
    token_mutations,
)

DEVICE = "jane/phone"  # what the gateway's routing makes of owntracks/jane/phone
FUZZ = fuzz_settings(300)

# --- real payloads, with where each comes from ------------------------------------------------

# owntracks/json-schema, test/location-sk.json: an iOS location with extended data.
LOCATION_IOS = (b'{"_type":"location","acc":35,"alt":40,"batt":80,"bs":1,"BSSID":"ca:fe:36:2:b9:2b",'
                b'"conn":"w","created_at":1701258670,"inregions":["office"],"inrids":["cb6046"],'
                b'"lat":71.215592,"lon":3.767957,"m":1,"p":99.834,"SSID":"office","t":"p","tid":"SG",'
                b'"tst":1701258666,"vac":19}\n')
# owntracks/json-schema, test/location-5s.json: with course and speed.
LOCATION_MOVING = (b'{"_type":"location","acc":9,"alt":93,"batt":94,"bs":1,"BSSID":"ca:fe:ed:40:81:5b",'
                   b'"cog":252,"conn":"w","lat":53.430722,"lon":5.112126,"m":1,"p":99.182,"SSID":"hotel",'
                   b'"t":"p","tid":"SG","tst":1701263310,"vac":3,"vel":1}\n')
# owntracks/json-schema, test/l.json: pretty-printed, with a tag (booklet "POI and tags").
LOCATION_TAG = b"""{
    "_type" : "location",
    "acc" : 35,
    "alt" : 0,
    "batt" : 75,
    "bs" : 1,
    "conn" : "w",
    "lat" : 52.195913,
    "lon" : 7.688245,
    "m" : 1,
    "tag" : "Coffee",
    "tid" : "C1",
    "tst" : 1699882482
}
"""
# Booklet JSON page (and the OwnTracks A1 poster), _type=transition example, comments removed.
TRANSITION_BOOKLET = (b'{"_type": "transition", "wtst": 1425042603, "lat": 12.34, "lon": 44.5,'
                      b' "tst": 1427634603, "acc": 130, "tid": "JP", "event": "enter",'
                      b' "desc": "my Indian restaurant", "t": "b"}')
# owntracks/json-schema, test/transition.json: a beacon transition with region id and created_at.
TRANSITION_BEACON = (b'{"_type":"transition","acc":6,"created_at":1701264373,"desc":"blukii","event":"enter",'
                     b'"lat":61.195709,"lon":9.688233,"rid":"c00b92","t":"b","tid":"SG","tst":1701264368,'
                     b'"wtst":1610104404}\n')
# Booklet JSON page, Greenwich (Choral tracker) location example; its placeholder lat/lon filled in.
GREENWICH = (b'{"_type": "location", "alt": 160, "cog": 0, "dist": 189, "trip": 279122, "lat": 45.123456,'
             b' "lon": 9.654321, "vel": 12, "t": "t", "tst": 1406803894}')
# owntracks/json-schema, test/array.json: an HTTP-mode batch.
ARRAY = (b'[\n\t{\n\t\t"_type": "location", "lat": 8, "lon": 9, "tst": 1000\n\t},\n'
         b'\t{\n\t\t"_type": "location", "lat": 8, "lon": 9, "tst": 1000\n\t}\n]\n')

# Messages without a position. Sources: booklet JSON page for lwt, waypoint (placeholders
# filled), cmd, card, beacon (its element list), configuration (trimmed); owntracks/json-schema
# test/status.json, test/steps.json, test/waypoints-follow-only.json, test/tour.json-like request.
NO_POSITION = {
    "lwt": b'{"_type":"lwt","tst":1380738247}',
    "waypoint": (b'{"_type": "waypoint", "desc": "Free text entered on device", "lat": 51.5, "lon": -0.12,'
                 b' "rad": 100, "tst": 1425042603, "shared": true, "tid": "XX"}'),
    "waypoints": (b'{"_type": "waypoints", "waypoints": [{"_type": "waypoint", "desc": "+follow",'
                  b' "lat": 37.332331, "lon": -122.031219, "rad": 50, "rid": "QUICKSETUP-BA2BFB63-7C60",'
                  b' "tst": 1610104383}]}'),
    "cmd": b'{"_type":"cmd","action":"reportLocation"}',
    "card": b'{"_type": "card", "name": "Jane Jolie", "face": "iVBORw0KGgoAAAANSUhEUg==", "tid": "JJ"}',
    "beacon": (b'{"_type":"beacon","desc":"Home","uuid":"CA271EAE-5FA8-4E80-8F08-2A302A95A959",'
               b'"major":1,"minor":2,"tst":1701263310,"acc":2,"rssi":-60,"prox":1}'),
    "configuration": (b'{"_type": "configuration", "mode": 0, "deviceId": "phone", "clientId": "jane-phone",'
                      b' "pubTopicBase": "owntracks/jane/phone", "host": "broker.my.net", "port": 8883,'
                      b' "monitoring": 1, "waypoints": []}'),
    "status": (b'{"_type": "status", "iOS": {"deviceModel": "iPad", "deviceSystemName": "iPadOS",'
               b' "deviceSystemVersion": "17.2", "locale": "de_DE", "version": "17.2.3"}}'),
    "steps": b'{"_type":"steps","from":1700002800,"steps":10532,"to":1700058960,"tst":1700058962}\n',
    "request": b'{"_type":"request","request":"tours"}',
}
# owntracks/json-schema, test/e.json (the booklet's "Payload encryption" page shows the same shape).
ENCRYPTED = b'{\n\t"_type": "encrypted",\n\t"data": "YWJjZGUK"\n}\n'

REAL = [LOCATION_IOS, LOCATION_MOVING, LOCATION_TAG, TRANSITION_BOOKLET, TRANSITION_BEACON, GREENWICH, ARRAY,
        *NO_POSITION.values(), ENCRYPTED]


def decode(payload: bytes | dict[str, Any] | list[Any], transport: str = "mqtt",
           unique_id: str | None = DEVICE) -> Decoded:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return PROTOCOL.decode(raw, Session(transport=transport, unique_id=unique_id))


def one(payload: bytes | dict[str, Any] | list[Any], **kwargs: Any) -> Position:
    decoded = decode(payload, **kwargs)
    assert len(decoded.positions) == 1
    return decoded.positions[0]


def location(**fields: Any) -> dict[str, Any]:
    return {"_type": "location", "lat": 48.1, "lon": 11.6, "tst": 1700000000, **fields}


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_protocol_object() -> None:
    assert PROTOCOL.name == "owntracks"
    assert PROTOCOL.transports == ("mqtt", "http")
    assert PROTOCOL.default_port == 0
    assert PROTOCOL.max_frame >= MAX_PAYLOAD


# --- location -------------------------------------------------------------------------------------


def test_ios_location_with_extended_data() -> None:
    d = decode(LOCATION_IOS)
    assert d.reply is None and d.unique_id == DEVICE
    (p,) = d.positions
    assert p.unique_id == DEVICE
    assert (p.latitude, p.longitude) == (71.215592, 3.767957)
    assert p.valid is True
    assert p.fix_time == utc(2023, 11, 29, 11, 51, 6)
    assert p.device_time == utc(2023, 11, 29, 11, 51, 10)  # created_at
    assert p.accuracy_m == 35 and p.altitude_m == 40
    assert p.speed_kmh is None and p.course_deg is None  # not sent: not zero
    assert p.attributes == {
        keys.BATTERY_PCT: 80, "battery_status": "unplugged", keys.CHARGE: False,
        "connectivity": "wifi", "in_regions": ["office"], "in_region_ids": ["cb6046"],
        "monitoring_mode": "significant", "pressure_kpa": 99.834, "ssid": "office",
        "bssid": "ca:fe:36:2:b9:2b", "trigger": "ping", "tracker_id": "SG", "vertical_accuracy_m": 19,
    }


def test_speed_is_already_kmh_and_course_is_kept() -> None:
    p = one(LOCATION_MOVING)
    assert p.speed_kmh == 1  # vel is km/h in the booklet: no knots conversion
    assert p.course_deg == 252
    assert p.fix_time == utc(2023, 11, 29, 13, 8, 30)


def test_pretty_printed_location_with_tag() -> None:
    p = one(LOCATION_TAG)
    assert (p.latitude, p.longitude) == (52.195913, 7.688245)
    assert p.fix_time == utc(2023, 11, 13, 13, 34, 42)
    assert p.attributes["tag"] == "Coffee" and p.attributes["tracker_id"] == "C1"
    assert p.altitude_m == 0


def test_greenwich_tracker_location() -> None:
    p = one(GREENWICH)
    assert p.fix_time == utc(2014, 7, 31, 10, 51, 34)
    assert p.speed_kmh == 12 and p.course_deg == 0 and p.altitude_m == 160
    assert p.attributes["trigger"] == "timer"


@pytest.mark.parametrize(
    ("letter", "name"),
    [("p", "ping"), ("c", "circular_region"), ("b", "beacon"), ("r", "response"), ("u", "manual"),
     ("t", "timer"), ("v", "monitoring"), ("k", "k")],  # "k" is Greenwich's park: kept as sent
)
def test_trigger_letters(letter: str, name: str) -> None:
    assert one(location(t=letter)).attributes["trigger"] == name


@pytest.mark.parametrize(
    ("bs", "status", "charge"),
    [(0, "unknown", None), (1, "unplugged", False), (2, "charging", True), (3, "full", True)],
)
def test_battery_status(bs: int, status: str, charge: bool | None) -> None:
    attributes = one(location(bs=bs, batt=55)).attributes
    assert attributes["battery_status"] == status
    assert attributes.get(keys.CHARGE) is charge
    assert attributes[keys.BATTERY_PCT] == 55


@pytest.mark.parametrize(("conn", "name"), [("w", "wifi"), ("o", "offline"), ("m", "mobile")])
def test_connectivity(conn: str, name: str) -> None:
    assert one(location(conn=conn)).attributes["connectivity"] == name


def test_move_mode_topic_mock_and_poi() -> None:
    attributes = one(location(m=2, topic="owntracks/jane/phone", mock=True, poi="Oaxaca, hotel Los Pilares"),
                     transport="http").attributes
    assert attributes["monitoring_mode"] == "move"
    assert attributes["topic"] == "owntracks/jane/phone"
    assert attributes[keys.MOCK] is True
    assert attributes["poi"] == "Oaxaca, hotel Los Pilares"


def test_qtripp_queclink_elements() -> None:
    # Booklet JSON page, "Queclink": odometer in km, hmc in seconds, voltages in volts.
    p = one(location(odometer=12.5, hmc=3600, ubatt=4.1, uext=12.6, rpm=900, flvl=40, vin="WVW123",
                     ign=True, motion=False))
    assert p.attributes[keys.ODOMETER_M] == 12500
    assert p.attributes[keys.ENGINE_HOURS_S] == 3600
    assert p.attributes[keys.BATTERY_V] == 4.1 and p.attributes[keys.POWER_V] == 12.6
    assert p.attributes[keys.RPM] == 900 and p.attributes[keys.FUEL_PCT] == 40
    assert p.attributes[keys.VIN] == "WVW123"
    assert p.attributes[keys.IGNITION] is True and p.attributes[keys.MOTION] is False


def test_pre_2016_location_with_geofence_event() -> None:
    # The 2015 booklet put event/desc/rad on the location message itself.
    p = one(location(event="leave", desc="Home", rad=80))
    assert p.attributes[keys.EVENT] == "geofence_leave"
    assert p.attributes["geofence_name"] == "Home"
    assert p.attributes["geofence_radius_m"] == 80


def test_invalid_optional_elements_are_left_out() -> None:
    # iOS only sends acc/vel/cog when >= 0; wrong JSON types in optional elements are ignored.
    p = one(location(acc=-1, vel=-1, cog=-1, batt="80", bs=True, m="1", tid=7, SSID="", inregions="Home",
                     created_at="yesterday", vac=-1, mock="yes"))
    assert p.accuracy_m is None and p.speed_kmh is None and p.course_deg is None
    assert p.device_time is None
    assert p.attributes == {}


def test_course_is_normalised() -> None:
    assert one(location(cog=360)).course_deg == 0


# --- transition -----------------------------------------------------------------------------------


def test_booklet_transition() -> None:
    d = decode(TRANSITION_BOOKLET)
    (p,) = d.positions
    assert p.unique_id == DEVICE
    assert (p.latitude, p.longitude) == (12.34, 44.5)
    assert p.valid is True
    assert p.fix_time == utc(2015, 3, 29, 13, 10, 3)
    assert p.accuracy_m == 130
    assert p.attributes == {
        keys.EVENT: "geofence_enter", "geofence_name": "my Indian restaurant",
        "geofence_created_at": "2015-02-27T13:10:03+00:00", "tracker_id": "JP", "trigger": "beacon",
    }


def test_beacon_transition_with_region_id() -> None:
    p = one(TRANSITION_BEACON)
    assert p.fix_time == utc(2023, 11, 29, 13, 26, 8)
    assert p.device_time == utc(2023, 11, 29, 13, 26, 13)
    assert p.attributes["geofence_id"] == "c00b92"
    assert p.attributes["geofence_created_at"] == "2021-01-08T11:13:24+00:00"
    assert p.attributes[keys.EVENT] == "geofence_enter"


def test_transition_without_coordinates_is_a_status_report() -> None:
    # lat/lon are optional on transitions: the leave still matters, the gateway fills the place.
    p = one({"_type": "transition", "event": "leave", "desc": "Office", "tst": 1700000000, "wtst": 1600000000,
             "t": "l"})
    assert p.latitude is None and p.longitude is None and p.valid is False
    assert p.attributes[keys.EVENT] == "geofence_leave"
    assert p.attributes["geofence_name"] == "Office"
    assert p.attributes["trigger"] == "location"


@pytest.mark.parametrize(
    "message",
    [
        {"_type": "transition", "tst": 1700000000, "lat": 1, "lon": 2},  # no event
        {"_type": "transition", "tst": 1700000000, "event": "dwell"},
        {"_type": "transition", "tst": 1700000000, "event": ["enter"]},
        {"_type": "transition", "event": "enter", "lat": 1, "lon": 2},  # no tst
        {"_type": "transition", "tst": 1700000000, "event": "enter", "lat": 1},  # half a location
        {"_type": "transition", "tst": 1700000000, "event": "enter", "lat": 100, "lon": 2},
    ],
)
def test_malformed_transitions(message: dict[str, Any]) -> None:
    with pytest.raises(DecodeError):
        decode(message)


# --- message types without a position -------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(NO_POSITION))
def test_messages_without_position(kind: str) -> None:
    d = decode(NO_POSITION[kind])
    assert d.positions == [] and d.reply is None


def test_every_documented_type_without_position_is_covered() -> None:
    assert set(NO_POSITION) == NO_POSITION_TYPES


def test_unknown_type_is_ignored() -> None:
    assert decode({"_type": "msg", "title": "Lunch", "desc": "special offer"}).positions == []


def test_encrypted_payload_is_refused() -> None:
    with pytest.raises(DecodeError, match="encrypted payloads need the key"):
        decode(ENCRYPTED)


def test_encrypted_message_in_a_batch_refuses_the_batch() -> None:
    with pytest.raises(DecodeError, match="need the key"):
        decode([location(), json.loads(ENCRYPTED)], transport="http")


# --- HTTP mode: batches and the device id -----------------------------------------------------------


def test_http_batch() -> None:
    d = decode(ARRAY, transport="http")
    assert [(p.latitude, p.longitude) for p in d.positions] == [(8, 9), (8, 9)]
    assert all(p.fix_time == utc(1970, 1, 1, 0, 16, 40) for p in d.positions)
    assert all(p.unique_id == DEVICE for p in d.positions)


def test_http_batch_mixing_types() -> None:
    batch = [location(), json.loads(TRANSITION_BOOKLET), json.loads(NO_POSITION["lwt"]), location(lat=-33.9)]
    d = decode(batch, transport="http")
    assert [p.latitude for p in d.positions] == [48.1, 12.34, -33.9]


def test_empty_batch() -> None:
    assert decode(b"[]", transport="http").positions == []


@pytest.mark.parametrize(
    ("topic", "expected"),
    [("owntracks/jane/phone", "jane/phone"), ("owntracks/jane/phone/event", "jane/phone"),
     ("acme/owntracks/bob/tab", "bob/tab"), ("jane/phone", None), ("owntracks/jane", None)],
)
def test_http_without_identity_takes_the_topic(topic: str, expected: str | None) -> None:
    d = decode(location(topic=topic), transport="http", unique_id=None)
    assert d.unique_id == expected
    assert d.positions[0].unique_id == expected


def test_session_identity_wins_over_the_topic() -> None:
    d = decode(location(topic="owntracks/someone/else"), transport="http")
    assert d.unique_id == DEVICE and d.positions[0].unique_id == DEVICE


# --- refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {"_type": "location", "lon": 11.6, "tst": 1700000000},  # no lat
        {"_type": "location", "lat": 48.1, "tst": 1700000000},  # no lon
        {"_type": "location", "lat": 48.1, "lon": 11.6},  # no tst
        location(lat="48.1"),  # strings stopped with Android 0.5.11 / iOS 8.0
        location(lat=True),
        location(lat=None),
        location(lat=90.5),
        location(lon=-180.01),
        location(tst=0),
        location(tst=-1),
        location(tst="1700000000"),
        location(tst=10**20),
        location(tst=int("9" * 400)),
        {"lat": 1, "lon": 2, "tst": 3},  # no _type
        {"_type": 5, "lat": 1, "lon": 2, "tst": 3},
        [location(), "location"],
        [location(), [location()]],
        42,
        "location",
        None,
    ],
)
def test_malformed_messages(payload: Any) -> None:
    with pytest.raises(DecodeError):
        decode(payload)


@pytest.mark.parametrize(
    "raw",
    [b"", b"   ", b"{", b'{"_type": "location", "lat": NaN, "lon": 1, "tst": 1700000000}',
     b'{"_type": "location", "lat": 1e999, "lon": 1, "tst": 1700000000}',
     b'{"_type": "location", "lat": 1, "lon": Infinity, "tst": 1700000000}',
     b'{"_type": "location", "tid": "\xff\xfe", "lat": 1, "lon": 1, "tst": 1700000000}',
     b"[" * 100_000, b"C2,561ebac3,v,50123456,65987654,0,0,11,0,5232"],  # the poster's CSV form
)
def test_malformed_json(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(raw)


def test_utf8_bom_is_tolerated() -> None:
    assert one(b"\xef\xbb\xbf" + LOCATION_TAG).attributes["tag"] == "Coffee"


def test_oversize_payload() -> None:
    padded = json.dumps(location(tid="x" * MAX_PAYLOAD)).encode()
    with pytest.raises(DecodeError, match="over"):
        decode(padded)


def test_too_many_messages() -> None:
    lwt = {"_type": "lwt", "tst": 1}
    assert decode([lwt] * MAX_MESSAGES).positions == []
    with pytest.raises(DecodeError, match="messages"):
        decode([lwt] * (MAX_MESSAGES + 1))


def test_garbage_is_refused() -> None:
    with pytest.raises(DecodeError):
        decode(bytes(range(0x80, 0x100)) * 8)


# --- framing: one MQTT message (or HTTP body) is one frame -------------------------------------------


# --- fuzzing ----------------------------------------------------------------------------------------


def _check(payload: bytes, transport: str = "mqtt", unique_id: str | None = DEVICE) -> None:
    decoded = check_decoder(PROTOCOL, payload, Session(transport=transport, unique_id=unique_id))
    for p in decoded.positions if decoded else []:
        assert p.unique_id == unique_id or unique_id is None
        assert all_finite(p.attributes)
        json.dumps(p.attributes, allow_nan=False)  # storable as jsonb
        assert p.speed_kmh is None or p.speed_kmh >= 0
        assert p.course_deg is None or 0 <= p.course_deg < 360


@FUZZ
@given(st.binary(max_size=2048))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    _check(data)


@FUZZ
@given(chunk_mutations(REAL, b'0123456789-.,:[]{}"eE'))
def test_fuzz_mutated_payloads(payload: bytes) -> None:
    _check(payload)
    _check(payload, transport="http", unique_id=None)


TOKENS = [b'"_type":"location",', b'"_type":"transition",', b'"_type":"encrypted",', b"null", b"true",
          b"-1", b"1e999", b"1e308", b"99999999999999999999", b'""', b"[", b"]", b"{", b"}", b",",
          b'"event":"leave",', b'"tst":', b'"lat":', b'"topic":"owntracks/a/b",', b"\\u0000", b"\\ud800"]


@FUZZ
@given(token_mutations(REAL, TOKENS))
def test_fuzz_token_mutations(payload: bytes) -> None:
    _check(payload)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
    | st.sampled_from(["p", "c", "w", "enter", "leave", "owntracks/a/b"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
ELEMENTS = st.sampled_from([
    "lat", "lon", "tst", "acc", "alt", "vac", "vel", "cog", "batt", "bs", "t", "conn", "m", "tid", "SSID",
    "BSSID", "inregions", "inrids", "created_at", "topic", "mock", "event", "desc", "wtst", "rid", "rad", "p",
    "odometer", "hmc", "ign", "poi", "tag",
])
TYPES = JSON_VALUES | st.sampled_from(
    ["location", "transition", "lwt", "waypoint", "cmd", "encrypted", "steps", "x"]
)


@FUZZ
@given(TYPES, st.dictionaries(ELEMENTS, JSON_VALUES, max_size=12), st.booleans())
def test_fuzz_message_shapes(kind: Any, elements: dict[str, Any], batch: bool) -> None:
    message = {"_type": kind, **elements}
    payload = json.dumps([message, message] if batch else message).encode()
    _check(payload)
    _check(payload, transport="http", unique_id=None)
