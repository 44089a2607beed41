"""Meitrack: Traccar's vectors (ASCII and binary), framing by the length field, acks, frames and
binary reports built here from the Meitrack GPRS protocol documents, and fuzzing.

The builders below compute lengths and checksums themselves (sum of the bytes modulo 256, two
hex digits), so they check the module rather than repeat it.
"""

from __future__ import annotations

import copy
import dataclasses
import struct
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import keys, meitrack
from protocols.base import Protocol
from protocols.model import Decoded, DecodeError, Position, Session
from tests.protocols.fuzz import (
    all_finite,
    check_decoder,
    check_every_split,
    check_next_frame,
    chunk_mutations,
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

P: Protocol = meitrack.PROTOCOL
VECTORS = vectors_for("meitrack")
ALL = [v for items in VECTORS.values() for v in items]
BY_ID = {v["id"]: v for v in ALL}
LENIENT = {"checksum": "lenient"}
EPOCH_2000 = datetime(2000, 1, 1, tzinfo=UTC)


def checksum(data: bytes) -> bytes:
    return f"{sum(data) % 256:02X}".encode()


def wire(cmd: bytes, data: bytes, *, flag: bytes = b"A", imei: bytes = b"353358017784062", at: bytes = b"$$",
         crlf: bool = True) -> bytes:
    """A frame as the device (``$$``) or the server (``@@``) sends it."""
    rest = b"," + imei + b"," + cmd + (b"," + data if data else b"") + b"*"
    head = at + flag + str(len(rest) + 4).encode()
    return head + rest + checksum(head + rest) + (b"\r\n" if crlf else b"")


def decode(frame: bytes, **config: object) -> Decoded:
    return P.decode(frame, Session(config=config))


def one(frame: bytes, **config: object) -> Position:
    decoded = decode(frame, **config)
    assert len(decoded.positions) == 1
    return decoded.positions[0]


def tail_ok(frame: bytes) -> bool:
    """The frame ends in ``*hh`` (CRLF or not) and hh is the sum of the bytes before it."""
    body = frame[:-2] if frame.endswith(b"\r\n") else frame
    return len(body) > 3 and body[-3:-2] == b"*" and body[-2:].upper() == checksum(body[:-2])


# --- Traccar decoder vectors ---------------------------------------------------------------------

# meitrack-008 is a CCE report of three records. Traccar's verifyAttribute reads the first element
# of a decoded list, so its test passes on a list; the harness's "attributes" kind wants exactly
# one position. Three records are three positions, so we replay it as "positions" (the pinned
# batteryLevel 77 is in every record; the first is checked in its own test below).
KIND_OVERRIDES = {"meitrack-008": "positions"}
BAD_CHECKSUM = [v["id"] for v in ALL if not tail_ok(frame_bytes(v))]


def _with_overrides(items: list[Vector]) -> list[Vector]:
    items = copy.deepcopy(items)
    for v in items:
        v["kind"] = KIND_OVERRIDES.get(v["id"], v["kind"])
    return items


def _lenient(frame: bytes, session: Session) -> Decoded:
    session.config = {**session.config, **LENIENT}
    return meitrack.decode(frame, session)


P_LENIENT = dataclasses.replace(P, decode=_lenient)


def test_vector_count() -> None:
    assert len(ALL) == 51
    assert sorted(VECTORS) == ["testDecode"]
    assert sum(frame_bytes(v)[:2] == b"$$" and v["encoding"] == "ascii" for v in ALL) == 32


def test_eight_traccar_frames_fail_their_checksum() -> None:
    # Edited by hand in Traccar's tests (a 14-digit IMEI, an altitude made negative, an IMEI of
    # 123123...; two CCE samples) or cut short (a photo chunk without its tail). Traccar never
    # checks the checksum.
    assert BAD_CHECKSUM == [
        "meitrack-004", "meitrack-005", "meitrack-014", "meitrack-020",
        "meitrack-025", "meitrack-032", "meitrack-038", "meitrack-048",
    ]


@pytest.mark.parametrize("method", sorted(VECTORS))
def test_traccar_vectors_decoded_as_traccar_does(method: str) -> None:
    """Every vector passes the harness with the checksum check relaxed (``checksum: lenient``)."""
    items = _with_overrides(VECTORS[method])
    assert len(replay_method(P_LENIENT, items)) == len(items)


@pytest.mark.parametrize("method", sorted(VECTORS))
def test_traccar_vectors_with_checksum_verified(method: str) -> None:
    """Default settings: the frames with a wrong checksum are refused, every other one passes."""
    items = _with_overrides(VECTORS[method])
    replay_method(P, [v for v in items if v["id"] not in BAD_CHECKSUM])
    for v in items:
        if v["id"] in BAD_CHECKSUM:
            with pytest.raises(DecodeError):
                P.decode(frame_bytes(v), Session())


def test_three_record_report_reads_battery_in_the_first_record() -> None:
    decoded = decode(frame_bytes(BY_ID["meitrack-008"]))
    assert [p.attributes[keys.BATTERY_PCT] for p in decoded.positions] == [77, 77, 77]
    assert decoded.reply == wire(b"CCE", b"3", flag=b"Y", imei=b"865413050891737", at=b"@@")


def test_every_frame_names_its_device() -> None:
    checked = 0
    for v in ALL:
        f = frame_bytes(v)
        imei = f.split(b",")[1].decode()
        decoded = decode(f, **LENIENT)
        assert decoded.unique_id == imei, v["id"]
        for p in decoded.positions:
            assert p.unique_id == imei, v["id"]
            checked += 1
    assert checked > 60


def test_vectors_decode_the_same_with_their_line_end() -> None:
    for v in ALL:
        f = frame_bytes(v)
        if f.endswith(b"\r\n") or v["id"] == "meitrack-020":
            continue
        with_crlf, without = decode(f + b"\r\n", **LENIENT), decode(f, **LENIENT)
        assert [p.attributes for p in with_crlf.positions] == [p.attributes for p in without.positions]
        assert [p.latitude for p in with_crlf.positions] == [p.latitude for p in without.positions]


def test_command_result_is_the_text_after_the_imei() -> None:
    p = one(frame_bytes(BY_ID["meitrack-010"]))
    assert p.attributes == {keys.RESULT: "D82,0"}
    assert p.latitude is None and p.valid is False
    # With its CRLF the answer reads the same (Traccar's slice would keep "*D" then).
    assert one(frame_bytes(BY_ID["meitrack-010"]) + b"\r\n").attributes == {keys.RESULT: "D82,0"}


# --- framing -------------------------------------------------------------------------------------

FRAME_VECTORS = frame_vectors_for("meitrack")


def test_frame_vectors_present() -> None:
    assert len(FRAME_VECTORS) == 1


@pytest.mark.parametrize("fv", FRAME_VECTORS, ids=[str(i) for i in range(len(FRAME_VECTORS))])
def test_frame_vectors(fv: Vector) -> None:
    data = bytes.fromhex(fv["input_hex"])
    frame, used = P.next_frame(data)
    assert frame == bytes.fromhex(fv["expected_frame_hex"])
    assert used == len(frame)


def _line(vid: str) -> bytes:
    f = frame_bytes(BY_ID[vid])
    return f if f.endswith(b"\r\n") else f + b"\r\n"


STREAM_FRAMES = [
    bytes.fromhex(FRAME_VECTORS[0]["input_hex"]),
    _line("meitrack-001"),  # CCE, three records, 1 kB
    _line("meitrack-047"),  # AAA with its CRLF, length right
    _line("meitrack-049"),  # CCC, binary with a lowercase checksum
    _line("meitrack-010"),  # D82 answer whose length field is one byte long
    _line("meitrack-002"),  # CCE
    _line("meitrack-035"),  # AAA whose length field is four bytes long
    _line("meitrack-051"),  # AAC
    _line("meitrack-050"),  # CCC, 18 records
    _line("meitrack-016"),
]
STREAM = b"".join(STREAM_FRAMES)


def test_stream_whole_cuts_each_frame() -> None:
    assert frames_of(P, STREAM) == STREAM_FRAMES


def test_stream_split_anywhere_cuts_the_same() -> None:
    assert check_every_split(P, STREAM, STREAM_FRAMES) == len(STREAM) + 1


@pytest.mark.parametrize("vid", [v["id"] for v in ALL if v["id"] != "meitrack-020"])
def test_each_vector_frames_as_itself(vid: str) -> None:
    f = _line(vid)
    after = _line("meitrack-051")
    assert frames_of(P, f + after) == [f, after]
    assert frames_of(P, b"\x00junk\r\n" + f) == [f]


def test_length_field_counts_from_the_comma_through_crlf() -> None:
    f = wire(b"AAA", b"35,1.0,2.0")
    declared = int(f[3 : f.index(b",")])
    assert declared == len(f) - f.index(b",")
    for cut in range(1, len(f)):
        assert P.next_frame(f[:cut]) == (None, 0)
    assert P.next_frame(f + b"$$") == (f, len(f))


def test_binary_frames_are_cut_by_length_not_by_a_tail_inside() -> None:
    # A CCE parameter whose bytes spell "*41\r\n": only the length tells where the frame ends.
    record = cce_record(var=[(0x77, b"*41\r\n$$")])
    f = wire(b"CCE", cce([record]))
    inner = f.index(b"*41\r\n")
    assert P.next_frame(f[: inner + 5]) == (None, 0)
    assert P.next_frame(f) == (f, len(f))
    assert check_every_split(P, f + f, [f, f]) == 2 * len(f) + 1


def test_binary_frame_whose_length_lies_is_dropped() -> None:
    good = _line("meitrack-049")
    bad = good.replace(b"$$X86,", b"$$X84,")  # ends two bytes early: no "*hh\r\n" there
    assert frames_of(P, bad + good) == [good]


def test_truncated_text_frame_gives_way_to_the_next() -> None:
    cut = _line("meitrack-047")[:60]
    f = _line("meitrack-016")
    assert frames_of(P, cut + f) == [f]


def test_garbage_without_frame_start_is_discarded() -> None:
    junk = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n*41\r\n@@A27,1*00\r\n"
    frames, left = drain(P, junk)
    assert frames == [] and left == b""
    assert P.next_frame(junk + b"$") == (None, len(junk))  # the "$" may start a frame
    assert P.next_frame(b"$") == (None, 0)


@pytest.mark.parametrize(
    "head",
    [b"$$~27,1,AAA*00\r\n", b"$$A,353358017784062,AAA", b"$$A1234567,1,AAA", b"$$A27;35335801",
     b"$$A27,35335801778406212345678,AAA", b"$$A27,3533x"],
)
def test_headers_that_start_no_frame_are_skipped(head: bytes) -> None:
    frame, used = P.next_frame(head)
    assert frame is None and used == 1
    f = _line("meitrack-051")
    assert frames_of(P, head + f) == [f]


def test_partial_header_waits() -> None:
    f = _line("meitrack-001")
    for cut in range(1, 30):
        assert P.next_frame(f[:cut]) == (None, 0)


@pytest.mark.parametrize("declared", [0, 5, 10, meitrack.MAX_FRAME, 99999])
def test_absurd_binary_length_is_not_buffered(declared: int) -> None:
    frame, used = P.next_frame(b"$$A%d,353358017784062,CCE," % declared + b"\x00" * 20)
    assert frame is None and used == 1


def test_unterminated_text_is_dropped_once_oversize() -> None:
    endless = b"$$A140,353358017784062,AAA," + b"1," * meitrack.MAX_FRAME
    frame, used = P.next_frame(endless)
    assert frame is None and used > 0
    assert frames_of(P, endless) == []
    assert P.next_frame(endless[:500]) == (None, 0)  # still short: wait for the tail


def test_protocol_identity() -> None:
    assert (P.name, P.transports, P.default_port) == ("meitrack", ("tcp", "udp"), 5020)
    assert P.max_frame >= len(STREAM_FRAMES[1])


# --- replies -------------------------------------------------------------------------------------


def test_ccc_ack_counts_the_records() -> None:
    # Meitrack: "CCC,<quantity of deleted data>" makes the tracker drop that many cached records.
    f = frame_bytes(BY_ID["meitrack-050"])
    decoded = decode(f)
    assert len(decoded.positions) == 18
    msg = b"@@G28,369800013460674,CCC,18*"
    assert decoded.reply == msg + checksum(msg) + b"\r\n"
    # Traccar's length for one digit: 27.
    assert decode(frame_bytes(BY_ID["meitrack-049"])).reply == wire(
        b"CCC", b"1", flag=b"X", imei=b"369800014090021", at=b"@@")
    assert wire(b"CCC", b"1", imei=b"369800014090021", at=b"@@")[3:5] == b"27"


def test_cce_ack_counts_the_records() -> None:
    decoded = decode(frame_bytes(BY_ID["meitrack-001"]))
    assert len(decoded.positions) == 3
    msg = b"@@f27,867951078010564,CCE,3*"
    assert decoded.reply == msg + checksum(msg) + b"\r\n"


def test_aac_is_answered() -> None:
    decoded = decode(frame_bytes(BY_ID["meitrack-051"]))
    assert decoded.positions == []
    msg = b"@@z27,861451040910625,AAC,1*"  # Traccar's answer, flag and all
    assert decoded.reply == msg + checksum(msg) + b"\r\n"
    assert checksum(msg) == b"0B"


@pytest.mark.parametrize("vid", ["meitrack-047", "meitrack-010", "meitrack-031", "meitrack-016"])
def test_reports_and_answers_are_not_acked(vid: str) -> None:
    assert decode(frame_bytes(BY_ID[vid])).reply is None


def test_server_message_helper() -> None:
    assert meitrack.server_message(b"O", "353358017784062", "D00,0215080432_C2E03.jpg,0") == (
        b"@@O48,353358017784062,D00,0215080432_C2E03.jpg,0*DB\r\n"  # Meitrack T622 manual, D00 example
    )
    assert meitrack.checksum(b"$$D28,353358017784062,D03,OK*") == b"F3"


def test_photo_messages_are_dropped_without_requests() -> None:
    chunk = frame_bytes(BY_ID["meitrack-020"])
    assert decode(chunk, **LENIENT) == Decoded(unique_id="864507031219974")
    whole = wire(b"D00", b"p.jpg,2,1," + bytes(range(256)) + b"\r\n")
    assert decode(whole) == Decoded(unique_id="353358017784062")
    assert frames_of(P, whole + whole) == [whole, whole]
    assert decode(frame_bytes(BY_ID["meitrack-031"])) == Decoded(unique_id="353358017784062")


# --- checksum --------------------------------------------------------------------------------------


def test_wrong_checksum_is_refused_unless_lenient() -> None:
    f = bytearray(_line("meitrack-047"))
    assert f[30:39] == b"-7.266760"
    f[38] = ord("1")  # the latitude's last digit
    with pytest.raises(DecodeError, match="checksum"):
        decode(bytes(f))
    assert one(bytes(f), **LENIENT).latitude == -7.266761


def test_missing_checksum_is_refused_unless_lenient() -> None:
    f = b"$$A30,353358017784062,B07,OK\r\n"
    with pytest.raises(DecodeError, match="checksum"):
        decode(f)
    assert one(f, **LENIENT).attributes == {keys.RESULT: "B07,OK"}


def test_lowercase_checksum_digits_are_accepted() -> None:
    f = frame_bytes(BY_ID["meitrack-049"])
    assert f.endswith(b"*be\r\n") and len(decode(f).positions) == 1


@pytest.mark.parametrize("bad", [b"", b"$$", b"$$A10,1", b"AAA,1*00", b"$$A27,353358017784062,AAAB*00",
                                 b"$$A27,353358017784062,AAA,35*00", b"$$A27,35335801778406x,AAA*00"])
def test_malformed_frames_raise(bad: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(bad, **LENIENT)


# --- ASCII reports ---------------------------------------------------------------------------------

AAA_FIELDS = [
    b"1",  # event: SOS
    b"-33.866423", b"151.190060", b"240102030405", b"A", b"7", b"27", b"57.5", b"32", b"1.4", b"-13",
    b"6150", b"49517", b"505|2|0B67|5A6C", b"0501", b"0000|0001||0191|0573",
]


def aaa(*fields: bytes, tail: bytes = b"", cmd: bytes = b"AAA") -> bytes:
    return wire(cmd, b",".join(fields) + b"," + tail)


def test_aaa_fields() -> None:
    p = one(aaa(*AAA_FIELDS))
    assert p.fix_time == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert (p.latitude, p.longitude) == (-33.866423, 151.19006)
    assert p.valid is True
    assert p.speed_kmh == 57.5  # km/h on the wire, kept as is
    assert p.course_deg == 32 and p.hdop == 1.4 and p.altitude_m == -13
    a = p.attributes
    assert a[keys.EVENT] == 1 and a[keys.ALARM] == "sos"
    assert a[keys.SATELLITES] == 7 and a[keys.ODOMETER_M] == 6150 and a["runtime"] == 49517
    assert a[keys.CELL_TOWERS] == [{"mcc": 505, "mnc": 2, "lac": 0x0B67, "cid": 0x5A6C, "rssi": 27}]
    assert a[keys.INPUT] == 5 and a[keys.OUTPUT] == 1
    assert a["adc1"] == 0 and a["adc2"] == 1 and "adc3" not in a
    assert a[keys.BATTERY_V] == 4.01 and a[keys.POWER_V] == 13.95


@pytest.mark.parametrize(
    ("event", "alarm"),
    [(1, "sos"), (17, "lowBattery"), (18, "lowPower"), (19, "overspeed"), (20, "geofenceEnter"),
     (21, "geofenceExit"), (22, "powerRestored"), (23, "powerCut"), (36, "tow"), (44, "jamming"),
     (78, "accident"), (90, "cornering"), (91, "cornering"), (129, "braking"), (130, "acceleration"),
     (135, "fatigueDriving"), (35, None), (2, None)],
)
def test_event_codes_become_alarms(event: int, alarm: str | None) -> None:
    a = one(aaa(str(event).encode(), *AAA_FIELDS[1:])).attributes
    assert a[keys.EVENT] == event
    assert a.get(keys.ALARM) == alarm


@pytest.mark.parametrize(
    ("model", "battery", "power"),
    [(None, 0x191 / 100, 0x573 / 100), ("T366", 0x191 / 100, 0x573 / 100),
     ("mvt380", 0x191 * 6 / 1024, 0x573 * 48 / 1024), ("MT90", 0x191 * 6.6 / 4096, 0x573),
     ("T1", 0x191 * 6.6 / 4096, 0x573 * 52.8 / 4096), ("MVT600", 0x191 * 6.6 / 4096, 0x573 * 52.8 / 4096)],
)
def test_hex_analog_inputs_per_model(model: str | None, battery: float, power: float) -> None:
    config = {"model": model} if model else {}
    a = one(aaa(*AAA_FIELDS), **config).attributes
    assert a[keys.BATTERY_V] == pytest.approx(battery)
    assert a[keys.POWER_V] == pytest.approx(power)


def test_voltage_analog_inputs() -> None:
    a = one(aaa(*AAA_FIELDS[:-1], b"4.33|12.96|1.92|2.72|2.69")).attributes
    assert a[keys.BATTERY_V] == 4.33 and a[keys.POWER_V] == 12.96 and "adc1" not in a


def test_aff_sequence_number_is_skipped() -> None:
    p = one(wire(b"AFF", b"0004," + b",".join(AAA_FIELDS) + b","))
    assert p.attributes[keys.EVENT] == 1 and p.latitude == -33.866423


def test_driver_card_event_and_optional_fields() -> None:
    fields = [b"37", *AAA_FIELDS[1:]]
    # event data, reserved, protocol 3, fuel 45.06 %, two sensors (signed hundredths), data
    a = one(aaa(*fields, tail=b"00A1B2C3,,3,2D06,01FF38|020A28,2,0,+23.5")).attributes
    assert a[keys.DRIVER_UNIQUE_ID] == "00A1B2C3"
    assert a[keys.FUEL_PCT] == pytest.approx(45.06)
    assert a["temp1_c"] == -2.0 and a["temp2_c"] == 26.0
    assert a["temp_data"] == "+23.5"
    # Protocol below 3: a signed whole-degree byte and hundredths.
    a = one(aaa(b"35", *AAA_FIELDS[1:], tail=b"x,,1,,0312FF|04F005")).attributes
    assert a["event_data"] == "x"
    assert a["temp3_c"] == pytest.approx(18 + 2.55) and a["temp4_c"] == pytest.approx(-16 - 0.05)


def test_taximeter_data() -> None:
    tail = b",,108,0000,,6,0,,,,,11|171207091500|171207091520|78|3500|000000|000003"
    a = one(aaa(b"109", *AAA_FIELDS[1:], tail=tail)).attributes
    assert a["taximeter_on"] is False and a["taximeter_start"] == "171207091500"
    assert a["taximeter_end"] == "171207091520"
    assert a["taximeter_distance"] == 78 and a["taximeter_fare"] == 3500
    assert a["taximeter_trip"] == "000000" and a["taximeter_wait"] == "000003"
    a = one(aaa(b"109", *AAA_FIELDS[1:], tail=b",,108,0000,,6,0,,,,,1")).attributes
    assert "taximeter_on" not in a and "taximeter_start" not in a


def test_no_network_no_tower_and_zero_location_is_no_location() -> None:
    fields = list(AAA_FIELDS)
    fields[1:3] = [b"0.000000", b"0.000000"]
    fields[13] = b"0|0||"
    p = one(aaa(*fields))
    assert p.latitude is None and p.longitude is None and p.valid is False
    assert keys.CELL_TOWERS not in p.attributes


def test_lenient_dates_roll_over() -> None:
    fields = list(AAA_FIELDS)
    fields[3] = b"240229235969"  # second 69 of 23:59 on 29 February: the next day
    assert one(aaa(*fields)).fix_time == datetime(2024, 3, 1, 0, 0, 9, tzinfo=UTC)


@pytest.mark.parametrize("lat", [b"95.000000", b"-91.5"])
def test_off_the_globe_is_refused(lat: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(aaa(AAA_FIELDS[0], lat, *AAA_FIELDS[2:]))


def test_malformed_report_is_refused_other_answers_become_results() -> None:
    with pytest.raises(DecodeError, match="AAA"):
        decode(wire(b"AAA", b"35,garbage"))
    assert one(wire(b"B07", b"OK")).attributes == {keys.RESULT: "B07,OK"}
    assert one(wire(b"E91", b"")).attributes == {keys.RESULT: "E91"}
    assert one(wire(b"C91", b"\x01\x02\x00")).attributes == {keys.RESULT: "C91,010200"}
    # A10 (location query) answers with an AAA-shaped report: a position.
    assert one(aaa(*AAA_FIELDS, cmd=b"A10")).latitude == -33.866423


# --- binary reports ----------------------------------------------------------------------------------


def _pid(i: int) -> bytes:
    return i.to_bytes(2, "big") if i > 0xFF else bytes([i])


def cce_record(one: tuple[tuple[int, int], ...] | list[tuple[int, int]] = (),
               two: tuple[tuple[int, int], ...] | list[tuple[int, int]] = (),
               four: tuple[tuple[int, int], ...] | list[tuple[int, int]] = (),
               var: tuple[tuple[int, bytes], ...] | list[tuple[int, bytes]] = (),
               index: int = 1, pad: bytes = b"") -> bytes:
    """Meitrack CCE record: length, index, then the 1/2/4-byte and variable parameter groups."""
    body = struct.pack("<H", index)
    body += bytes([len(one)]) + b"".join(_pid(i) + struct.pack("<B", v & 0xFF) for i, v in one)
    body += bytes([len(two)]) + b"".join(_pid(i) + struct.pack("<H", v & 0xFFFF) for i, v in two)
    body += bytes([len(four)]) + b"".join(_pid(i) + struct.pack("<I", v & 0xFFFFFFFF) for i, v in four)
    body += bytes([len(var)]) + b"".join(_pid(i) + bytes([len(v)]) + v for i, v in var)
    return struct.pack("<H", len(body + pad)) + body + pad


def cce(records: list[bytes], remaining: int = 0) -> bytes:
    return struct.pack("<IH", remaining, len(records)) + b"".join(records)


def since_2000(t: datetime) -> int:
    return int((t - EPOCH_2000).total_seconds())


AT = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def test_cce_record_fields() -> None:
    tag = bytes([1, 4]) + b"cold" + bytes(6) + bytes([90]) + struct.pack("<hh", -5 * 256 - 128, 40 * 256)
    rec = cce_record(
        one=[(0x01, 1), (0x05, 1), (0x06, 9), (0x07, 20), (0x14, 2), (0x15, 5), (0x47, 2), (0xFE69, 87),
             (0x9D, 40), (0x33, 7)],
        two=[(0x08, 57), (0x09, 270), (0x0A, 12), (0x0B, -15), (0x16, 123), (0x19, 412), (0x1A, 1234),
             (0x99, 1500), (0x91, 56), (0x9C, 88), (0x44, 1)],
        four=[(0x02, -33_866_423), (0x03, 151_190_060), (0x04, since_2000(AT)), (0x0C, 123456), (0x0D, 3600),
              (0x25, 987654), (0xFEF4, 90), (0x9B, 5000), (0xA0, 12345), (0x55, 9)],
        var=[(0x0E, struct.pack("<HHHIh", 262, 3, 0x1234, 0xABCDEF, -70)),
             (0x1D, bytes.fromhex("0a1b2c3d4e5f") + struct.pack("<h", -60)),
             (0x2B, b"\x01" + struct.pack("<h", -1250)),
             (0xFEA8, bytes([1, 64, 0, 0, 1, 33, 0])),
             (0xFE73, tag),
             (0x4B, b"\x01\x01\x03LTE")],
    )
    decoded = decode(wire(b"CCE", cce([rec]), flag=b"Q"))
    assert decoded.reply == wire(b"CCE", b"1", flag=b"Q", at=b"@@")
    (p,) = decoded.positions
    assert p.unique_id == "353358017784062"
    assert p.fix_time == AT and (p.latitude, p.longitude) == (-33.866423, 151.19006) and p.valid is True
    assert p.speed_kmh == 57 and p.course_deg == 270 and p.hdop == 1.2 and p.altitude_m == -15
    a = p.attributes
    assert a[keys.EVENT] == 1 and a[keys.ALARM] == "sos"
    assert a[keys.SATELLITES] == 9 and a[keys.RSSI] == 20 and a[keys.OUTPUT] == 2 and a[keys.INPUT] == 5
    assert a["lock"] is True and a[keys.BATTERY_PCT] == 64 and a[keys.FUEL_PCT] == 40
    assert a["adc1"] == 1.23 and a[keys.BATTERY_V] == 4.12 and a[keys.POWER_V] == 12.34
    assert a[keys.RPM] == 1500 and a[keys.OBD_SPEED_KMH] == 56 and a["coolant_temp"] == 88
    assert a[keys.ODOMETER_M] == 123456 and a["runtime"] == 3600 and a[keys.DRIVER_UNIQUE_ID] == "987654"
    assert a[keys.ENGINE_HOURS_S] == 90 * 60 and a["obd_odometer"] == 5000 and a["fuel_used"] == 12.345
    assert a[keys.CELL_TOWERS] == [{"mcc": 262, "mnc": 3, "lac": 0x1234, "cid": 0xABCDEF, "rssi": -70}]
    assert a[keys.WIFI] == [{"mac": "0a:1b:2c:3d:4e:5f", "rssi": -60}]
    assert a["temp1_c"] == -12.5
    assert a["battery3_level"] == 33
    assert a["tag_name"] == "cold" and a["tag_battery"] == 90
    assert a["tag_temp"] == -5.5 and a["tag_humidity"] == 40


def test_cce_photo_alarm_names_the_image() -> None:
    rec = cce_record(var=[(0xFE31, bytes([2, 7]) + b"20240506070809_CH2_x.jpg")],
                     four=[(0x04, since_2000(AT))])
    a = one(wire(b"CCE", cce([rec]))).attributes
    assert a["alarm_type"] == 7 and a["image"] == "2024-05-06/20240506070809_CH2_x.jpg"
    a = one(wire(b"CCE", cce([cce_record(var=[(0xFE31, bytes([1, 3, 0]))])]))).attributes
    assert a == {"alarm_type": 3}


def test_cce_record_without_fix_or_clock() -> None:
    before = datetime.now(UTC)
    p = one(wire(b"CCE", cce([cce_record(one=[(0x05, 0)], four=[(0x02, 0), (0x03, 0)])])))
    assert p.latitude is None and p.longitude is None and p.valid is False
    assert p.fix_time >= before  # no time parameter: the server's
    p = one(wire(b"CCE", cce([cce_record(four=[(0x02, 1_000_000)])])))  # latitude without longitude
    assert p.latitude is None and p.longitude is None
    p = one(wire(b"CCE", cce([cce_record(one=[(0x05, 1)], four=[(0x02, 95_000_000), (0x03, 1)])])))
    assert p.latitude is None and p.valid is False  # off the globe: no location, batch kept


def test_cce_records_are_read_within_their_length() -> None:
    padded = cce_record(two=[(0x08, 33)], pad=b"\xff\xff\xff\xff")
    decoded = decode(wire(b"CCE", cce([padded, cce_record(two=[(0x08, 44)])])))
    assert [p.speed_kmh for p in decoded.positions] == [33, 44]
    short = bytearray(cce_record(two=[(0x08, 33), (0x09, 90)]))
    short[0] -= 2  # declared two bytes shorter than its parameters
    with pytest.raises(DecodeError):
        decode(wire(b"CCE", cce([bytes(short)])))


def test_cce_count_and_trailing_bytes() -> None:
    rec = cce_record(two=[(0x08, 1)])
    with pytest.raises(DecodeError):
        decode(wire(b"CCE", struct.pack("<IH", 0, 2) + rec))  # announces two records, holds one
    with pytest.raises(DecodeError):
        decode(wire(b"CCE", cce([rec]) + b"\x00"))
    assert len(decode(wire(b"CCE", cce([rec]) + b"\x00"), **LENIENT).positions) == 1
    # A known parameter too short for its layout (a cell of two bytes) is skipped, not fatal.
    p = one(wire(b"CCE", cce([cce_record(two=[(0x08, 7)], var=[(0x0E, b"\x01\x02"), (0xFE73, b"\x01")])])))
    assert p.speed_kmh == 7 and keys.CELL_TOWERS not in p.attributes and "tag_name" not in p.attributes


# CCC record (Meitrack "CCC" compression format, version 0x0102): little-endian fields in order.
CCC_LAYOUT = [("event", "B"), ("lat", "i"), ("lon", "i"), ("time", "I"), ("fix", "B"), ("sats", "B"),
              ("gsm", "B"), ("speed", "H"), ("course", "H"), ("hdop", "H"), ("alt", "h"), ("odometer", "I"),
              ("runtime", "I"), ("mcc", "H"), ("mnc", "H"), ("lac", "H"), ("cid", "H"), ("status", "H"),
              ("adc1", "H"), ("battery", "H"), ("power", "H"), ("geofence", "I")]


def ccc_record(**values: int) -> bytes:
    return b"".join(struct.pack("<" + fmt, values.get(name, 0)) for name, fmt in CCC_LAYOUT)


def ccc(records: list[bytes], size: int = 52) -> bytes:
    return struct.pack("<HHI", 0x0102, size, len(records)) + b"".join(r.ljust(size, b"\x00") for r in records)


def test_ccc_layout_is_52_bytes() -> None:
    assert len(ccc_record()) == 52


def test_ccc_record_fields() -> None:
    rec = ccc_record(event=23, lat=45_499_458, lon=-82_493_581, time=since_2000(AT), fix=1, sats=8, gsm=19,
                     speed=88, course=181, hdop=9, alt=-4, odometer=1000, runtime=77, mcc=302, mnc=220,
                     lac=0xD8D6, cid=0x6E1B, status=0x0102, adc1=5, battery=419, power=1218)
    decoded = decode(wire(b"CCC", ccc([rec, rec]), flag=b"K"))
    assert decoded.reply == wire(b"CCC", b"2", flag=b"K", at=b"@@")
    p = decoded.positions[0]
    assert p.fix_time == AT and (p.latitude, p.longitude) == (45.499458, -82.493581) and p.valid is True
    assert p.speed_kmh == 88 and p.course_deg == 181 and p.hdop == 0.9 and p.altitude_m == -4
    a = p.attributes
    assert a[keys.EVENT] == 23 and a[keys.ALARM] == "powerCut"
    assert a[keys.SATELLITES] == 8 and a[keys.ODOMETER_M] == 1000 and a["runtime"] == 77
    assert a[keys.CELL_TOWERS] == [{"mcc": 302, "mnc": 220, "lac": 0xD8D6, "cid": 0x6E1B, "rssi": 19}]
    assert a[keys.STATUS] == 0x0102 and a["adc1"] == 5
    assert a[keys.BATTERY_V] == 4.19 and a[keys.POWER_V] == 12.18


def test_ccc_longer_records_and_broken_sizes() -> None:
    assert len(decode(wire(b"CCC", ccc([ccc_record(fix=1)] * 3, size=60))).positions) == 3
    with pytest.raises(DecodeError):
        decode(wire(b"CCC", ccc([ccc_record()], size=40)))
    with pytest.raises(DecodeError):
        decode(wire(b"CCC", ccc([ccc_record()]) + b"\x00\x00"))
    assert len(decode(wire(b"CCC", ccc([ccc_record()]) + b"\x00\x00"), **LENIENT).positions) == 1


# --- fuzzing ---------------------------------------------------------------------------------------

SEEDS = real_frames(VECTORS)
LINES = [_line(v["id"]) for v in ALL if v["id"] != "meitrack-020"]
TOKENS = [b",", b"|", b"*", b"$$", b"\r\n", b".", b"-", b"A", b"V", b"\xfe", b"\x00", b"\xff", b"0", b"9"]
MODELS = [None, "MVT380", "MT90", "T1", "T366"]
FUZZ = fuzz_settings(300)


def refix(frame: bytes) -> bytes:
    """Recompute the checksum of a mutated frame so that it gets past the strict check."""
    body = frame[:-2] if frame.endswith(b"\r\n") else frame
    star = body.rfind(b"*")
    if star < 0:
        return frame
    head = body[: star + 1]
    return head + checksum(head) + b"\r\n"


def check(frame: bytes, model: str | None, lenient: bool) -> None:
    config: dict[str, object] = {"model": model} if model else {}
    if lenient:
        config.update(LENIENT)
    decoded = check_decoder(P, frame, Session(config=config))
    if decoded is not None:
        for p in decoded.positions:
            assert all_finite(p.attributes), p.attributes
            assert p.course_deg is None or 0 <= p.course_deg <= 360


flags = st.tuples(st.sampled_from(MODELS), st.booleans())


@FUZZ
@given(st.binary(max_size=2000))
def test_fuzz_next_frame(data: bytes) -> None:
    for buffer in (data, b"$$A" + data, b"$$A150,353358017784062,CCE," + data):
        frame, used = check_next_frame(P, buffer)
        if frame is not None:
            assert frame == buffer[:used]
        drain(P, buffer)


@FUZZ
@given(st.binary(max_size=600), flags)
def test_fuzz_decode_arbitrary(data: bytes, f: tuple[str | None, bool]) -> None:
    check(data, *f)
    for cmd in (b"AAA", b"CCE", b"CCC", b"D00", b"XYZ"):
        check(wire(cmd, data), *f)


@fuzz_settings(500)
@given(token_mutations(SEEDS, TOKENS), flags)
def test_fuzz_decode_mutated_frames(frame: bytes, f: tuple[str | None, bool]) -> None:
    check(frame, *f)
    check(refix(frame), *f)


@FUZZ
@given(chunk_mutations(SEEDS, b"0123456789ABCDEF,.|*-$"), flags)
def test_fuzz_decode_chunk_mutations(frame: bytes, f: tuple[str | None, bool]) -> None:
    check(refix(frame), *f)
    for cut in frames_of(P, frame):
        check(cut, *f)


@st.composite
def cce_payloads(draw: st.DrawFn) -> bytes:
    ids = st.one_of(st.integers(0, 0xFD), st.sampled_from([0xFE69, 0xFEF4, 0xFE31, 0xFE73, 0xFEA8, 0xFE00]))
    records = []
    for _ in range(draw(st.integers(0, 3))):
        records.append(cce_record(
            one=draw(st.lists(st.tuples(ids, st.integers(0, 0xFF)), max_size=6)),
            two=draw(st.lists(st.tuples(ids, st.integers(0, 0xFFFF)), max_size=6)),
            four=draw(st.lists(st.tuples(ids, st.integers(0, 0xFFFFFFFF)), max_size=6)),
            var=draw(st.lists(st.tuples(ids, st.binary(max_size=40)), max_size=4)),
            pad=draw(st.binary(max_size=3)),
        ))
    return cce(records)


@FUZZ
@given(cce_payloads(), flags)
def test_fuzz_well_formed_cce_records(payload: bytes, f: tuple[str | None, bool]) -> None:
    frame = wire(b"CCE", payload)
    check(frame, *f)
    decoded = decode(frame)  # well-formed records decode, whatever their parameters hold
    count = struct.unpack_from("<H", payload, 4)[0]
    assert len(decoded.positions) == count
    assert decoded.reply == wire(b"CCE", str(count).encode(), at=b"@@")
    assert frames_of(P, frame + frame) == [frame, frame]


@FUZZ
@given(real_frame_streams(LINES), st.integers(0, 100_000))
def test_fuzz_streams_split_anywhere(stream: bytes, split: int) -> None:
    whole, _left = drain(P, stream)
    assert frames_fed_in_chunks(P, stream, split % (len(stream) + 1)) == whole
    for frame in whole:
        check(frame, None, True)


@FUZZ
@given(st.sampled_from(LINES), st.integers(0, 99999))
def test_fuzz_length_field(frame: bytes, declared: int) -> None:
    comma = frame.index(b",")
    f = frame[:3] + str(declared).encode() + frame[comma:]
    drain(P, f * 2)
    check(f, None, False)


def test_fix_time_bounds_for_binary_time() -> None:
    rec = cce_record(four=[(0x04, 0xFFFFFFFF)])
    p = one(wire(b"CCE", cce([rec])))
    assert p.fix_time == EPOCH_2000 + timedelta(seconds=0xFFFFFFFF)
