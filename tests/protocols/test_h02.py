"""H02: Traccar's vectors, framing (text and fixed-length binary), replies, robustness."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import h02, keys
from protocols.h02 import PROTOCOL
from protocols.model import Decoded, DecodeError, Session
from tests.protocols.fuzz import (
    check_decoder,
    check_every_split,
    check_next_frame,
    drain,
    fuzz_settings,
    real_frame_streams,
    real_frames,
    token_mutations,
)
from tests.protocols.vectors import (
    frame_bytes,
    frame_vectors_for,
    frames_of,
    replay_method,
    vectors_for,
)

VECTORS = vectors_for("h02")
FRAME_VECTORS = frame_vectors_for("h02")
ALL_FRAMES = real_frames(VECTORS)
FIXED_NOW = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(h02, "_now", lambda: FIXED_NOW)


def decode(frame: bytes | str, **config: object) -> Decoded:
    raw = frame.encode("latin-1") if isinstance(frame, str) else frame
    return PROTOCOL.decode(raw, Session(config=config))


# --- Traccar's decoder vectors ------------------------------------------------------------------


def test_vector_count() -> None:
    assert sum(len(items) for items in VECTORS.values()) == 89


@pytest.mark.parametrize("method", sorted(VECTORS))
def test_traccar_vectors(method: str) -> None:
    results = replay_method(PROTOCOL, VECTORS[method])
    assert len(results) == len(VECTORS[method])


def test_text_frames_name_the_device_on_decoded_and_position() -> None:
    checked = 0
    for v in (v for items in VECTORS.values() for v in items):
        text = frame_bytes(v).decode("latin-1")
        if not text.startswith("*"):
            continue
        wire_id = text.split(",")[1]
        decoded = decode(frame_bytes(v))
        assert decoded.unique_id == (wire_id or None), v["id"]
        for p in decoded.positions:
            assert p.unique_id == (wire_id or None), v["id"]
            checked += 1
    assert checked > 60


# --- framing --------------------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(len(FRAME_VECTORS)))
def test_traccar_frame_vectors(index: int) -> None:
    v = FRAME_VECTORS[index]
    frames = frames_of(PROTOCOL, bytes.fromhex(v["input_hex"]))
    assert frames, v["source"]
    assert frames[0].hex() == v["expected_frame_hex"], v["source"]


def test_frame_vectors_present() -> None:
    assert len(FRAME_VECTORS) == 10


SHORT_BINARY = bytes.fromhex("2441060116601245431311165035313006004318210e000000fffffbffff0024")
X_FRAME = bytes.fromhex("5800009814991024031101175540227006012321670c000095fffffbffff0033")
TEXT_V1 = b"*HQ,4210051415,V1,164549,A,0956.3869,N,08406.7068,W,000.00,000,221215,FFFFFBFF,712,01,0,0,6#"
TEXT_HTBT = b"*HQ,135790246811220,HTBT,100#"
SMS = b"*HQ,5226073533,SMS,ST906 2024/06/07\nID:5226073533\nIP:1.2.3.4 5013\nGSM:26#"
LONG_45 = bytes.fromhex(
    "24410600082621532131081504419390060740418306000000fffffbfdff0015060000002c02dc0c000000001f"
)
LONG_46 = bytes.fromhex(
    "2421305109380127171003170520046500100286297e003085ffffdfffff03440069129344006400001151415a20"
)
LONG_42 = bytes.fromhex(
    "2435248308419329301047591808172627335900074412294e024138feffffffff01120064ba73005ecc"
)
LONG_48 = bytes.fromhex(
    "24971305007205201916101533335008000073206976000000effffbffff000252776566060000000000000000000049"
)


def test_text_frame_drops_line_end_and_keeps_delimiters() -> None:
    assert PROTOCOL.next_frame(TEXT_V1 + b"\r\n") == (TEXT_V1, len(TEXT_V1) + 2)
    assert PROTOCOL.next_frame(TEXT_V1[:-1]) == (None, 0)


def test_short_binary_frames_back_to_back() -> None:
    stream = SHORT_BINARY + SHORT_BINARY + TEXT_V1
    assert frames_of(PROTOCOL, stream) == [SHORT_BINARY, SHORT_BINARY, TEXT_V1]


@pytest.mark.parametrize("frame", [LONG_42, LONG_45, LONG_46, LONG_48], ids=["42", "45", "46", "48"])
def test_long_binary_frame_alone_or_followed_by_a_frame(frame: bytes) -> None:
    assert frames_of(PROTOCOL, frame) == [frame]
    assert frames_of(PROTOCOL, frame + TEXT_V1) == [frame, TEXT_V1]
    assert frames_of(PROTOCOL, frame + SHORT_BINARY) == [frame, SHORT_BINARY]


def _stream(*frames: bytes) -> bytes:
    return b"".join(f + b"\r\n" if f.startswith(b"*") else f for f in frames)


def test_stream_split_at_every_byte() -> None:
    frames = [TEXT_V1, SHORT_BINARY, TEXT_HTBT, X_FRAME, SMS, SHORT_BINARY, TEXT_V1]
    stream = _stream(*frames)
    assert frames_of(PROTOCOL, stream) == frames
    check_every_split(PROTOCOL, stream, frames)


def test_stream_with_long_binary_frames_split_at_every_unambiguous_byte() -> None:
    # A binary frame has no length field: when a segment ends exactly 32 (or 42, 45, 46) bytes
    # into a longer frame, those bytes are a complete frame of a shorter variant as far as anyone
    # can tell, and are cut as one (Traccar has the same limit). Every other split must not
    # change the frames.
    frames = [TEXT_V1, LONG_45, TEXT_HTBT, LONG_46, SHORT_BINARY, LONG_48, TEXT_V1, LONG_42, X_FRAME]
    stream = _stream(*frames)
    assert frames_of(PROTOCOL, stream) == frames
    ambiguous = set()
    offset = 0
    for f in frames:
        size = len(f) + (2 if f.startswith(b"*") else 0)
        if f.startswith(b"$"):
            ambiguous |= {offset + n for n in (32, 42, 45, 46) if n < len(f)}
        offset += size
    checked = check_every_split(PROTOCOL, stream, frames, skip=ambiguous)
    assert checked > len(stream) - 12


def test_garbage_without_any_marker_is_discarded() -> None:
    garbage = b"hello\r\nworld 1234567890 \x00\xff"
    assert PROTOCOL.next_frame(garbage) == (None, len(garbage))


def test_garbage_before_a_frame_is_skipped() -> None:
    assert frames_of(PROTOCOL, b"\x00\x01junk\r\n" + TEXT_V1) == [TEXT_V1]


def test_markers_that_start_no_h02_frame_are_skipped() -> None:
    # NMEA, a stray '*', an 'X' in text: none is followed by what an H02 frame starts with.
    noise = b"$GPRMC,123519,A*6A\r\nXYZ *** "
    assert frames_of(PROTOCOL, noise + SHORT_BINARY + TEXT_V1) == [SHORT_BINARY, TEXT_V1]
    assert PROTOCOL.next_frame(b"$GPRMC") == (None, 1)  # 0x4D is no BCD digit pair
    assert PROTOCOL.next_frame(b"$12") == (None, 0)  # could still be a binary id


def test_unterminated_text_is_dropped_once_oversize() -> None:
    endless = b"*HQ," + b"1" * (PROTOCOL.max_frame + 10)
    frame, used = PROTOCOL.next_frame(endless)
    assert frame is None and used > 0
    assert frames_of(PROTOCOL, endless) == []
    # Short and still open: keep waiting for the '#'.
    assert PROTOCOL.next_frame(b"*HQ,1234") == (None, 0)


def test_partial_binary_waits() -> None:
    for cut in range(1, len(SHORT_BINARY)):
        assert PROTOCOL.next_frame(SHORT_BINARY[:cut]) == (None, 0)


# --- replies --------------------------------------------------------------------------------------


def test_heartbeat_is_echoed_up_to_its_type() -> None:
    assert decode(TEXT_HTBT).reply == b"*HQ,135790246811220,HTBT#"
    # Even a heartbeat without a battery field (no position) is answered.
    bare = decode("*HQ,135790246811220,HTBT#")
    assert bare.reply == b"*HQ,135790246811220,HTBT#" and bare.positions == []
    assert decode("*HQ,1234567890,V0,1#").reply == b"*HQ,1234567890,V0#"


def test_v1_is_acknowledged_with_utc_time(frozen_clock: None) -> None:
    assert decode(TEXT_V1).reply == b"*HQ,4210051415,V4,V1,20240102030405#"


def test_nbr_is_acknowledged(frozen_clock: None) -> None:
    nbr = "*HQ,1600068860,NBR,120156,262,03,255,2,802,54702,46,802,5032,37,081116,FFFFFBFF#"
    decoded = decode(nbr)
    assert decoded.reply == b"*HQ,1600068860,V4,NBR,20240102030405#"
    towers = decoded.positions[0].attributes[keys.CELL_TOWERS]
    assert towers == [
        {"mcc": 262, "mnc": 3, "lac": 802, "cid": 54702, "rssi": 46},
        {"mcc": 262, "mnc": 3, "lac": 802, "cid": 5032, "rssi": 37},
    ]


def test_other_reports_get_r12_only_when_acks_are_enabled(frozen_clock: None) -> None:
    v2 = "*HQ,353505221264507,V2,100220,0,5238.26259,N,00507.33983,E,0.25,0,280917,FFFFFFFF#"
    assert decode(v2).reply is None
    assert decode(v2, ack=True).reply == b"*HQ,353505221264507,R12,030405#"
    assert decode(SHORT_BINARY).reply is None
    assert decode(SHORT_BINARY, ack=True).reply == b"*HQ,4106011660,R12,030405#"


def test_no_reply_without_an_id() -> None:
    anonymous = decode("*HQ,,V1,173212,A,2225.78879,S,02829.19021,E,0.00,0,290418,FFFFFBFF#")
    assert anonymous.reply is None and anonymous.unique_id is None
    assert len(anonymous.positions) == 1


# --- field decoding -------------------------------------------------------------------------------


def test_binary_fields() -> None:
    # $ 4106011660 | 12:45:43 13/11/16 | 5035.3130 | battery 06 | 004 31.8210 flags e | 000 000 | status
    (p,) = decode(SHORT_BINARY).positions
    assert p.unique_id == "4106011660"
    assert p.fix_time == datetime(2016, 11, 13, 12, 45, 43, tzinfo=UTC)
    assert p.latitude == pytest.approx(50 + 35.3130 / 60)
    assert p.longitude == pytest.approx(4 + 31.8210 / 60)
    assert p.valid is True
    assert p.attributes[keys.BATTERY_PCT] == 100  # gauge 6 of 6
    assert p.attributes[keys.STATUS] == 0xFFFFFBFF
    assert p.attributes[keys.IGNITION] is False


def test_binary_long_id_and_speed_in_knots() -> None:
    (p,) = decode(LONG_42).positions
    assert p.unique_id == "352483084193293"
    assert p.speed_kmh == pytest.approx(24 * 1.852)
    assert p.course_deg == 138


def test_binary_hemisphere_flags() -> None:
    # flags nibble 0x6 = valid, north, west (bit 3 clear)
    (p,) = decode(LONG_45).positions
    assert p.latitude == pytest.approx(4 + 41.9390 / 60)
    assert p.longitude == pytest.approx(-(74 + 4.1830 / 60))


def _v1(status: str) -> str:
    return f"*HQ,2705171109,V1,213324,A,5002.5849,N,01433.7822,E,0.00,000,140613,{status}#"


@pytest.mark.parametrize(
    ("cleared_bit", "alarm"),
    [(0, "vibration"), (1, "sos"), (18, "sos"), (2, "overspeed"), (19, "powerCut"), (5, None)],
)
def test_status_alarm_bits_are_active_low(cleared_bit: int, alarm: str | None) -> None:
    status = 0xFFFFFFFF & ~(1 << cleared_bit)
    (p,) = decode(_v1(f"{status:08X}")).positions
    assert p.attributes.get(keys.ALARM) == alarm
    assert p.attributes[keys.STATUS] == status


def test_ignition_is_bit_10() -> None:
    (on,) = decode(_v1("FFFFFFFF")).positions
    (off,) = decode(_v1("FFFFFBFF")).positions
    assert on.attributes[keys.IGNITION] is True and off.attributes[keys.IGNITION] is False


def test_time_without_date_is_receive_time(frozen_clock: None) -> None:
    (p,) = decode("*HQ,353505220873067,V1,,V,4605.75732,N,01430.73863,E,0.00,0,,FFFFFFEF#").positions
    assert p.fix_time == FIXED_NOW


def test_overflowing_time_fields_roll_over() -> None:
    # second 69 -> next minute; day 00 -> last day of the previous month (Java lenient calendar)
    nbr = "*HQ,1400046168,NBR,160169,460,0,1,1,9338,3692,150,180813,FFFFFBFF#"
    assert decode(nbr).positions[0].fix_time == datetime(2013, 8, 18, 16, 2, 9, tzinfo=UTC)
    v1 = "*HQ,2705171109,V1,213324,A,5002.5849,N,01433.7822,E,0.00,000,000313,FFFFFFFF#"
    assert decode(v1).positions[0].fix_time == datetime(2013, 2, 28, 21, 33, 24, tzinfo=UTC)


def test_coordinate_styles() -> None:
    neg = decode("*HQ,1451316409,V1,030149,A,-23-29.0095,S,-46-51.5852,W,2.4,065,070315,FFFFFFFF#")
    assert neg.positions[0].latitude == pytest.approx(-(23 + 29.0095 / 60))
    packed = decode("*HQ,5905101893,V1,105759,A,37573392,S,145037022,E,000.00,173,280122,FF7FFBFF#")
    assert packed.positions[0].latitude == pytest.approx(-(37 + 57.3392 / 60))
    assert packed.positions[0].longitude == pytest.approx(145 + 3.7022 / 60)
    bare_minutes = decode("*HQ,9001000002,V8,213945,A,3542.2043,N,38.6508,W,0.00,170,221025,FBFFF9FF#")
    assert bare_minutes.positions[0].longitude == pytest.approx(-38.6508 / 60)


def test_status_only_reports_have_no_location() -> None:
    for text in (TEXT_HTBT.decode(), SMS.decode()):
        (p,) = decode(text).positions
        assert p.latitude is None and p.longitude is None and p.valid is False


def test_x_frame_is_ignored() -> None:
    assert decode(X_FRAME) == Decoded()


def test_udp_decodes_like_tcp() -> None:
    for frame in (TEXT_V1, SHORT_BINARY, LONG_45):
        tcp = PROTOCOL.decode(frame, Session(transport="tcp")).positions
        udp = PROTOCOL.decode(frame, Session(transport="udp")).positions
        assert [(p.latitude, p.longitude, p.fix_time) for p in tcp] == [
            (p.latitude, p.longitude, p.fix_time) for p in udp
        ]


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"hello",
        SHORT_BINARY[:20],
        SHORT_BINARY[:8] + b"\xaa" + SHORT_BINARY[9:],  # non-BCD time
        b"*HQ,1,V1,120000,A,9959.0000,N,00000.0000,E,0,0,010120,FFFFFFFF#",  # latitude 99
        b"*HQ,1,V1,120000,A," + b"1" * 5000 + b".5,N,1212.5,E,1,1,010101#",  # oversize datagram
    ],
    ids=["empty", "no-marker", "short-binary", "non-bcd", "latitude-99", "oversize"],
)
def test_malformed_frames_raise_decode_error(frame: bytes) -> None:
    with pytest.raises(DecodeError) as err:
        PROTOCOL.decode(frame, Session())
    assert err.value.frame == frame


# --- fuzzing --------------------------------------------------------------------------------------

FUZZ = fuzz_settings(400)
TOKENS = [b",", b"#", b"*", b"$", b".", b"-", b"9", b"\n", b"\xff"]


def _check_framer(buffer: bytes) -> None:
    _, used = check_next_frame(PROTOCOL, buffer)
    if buffer and buffer[0] not in b"*$X":
        assert used > 0  # garbage is never kept
    drain(PROTOCOL, buffer)


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    _check_framer(data)
    check_decoder(PROTOCOL, data)
    for marker in (b"*HQ,", b"$", b"X"):
        _check_framer(marker + data)
        check_decoder(PROTOCOL, marker + data)


@FUZZ
@given(token_mutations(ALL_FRAMES, TOKENS))
def test_fuzz_mutated_real_frames(frame: bytes) -> None:
    _check_framer(frame)
    check_decoder(PROTOCOL, frame)


@FUZZ
@given(real_frame_streams(ALL_FRAMES))
def test_fuzz_streams_of_real_frames(stream: bytes) -> None:
    for result in frames_of(PROTOCOL, stream):
        check_decoder(PROTOCOL, result)
