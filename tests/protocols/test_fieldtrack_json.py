"""Fieldtrack JSON (MQTT ``fieldtrack/<id>/position``): the documented schema, its example, every
refusal the README promises, framing, and fuzzing. Expected values are worked out from the schema
by hand (epoch times converted with ``date -u -d @<seconds>``)."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import fieldtrack_json, keys
from protocols.fieldtrack_json import MAX_POSITIONS, PROTOCOL
from protocols.json_fields import MAX_PAYLOAD
from protocols.model import Decoded, DecodeError, Position, Session
from tests.protocols.fuzz import (
    all_finite,
    check_decoder,
    chunk_mutations,
    fuzz_settings,
    token_mutations,
)

DEVICE = "dev-4711"
FUZZ = fuzz_settings(300)


def _docstring_example() -> bytes:
    doc = fieldtrack_json.__doc__ or ""
    match = re.search(r"```json\n(.*?)```", doc, re.DOTALL)
    assert match, "the module docstring lost its example payload"
    return match[1].encode()


# The README example, taken from the module docstring so the two cannot drift apart.
EXAMPLE = _docstring_example()
SINGLE = (b'{"time": "2024-05-01T11:30:00.250+02:00", "lat": -33.8688, "lon": 151.2093, "speed_kmh": 0,'
          b' "course_deg": 0, "altitude_m": -3.5, "accuracy_m": 4.2, "hdop": 0.9, "valid": true,'
          b' "battery_pct": 100, "mock": true, "id": "dev-4711"}')
MILLIS = b'{"time": 1714555800250, "lat": 0, "lon": 0, "valid": false}'
REAL = [EXAMPLE, SINGLE, MILLIS]


def decode(payload: bytes | dict[str, Any] | list[Any], unique_id: str | None = DEVICE) -> Decoded:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return PROTOCOL.decode(raw, Session(transport="mqtt", unique_id=unique_id))


def one(payload: bytes | dict[str, Any] | list[Any], **kwargs: Any) -> Position:
    decoded = decode(payload, **kwargs)
    assert len(decoded.positions) == 1
    return decoded.positions[0]


def fix(**fields: Any) -> dict[str, Any]:
    return {"time": "2024-05-01T09:30:00Z", "lat": 52.5, "lon": 13.4, **fields}


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_protocol_object() -> None:
    assert PROTOCOL.name == "json"
    assert PROTOCOL.transports == ("mqtt",)
    assert PROTOCOL.default_port == 0
    assert PROTOCOL.max_frame >= MAX_PAYLOAD


# --- the schema -------------------------------------------------------------------------------------


def test_readme_example() -> None:
    d = decode(EXAMPLE)
    assert d.reply is None and d.unique_id == DEVICE
    first, second = d.positions
    assert first.fix_time == utc(2024, 5, 1, 9, 30)
    assert (first.latitude, first.longitude) == (52.52001, 13.40495)
    assert first.speed_kmh == 32.5 and first.course_deg == 270 and first.accuracy_m == 8
    assert first.attributes == {keys.BATTERY_PCT: 76, keys.MOCK: False}
    assert second.fix_time == utc(2024, 5, 1, 9, 31)  # 1714555860 s
    assert second.attributes == {"visit_id": "V-1042", keys.ACTIVITY: "in_vehicle"}
    assert all(p.unique_id == DEVICE and p.valid for p in d.positions)


def test_every_field() -> None:
    p = one(SINGLE)
    assert p.fix_time == datetime(2024, 5, 1, 9, 30, 0, 250_000, tzinfo=UTC)
    assert (p.latitude, p.longitude) == (-33.8688, 151.2093)
    assert p.speed_kmh == 0 and p.course_deg == 0
    assert p.altitude_m == -3.5 and p.accuracy_m == 4.2 and p.hdop == 0.9
    assert p.valid is True
    assert p.attributes == {keys.BATTERY_PCT: 100, keys.MOCK: True}
    assert p.unique_id == DEVICE


def test_epoch_milliseconds_and_invalid_fix() -> None:
    p = one(MILLIS)
    assert p.fix_time == datetime(2024, 5, 1, 9, 30, 0, 250_000, tzinfo=UTC)
    assert (p.latitude, p.longitude) == (0, 0) and p.valid is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1714555800, utc(2024, 5, 1, 9, 30)),
        (1714555800.5, datetime(2024, 5, 1, 9, 30, 0, 500_000, tzinfo=UTC)),
        (1714555800000, utc(2024, 5, 1, 9, 30)),
        (99_999_999_999, utc(5138, 11, 16, 9, 46, 39)),  # just under the cut: still seconds
        (100_000_000_000, utc(1973, 3, 3, 9, 46, 40)),  # from here on: milliseconds
        (0, utc(1970, 1, 1)),
        ("2024-05-01T09:30:00Z", utc(2024, 5, 1, 9, 30)),
        ("2024-05-01T09:30:00+00:00", utc(2024, 5, 1, 9, 30)),
        ("2024-05-01T05:30:00-04:00", utc(2024, 5, 1, 9, 30)),
        ("2024-05-01 11:30:00+02:00", utc(2024, 5, 1, 9, 30)),
        ("2024-05-01T09:30:00.123456Z", datetime(2024, 5, 1, 9, 30, 0, 123456, tzinfo=UTC)),
    ],
)
def test_time_forms(value: Any, expected: datetime) -> None:
    assert one(fix(time=value)).fix_time == expected


@pytest.mark.parametrize(
    ("fields", "field", "expected"),
    [
        ({"speed_kmh": -1}, "speed_kmh", None),
        ({"course_deg": -1}, "course_deg", None),
        ({"course_deg": 360}, "course_deg", 0),
        ({"course_deg": 725.5}, "course_deg", 5.5),
        ({"accuracy_m": -1}, "accuracy_m", None),
        ({"hdop": -1}, "hdop", None),
        ({"speed_kmh": None}, "speed_kmh", None),
        ({"altitude_m": -420.5}, "altitude_m", -420.5),
    ],
)
def test_unknown_and_normalised_values(fields: dict[str, Any], field: str, expected: float | None) -> None:
    assert getattr(one(fix(**fields)), field) == expected


def test_negative_battery_is_unknown() -> None:
    p = one(fix(battery_pct=-1, attributes={keys.BATTERY_PCT: 50}))
    assert keys.BATTERY_PCT not in p.attributes


def test_fields_win_over_attributes() -> None:
    extra = {keys.MOCK: False, keys.BATTERY_PCT: 99, "route": "north", "stops": [1, 2],
             "meta": {"app": "1.2"}, "note": None}
    p = one(fix(mock=True, battery_pct=20, attributes=extra))
    assert p.attributes == {keys.MOCK: True, keys.BATTERY_PCT: 20, "route": "north", "stops": [1, 2],
                            "meta": {"app": "1.2"}, "note": None}


def test_nulls_are_absent_fields() -> None:
    p = one(fix(speed_kmh=None, valid=None, mock=None, id=None, attributes=None, battery_pct=None))
    assert p.valid is True and p.speed_kmh is None and p.attributes == {}
    assert p.unique_id == DEVICE


def test_id_equal_to_the_topic_is_accepted() -> None:
    assert one(fix(id=DEVICE)).unique_id == DEVICE


def test_id_names_the_device_when_the_session_has_none() -> None:
    d = decode(fix(id="dev-9"), unique_id=None)
    assert d.unique_id == "dev-9" and d.positions[0].unique_id == "dev-9"


def test_no_identity_at_all_still_returns_the_positions() -> None:
    d = decode(fix(), unique_id=None)
    assert d.unique_id is None and d.positions[0].unique_id is None


def test_empty_buffer() -> None:
    assert decode(b"[]").positions == []


def test_largest_buffer_is_accepted() -> None:
    positions = [{"time": 1714555800 + i, "lat": 1, "lon": 2} for i in range(MAX_POSITIONS)]
    d = decode(positions)
    assert len(d.positions) == MAX_POSITIONS
    assert d.positions[-1].fix_time == utc(2024, 5, 1, 9, 30) + timedelta(seconds=MAX_POSITIONS - 1)


# --- refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (fix(time="2024-05-01T09:30:00"), "no zone"),
        (fix(time="2024-05-01"), "no zone"),
        (fix(time="yesterday"), "not ISO 8601"),
        (fix(time="0001-01-01T00:00:00+01:00"), "out of range"),
        (fix(time=-1), "epoch"),
        (fix(time=True), "epoch"),
        (fix(time=10**20), "time"),
        (fix(time=None), "time is required"),
        ({"lat": 1, "lon": 2}, "time is required"),
        ({"time": 1714555800, "lon": 2}, "lat is required"),
        ({"time": 1714555800, "lat": 2}, "lon is required"),
        (fix(lat=90.000001), "out of range"),
        (fix(lat=-91), "out of range"),
        (fix(lon=180.5), "out of range"),
        (fix(lon=-181), "out of range"),
        (fix(lat="52.5"), "lat is not a finite number"),
        (fix(lat=False), "lat is not a finite number"),
        (fix(lat=int("9" * 400)), "lat is not a finite number"),
        (fix(speed_kmh="fast"), "speed_kmh"),
        (fix(course_deg=[1]), "course_deg"),
        (fix(altitude_m={}), "altitude_m"),
        (fix(accuracy_m=True), "accuracy_m"),
        (fix(hdop="1"), "hdop"),
        (fix(valid="yes"), "valid"),
        (fix(valid=1), "valid"),
        (fix(mock=0), "mock"),
        (fix(battery_pct=101), "over 100"),
        (fix(battery_pct="50"), "battery_pct"),
        (fix(id="other"), "topic's device"),
        (fix(id=4711), "id"),
        (fix(id=""), "id"),
        (fix(attributes=[1, 2]), "attributes"),
        (fix(attributes={"": 1}), "empty name"),
        (fix(attributes={" ": 1}), "empty name"),
        (fix(speed=10), "unknown field 'speed'"),
        ([fix(), fix(lat=100)], "position 1"),
        ([fix(), "fix"], "position 1: not a JSON object"),
        ([fix(), [fix()]], "position 1"),
        (42, "not a JSON object"),
        ("fix", "not a JSON object"),
        (None, "not a JSON object"),
    ],
)
def test_refused(payload: Any, message: str) -> None:
    with pytest.raises(DecodeError, match=re.escape(message)):
        decode(payload)


@pytest.mark.parametrize(
    "raw",
    [b"", b"  ", b"{", b'{"time": 1714555800, "lat": NaN, "lon": 1}',
     b'{"time": 1714555800, "lat": 1, "lon": -Infinity}',
     b'{"time": 1714555800, "lat": 1, "lon": 1, "attributes": {"x": 1e999}}',
     b'{"time": 1714555800, "lat": 1, "lon": 1, "attributes": {"x": "\xc3"}}',
     b"[" * 100_000, bytes(range(0x80, 0x100)) * 8],
)
def test_malformed_json(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(raw)


def test_a_refused_payload_keeps_its_bytes() -> None:
    raw = json.dumps([fix(), fix(lat=100)]).encode()
    with pytest.raises(DecodeError) as caught:
        decode(raw)
    assert caught.value.frame == raw


def test_too_many_positions() -> None:
    with pytest.raises(DecodeError, match="at most 10000"):
        decode([fix()] * (MAX_POSITIONS + 1))


def test_payload_over_one_mebibyte() -> None:
    just_fits = json.dumps(fix(attributes={"pad": ""})).encode()
    pad = "x" * (MAX_PAYLOAD - len(just_fits))
    assert len(one(fix(attributes={"pad": pad})).attributes["pad"]) == len(pad)
    with pytest.raises(DecodeError, match="over"):
        decode(fix(attributes={"pad": pad + "x"}))


# --- framing: one MQTT message is one frame ------------------------------------------------------


# --- fuzzing ----------------------------------------------------------------------------------------


def _check(payload: bytes, unique_id: str | None = DEVICE) -> None:
    decoded = check_decoder(PROTOCOL, payload, Session(transport="mqtt", unique_id=unique_id))
    for p in decoded.positions if decoded else []:
        assert p.unique_id == unique_id or unique_id is None
        assert p.fix_time.utcoffset() == timedelta(0)
        assert all_finite(p.attributes)
        json.dumps(p.attributes, allow_nan=False)  # storable as jsonb
        for value in (p.speed_kmh, p.accuracy_m, p.hdop):
            assert value is None or (math.isfinite(value) and value >= 0)
        assert p.course_deg is None or 0 <= p.course_deg < 360


@FUZZ
@given(st.binary(max_size=2048))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    _check(data)


@FUZZ
@given(chunk_mutations(REAL, b'0123456789-.,:[]{}"eETZ+'))
def test_fuzz_mutated_payloads(payload: bytes) -> None:
    _check(payload)
    _check(payload, unique_id=None)


TOKENS = [b'"time":', b'"lat":', b'"id":"dev-4711",', b'"id":"x",', b'"attributes":{"a":1},', b"null",
          b"true", b"-1", b"1e999", b"1e308", b"99999999999999999999", b'""', b"[", b"]", b"{", b"}", b",",
          b"Z", b"+25:00", b"\\u0000", b"\\ud800"]


@FUZZ
@given(token_mutations(REAL, TOKENS))
def test_fuzz_token_mutations(payload: bytes) -> None:
    _check(payload)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
FIELDS = st.sampled_from(["time", "lat", "lon", "speed_kmh", "course_deg", "altitude_m", "accuracy_m", "hdop",
                          "valid", "battery_pct", "mock", "id", "attributes", "speed"])
# ISO 8601 offsets are whole minutes (+hh:mm); Python's sub-minute offsets are not ISO and its
# fromisoformat drops their microseconds, so they are not part of the contract.
OFFSETS = st.builds(timezone, st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: timedelta(minutes=m)))
TIMES = (st.datetimes(timezones=OFFSETS | st.none()).map(lambda t: t.isoformat())
         | st.integers(-(10**15), 10**15) | st.floats(allow_nan=False, allow_infinity=False))


@FUZZ
@given(st.dictionaries(FIELDS, JSON_VALUES, max_size=10), TIMES, st.booleans())
def test_fuzz_position_shapes(fields: dict[str, Any], time: Any, batch: bool) -> None:
    item = {"time": time, "lat": 1.5, "lon": 2.5, **fields}
    payload = json.dumps([item, item] if batch else item).encode()
    _check(payload)
    _check(payload, unique_id=None)


@FUZZ
@given(st.datetimes(timezones=OFFSETS))
def test_fuzz_zoned_times_read_back_exactly(when: datetime) -> None:
    try:
        expected = when.astimezone(UTC)
    except OverflowError:  # the offset pushes the instant off the calendar
        with pytest.raises(DecodeError, match="out of range"):
            decode(fix(time=when.isoformat()))
        return
    assert one(fix(time=when.isoformat())).fix_time == expected
