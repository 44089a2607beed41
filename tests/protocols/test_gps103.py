"""GPS103 (Coban): Traccar's vectors, framing, replies, fuzzing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import keys
from protocols.gps103 import MAX_FRAME, PROTOCOL
from protocols.model import DecodeError, Session
from tests.protocols.fuzz import (
    all_finite,
    check_decoder,
    check_every_split,
    check_next_frame,
    chunk_mutations,
    drain,
    fuzz_settings,
    real_frames,
)
from tests.protocols.vectors import (
    frames_of,
    replay_method,
    vectors_for,
)

VECTORS = vectors_for("gps103")
ALL = [v for items in VECTORS.values() for v in items]
REAL_FRAMES = real_frames(VECTORS)
FUZZ = fuzz_settings(300)


def test_vector_count() -> None:
    assert len(ALL) == 81


@pytest.mark.parametrize("method", sorted(VECTORS))
def test_traccar_vectors(method: str) -> None:
    replay_method(PROTOCOL, VECTORS[method])


def _wire(frame: bytes) -> bytes:
    """A vector as the device sends it: with its sentence delimiter."""
    return frame if frame.endswith((b";", b"*")) else frame + b";"


def _stream() -> tuple[bytes, list[bytes]]:
    picks = [b"##,imei:359586015829802,A;", b"359586015829802;"]
    picks += [_wire(f) for f in REAL_FRAMES if b"\n" not in f][:12]
    picks.append(b"imei:359710049075097,help me,,,L,,,113b,,558f,,,,,0,0,,,\r\n")
    # Alternative firmware: '*' ends the sentence, garbage line ends between sentences.
    alt = next(_wire(f) for f in REAL_FRAMES if f.endswith(b"*") and len(f) > 40)
    stream = b"".join(picks[:8]) + b"\r\n" + alt + b"".join(picks[8:])
    return stream, [*picks[:8], alt, *picks[8:]]


def test_stream_is_cut_into_the_sentences_sent() -> None:
    stream, sent = _stream()
    assert frames_of(PROTOCOL, stream) == sent


def test_stream_split_at_every_byte_gives_the_same_frames() -> None:
    stream, sent = _stream()
    check_every_split(PROTOCOL, stream, sent)


def test_need_more_without_a_delimiter() -> None:
    assert PROTOCOL.next_frame(b"imei:359586015829802,tracker,08092") == (None, 0)
    assert PROTOCOL.next_frame(b"") == (None, 0)


def test_login_is_answered_load() -> None:
    decoded = PROTOCOL.decode(b"##,imei:359586015829802,A;", Session())
    assert decoded.reply == b"LOAD"
    assert decoded.unique_id == "359586015829802"
    assert decoded.positions == []


def test_heartbeat_is_answered_on() -> None:
    decoded = PROTOCOL.decode(b"359586015829802;", Session())
    assert decoded.reply == b"ON"
    assert decoded.unique_id == "359586015829802"
    assert decoded.positions == []


def test_sos_is_acknowledged_so_the_device_stops_repeating() -> None:
    frame = (
        b"imei:359586015829802,help me,0809231429,13554900601,"
        b"F,062947.294,A,2234.4026,N,11354.3277,E,0.00,;"
    )
    decoded = PROTOCOL.decode(frame, Session())
    assert decoded.reply == b"**,imei:359586015829802,E;"
    assert decoded.positions[0].attributes[keys.ALARM] == "sos"


def test_heartbeat_glued_to_a_report_answers_on_and_decodes() -> None:
    frame = (
        b"359769031878322imei:359769031878322,tracker,1602160718,2,"
        b"F,221811.000,A,1655.2193,S,14546.6722,E,0.00,,;"
    )
    decoded = PROTOCOL.decode(frame, Session())
    assert decoded.reply == b"ON"
    assert decoded.unique_id == "359769031878322"
    (p,) = decoded.positions
    # 16°55.2193' S, 145°46.6722' E
    assert p.latitude == pytest.approx(-(16 + 55.2193 / 60))
    assert p.longitude == pytest.approx(145 + 46.6722 / 60)


def test_report_fields_and_local_time_offset() -> None:
    # Local clock 2015-10-27 02:59, UTC 23:59:57: the device is 3 h ahead and the UTC day is the 26th.
    frame = (
        b"imei:359710049092324,tracker,151027025958,,"
        b"F,235957.000,A,2429.5156,N,04424.5828,E,10.00,27.91,,1,0,,,;"
    )
    (p,) = PROTOCOL.decode(frame, Session()).positions
    assert p.fix_time == datetime(2015, 10, 26, 23, 59, 57, tzinfo=UTC)
    assert p.speed_kmh == pytest.approx(18.52)  # 10 knots
    assert p.course_deg == pytest.approx(27.91)
    assert p.attributes[keys.IGNITION] is True
    assert p.attributes[keys.DOOR] is False
    assert p.unique_id == "359710049092324"


def test_local_time_behind_utc_rolls_to_the_next_utc_day() -> None:
    # UTC-5: local clock 2015-10-27 19:10, GPS UTC 00:10:42 -> 2015-10-28 00:10:42 UTC.
    frame = b"imei:359710049092324,tracker,1510271910,,F,001042.000,A,2429.5156,N,04424.5828,E,0.0,;"
    (p,) = PROTOCOL.decode(frame, Session()).positions
    assert p.fix_time == datetime(2015, 10, 28, 0, 10, 42, tzinfo=UTC)


def test_acc_off_report_wins_over_the_stale_ignition_field() -> None:
    frame = (
        b"imei:865328023776874,acc off,150619152221,,"
        b"F,072218.000,A,5439.8489,N,02518.5945,E,0.00,,,1,1,0.0,0.0,23.0,;"
    )
    (p,) = PROTOCOL.decode(frame, Session()).positions
    assert p.attributes[keys.IGNITION] is False


def test_cell_only_report_is_a_status_without_location() -> None:
    frame = b"imei:864895030279986,ac alarm,180404174252,,L,,,296a,,51f7,,,;"
    (p,) = PROTOCOL.decode(frame, Session()).positions
    assert p.latitude is None and p.longitude is None
    assert p.attributes[keys.ALARM] == "powerCut"
    assert p.attributes[keys.CELL_TOWERS][0]["lac"] == 0x296A
    assert p.attributes[keys.CELL_TOWERS][0]["cid"] == 0x51F7


def test_obd_report() -> None:
    frame = (
        b"imei:359710048977327,OBD,180301094003,5000000,0.00,0.00,"
        b"98,18,68.63%,55,25.10%,1368,14.24,P0137,,,;"
    )
    (p,) = PROTOCOL.decode(frame, Session()).positions
    assert p.fix_time == datetime(2018, 3, 1, 9, 40, 3, tzinfo=UTC)
    assert p.attributes[keys.RPM] == 1368
    assert p.attributes[keys.BATTERY_V] == pytest.approx(14.24)
    assert p.attributes[keys.ENGINE_HOURS_S] == 98 * 3600
    assert p.attributes[keys.OBD_SPEED_KMH] == 18
    assert p.attributes["dtcs"] == "P0137"


@pytest.mark.parametrize(
    "frame",
    [b"", b";", b"hello;", b"imei:12,tracker,garbage-that-is-long-enough-to-not-be-login;",
     b"12345abc;", b"imei:359710049092324,tracker,151027025958,,F,235957.000,A,9929.5156,N,04424.5828,E,;"],
)
def test_malformed_frames_raise_decode_error(frame: bytes) -> None:
    with pytest.raises(DecodeError):
        PROTOCOL.decode(frame, Session())


def test_overflowing_numbers_are_not_stored_as_infinity() -> None:
    frame = (
        b"imei:359710049092324,tracker,151027025958,,F,235957.000,A,2429.5156,N,04424.5828,E,"
        b"1" + b"0" * 400 + b".0,27.91,,1,0,1" + b"0" * 400 + b".5%,2.5%,;"
    )
    (p,) = PROTOCOL.decode(frame, Session()).positions
    assert p.speed_kmh is None
    assert "fuel1" not in p.attributes
    assert p.attributes["fuel2"] == 2.5


def test_garbage_without_frame_start_is_discarded() -> None:
    garbage = bytes(range(0x80, 0x100)) * 20
    assert PROTOCOL.next_frame(garbage) == (None, len(garbage))
    frame = b"##,imei:359586015829802,A;"
    assert frames_of(PROTOCOL, b"\r\n\x00zz" + frame) == [frame]


def test_oversize_input_is_dropped_not_buffered() -> None:
    flood = b"1" * (3 * MAX_FRAME + 5)
    frame, used = PROTOCOL.next_frame(flood)
    assert frame is None and used == MAX_FRAME
    # A too-long sentence never comes out as a frame; the stream resynchronises after it.
    login = b"##,imei:359586015829802,A;"
    frames = frames_of(PROTOCOL, b"imei:" + b"9" * (2 * MAX_FRAME) + b";" + login)
    assert frames[-1] == login
    assert all(len(f) <= MAX_FRAME for f in frames)


def _check_next_frame(buffer: bytes) -> None:
    frame, used = check_next_frame(PROTOCOL, buffer)
    if frame is not None:
        assert frame == buffer[:used]
    if buffer and len(buffer) >= MAX_FRAME:
        assert used > 0  # never keeps a buffer that can no longer hold a frame


def _check_decode(frame: bytes) -> None:
    decoded = check_decoder(PROTOCOL, frame)
    for p in decoded.positions if decoded else []:
        assert all_finite(p.attributes)


@FUZZ
@given(st.binary(max_size=3 * MAX_FRAME))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    _check_next_frame(data)
    _check_decode(data)
    frames, _ = drain(PROTOCOL, data)  # terminates, at most one call per byte
    for frame in frames:
        _check_decode(frame)


@FUZZ
@given(chunk_mutations(REAL_FRAMES, b"0123456789,.;*-:%"))
def test_fuzz_mutated_frames(frame: bytes) -> None:
    _check_next_frame(frame)
    _check_decode(frame)
    for cut in frames_of(PROTOCOL, frame):
        _check_decode(cut)


def test_absurdly_long_degrees_are_a_decode_error_not_an_overflow() -> None:
    from protocols.model import DecodeError, Session

    frame = b"imei:359710049095095,tracker,151006152911,,F,235957.000,A," + b"9" * 400 + b"29.5156,N,"
    frame += b"09948.1166,W,0.00,0;"
    try:
        decoded = PROTOCOL.decode(frame, Session())
    except DecodeError:
        return
    assert all(p.latitude is None or -90 <= p.latitude <= 90 for p in decoded.positions)
