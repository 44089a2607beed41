"""Watch (3G/SG/CS/ZJ kids' and elderly watches): Traccar's vectors, framing by balanced
brackets and by length, exact replies, field decoding, robustness."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import keys, watch
from protocols.model import Decoded, DecodeError, Session
from protocols.watch import PROTOCOL
from tests.protocols.fuzz import (
    all_finite,
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
    Vector,
    frame_bytes,
    frame_vectors_for,
    frames_fed_in_chunks,
    frames_of,
    replay_method,
    vectors_for,
)

VECTORS = vectors_for("watch")
ALL = [v for items in VECTORS.values() for v in items]
BY_ID = {v["id"]: v for v in ALL}
FRAME_VECTORS = frame_vectors_for("watch")
ALL_FRAMES = real_frames(VECTORS)
FIXED_NOW = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)

# Reports without a fix: the watch sends 0,0 (with V) and its cells and access points. Traccar
# stores a position at 0°N 0°E, which its "position" kind accepts; our contract makes these
# status reports (latitude=None) that the gateway places at the last known location, so we hold
# them to "attributes" (exactly one position) and check their content in
# test_reports_without_a_fix_are_status_reports below.
NO_FIX = ["watch-003", "watch-014", "watch-015", "watch-016", "watch-046", "watch-047", "watch-048",
          "watch-049"]
# A TK voice message: Traccar's test pins the file name its mocked media manager returns
# ("mock.amr"). We store no media (as gps103 and gt06 drop their photos), so the frame yields
# nothing; see test_voice_messages_are_not_stored.
KIND_OVERRIDES = {**dict.fromkeys(NO_FIX, "attributes"), "watch-050": "none"}


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch, "_now", lambda: FIXED_NOW)


def decode(frame: bytes | str) -> Decoded:
    raw = frame.encode("latin-1") if isinstance(frame, str) else frame
    return PROTOCOL.decode(raw, Session())


def _with_overrides(items: list[Vector]) -> list[Vector]:
    out = []
    for v in items:
        if v["id"] in KIND_OVERRIDES:
            v = dict(v, kind=KIND_OVERRIDES[v["id"]])
            if v["kind"] == "none":
                v["expect"] = None
        out.append(v)
    return out


# --- Traccar's decoder vectors ------------------------------------------------------------------


def test_vector_count() -> None:
    assert len(ALL) == 50
    assert sum(v["encoding"] == "hex" for v in ALL) == 2


@pytest.mark.parametrize("method", sorted(VECTORS))
def test_traccar_vectors(method: str) -> None:
    results = replay_method(PROTOCOL, _with_overrides(VECTORS[method]))
    assert len(results) == len(VECTORS[method])


def test_overrides_are_still_the_harness_verdicts() -> None:
    # If the vector file changes, the overrides above must be looked at again.
    assert [BY_ID[i]["kind"] for i in NO_FIX] == ["position"] * len(NO_FIX)
    assert BY_ID["watch-050"]["kind"] == "attributes"
    assert BY_ID["watch-050"]["expect"] == {"audio": "mock.amr"}


def test_reports_without_a_fix_are_status_reports() -> None:
    for vid in NO_FIX:
        text = frame_bytes(BY_ID[vid]).decode("latin-1")
        (p,) = decode(text).positions
        assert p.latitude is None and p.longitude is None and p.valid is False, vid
        assert p.unique_id == text.split("*")[1], vid
        assert keys.CELL_TOWERS in p.attributes or keys.WIFI in p.attributes, vid
    (p,) = decode(frame_bytes(BY_ID["watch-049"])).positions  # Wi-Fi only, no cells
    assert p.fix_time == datetime(2020, 1, 1, 2, 59, 46, tzinfo=UTC)
    assert keys.CELL_TOWERS not in p.attributes
    assert p.attributes[keys.WIFI][0] == {"mac": "f4:db:e6:d2:a8:00", "rssi": -53}
    assert len(p.attributes[keys.WIFI]) == 5


def test_every_frame_names_its_device() -> None:
    checked = 0
    for v in ALL:
        raw = frame_bytes(v)
        wire_id = raw.split(b"*")[1].decode()
        decoded = decode(raw)
        assert decoded.unique_id == wire_id, v["id"]
        for p in decoded.positions:
            assert p.unique_id == wire_id, v["id"]
            checked += 1
    assert checked >= 45


# --- framing --------------------------------------------------------------------------------------


def test_frame_vectors_present() -> None:
    assert len(FRAME_VECTORS) == 7


@pytest.mark.parametrize("index", range(len(FRAME_VECTORS)))
def test_traccar_frame_vectors(index: int) -> None:
    v = FRAME_VECTORS[index]
    frames = frames_of(PROTOCOL, bytes.fromhex(v["input_hex"]))
    assert frames, v["source"]
    assert frames[0].hex() == v["expected_frame_hex"], v["source"]


def test_first_frame_vector_cuts_all_four_frames() -> None:
    frames = frames_of(PROTOCOL, bytes.fromhex(FRAME_VECTORS[0]["input_hex"]))
    assert [f.split(b"*")[3].split(b",")[0] for f in frames] == [b"LK", b"UD", b"TKQ]", b"LK"]


LK = b"[3G*9705141740*0009*LK,0,0,53]"
SSID_BRACKETS = bytes.fromhex(FRAME_VECTORS[1]["input_hex"])  # "[LG_Wall-Mount A/C]" inside
ZJ_LK = b"[ZJ*014111001350304*0034*0009*LK,0,0,19]"
TK_ESCAPED = b"[CS*1234567890*000e*TK,#!AMR}\x01}\x02}\x03}\x04}\x05\xff]"
TK_UNESCAPED = b"[CS*1234567890*000e*TK,#!AMR}[],*\xff]"
MISCOUNTED_SHORT = frame_bytes(BY_ID["watch-032"])  # says 9 bytes, has 8
MISCOUNTED_LONG = frame_bytes(BY_ID["watch-039"])  # says 135 bytes, has 143
JXTK = frame_bytes(BY_ID["watch-008"])  # six voice chunks back to back, as the watch sent them


def _jxtk_chunks() -> list[bytes]:
    starts = [i for i in range(len(JXTK)) if JXTK.startswith(b"[ZJ*", i)] + [len(JXTK)]
    return [JXTK[a:b] for a, b in pairwise(starts)]


def test_voice_chunks_are_framed_by_their_length() -> None:
    chunks = _jxtk_chunks()
    assert len(chunks) == 6
    for chunk in chunks:
        # The length field counts the escaped bytes on the wire between '*' and ']'.
        header, _, rest = chunk.partition(b"*JXTK")
        assert int(header.split(b"*")[-1], 16) == len(rest) + len(b"JXTK") - 1
    assert frames_of(PROTOCOL, JXTK) == [watch.unescape(c) for c in chunks]


def test_binary_content_with_a_raw_bracket_is_framed_by_length() -> None:
    # A firmware that does not escape: the ']' inside the audio is not the end.
    frame = b"[CS*1234567890*0008*TK,\x00]\x01\x02[]"
    assert frames_of(PROTOCOL, frame + LK) == [frame, LK]
    # Length counted over unescaped bytes (Traccar's own test frame) works too.
    assert frames_of(PROTOCOL, TK_ESCAPED + LK) == [TK_UNESCAPED, LK]


def test_miscounted_text_lengths_do_not_matter() -> None:
    assert frames_of(PROTOCOL, MISCOUNTED_SHORT + MISCOUNTED_LONG + LK) == [
        MISCOUNTED_SHORT, MISCOUNTED_LONG, LK,
    ]
    # The keep-alive is cut as soon as its ']' is here: the watch waits for the answer.
    assert PROTOCOL.next_frame(MISCOUNTED_SHORT) == (MISCOUNTED_SHORT, len(MISCOUNTED_SHORT))


def test_stream_split_at_every_byte() -> None:
    wire = [LK, SSID_BRACKETS, ZJ_LK, TK_ESCAPED, MISCOUNTED_SHORT, *_jxtk_chunks()[4:], MISCOUNTED_LONG]
    stream = b"".join(wire)
    expected = [watch.unescape(f) for f in wire]
    assert frames_of(PROTOCOL, stream) == expected
    assert check_every_split(PROTOCOL, stream, expected) == len(stream) + 1


def test_zj_serial_waits_until_the_header_is_whole() -> None:
    # "[ZJ*id*0034*" could be the length (then content) or the serial (then the length).
    assert PROTOCOL.next_frame(ZJ_LK[:26]) == (None, 0)
    assert PROTOCOL.next_frame(ZJ_LK[:28]) == (None, 0)
    assert PROTOCOL.next_frame(ZJ_LK) == (ZJ_LK, len(ZJ_LK))


def test_partial_frames_wait() -> None:
    for frame in (LK, ZJ_LK, TK_ESCAPED, SSID_BRACKETS):
        for cut in range(1, len(frame)):
            assert PROTOCOL.next_frame(frame[:cut]) == (None, 0), (frame, cut)


def test_garbage_without_any_bracket_is_discarded() -> None:
    garbage = b"hello\r\nworld 1234567890 \x00\xff]"
    assert PROTOCOL.next_frame(garbage) == (None, len(garbage))


def test_garbage_before_a_frame_is_skipped() -> None:
    assert frames_of(PROTOCOL, b"\x00junk]\r\n" + LK) == [LK]
    # '[' that starts no header: dropped up to the next '['.
    assert frames_of(PROTOCOL, b"[[not a header*]" + LK) == [LK]
    assert PROTOCOL.next_frame(b"[3G*12#") == (None, 7)


def test_unterminated_frame_is_dropped_past_its_declared_length() -> None:
    endless = b"[3G*1234567890*0009*LK," + b"1" * 200
    frame, used = PROTOCOL.next_frame(endless)
    assert frame is None and used == len(endless)
    assert frames_of(PROTOCOL, endless + LK) == [LK]
    # A header announcing the longest content: waited for, but never past max_frame.
    huge = b"[3G*1234567890*FFFF*TK,\x00" + bytes(PROTOCOL.max_frame)
    assert PROTOCOL.next_frame(huge)[1] > 0
    assert PROTOCOL.next_frame(huge[: PROTOCOL.max_frame - 200]) == (None, 0)


# --- replies --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (b"[SG*8800000015*0002*LK]", b"[SG*8800000015*0002*LK]"),
        (b"[3G*4700186508*000B*LK,0,10,100]", b"[3G*4700186508*0002*LK]"),
        (ZJ_LK, b"[ZJ*014111001350304*0034*0002*LK]"),
        (b"[3G*8800000015*0003*TKQ]", b"[3G*8800000015*0003*TKQ]"),
        (b"[3G*8800000015*0004*TKQ2]", b"[3G*8800000015*0004*TKQ2]"),
        (b"[CS*1234567890*0004*INIT]", b"[CS*1234567890*0006*INIT,1]"),
        (frame_bytes(BY_ID["watch-001"]), b"[3G*6907919734*0002*AL]"),
        (frame_bytes(BY_ID["watch-018"]), b"[ZJ*014111001332708*0075*0002*AL]"),
        (JXTK, b"[ZJ*789468050042692*0034*0007*JXTKR,1]"),
    ],
    ids=["lk", "lk-status", "zj-lk", "tkq", "tkq2", "init", "al-lte", "zj-al", "jxtk"],
)
def test_replies(frame: bytes, expected: bytes) -> None:
    assert decode(frame).reply == expected


def test_keep_alive_is_answered_even_when_malformed() -> None:
    decoded = decode("[SG*8800000015*0009*LK,x,y,z]")
    assert decoded.reply == b"[SG*8800000015*0002*LK]" and decoded.positions == []


def test_reports_and_readings_get_no_reply() -> None:
    for vid in ("watch-005", "watch-009", "watch-024", "watch-043", "watch-002"):
        assert decode(frame_bytes(BY_ID[vid])).reply is None, vid


# --- field decoding -------------------------------------------------------------------------------


def test_report_fields() -> None:
    # UD,220414,134652,A,22.571707,N,113.8613968,E,0.1,0.0,100,7,60,90,1000,50,0000,4,1,460,0,...
    (p,) = decode(frame_bytes(BY_ID["watch-039"])).positions
    assert p.fix_time == datetime(2014, 4, 22, 13, 46, 52, tzinfo=UTC)
    assert (p.latitude, p.longitude, p.valid) == (22.571707, 113.8613968, True)
    assert p.speed_kmh == pytest.approx(0.1)  # km/h on the wire
    assert (p.course_deg, p.altitude_m) == (0.0, 100.0)
    a = p.attributes
    assert (a[keys.SATELLITES], a[keys.RSSI], a[keys.BATTERY_PCT], a[keys.STEPS]) == (7, 60, 90, 1000)
    assert keys.ALARM not in a and keys.MOTION not in a
    assert a[keys.CELL_TOWERS] == [
        {"mcc": 460, "mnc": 0, "lac": 9360, "cid": cid, "rssi": rssi}
        for cid, rssi in ((4082, 131), (4092, 148), (4091, 143), (4153, 141))
    ]


def test_hex_cell_ids_and_hex_service_layout() -> None:
    (p,) = decode(frame_bytes(BY_ID["watch-004"])).positions  # ...,1,1,234,10,55C0,3B882A2,132,,10
    assert p.attributes[keys.CELL_TOWERS] == [{"mcc": 234, "mnc": 10, "lac": 0x55C0, "cid": 0x3B882A2,
                                               "rssi": 132}]
    (q,) = decode(frame_bytes(BY_ID["watch-005"])).positions  # ...,1,1,FFFF,FFFF,FFFE,...: no service
    assert keys.CELL_TOWERS not in q.attributes


def test_wifi_and_cells_together() -> None:
    (p,) = decode(frame_bytes(BY_ID["watch-013"])).positions
    assert p.attributes[keys.CELL_TOWERS] == [{"mcc": 425, "mnc": 1, "lac": 10223, "cid": 8012811,
                                               "rssi": 100}]
    assert p.attributes[keys.WIFI] == [
        {"mac": "22:74:1d:39:64:ff", "rssi": -46},
        {"mac": "a8:3f:a1:e0:66:ba", "rssi": -89},
        {"mac": "00:0c:42:51:cf:cd", "rssi": -81},
    ]


def test_ssid_with_a_comma_does_not_derail_the_access_points() -> None:
    text = ("[3G*1234567890*0000*UD,010120,025946,A,1.5,N,2.5,E,0,0,0,5,100,98,0,0,00000000,0,2,"
            "Cafe, Bar,f4:db:e6:d2:a8:00,-53,home,f4:db:e6:da:d0:80,-79,0.0]")
    (p,) = decode(text).positions
    assert [ap["mac"] for ap in p.attributes[keys.WIFI]] == ["f4:db:e6:d2:a8:00", "f4:db:e6:da:d0:80"]


@pytest.mark.parametrize(
    ("vid", "lat", "lon"),
    [
        ("watch-028", 9.951861, -84.1422119),  # "-84.1422119,W": negative whatever the sign
        ("watch-029", -33.480366, -70.7630692),  # "-33.48,N": the sign stands
        ("watch-033", -16.479064, 68.119072),  # no E/W letter: east
        ("watch-012", 41.465, -81.53128),
    ],
)
def test_hemispheres(vid: str, lat: float, lon: float) -> None:
    (p,) = decode(frame_bytes(BY_ID[vid])).positions
    assert p.latitude == pytest.approx(lat) and p.longitude == pytest.approx(lon)


def _ud(status: str, kind: str = "UD") -> str:
    return f"[3G*1234567890*0000*{kind},220414,134652,A,22.5,N,113.8,E,0,0,0,7,60,90,0,0,{status},0,0]"


@pytest.mark.parametrize(
    ("bit", "alarm"),
    [(0, "lowBattery"), (1, "geofenceExit"), (2, "geofenceEnter"), (14, "powerCut"), (16, "sos"),
     (17, "lowBattery"), (20, "removing"), (21, "fallDown"), (22, "fallDown"), (3, None), (4, None)],
)
def test_status_alarm_bits(bit: int, alarm: str | None) -> None:
    (p,) = decode(_ud(f"{1 << bit:08x}")).positions
    assert p.attributes.get(keys.ALARM) == alarm
    assert p.attributes.get(keys.MOTION) is (True if bit == 4 else None)


def test_alarm_report_without_alarm_bits_is_a_general_alarm() -> None:
    (p,) = decode(_ud("00000000", "AL")).positions
    assert p.attributes[keys.ALARM] == "general"
    (q,) = decode(_ud("00010000", "AL")).positions
    assert q.attributes[keys.ALARM] == "sos"


def test_unreadable_alarm_is_still_kept_and_acknowledged(frozen_clock: None) -> None:
    decoded = decode("[3G*1234567890*000B*AL,garbage]")
    assert decoded.reply == b"[3G*1234567890*0002*AL]"
    (p,) = decoded.positions
    assert p.attributes == {keys.ALARM: "general"} and p.fix_time == FIXED_NOW and p.latitude is None


def test_keep_alive_status(frozen_clock: None) -> None:
    (p,) = decode(frame_bytes(BY_ID["watch-038"])).positions  # LK,0,10,100
    assert p.attributes == {keys.STEPS: 0, keys.BATTERY_PCT: 100}
    assert p.fix_time == FIXED_NOW and p.latitude is None
    assert decode(frame_bytes(BY_ID["watch-032"])).positions == []  # LK,0,100: no status


@pytest.mark.parametrize(
    ("vid", "attributes"),
    [
        ("watch-002", {"blood_oxygen": 98}),
        ("watch-006", {"temp1_c": 36.5}),
        ("watch-010", {"temp1_c": 35.29}),
        ("watch-020", {"pressure_high": 120, "pressure_low": 79, "heart_rate": 73}),
        ("watch-021", {"pressure_high": 109, "pressure_low": 68}),
        ("watch-043", {"heart_rate": 72}),
        ("watch-044", {"heart_rate": 0}),
        ("watch-045", {"heart_rate": 71}),
    ],
)
def test_health_readings(vid: str, attributes: dict[str, object], frozen_clock: None) -> None:
    (p,) = decode(frame_bytes(BY_ID[vid])).positions
    assert p.attributes == attributes
    assert p.latitude is None and p.fix_time == FIXED_NOW


def test_voice_messages_are_not_stored() -> None:
    assert decode(TK_UNESCAPED) == Decoded(unique_id="1234567890")
    for chunk in _jxtk_chunks():
        decoded = decode(watch.unescape(chunk))
        assert decoded.positions == [] and decoded.reply is not None


def test_unknown_types_only_name_the_device() -> None:
    assert decode(b"[3G*8308406279*0008*rcapture]") == Decoded(unique_id="8308406279")


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"hello",
        b"[3G*1234567890*0002*LK",  # no ']'
        b"[3G*1234567890*LK]",  # no length
        b"[3G*1234567890*0010*UD,garbage,here]",
        _ud("00000000").replace("22.5,N", "95.5,N").encode(),  # latitude 95
        _ud("00000000").replace("220414,", "2204,").encode(),  # date cut short
    ],
    ids=["empty", "no-header", "unterminated", "no-length", "bad-report", "latitude-95", "bad-date"],
)
def test_malformed_frames_raise_decode_error(frame: bytes) -> None:
    with pytest.raises(DecodeError) as err:
        decode(frame)
    assert err.value.frame == frame


# --- fuzzing --------------------------------------------------------------------------------------

FUZZ = fuzz_settings(300)
TOKENS = [b",", b"*", b"[", b"]", b"}", b"}\x03", b".", b"-", b"9", b"F", b"\x00", b"\xff"]
SEEDS = [f for f in ALL_FRAMES if len(f) < 1000] + _jxtk_chunks()[-1:]


def _check_framer(buffer: bytes) -> None:
    _, used = check_next_frame(PROTOCOL, buffer)
    if buffer and buffer[0] != 0x5B:
        assert used > 0  # garbage is never kept
    drain(PROTOCOL, buffer)


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    _check_framer(data)
    check_decoder(PROTOCOL, data)
    for prefix in (b"[3G*1234567890*0010*", b"[ZJ*1234567890*0001*0010*", b"[SG*1*0002*UD,", b"[CS*1*0002*"):
        _check_framer(prefix + data)
        check_decoder(PROTOCOL, prefix + data + b"]")


@FUZZ
@given(token_mutations(SEEDS, TOKENS))
def test_fuzz_mutated_real_frames(frame: bytes) -> None:
    _check_framer(frame)
    check_decoder(PROTOCOL, frame)
    check_decoder(PROTOCOL, watch.unescape(frame))
    decoded = check_decoder(PROTOCOL, frame, Session(unique_id="x"))
    if decoded is not None:
        assert all(all_finite(p.attributes) for p in decoded.positions)


@fuzz_settings(150)
@given(real_frame_streams(SEEDS), st.integers(0, 10_000))
def test_fuzz_streams_split_anywhere(stream: bytes, split: int) -> None:
    whole, _left = drain(PROTOCOL, stream)
    assert frames_fed_in_chunks(PROTOCOL, stream, split % (len(stream) + 1)) == whole
    for frame in whole:
        check_decoder(PROTOCOL, frame)


def test_impossible_motion_values_are_dropped_not_the_fix() -> None:
    text = "[3G*1234567890*0000*UD,220414,134652,A,22.5,N,113.8,E,65535,999,99999,7,60,90,0,0,00000000,0,0]"
    (p,) = decode(text).positions
    assert (p.speed_kmh, p.course_deg, p.altitude_m) == (None, None, None)
    assert p.latitude == 22.5


@pytest.mark.parametrize("value", ["nan", "inf", "1e5", ""])
def test_temperature_must_be_a_plain_number(value: str) -> None:
    with pytest.raises(DecodeError):
        decode(f"[3G*1234567890*0000*TEMP,{value},1]")
