"""The layout-heavy Queclink ASCII reports: GTFRI (and GTRTL/GTGEO/GTDOG), GTERI, GTCAN, GTOBD, GTINF.

Their field lists vary by model and firmware (Queclink GV300CAN V12 §3.3, GV350M V4, GV500 V1.06,
GL300 V6; Traccar's decoder for the variants seen in the field). Each report is read from both
ends: the head by the model's table, the tail back from ``<send time>,<count>``, and in GTFRI the
position blocks are found by their shape, since firmwares put one to five fields before them.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import Any

from protocols import keys
from protocols.gl200_fields import (
    Block,
    Sentence,
    append_fields,
    device_status,
    hours_to_s,
    integer,
    km_to_m,
    looks_like_fix,
    motion_state,
    mv_to_v,
    number,
    put,
    read_block,
    read_fix,
    read_radio,
    tower,
)
from protocols.model import DecodeError, Position

NAME = "gl200"
MAX_BLOCKS = 15  # <Number> is 1-15 per the vendor documents

_VIN = re.compile(r"[0-9A-Z]{17}")
_STATUS = re.compile(r"[0-9A-Fa-f]{6}|[0-9A-Fa-f]{10}")
_MILEAGE = re.compile(r"\d{1,7}\.\d")
_HOUR_METER = re.compile(r"\d{1,5}(?::\d\d){0,2}")
_BATTERY = re.compile(r"\d{1,3}")
# GL5xx tail: CSQ RSSI, BER, backup battery (mV), battery %, mode, motion, temperature.
_GL5_TAIL = re.compile(
    r"\d{1,2},\d?,(?P<battery_mv>\d{1,5})?,(?P<battery_pct>\d{1,3}),[01],(?P<motion>[01]?)"
    r"(?:,(?P<temp>-?\d{1,3}\.\d)?)?(?:,.*)?"
)
_CEU = re.compile(r"GV3.*CEU")

Converter = Callable[[str], Any]


def _pct(text: str) -> int | None:
    value = integer(text)
    return value if value is not None and 0 <= value <= 100 else None


def _analog(p: Position, index: int, text: str) -> None:
    # Analog inputs are mV; an "F" prefix marks a fuel-sensor percentage on that input.
    if text.startswith("F"):
        put(p, f"fuel{index}", integer(text[1:]))
    else:
        put(p, f"adc{index}", mv_to_v(text))


# --- GTFRI --------------------------------------------------------------------------------------


def decode_fri(s: Sentence) -> list[Position]:
    v = s.v
    vin = v[3] if _VIN.fullmatch(s.at(3)) else None
    name = 4 if vin else 3
    # <device name>, <external power>, <report id/type>, <number>: the common layout. GT501 and
    # some GL50x firmwares put one or two more fields before the first block.
    start = name + 4
    count: int | None = integer(s.at(start - 1))
    if not looks_like_fix(v, start, empty_ok=True):
        found = next((i for i in range(name + 2, name + 8) if looks_like_fix(v, i)), None)
        if found is None:
            raise DecodeError(f"{NAME}: GT{s.type} layout not recognised", s.frame)
        start, count = found, None
    blocks: list[Block] = []
    i = start
    while len(blocks) < MAX_BLOCKS:
        block, i = read_fix(s, i)
        blocks.append(block)
        if looks_like_fix(v, i):
            continue  # GL30MEU: fixes back to back, one cell after the last
        i = read_radio(s, i, block)
        following = next((i + k for k in range(1, 5) if looks_like_fix(v, i + k)), None)
        if following is None and count is not None and len(blocks) < count \
                and looks_like_fix(v, i + 1, empty_ok=True):
            following = i + 1
        if following is None:
            break
        i = following
    positions = [s.position(block) for block in blocks]
    p = positions[-1]
    if vin:
        for q in positions:
            q.attributes[keys.VIN] = vin
    power = integer(s.at(name + 1)) if start == name + 4 else None
    if power is not None and power > 10:  # some firmwares send 0/1 in the reserved field
        p.attributes[keys.POWER_V] = power / 1000
    _fri_tail(s, p, i, len(v) - 2, obd=bool(vin) or s.model.startswith("GV500"))
    return positions


def _fri_tail(s: Sentence, p: Position, a: int, b: int, *, obd: bool) -> None:
    """What follows the last block's cell, one of three families of layouts."""
    tail = s.v[a:b]
    gl5 = _GL5_TAIL.fullmatch(",".join(tail))
    if gl5:
        put(p, keys.BATTERY_V, mv_to_v(gl5["battery_mv"] or ""))
        put(p, keys.BATTERY_PCT, _pct(gl5["battery_pct"]))
        if gl5["motion"]:
            p.attributes[keys.MOTION] = gl5["motion"] == "1"
        put(p, "temp1_c", number(gl5["temp"] or ""))
        return
    if tail and "." not in tail[0]:
        # GV series: append mask (and what it adds), mileage, hour meter, analog input, reserved
        # (two on GV58LAU since 2026), backup battery %, device status, GV500's OBD fields.
        j, appended = append_fields(s, a)
        rest = s.v[j:b]
        if len(rest) >= 6 and (not rest[0] or _MILEAGE.fullmatch(rest[0])) \
                and (not rest[1] or _HOUR_METER.fullmatch(rest[1])):
            p.attributes.update(appended)
            put(p, keys.ODOMETER_M, km_to_m(rest[0]))
            put(p, keys.ENGINE_HOURS_S, hours_to_s(rest[1]))
            _analog(p, 1, rest[2])
            at = 5 if _STATUS.fullmatch(rest[5]) or len(rest) < 7 or not _STATUS.fullmatch(rest[6]) else 6
            put(p, keys.BATTERY_PCT, _pct(rest[at - 1]))
            device_status(p, rest[at])
            if obd and len(rest) >= at + 4:
                put(p, keys.RPM, integer(rest[at + 1]))
                put(p, "fuel_consumption", number(rest[at + 2]))
                put(p, keys.FUEL_PCT, _pct(rest[at + 3]))
            return
    # GL200/GL300/GT501 short tails: [mileage or reserved or signal], [RSSI], battery % (or mileage).
    if tail and _MILEAGE.fullmatch(tail[0]):
        put(p, keys.ODOMETER_M, km_to_m(tail[0]))
    if len(tail) >= 2:
        if _BATTERY.fullmatch(tail[-1]):
            put(p, keys.BATTERY_PCT, _pct(tail[-1]))
        elif _MILEAGE.fullmatch(tail[-1]):
            put(p, keys.ODOMETER_M, km_to_m(tail[-1]))
    if len(tail) >= 3 and re.fullmatch(r"-?\d", tail[-2]):
        put(p, keys.RSSI, integer(tail[-2]))


# --- GTERI --------------------------------------------------------------------------------------


def _eri_layout(model: str, mask: int) -> list[str]:
    """Fields between the last block and the peripheral data, per model (GV300CAN V12 §3.3.1,
    GV350M V4, GL320M V3; Traccar for the GV500 and CEU variants)."""
    if model.startswith("GL5"):
        return ["battery_pct", "", "motion"]
    layout = ["odometer"] + ([] if model == "GL320M" else ["hours", "adc1"])
    if model.startswith("GV") and not model.startswith("GV6") and model != "GV350M":
        layout.append("adc2")
    if model in ("GV200", "GV310LAU", "GV350CEU"):
        layout.append("adc3")
    elif _CEU.fullmatch(model) or model.startswith("GV600M"):
        layout.append("")
    if model == "GV200":
        return [*layout, "input", "output", ""]
    if model == "GL320M":
        return [*layout, "battery_pct"] + (["external_battery"] if mask & 0x80 else [])
    return [*layout, "battery_pct", "status", ""]


def _eri_field(p: Position, name: str, text: str) -> None:
    if name == "odometer":
        put(p, keys.ODOMETER_M, km_to_m(text))
    elif name == "hours":
        put(p, keys.ENGINE_HOURS_S, hours_to_s(text))
    elif name.startswith("adc"):
        _analog(p, int(name[3:]), text)
    elif name == "battery_pct":
        put(p, keys.BATTERY_PCT, _pct(text))
    elif name == "external_battery":
        put(p, "external_battery", integer(text))
    elif name == "motion" and text:
        p.attributes[keys.MOTION] = (integer(text) or 0) > 0
    elif name in ("input", "output"):
        put(p, name, integer(text, 16))
    elif name == "status":
        device_status(p, text)


def decode_eri(s: Sentence) -> list[Position]:
    v, model = s.v, s.model
    i = 3
    vin = v[3] if model == "GV500" else None
    i += 2 if vin else 1  # VIN on GV500, device name
    mask = integer(s.at(i), 16)
    count = integer(s.at(i + 3))
    if mask is None or count is None or not 1 <= count <= MAX_BLOCKS:
        raise DecodeError(f"{NAME}: bad GTERI mask or number", s.frame)
    power = mv_to_v(s.at(i + 1))
    i += 4  # mask, external power, report id/type, number
    positions = []
    for _ in range(count):
        p = s.position()
        put(p, keys.VIN, vin)
        i = read_block(s, i, p)
        positions.append(p)
    p = positions[-1]
    layout = _eri_layout(model, mask)
    # GV65 firmware 3107 and others drop a field: the device status, when there, anchors the tail.
    if "status" in layout:
        k = layout.index("status")
        if k >= 2 and not _STATUS.fullmatch(s.at(i + k)) and _STATUS.fullmatch(s.at(i + k - 1)):
            del layout[k - 2]
    for name in layout:
        if i >= len(v) - 2:
            break
        _eri_field(p, name, v[i])
        i += 1
    put(p, keys.POWER_V, power)
    _Peripherals(s, p, i, len(v) - 2).read(mask)
    return positions


class _Peripherals:
    """The GTERI blocks the ERI mask adds, in bit order. A block that does not parse ends the
    reading: the positions are kept, the rest of the accessory data is dropped."""

    def __init__(self, s: Sentence, p: Position, i: int, end: int) -> None:
        self.s, self.p, self.i, self.end = s, p, i, end

    def take(self) -> str:
        if self.i >= self.end:
            raise _Stop
        self.i += 1
        return self.s.v[self.i - 1]

    def count(self) -> int:
        value = integer(self.take())
        if value is None or not 0 <= value <= 50:
            raise _Stop
        return value

    def read(self, mask: int) -> None:
        with contextlib.suppress(_Stop):
            self._read(mask)

    def _read(self, mask: int) -> None:
        p, model = self.p, self.s.model
        if mask & 0x01 and model != "GV350M":
            put(p, keys.FUEL, integer(self.take(), 16))  # digital fuel sensor, hex
        if mask & (1 << 29):
            self.i += 2
            data = integer(self.take(), 16) or 0
            if data & 0x01:
                put(p, keys.FUEL, integer(self.take(), 16))
            if data & 0x02:
                self.take()  # fuel height
        if mask & 0x02:
            self._one_wire()
        if mask & 0x04 and not self._can():
            return
        if (mask & 0x18 or (mask & 0x01 and model == "GV350M")) and self.i < self.end:
            self._fuel_sensors(mask)
        if mask & 0x80 and model != "GL320M":
            for _ in range(self.count()):
                self.take()  # serial number
                kind = self.take()
                self.take()  # temperature
                if kind == "2":
                    self.take()  # humidity
        if mask & 0x100 and model != "GL320M":
            self._bluetooth()

    def _one_wire(self) -> None:
        # Device id, type (1 temperature, 2 iButton), data: temperature in 1/16 degC, int16 hex.
        for n in range(1, self.count() + 1):
            self.take()
            kind, data = self.take(), self.take()
            if kind == "2":
                continue
            if "." in data:
                put(self.p, f"temp{n}_c", number(data))
            elif (raw := integer(data, 16)) is not None and len(data) <= 4:
                self.p.attributes[f"temp{n}_c"] = (raw - 0x10000 if raw >= 0x8000 else raw) * 0.0625

    def _can(self) -> bool:
        """The CAN block (device state, CAN mask, its fields): False when its length is unknown."""
        self.take()
        can_mask = integer(self.take(), 16)
        if can_mask is None:
            return False
        self.i = read_can_fields(self.s, self.p, can_mask, self.i, self.end)
        return not can_mask & 0x3FC00000  # only bits 0-21 have a settled field count

    def _fuel_sensors(self, mask: int) -> None:
        for _ in range(self.count()):
            self.take()  # sensor type
            if self.s.model == "GV350M":
                self.take()  # UART id
                if mask & 0x01:
                    put(self.p, keys.FUEL, integer(self.take(), 16))
            if mask & 0x08:
                put(self.p, keys.FUEL_PCT, number(self.take()))
            if mask & 0x10:
                put(self.p, keys.FUEL, number(self.take()))  # volume, litres
            if mask & 0x400:
                self.take()  # fuel temperature

    def _bluetooth(self) -> None:
        # Per accessory: index, type, model, [raw length on GV600M], raw data, append mask and
        # the fields it announces (GV300CAN V12 p.44; bits 7-14 from Traccar).
        for n in range(1, self.count() + 1):
            self.i += 4 if self.s.model.startswith("GV600M") else 3
            self.take()
            append = integer(self.take(), 16)
            if append is None:
                raise _Stop
            for bit, name, convert in _ACCESSORY_FIELDS:
                if append & (1 << bit):
                    value = self.take()
                    if name:
                        put(self.p, f"tag{n}_{name}", convert(value) if value else None)


class _Stop(Exception):
    pass


def _text(value: str) -> str:
    return value


_ACCESSORY_FIELDS: list[tuple[int, str, Converter]] = [
    (0, "", _text), (1, "id", _text), (2, "", _text), (3, "", _text), (4, "temp", number),
    (5, "humidity", integer), (7, "", _text), (8, "", _text), (9, "", _text), (10, "", _text),
    (11, "", _text), (12, "", _text), (13, "battery", integer), (14, "", _text),
]


# --- GTCAN --------------------------------------------------------------------------------------


def _prefixed(prefixes: tuple[str, ...]) -> Converter:
    """A number behind one of the vendor's unit letters (``H123``, ``L/H1.5``, ``P94.80``)."""
    def convert(text: str) -> float | None:
        for prefix in prefixes:
            if text.startswith(prefix):
                return number(text[len(prefix):])
        return None
    return convert


def _hectometres(text: str) -> float | None:
    # "H" = hectometres; "I" = impulses, not a distance (GV300CAN V12 p.320).
    value = number(text[1:]) if text.startswith("H") else None
    return None if value is None else value * 100


def _fuel_level(p: Position, text: str) -> None:
    # "L" litres, "P" percent: the unit travels with the value.
    if text.startswith("P"):
        put(p, keys.FUEL_PCT, number(text[1:]))
    elif text.startswith("L"):
        put(p, keys.FUEL, number(text[1:]))


def _hours(text: str) -> float | None:
    value = number(text)
    return None if value is None else round(value * 3600, 3)


# CAN report mask (GV300CAN V12 pp.131-132, pp.319-326), in emission order: bit 5 (RPM) comes
# before bit 4 (speed). A None key is a field we step over.
_CAN_FIELDS: list[tuple[int, str | None, Converter]] = [
    (0, keys.VIN, _text),
    (1, keys.IGNITION, lambda t: None if integer(t) is None else (integer(t) or 0) > 0),
    (2, "obd_odometer", _hectometres),
    (3, "fuel_used", _prefixed(("L", ""))),
    (5, keys.RPM, integer),
    (4, keys.OBD_SPEED_KMH, integer),
    (6, "coolant_temp", integer),
    (7, "fuel_consumption", _prefixed(("L/H", "H", "M"))),
    (8, "", _text),  # fuel level: unit prefix, see _fuel_level
    (9, "range", lambda t: None if integer(t) is None else (integer(t) or 0) * 100),
    (10, "throttle", integer),
    (11, keys.ENGINE_HOURS_S, _hours),
    (12, keys.DRIVING_TIME_S, _hours),
    (13, "idle_hours", number),
    (14, "idle_fuel_consumption", _prefixed(("L", ""))),
    (15, "axle_weight", integer),
    (16, "tachograph_info", lambda t: integer(t, 16)),
    (17, "indicators", lambda t: integer(t, 16)),
    (18, "lights", lambda t: integer(t, 16)),
    (19, "doors", lambda t: integer(t, 16)),
    (20, "vehicle_overspeed", number),  # hours
    (21, "engine_overspeed", number),  # hours
]
# Expansion mask (bit 29): the fields worth keeping, up to the driver identification.
_CAN_EXPANSION: list[tuple[int, str | None, Converter]] = [
    (0, "ad_blue_level", _prefixed(("L", "P", ""))),
    (1, "axle_weight1", integer), (2, "axle_weight3", integer), (3, "axle_weight4", integer),
    (4, None, _text), (5, None, _text), (6, None, _text),
    (7, "adc1", mv_to_v),
    (8, None, _text), (9, None, _text), (10, None, _text), (11, None, _text), (12, None, _text),
    (13, None, _text), (14, None, _text),
    (15, "driver1_card", _text), (16, "driver2_card", _text), (17, "driver1_name", _text),
    (18, "driver2_name", _text), (19, "registration", _text),
]


def read_can_fields(s: Sentence, p: Position, mask: int, i: int, end: int) -> int:
    """The CAN mask's fields from ``i`` (not past ``end``); returns where they stop."""
    def fields(table: list[tuple[int, str | None, Converter]], bits: int) -> bool:
        nonlocal i
        for bit, key, convert in table:
            if not bits & (1 << bit):
                continue
            if i >= end:
                return False
            text = s.v[i]
            i += 1
            if key == "" and text:
                _fuel_level(p, text)
            elif key and text:
                put(p, key, convert(text))
        return True

    if not fields(_CAN_FIELDS, mask):
        return i
    # GV350M and the CEU models add counters after bit 21 (Traccar's reading of their manuals).
    extra = (22, 23, 24) if s.model == "GV350M" else (23, 24, 25, 26, 27) if _CEU.fullmatch(s.model) \
        else (22,) if mask & (1 << 22) else ()
    i += sum(1 for bit in extra if mask & (1 << bit))
    if mask & (1 << 29) and i < end:
        expansion = integer(s.v[i], 16)
        i += 1
        if expansion is not None:
            fields(_CAN_EXPANSION, expansion)
    return min(i, end)


def decode_can(s: Sentence) -> list[Position]:
    v = s.v
    mask = integer(s.at(6), 16)
    if mask is None or len(v) < 9:
        raise DecodeError(f"{NAME}: bad GTCAN mask", s.frame)
    end = len(v) - 2
    gsm = v[end - 5 : end] if mask & (1 << 31) and end - 5 >= 7 else None
    gnss_at = end - (5 if gsm else 0) - 7
    block = None
    if mask & (1 << 30) and gnss_at >= 7 and looks_like_fix(v, gnss_at, empty_ok=True):
        block, _ = read_fix(s, gnss_at)
        if gsm is not None and (cell := tower(*gsm[:4])) is not None:
            block.towers.append(cell)
    p = s.position(block)
    front_end = gnss_at if mask & (1 << 30) else end
    read_can_fields(s, p, mask, 7, front_end)
    return [p]


# --- GTOBD --------------------------------------------------------------------------------------

# OBD report mask (GV500 V1.06 pp.58-59, 120-123): field per bit in order; 16 and 19 as Traccar
# reads them. Bits 20-22 are the GNSS block, the cell and the mileage.
_OBD_FIELDS: list[tuple[int, str | None, Converter]] = [
    (0, keys.VIN, _text), (1, "odb_connect", lambda t: t == "1" if t else None),
    (2, "obd_power_v", mv_to_v), (3, None, _text), (4, keys.RPM, integer),
    (5, keys.OBD_SPEED_KMH, integer), (6, "coolant_temp", integer),
    (7, "fuel_consumption", number),  # "Inf"/"NaN" do not parse: left out
    (8, "dtcs_cleared_distance", integer), (9, "mil_distance", integer),
    (10, "mil", lambda t: t == "1" if t else None), (11, "dtcs_number", integer),
    (12, "dtcs_codes", _text), (13, "throttle", integer), (14, "engine_load", integer),
    (15, keys.FUEL_PCT, integer), (16, None, _text), (17, None, _text), (18, None, _text),
    (19, "obd_odometer", lambda t: None if integer(t) is None else (integer(t) or 0) * 1000),
]


def decode_obd(s: Sentence) -> list[Position]:
    # +RESP:GTOBD,<version>,<IMEI>,<VIN>,<device name>,<report type>,<OBD mask>,<fields>...
    mask = integer(s.at(6), 16)
    if mask is None:
        raise DecodeError(f"{NAME}: bad GTOBD mask", s.frame)
    p = s.position()
    i, end = 7, len(s.v) - 2
    for bit, key, convert in _OBD_FIELDS:
        if mask & (1 << bit):
            if i >= end:
                raise DecodeError(f"{NAME}: GTOBD cut short", s.frame)
            if key and s.v[i]:
                put(p, key, convert(s.v[i]))
            i += 1
    if mask & (1 << 20):
        block, i = read_fix(s, i)
        if mask & (1 << 21):
            i = read_radio(s, i, block) + 1  # and the reserved field
        block.apply(p)
    if mask & (1 << 22) and i < end:
        put(p, keys.ODOMETER_M, km_to_m(s.v[i]))
    return [p]


# --- GTINF --------------------------------------------------------------------------------------


def decode_inf(s: Sentence) -> list[Position]:
    """Device information (GV350M V3.11 §3.3.2): state, ICCID, signal, voltages, charging."""
    if s.gt300:
        return []  # the GT300 dialect's GTINF has another layout, and no position
    v, model = s.v, s.model
    p = s.position()
    i = 3
    if model.startswith("GV500") and _VIN.fullmatch(s.at(3)) and not _VIN.fullmatch(s.at(4)):
        put(p, keys.VIN, v[3])
        i += 1
    i += 1  # device name
    state = integer(s.at(i), 16)
    if state is not None:
        motion_state(p, state)
    put(p, keys.ICCID, s.at(i + 1) or None)
    put(p, keys.RSSI, integer(s.at(i + 2)))
    i += 5  # state, ICCID, CSQ RSSI, CSQ BER, external power supply state
    main = s.at(i)
    if "." in main:
        put(p, keys.ODOMETER_M, km_to_m(main))  # GL300: mileage in this slot
    else:
        put(p, keys.POWER_V, mv_to_v(main))
    i += 1
    if model in ("GV350M", "GV310LAU"):
        i += 1  # expansion mask / network type
    elif model != "GV500VC":
        put(p, "power2", mv_to_v(s.at(i)))
        i += 1
    put(p, keys.BATTERY_V, number(s.at(i)))
    if s.at(i + 1) == "1":
        p.attributes[keys.CHARGE] = True
    i += 2
    if model == "GV310LAU":
        i += 5  # LED, power saving, external antenna, last fix time, pin mask
        for n in (1, 2, 3):
            put(p, f"adc{n}", mv_to_v(s.at(i)))
            i += 1
    return [p]
