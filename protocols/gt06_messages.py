"""GT06 message handlers: one function per packet family, picked by an ordered rule table.

The order of ``RULES`` matters: several vendors reuse one protocol number (0x17 is WiFi or RFID,
0x34 is X1 GPS or SL4X cells, 0xA2 is GK310 WiFi or LWxG status), and the first matching rule
wins, as in the vendor documents' precedence that Traccar encodes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from protocols import gt06_reports, keys
from protocols.gt06_fields import (
    ADC1,
    CARD,
    GEOFENCE,
    TEMP1,
    Msg,
    Variant,
    add_alarm,
    add_cell,
    add_wifi,
    alarm_for,
    bit,
    bits,
    build_reply,
    read_bcd_time,
    read_gps,
    read_lbs,
    read_status_byte,
    read_time,
    status_only,
    traccar_key,
)
from protocols.model import Decoded, DecodeError, Position, Session

TZ_STATE = "gt06_tz_s"  # session.state key: UTC offset announced at login, seconds

LOGIN, HEARTBEAT, ADDRESS_REQUEST, TIME_REQUEST = 0x01, 0x23, 0x2A, 0x8A
_COMMAND_RESULTS = frozenset({0x80, 0x81, 0x82})  # device answers to our commands: never acked


Handler = Callable[[Msg, Session], Decoded]


def _acked(m: Msg, p: Position) -> Decoded:
    return Decoded(positions=[p], reply=m.ack())


def _imei(raw: bytes) -> str | None:
    digits = raw.hex()[1:]
    return digits if digits.isdigit() else None


# --- session and service packets -------------------------------------------------------------


def _login(m: Msg, session: Session) -> Decoded:
    imei = _imei(m.r.take(8))
    if imei is None:
        raise DecodeError("gt06: login IMEI is not BCD", m.frame)
    m.r.skip(2)  # type identification code
    offset = 0
    if m.data_length > 10 and m.r.remaining() >= 8:
        # Extended login: bits 15-4 hold the zone as decimal hhmm, bit 3 set means west of UTC.
        ext = m.r.u16()
        hhmm = ext >> 4
        offset = ((hhmm // 100) * 60 + hhmm % 100) * 60 * (-1 if ext & 0x8 else 1)
    session.state[TZ_STATE] = offset
    return Decoded(reply=build_reply(LOGIN, m.serial), unique_id=imei)


def _heartbeat(m: Msg, session: Session) -> Decoded:
    p = status_only()
    status = m.r.u8()
    p.attributes[keys.ARMED] = bit(status, 0)
    p.attributes[keys.IGNITION] = bit(status, 1)
    p.attributes[keys.CHARGE] = bit(status, 2)
    if m.r.remaining() >= 2 + 6:
        p.attributes[keys.BATTERY_V] = m.r.u16() / 100
    if m.r.remaining() >= 1 + 6:
        p.attributes[keys.RSSI] = m.r.u8()
    return Decoded(positions=[p], reply=build_reply(HEARTBEAT, m.serial))


def _address_request(m: Msg, session: Session) -> Decoded:
    # GK310 asks the server to geocode; we answer "not available" in its own format.
    text = b"NA&&NA&&0##"
    return Decoded(reply=build_reply(0x97, 0, bytes([len(text)]) + bytes(4) + text, extended=True))


def _time_request(m: Msg, session: Session) -> Decoded:
    now = datetime.now(UTC)
    content = bytes([now.year - 2000, now.month, now.day, now.hour, now.minute, now.second])
    return Decoded(reply=build_reply(TIME_REQUEST, 0, content))


def _no_reply(m: Msg, session: Session) -> Decoded:
    # Photo transfers (0x35 info, 0x36 chunks): we keep no media, so we never request the data.
    return Decoded()


def _other(m: Msg, session: Session) -> Decoded:
    if m.extended or m.kind in _COMMAND_RESULTS:
        return Decoded()
    return Decoded(reply=m.ack())


# --- cells ----------------------------------------------------------------------------------


_LBS_ONLY = frozenset({0x28, 0x2E, 0x24, 0xA1, 0x34})


def _lbs_multiple(m: Msg, session: Session) -> Decoded:
    r = m.r
    p = status_only(read_time(r, m.tz))
    counted = m.variant is Variant.WANWAY_S20
    leading_ta = counted or m.variant is Variant.SL4X
    if leading_ta:
        r.skip(1)  # timing advance
    mcc = r.u16()
    mnc = r.u16() if bit(mcc, 15) or m.variant is Variant.SL4X else r.u8()
    count = r.u8() if counted else 6 if m.kind == 0x33 else 7
    for _ in range(count):
        if m.kind in (0xA1, 0xA2):
            lac, cid = r.i32(), r.i64()
        elif m.kind in (0x33, 0x34):
            lac, cid = r.u16(), r.u32()
        else:
            lac, cid = r.u16(), r.u24()
        rssi = -r.u8()
        if lac > 0:
            add_cell(p, mcc & 0x7FFF, mnc, lac, cid, rssi)
    if not leading_ta:
        r.skip(1)  # timing advance
    if m.kind not in _LBS_ONLY:
        for _ in range(r.u8()):
            add_wifi(p, r.take(6), r.u8())
    return _acked(m, p)


def _wifi(m: Msg, session: Session) -> Decoded:
    r = m.r
    stamp = r.data[r.pos : r.pos + 6]
    four = m.kind == 0xF3
    # 0xF3 sends a binary UTC time (e.g. 14 0c 0b = 2020-12-11); 0x17/0x69 send BCD digits.
    p = status_only(read_time(r, timedelta(0)) if four else read_bcd_time(r))
    # 0x17/0x69 put the access point count where the length byte should be.
    count = r.u8() if four else m.frame[2]
    for _ in range(count):
        if four:
            r.skip(2)
        add_wifi(p, r.take(6), None if four else r.u8())
    if four:
        return Decoded(positions=[p])
    cells, mcc, mnc = r.u8(), r.u16(), r.u8()
    for _ in range(cells):
        lac, cid, rssi = r.u16(), r.u16(), r.u8()
        add_cell(p, mcc, mnc, lac, cid, rssi)
    # The answer echoes the time instead of a serial, with no CRC.
    return Decoded(positions=[p], reply=b"\x78\x78\x00" + bytes([m.kind]) + stamp + b"\r\n")


# --- location packets (0x10-0x37, 0xA0-0xA7) --------------------------------------------------

_GPS = frozenset({0x10, 0x11, 0x12, 0x16, 0x17, 0x1A, 0x1E, 0x22, 0x25, 0x26, 0x27, 0x2D, 0x31, 0x32, 0x37,
                  0xA0, 0xA2, 0xA4})
_LBS = frozenset({0x11, 0x12, 0x16, 0x17, 0x19, 0x22, 0x25, 0x26, 0x27, 0x2D, 0x31, 0x32, 0x37, 0xA0, 0xA2,
                  0xA4, 0xA5, 0xA7})
_STATUS = frozenset({0x13, 0x16, 0x19, 0x26, 0x27, 0x32, 0x36, 0xA2, 0xA4, 0xA5})
_WITH_GEOFENCE = frozenset({0x27, 0xA4})


def has_gps(m: Msg) -> bool:
    return m.kind in _GPS or (m.kind == 0xA3 and m.variant is not Variant.SEEWORLD)


def has_lbs(m: Msg) -> bool:
    return m.kind in _LBS or (m.kind == 0xA3 and m.variant is not Variant.SEEWORLD)


def has_status(m: Msg) -> bool:
    if m.kind in (0x22, 0x25):
        return m.nt
    return m.kind in _STATUS or (m.kind == 0xA3 and m.variant is Variant.SEEWORLD)


def is_location(m: Msg) -> bool:
    return not m.extended and (has_gps(m) or has_lbs(m) or has_status(m))


def _status_block(m: Msg, p: Position, nt_report: bool) -> None:
    r = m.r
    if m.kind == 0xA2:
        r.skip(1)  # network indicator
    read_status_byte(r, p, m.variant)
    if m.variant is Variant.OBD6:
        signal = r.u16()
        p.attributes[keys.SATELLITES] = bits(signal, 10, 15) + bits(signal, 5, 10)
        p.attributes[keys.RSSI] = bits(signal, 0, 5)
        add_alarm(p, alarm_for(r.u8(), m.model))
        r.skip(1)  # language
        p.attributes[keys.BATTERY_PCT] = r.u8()
        mode = r.u8()
        p.attributes[keys.POWER_V] = r.u16() / 100
        r.skip(1 + 2)  # reserved, working time
        if mode == 4:
            p.attributes[TEMP1] = r.i16() / 10
        return
    if m.kind == 0xA2 or nt_report:
        p.attributes[keys.POWER_V] = r.u16() / 100
    if m.kind == 0x13 and m.model == "R11":
        p.attributes[keys.POWER_V] = r.u16() / 100
    else:
        level = r.u8()
        if nt_report:
            p.attributes[keys.BATTERY_V] = level / 10
        elif level <= 6:
            p.attributes[keys.BATTERY_PCT] = level * 100 // 6  # GT06 voltage grade 0-6
        elif level <= 100:
            p.attributes[keys.BATTERY_PCT] = level
    p.attributes[keys.RSSI] = r.u8()
    if m.kind == 0x13 and m.model.startswith("LW"):
        p.attributes[keys.POWER_V] = (r.u16() & 0x0FFF) / 10
        return
    ext = r.u8()
    if m.kind in _WITH_GEOFENCE:
        ext += (r.peek() >> 4) << 8
    if m.kind == 0x13 and m.model == "SEEWORLD":
        p.attributes[keys.POWER_V] = float(ext)
    elif m.variant is not Variant.VXT01:
        add_alarm(p, alarm_for(ext, m.model))
    if m.vl and m.kind == 0x16:
        p.attributes[keys.EVENT] = ext  # VL103/G18 report an event code here besides alarms


def _gps_lbs1_extras(m: Msg, p: Position) -> None:
    """0x12 tails that differ per clone family (told apart by the length byte)."""
    r, v = m.r, m.variant
    if v is Variant.GT06E_CARD:
        p.attributes[keys.ODOMETER_M] = r.u32()
        card = r.text(r.u8())
        r.skip(2)  # alarm, swiped
        p.attributes[CARD] = card.strip()
    elif v is Variant.BENWAY:
        mask = r.u16()
        p.attributes[keys.IGNITION] = bit(mask, 15)
        p.attributes[traccar_key("in2")] = bit(mask, 14)
        if bit(mask, 12):
            value = mask & 0x1FF
            p.attributes[TEMP1] = -value if bit(mask, 9) else value
        else:
            value = mask & 0x3FF
            p.attributes[ADC1] = value if bit(mask, 13) else value / 10
    elif v in (Variant.VXT01, Variant.S5):
        read_status_byte(r, p, v)
        p.attributes[keys.POWER_V] = r.u16() / 100
        p.attributes[keys.RSSI] = r.u8()
        if v is Variant.VXT01:
            r.skip(1)  # alarm extension
            return
        add_alarm(p, alarm_for(r.u8(), m.model))
        p.attributes[traccar_key("oil")] = r.u16()
        temp = r.u8()
        p.attributes[TEMP1] = -(temp & 0x7F) if bit(temp, 7) else temp
        p.attributes[keys.ODOMETER_M] = r.u32() * 10
    elif v is Variant.WETRUST:
        p.attributes[keys.ODOMETER_M] = r.u32()
        p.attributes[CARD] = r.text(r.u8())
        if r.u8() > 0:
            add_alarm(p, "general")
        p.attributes[traccar_key("cardStatus")] = r.u8()
        p.attributes[keys.DRIVING_TIME_S] = r.u16()


def _tail(m: Msg, p: Position, nt_report: bool) -> None:
    """Optional fields after the status block; presence is told by type, family and bytes left."""
    r, kind, a = m.r, m.kind, p.attributes
    if kind == 0x36:
        while r.remaining() > 6:  # Jimi 4G status modules: id, length, value
            module, size = r.u16(), r.u8()
            if module == 0x0018:
                a[keys.BATTERY_V] = r.u16() / 100
            elif module == 0x0032:
                a[traccar_key("startupStatus")] = r.u8()
            elif module == 0x006A:
                a[keys.BATTERY_PCT] = r.u8()
            else:
                r.skip(size)
    if kind == 0xA2:
        a[keys.ODOMETER_M] = r.u32()
        a[keys.ENGINE_HOURS_S] = r.u32()
        r.skip(8)  # terminal id
        a[keys.INPUT] = r.u16()
    if kind == 0x12:
        _gps_lbs1_extras(m, p)
    if kind == 0x22 and m.variant is Variant.SEEWORLD:
        a[keys.IGNITION] = r.u8() > 0
        r.skip(2)  # reporting mode, supplementary transmission
        a[keys.ODOMETER_M] = r.u32()
        r.skip(4)  # travel time
        raw = r.u16()
        a[TEMP1] = (-(raw & 0x7FFF) if bit(raw, 15) else raw) / 100
        a[keys.HUMIDITY_PCT] = r.u16() / 100
    if kind == 0x32 and m.variant is Variant.SL4X:
        # Language byte, then altitude in the longer (0x29) form only.
        if r.remaining() > 6:
            r.skip(1)
        if r.remaining() >= 2 + 6:
            _altitude(p, r.i16())
    if kind in (0x22, 0x37, 0x2D, 0x31) and r.remaining() >= 3 + 6 and not m.nt:
        a[keys.IGNITION] = r.u8() > 0
        a[keys.EVENT] = r.u8()  # report reason
        a[keys.ARCHIVE] = r.u8() > 0
        if m.variant is Variant.SL4X:
            if r.remaining() > 2 + 6:
                a[keys.ODOMETER_M] = r.u32()
            _altitude(p, r.i16())
    if kind == 0x37:
        module, size = r.u16(), r.u8()
        if module == 0x0027:
            a[keys.POWER_V] = r.u16() / 100
        elif module == 0x002E:
            a[keys.ODOMETER_M] = r.u32()
        elif module == 0x003B:
            p.accuracy_m = r.u16() / 100
        else:
            r.skip(size)
    if kind == 0x17:
        a[keys.DRIVER_UNIQUE_ID] = r.take(8).hex()
        r.skip(1)  # validity
    if nt_report:
        a[keys.ODOMETER_M] = r.u24()
        a[keys.ENGINE_HOURS_S] = r.u24() * 60  # minutes on the wire
        if kind == 0x25 and (size := r.u8()) > 0:
            r.skip(1)  # driver id type
            a[keys.DRIVER_UNIQUE_ID] = r.take(size - 1).hex()
    if r.remaining() in (3 + 6, 3 + 4 + 6):
        a[keys.IGNITION] = r.u8() > 0
        r.skip(1)  # upload mode
        if r.u8() > 0:
            a[keys.ARCHIVE] = True
    if r.remaining() == 4 + 6:
        a[keys.ODOMETER_M] = r.u32()
    if kind in _WITH_GEOFENCE:
        a[GEOFENCE] = r.u8()


def _altitude(p: Position, metres: int) -> None:
    # Out-of-range values come from clones that leave the field unset; drop them.
    p.altitude_m = float(metres) if -12262 <= metres <= 18000 else None


def _location(m: Msg, session: Session) -> Decoded:
    r, kind = m.r, m.kind
    if kind == 0x19 and m.variant is Variant.SPACE10X:
        return Decoded()  # multi-cell report in a single-cell type; not a location
    if m.data_length <= 0:
        return Decoded(reply=m.ack())  # empty report some clones send as a keep-alive
    gps = has_gps(m)
    p = m.blank() if gps else status_only()
    if kind == 0x12 and m.model == "QH302R":
        p.unique_id = _imei(r.take(8))
    nt_report = m.nt and kind in (0x22, 0x25)
    if nt_report:
        r.skip(1)  # location source
        p.unique_id = _imei(r.take(8))
        p.device_time = read_time(r, m.tz)
    if gps:
        read_gps(r, p, m.tz)
    status = has_status(m)
    if has_lbs(m) and r.remaining() > 6:
        counted = status and kind not in (0x19, 0xA5, 0xA2) and not (
            kind == 0x16 and m.variant is Variant.VXT01)
        read_lbs(m, p, counted)
    if status:
        _status_block(m, p, nt_report)
    if kind in (0x36, 0xA2, 0x27, 0xA4) or nt_report:
        r.skip(1)  # language
    if m.vl and kind == 0x16 and r.remaining() >= 1 + 8 + 6:
        r.skip(1)  # language
        p.attributes[keys.DRIVER_UNIQUE_ID] = r.take(8).hex()
    _tail(m, p, nt_report)
    return _acked(m, p)


def _vl_driver_report(m: Msg, session: Session) -> Decoded:
    """VL103-family 0x36: GPS, one 4G-style cell (32-bit CI), ACC, battery, driver card.

    Layout inferred from Traccar's VL103 samples; unidentified bytes are skipped, not guessed.
    """
    r = m.r
    p = m.blank()
    read_gps(r, p, m.tz)
    mcc = r.u16()
    mnc = r.u16() if bit(mcc, 15) else r.u8()
    lac, cid = r.u16(), r.u32()
    add_cell(p, mcc & 0x7FFF, mnc, lac, cid)
    p.attributes[keys.IGNITION] = r.u8() > 0
    r.skip(4 + 2 + 1 + 1)
    p.attributes[keys.BATTERY_V] = r.u8() / 10
    r.skip(2 + 1)
    driver = r.take(8)
    if any(driver):
        p.attributes[keys.DRIVER_UNIQUE_ID] = driver.hex()
    return _acked(m, p)


def _gl21l_status(m: Msg, session: Session) -> Decoded:
    """GL21L 0xA3 status (length 0x18): only the step counter is identified (bytes 9-12)."""
    r = m.r
    p = status_only()
    r.skip(9)
    p.attributes[keys.STEPS] = r.u32()
    return _acked(m, p)


def _x1_gps(m: Msg, session: Session) -> Decoded:
    r, p = m.r, m.blank()
    r.skip(4)  # data and alarm flags
    read_gps(r, p, m.tz)
    r.skip(2)  # terminal info
    p.attributes[keys.ODOMETER_M] = r.u32()
    mcc, mnc, lac, cid = r.u16(), r.u8(), r.u16(), r.u32()
    add_cell(p, mcc, mnc, lac, cid)
    driver = r.u32()
    if driver:
        p.attributes[keys.DRIVER_UNIQUE_ID] = str(driver)
    p.attributes[keys.BATTERY_V] = r.u16() / 100
    p.attributes[keys.POWER_V] = r.u16() / 100
    ports = r.u32()
    p.attributes[keys.INPUT] = r.u8()
    p.attributes[keys.OUTPUT] = r.u8()
    for i in range(1, bits(ports, 20, 24) + 1):
        p.attributes[f"adc{i}"] = r.u16() / 100
    return Decoded(positions=[p])


def _sr411(m: Msg, session: Session) -> Decoded:
    r, p = m.r, m.blank()
    read_gps(r, p, m.tz)
    read_lbs(m, p, False)
    p.attributes[keys.IGNITION] = r.u8() > 0
    p.attributes[keys.POWER_V] = r.u16() / 100
    p.attributes[keys.BATTERY_V] = r.u16() / 100
    return Decoded(positions=[p])


def _ibutton(m: Msg, session: Session) -> Decoded:
    r, p = m.r, m.blank()
    imei = _imei(r.take(8))
    read_gps(r, p, m.tz)
    p.unique_id = imei
    read_lbs(m, p, False)
    p.attributes[keys.DRIVER_UNIQUE_ID] = str(r.u32() << 16 | r.u16())
    return _acked(m, p)


def _gps_lbs8(m: Msg, session: Session) -> Decoded:
    r, p = m.r, m.blank()
    read_gps(r, p, m.tz)
    r.skip(2)  # upload mode, re-upload flag
    read_lbs(m, p, False)
    return Decoded(positions=[p])


# --- rule table -------------------------------------------------------------------------------

RULES: list[tuple[Callable[[Msg], bool], Handler]] = [
    (lambda m: m.kind == LOGIN, _login),
    (lambda m: m.kind == HEARTBEAT, _heartbeat),
    (lambda m: m.kind == ADDRESS_REQUEST, _address_request),
    (lambda m: m.kind == TIME_REQUEST, _time_request),
    (lambda m: m.kind == 0x34 and m.variant is not Variant.SL4X, _x1_gps),
    (lambda m: m.kind == 0x35, _no_reply),
    (lambda m: (m.kind == 0x17 and m.variant is not Variant.RFID) or m.kind in (0x69, 0xF3), _wifi),
    (lambda m: m.kind == 0x94 and not m.extended, gt06_reports.info_power),
    (lambda m: m.kind == 0x24 and m.variant is Variant.SR411_MINI, _sr411),
    (lambda m: m.kind in (0x28, 0x2E, 0x24, 0x18, 0x2C, 0xA1, 0x34)
        or (m.kind == 0xA2 and m.variant is not Variant.LW4G)
        or (m.kind == 0x33 and not m.extended), _lbs_multiple),
    (lambda m: m.kind == 0x15, gt06_reports.command_text),
    (lambda m: m.kind == 0x40, gt06_reports.bms),
    (lambda m: m.kind == 0x13 and m.r.remaining() == 22, gt06_reports.status_temperature),
    (lambda m: m.kind == 0x61, _ibutton),
    (lambda m: m.kind == 0x36 and m.vl and not m.extended, _vl_driver_report),
    (lambda m: m.kind == 0xA3 and m.variant is Variant.GL21L, _gl21l_status),
    (is_location, _location),
    (lambda m: m.kind == 0x95, gt06_reports.alarm),
    (lambda m: m.kind == 0x21, gt06_reports.string_info),
    (lambda m: m.kind == 0x94, gt06_reports.info),
    (lambda m: m.kind == 0x36, _no_reply),
    (lambda m: m.kind in (0x32, 0x33), gt06_reports.az735),
    (lambda m: m.kind == 0x8C, gt06_reports.obd),
    (lambda m: m.kind == 0x70, gt06_reports.modular),
    (lambda m: m.kind == 0x41, gt06_reports.multimedia),
    (lambda m: m.kind == 0x9B, gt06_reports.serial_data),
    (lambda m: m.kind in (0xF1, 0xF2), gt06_reports.peripheral),
    (lambda m: m.kind == 0x38, _gps_lbs8),
]


def dispatch(m: Msg, session: Session) -> Decoded:
    for matches, handler in RULES:
        if matches(m):
            return handler(m, session)
    return _other(m, session)

