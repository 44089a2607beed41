"""GT06 packets that are not the classic location reports: alarms with media (JC100/JC400),
information transfers (0x94), text answers, OBD, modular 4G reports, peripherals, BMS.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

from protocols import keys
from protocols.gt06_fields import (
    ADC1,
    AZ735_ALARMS,
    EVENT_ALARMS,
    EVENT_DATA,
    MODULE_EVENT_ALARMS,
    TEMP1,
    Msg,
    Reader,
    Variant,
    add_alarm,
    add_cell,
    apply_course_flags,
    bit,
    build_reply,
    read_gps,
    read_lbs,
    read_time,
    status_only,
    traccar_key,
)
from protocols.model import Decoded, DecodeError, Position, Session

_TRAILER = 6  # serial, CRC, CRLF


def _epoch(r: Reader) -> datetime:
    return datetime.fromtimestamp(r.u32(), UTC)


def info_power(m: Msg, session: Session) -> Decoded:
    """0x94 in a short frame: external power, signed centivolts."""
    p = status_only()
    p.attributes[keys.POWER_V] = m.r.i16() / 100
    return Decoded(positions=[p])


def command_text(m: Msg, session: Session) -> Decoded:
    """0x15: the device's text answer to a command (or its ICCID)."""
    r, p = m.r, status_only()
    size = r.u8()
    if size > 0:
        r.skip(4)  # server flag we sent with the command
        text = r.text(size - 4)
        if text.startswith("<ICCID:"):
            p.attributes[keys.ICCID] = text[7:27]
        else:
            p.attributes[keys.RESULT] = text
    return Decoded(positions=[p], reply=m.ack())


def status_temperature(m: Msg, session: Session) -> Decoded:
    """0x13 of personal trackers with a thermometer (22 bytes after the type)."""
    r, p = m.r, status_only()
    r.skip(1 + 2 + 1 + 1)  # information content, satellites, alarm, language
    p.attributes[keys.BATTERY_PCT] = r.u8()
    r.skip(1 + 2 + 1 + 2 + 2)  # working mode, voltage, reserved, working times, working time
    raw = r.u16()
    # Sign bit set means above zero on these devices.
    p.attributes[TEMP1] = (raw & 0x7FFF) / 10 if bit(raw, 15) else -(raw & 0x7FFF) / 10
    return Decoded(positions=[p], reply=m.ack())


def _u8(r: Reader) -> float:
    return r.u8()


def _u16(r: Reader) -> float:
    return r.u16()


def _u32(r: Reader) -> float:
    return r.u32()


def _milli(r: Reader) -> float:
    return r.u16() / 1000


def _text16(r: Reader) -> str:
    return r.text(16).strip()


_BMS_FIELDS: list[tuple[str, Callable[[Reader], float | str]]] = [
    ("relativeCapacity", _u8),
    ("remainingCapacity", _u16),
    ("absoluteCapacity", _u8),
    ("fullCapacity", _u16),
    ("batteryHealth", _u8),
    ("batteryTemp", lambda r: r.u16() / 10 - 273.1),  # decikelvin
    ("current", _u16),
    ("battery", _milli),
    ("cycleIndex", _u16),
    *[(f"batteryCell{i}", _milli) for i in range(1, 15)],
    ("currentChargeInterval", _u16),
    ("maxChargeInterval", _u16),
    ("barcode", _text16),
    ("batteryVersion", _u16),
    ("manufacturer", _text16),
    ("batteryStatus", _u32),
    ("controllerStatus", _u32),
    ("controllerFault", _u32),
]


def bms(m: Msg, session: Session) -> Decoded:
    """0x40 (WD-209 e-bike battery management)."""
    r = m.r
    r.skip(8)  # battery serial number
    p = status_only(_epoch(r))
    for name, read in _BMS_FIELDS:
        p.attributes[traccar_key(name)] = read(r)
    return Decoded(positions=[p], reply=m.ack())


def alarm(m: Msg, session: Session) -> Decoded:
    """0x95 (JC100/JC400 dashcams): event code, optional fix, optional video file names."""
    r = m.r
    jc400 = m.variant is Variant.JC400
    with_fix = m.data_length > 7
    if with_fix:
        p = m.blank()
        if jc400:
            r.skip(2 + 1)  # marker, version
        read_gps(r, p, m.tz, has_satellites=jc400, has_speed=jc400, long_speed=jc400, flags_first=jc400)
    else:
        p = status_only(read_time(r, m.tz))
    if jc400:
        p.attributes[keys.POWER_V] = r.u16() / 10
    event = r.u8()
    p.attributes[keys.EVENT] = event
    p.attributes[EVENT_DATA] = r.u16()
    if event == 0x01:
        add_alarm(p, "sos" if with_fix else "general")
    else:
        add_alarm(p, EVENT_ALARMS.get(event))
    files = r.remaining() - _TRAILER
    if files > 0:
        p.attributes[traccar_key("eventFiles")] = r.text(files)
    return Decoded(positions=[p], reply=m.ack())


_LOCATION_TEXT = re.compile(
    r"Current position!Lat:([NS])(\d+\.\d+),Lon:([EW])(\d+\.\d+),Course:(\d+\.\d+),Speed:(\d+\.\d+),"
    r"DateTime:(\d{4})-(\d\d)-(\d\d) +(\d\d):(\d\d):(\d\d)"
)


def string_info(m: Msg, session: Session) -> Decoded:
    """0x21: text answer, ASCII or UTF-16; a "Current position!" answer is a fix."""
    r = m.r
    r.skip(4)  # server flag
    ascii_text = r.u8() == 1
    raw = r.take(r.remaining() - _TRAILER)
    text = raw.decode("ascii", errors="replace") if ascii_text else raw.decode("utf-16-be", errors="replace")
    found = _LOCATION_TEXT.match(text)
    if not found:
        p = status_only()
        p.attributes[keys.RESULT] = text
        return Decoded(positions=[p])
    g = found.groups()
    try:
        y, mo, d, h, mi, sec = (int(x) for x in g[6:12])
        when = datetime(y, mo, d, h, mi, sec, tzinfo=UTC)
    except ValueError as exc:
        raise DecodeError("gt06: bad date in position text", m.frame) from exc
    lat, lon, course, speed = float(g[1]), float(g[3]), float(g[4]), float(g[5])
    if lat > 90 or lon > 180:
        raise DecodeError("gt06: coordinates out of range in position text", m.frame)
    p = Position(
        fix_time=when,
        device_time=when,
        latitude=-lat if g[0] == "S" else lat,
        longitude=-lon if g[2] == "W" else lon,
        course_deg=course if course <= 360 else None,
        speed_kmh=speed if speed <= 1609 else None,  # the text is in km/h
    )
    return Decoded(positions=[p])


_FUEL_TEXT = re.compile(
    r"!AIOIL,\d+,\d+\.\d+,(\d+\.\d+),[^,]+,\d{4},(\d+\.\d+),[01],\d+,[0-9A-Fa-f]{2}"
)
_INFO_STATUS_KEYS = {"ALM1": "alarm1Status", "ALM2": "alarm2Status", "ALM3": "alarm3Status",
                     "STA1": "otherStatus", "DYD": "engineStatus"}


def _info_status_text(r: Reader, p: Position) -> None:
    for item in r.text(r.remaining() - _TRAILER).split(";"):
        name, _, value = item.partition("=")
        if name in _INFO_STATUS_KEYS:
            try:
                p.attributes[traccar_key(_INFO_STATUS_KEYS[name])] = int(value, 16)
            except ValueError:
                continue


def info(m: Msg, session: Session) -> Decoded:
    """0x94 information transfer (7979 frames): the sub-type says what follows."""
    r, sub = m.r, m.r.u8()
    p = status_only()
    a = p.attributes
    if sub == 0x00:
        a[ADC1] = r.u16() / 100
    elif sub == 0x04:
        _info_status_text(r, p)
    elif sub == 0x05:
        if r.remaining() >= 6 + 1 + _TRAILER:
            p.device_time = read_time(r, m.tz)
        flags = r.u8()
        a[keys.DOOR] = bit(flags, 0)
        a[traccar_key("io1")] = bit(flags, 2)
    elif sub == 0x0A:
        r.skip(8 + 8)  # IMEI, IMSI
        a[keys.ICCID] = r.take(10).hex().replace("f", "")
    elif sub == 0x0B:
        content = m.length - 6
        if content == 1:
            a[keys.NETWORK_TECHNOLOGY] = "4G" if 0 < r.u8() < 0x80 else "2G"
        elif content == 2:
            a[keys.POWER_V] = r.u16() / 100
    elif sub == 0x0D:
        if r.peek() != ord("!"):
            r.skip(6)
        found = _FUEL_TEXT.match(r.text(r.remaining() - _TRAILER))
        if not found:
            return Decoded()
        a[TEMP1] = float(found[1])
        a[keys.FUEL] = float(found[2])
    elif sub == 0x1B:
        if chr(r.peek()).isascii() and chr(r.peek()).isalpha():
            a[keys.SERIAL] = r.text(r.remaining() - _TRAILER).strip()
        else:
            r.skip(2)  # header, type
            a[keys.DRIVER_UNIQUE_ID] = r.take(4).hex()
    elif sub == 0x1E:
        a[TEMP1] = r.i32() / 10
        a[keys.HUMIDITY_PCT] = r.i32() / 10
    else:
        return Decoded()
    return Decoded(positions=[p])


def az735(m: Msg, session: Session) -> Decoded:
    """AZ735 0x32 (location) and 0x33 (alarm) in 7979 frames: length-prefixed blocks."""
    r, p = m.r, m.blank()
    if not read_gps(r, p, m.tz, has_length=True):
        p = status_only(p.fix_time)
    if read_lbs(m, p, True):
        p.attributes[keys.RSSI] = r.u8()
    r.skip(r.u8())  # additional cell towers
    r.skip(r.u8())  # WiFi access points
    status = r.u8()
    p.attributes[keys.STATUS] = status
    if m.kind == 0x33:
        if status in (0xA0, 0xA1):
            p.attributes[keys.ARMED] = status == 0xA0
        add_alarm(p, AZ735_ALARMS.get(status))
    r.skip(r.u8())  # reserved extension
    return Decoded(positions=[p], reply=m.ack_extended())


# OBD PID (first two hex digits of the key, read as a number) -> (our key, scale of the hex value).
_OBD_PIDS: dict[int, tuple[str, float]] = {
    40: (keys.ODOMETER_M, 0.01),
    43: (keys.FUEL, 0.01),
    45: (traccar_key("coolantTemp"), 0.01),
    53: (keys.OBD_SPEED_KMH, 0.01),
    54: (keys.RPM, 0.01),
    71: (traccar_key("fuelUsed"), 0.01),
    73: (keys.ENGINE_HOURS_S, 0.01 * 0.001),  # Traccar-compatible: the value is read as ms
}


def obd(m: Msg, session: Session) -> Decoded:
    """0x8C (FM08ABC): ``pid=hex`` pairs."""
    r = m.r
    p = status_only(read_time(r, m.tz))
    p.attributes[keys.IGNITION] = r.u8() > 0
    for pair in r.text(r.remaining() - 18).split(","):
        name, sep, value = pair.partition("=")
        try:
            pid = int(name[:2], 16)
        except ValueError:
            continue
        if not sep:
            continue
        if pid == 74:
            p.attributes[keys.VIN] = value
        elif pid in _OBD_PIDS:
            key, scale = _OBD_PIDS[pid]
            try:
                p.attributes[key] = int(value, 16) * scale
            except ValueError:
                continue
    return Decoded(positions=[p])


def _module_fix(r: Reader, p: Position) -> None:
    """GPS module; an all-zero one (time 0) means no fix and is ignored."""
    seconds = r.u32()
    satellites, altitude = r.u8(), r.i16()
    lat_raw, lon_raw, speed, flags = r.u32(), r.u32(), r.u8(), r.u16()
    if seconds == 0:
        return
    p.fix_time = p.device_time = datetime.fromtimestamp(seconds, UTC)
    p.attributes[keys.SATELLITES] = satellites
    p.altitude_m = float(altitude) if -12262 <= altitude <= 18000 else None
    p.speed_kmh = float(speed)
    apply_course_flags(p, flags, lat_raw, lon_raw, r.data)


def _module_event(r: Reader, p: Position) -> None:
    event = r.u8()
    add_alarm(p, MODULE_EVENT_ALARMS.get(event))
    p.attributes[keys.EVENT] = event
    r.skip(4)  # time
    r.skip(r.u8())  # content


def _module_tag(r: Reader, p: Position) -> None:
    a = p.attributes
    a[traccar_key("tag1Id")] = r.take(6).hex()
    a[traccar_key("tag1Battery")] = r.u16() / 1000
    a[traccar_key("tag1BatteryLevel")] = r.u8()
    a[traccar_key("tag1Temp")] = r.i16() / 10
    a[traccar_key("tag1Humidity")] = r.i16()
    a[traccar_key("tag1Status")] = r.u8()


def _module_cell(r: Reader, p: Position) -> None:
    mcc, mnc, lac, cid, rssi = r.u16(), r.u16(), r.u16(), r.u24(), r.u8()
    if cid > 0:
        add_cell(p, mcc, mnc, lac, cid, rssi)


def _module_input(r: Reader, p: Position) -> None:
    value = r.u8()
    p.attributes[keys.DOOR] = value & 0x0F > 0
    p.attributes[traccar_key("tamper")] = value >> 4 > 0


def _set(key: str, read: Callable[[Reader], object]) -> Callable[[Reader, Position], None]:
    def apply(r: Reader, p: Position) -> None:
        p.attributes[key] = read(r)

    return apply


def _set_hdop(r: Reader, p: Position) -> None:
    p.hdop = r.u8() / 10


# Module id -> reader. Known modules are read at their documented size, like the vendor parser.
_MODULES: dict[int, Callable[[Reader, Position], None]] = {
    0x03: _set(keys.ICCID, lambda r: r.take(10).hex()),
    0x09: _set(keys.SATELLITES, _u8),
    0x0A: _set(keys.SATELLITES_VISIBLE, _u8),
    0x11: _module_cell,
    0x18: _set(keys.BATTERY_V, lambda r: r.u16() / 100),
    0x28: _set_hdop,
    0x29: _set(keys.INDEX, _u32),
    0x2A: _module_input,
    0x2B: _set(traccar_key("bootReason"), _u8),
    0x2E: _set(keys.ODOMETER_M, lambda r: r.u32le()),
    0x33: _module_fix,
    0x34: _module_event,
    0x7F: _module_tag,
}


def modular(m: Msg, session: Session) -> Decoded:
    """0x70 (Jimi 4G): a list of (id, length, value) modules."""
    r, p = m.r, status_only()
    while r.remaining() > _TRAILER:
        module, size = r.u16(), r.u16()
        handler = _MODULES.get(module)
        if handler is None:
            r.skip(size)
        else:
            handler(r, p)
    serial = r.u16() if r.remaining() >= 2 else m.serial
    return Decoded(positions=[p], reply=build_reply(0x70, serial))


def multimedia(m: Msg, session: Session) -> Decoded:
    # Photo chunks (WD-209): acknowledged so the device moves on; we store no media.
    return Decoded(reply=m.ack_extended())


def _printable(data: bytes) -> bool:
    return all(32 <= b < 127 or b in (9, 10, 13) for b in data)


def serial_data(m: Msg, session: Session) -> Decoded:
    """0x9B: pass-through from a serial peripheral; text if printable, else hex."""
    r, p = m.r, status_only()
    r.skip(1)  # external device type
    data = r.take(r.remaining() - _TRAILER)
    p.attributes[keys.RESULT] = data.decode("ascii").strip() if _printable(data) else data.hex()
    return Decoded(positions=[p])


def _peripheral_item(r: Reader, p: Position, item: int) -> None:
    """One 0xF2 (VL842 peripherals) item."""
    a = p.attributes
    if item == 0x000A:  # Bluetooth sensor event
        size = r.u16()
        r.skip(1)  # MAC address type
        a[traccar_key("mac")] = r.take(6).hex()
        event = r.u8()
        a[keys.EVENT] = event
        data = r.u8()
        if event > 0:
            a[EVENT_DATA] = data
        a[traccar_key("dataType")] = r.u8()
        a[traccar_key("dataDetails")] = r.take(size - 10).hex()
    elif item == 0x000C:  # external battery pack
        r.skip(1)
        a[traccar_key("externalBatteryLevel")] = r.u8()
        if r.u8() > 0:
            a[traccar_key("externalBatteryCharge")] = True
        a[traccar_key("externalBatteryCycles")] = r.u16()
        r.skip(6)
    else:
        size = r.u8()
        r.skip(r.u8() if size == 0 else size)


def _device_status_item(r: Reader, p: Position, item: int) -> None:
    """One 0xF1 (Jimi 4G device status) item."""
    a = p.attributes
    size = r.u8()
    if item == 0x01:
        a[keys.MOTION] = r.u8() in (0x02, 0x04)
    elif item == 0x02:
        a[keys.ARMED] = r.u8() > 0
    elif item == 0x04:
        a[keys.IGNITION] = r.u8() > 0
    elif item == 0x05:
        a[keys.POWER_V] = r.u16() / 100
    elif item == 0x07:
        a[keys.CHARGE] = r.u8() > 0
    elif item == 0x0A:
        a[traccar_key("chargeVoltage")] = r.u16()
    elif item == 0x0B:
        a[traccar_key("batteryTemp")] = r.u16() / 10
    else:
        r.skip(size)


def peripheral(m: Msg, session: Session) -> Decoded:
    r = m.r
    p = status_only(_epoch(r))
    item_reader = _peripheral_item if m.kind == 0xF2 else _device_status_item
    while r.remaining() > _TRAILER:
        item_reader(r, p, r.u16())
    # Answered in a 7878 frame even when the report came in a 7979 one.
    return Decoded(positions=[p], reply=build_reply(m.kind, m.serial))
