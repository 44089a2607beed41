"""Teltonika AVL IO elements: what each IO id means, per device family.

Sources: Teltonika's "FMB AVL ID" wiki table (ids, widths, multipliers) and Traccar's decoder,
whose attribute names we keep (through :func:`protocols.keys.from_traccar`) so users moving from
Traccar find the same data.

Ids below 256 are stable across the current families (FMB/FMC/FMM/FMT/FMU/MTB/MSP...). Some are
reused by other lines, so the family tables apply to the configured ``model``
(``session.config["model"]``) or, when no model is configured, to the FMB family, which is what
almost every Teltonika tracker in service today is. Any id we do not know is kept raw as
``io<id>`` (a number, or lowercase hex for 16-byte and variable-length values).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple

from protocols import keys
from protocols.model import DecodeError, Position

__all__ = [
    "Reader",
    "add_alarm",
    "apply_gh3000",
    "apply_io",
    "apply_variable",
    "finish_record",
    "operator_codes",
]

Apply = Callable[[Position, bytes], None]
Family = Callable[[str | None], bool]


class Reader:
    """Big-endian cursor over ``data[pos:end]``; running short raises DecodeError with the frame."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise DecodeError(f"teltonika: truncated at byte {self.pos} (wanted {n})", self.data)
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def sint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big", signed=True)

    def sub(self, n: int) -> Reader:
        """The next ``n`` bytes as a reader of their own (errors still carry the whole frame)."""
        start = self.pos
        self.take(n)
        return Reader(self.data, start, start + n)


# --- value conversions (an element's width is set by the group it is sent in) ---


def _u(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


def _s(raw: bytes) -> int:
    return int.from_bytes(raw, "big", signed=True)


class Element(NamedTuple):
    """How to read one IO id: the width Teltonika's table gives it, and where the value goes."""

    width: int
    apply: Apply


def _set(key: str, convert: Callable[[bytes], Any] = _u) -> Apply:
    def apply(p: Position, raw: bytes) -> None:
        p.attributes[key] = convert(raw)

    return apply


def _scaled(key: str, factor: float, signed: bool = False) -> Apply:
    def apply(p: Position, raw: bytes) -> None:
        p.attributes[key] = round((_s(raw) if signed else _u(raw)) * factor, 6)

    return apply


def num(key: str, width: int, factor: float = 1, *, signed: bool = False) -> Element:
    if factor == 1:
        return Element(width, _set(key, _s if signed else _u))
    return Element(width, _scaled(key, factor, signed))


def flag(key: str) -> Element:
    return Element(1, _set(key, lambda raw: _u(raw) > 0))


def add_alarm(p: Position, alarm: str | None) -> None:
    """Several alarms in one record are comma-joined, Traccar's convention."""
    if not alarm:
        return
    current = p.attributes.get(keys.ALARM)
    if not current:
        p.attributes[keys.ALARM] = alarm
    elif alarm not in str(current).split(","):
        p.attributes[keys.ALARM] = f"{current},{alarm}"


def _alarm_if_set(alarm: str) -> Apply:
    def apply(p: Position, raw: bytes) -> None:
        add_alarm(p, alarm if _u(raw) > 0 else None)

    return apply


def alarm(name: str) -> Element:
    return Element(1, _alarm_if_set(name))


def alarm_choice(choices: dict[int, str]) -> Element:
    def apply(p: Position, raw: bytes) -> None:
        add_alarm(p, choices.get(_u(raw)))

    return Element(1, apply)


def _driver_ibutton(p: Position, raw: bytes) -> None:
    # The iButton serial is sent least significant byte first; readers print it MSB first.
    if _u(raw):
        p.attributes[keys.DRIVER_UNIQUE_ID] = raw[::-1].hex().upper()


def _gnss_speed(p: Position, raw: bytes) -> None:
    # IO 24 is the GNSS speed in km/h, the same as the record's; Traccar lets it win.
    p.speed_kmh = float(_u(raw))


def _hdop(p: Position, raw: bytes) -> None:
    p.hdop = _u(raw) / 10


def _iccid(p: Position, raw: bytes) -> None:
    p.attributes[keys.ICCID] = str(_s(raw))


# --- device families (regexes after Traccar's model sets) ---

_FMB_RE = re.compile(r"FM[B-Z]...|MTB100|MSP500")
_FM6_RE = re.compile(r"FM.6..")


def _any(model: str | None) -> bool:
    return True


def _fmb(model: str | None) -> bool:
    return model is None or _FMB_RE.fullmatch(model) is not None


def _fm6(model: str | None) -> bool:
    return model is not None and _FM6_RE.fullmatch(model) is not None


def _fmb_not6(model: str | None) -> bool:
    return _fmb(model) and not _fm6(model)


def _fmb003(model: str | None) -> bool:
    return model == "FMB003"


# id -> [(family, element)]; the first whose family matches the model and whose width matches
# the group the value came in wins. A width other than the table's means the id is something
# else on this device (older FM1xxx/FM4xxx lines reuse many ids), so it stays raw.
_TABLE: dict[int, list[tuple[Family, Element]]] = {}


def _register(family: Family, entries: dict[int, Element]) -> None:
    for io_id, element in entries.items():
        _TABLE.setdefault(io_id, []).append((family, element))


_register(_any, {
    1: flag("in1"),
    2: flag("in2"),
    3: flag("in3"),
    4: flag("in4"),
    16: num(keys.ODOMETER_M, 4),
    17: num("axis_x", 2, signed=True),
    18: num("axis_y", 2, signed=True),
    19: num("axis_z", 2, signed=True),
    21: num(keys.RSSI, 1),
    25: num("ble_temp1", 2, 0.01, signed=True),
    26: num("ble_temp2", 2, 0.01, signed=True),
    27: num("ble_temp3", 2, 0.01, signed=True),
    28: num("ble_temp4", 2, 0.01, signed=True),
    66: num(keys.POWER_V, 2, 0.001),
    67: num(keys.BATTERY_V, 2, 0.001),
    78: Element(8, _driver_ibutton),
    179: flag("out1"),
    180: flag("out2"),
    181: num(keys.PDOP, 2, 0.1),
    182: Element(2, _hdop),
    199: num(keys.TRIP_ODOMETER_M, 4),
    236: alarm("general"),
    239: flag(keys.IGNITION),
    240: flag(keys.MOTION),
    241: num("operator", 4),
    253: alarm_choice({1: "hardAcceleration", 2: "hardBraking", 3: "hardCornering"}),
})

_register(_fmb_not6, {
    80: num("data_mode", 1),
    81: num(keys.OBD_SPEED_KMH, 1),
    82: num("throttle", 1),
    83: num("fuel_used", 4, 0.1),
    84: num(keys.FUEL, 2, 0.1),
    85: num(keys.RPM, 2),
    87: num("obd_odometer", 4),
    89: num(keys.FUEL_PCT, 1),
})

_register(_fmb003, {389: num("obd_odometer", 4, 1000)})

_register(_fm6, {700 + i: num(f"ble_temp{i}", 2, 0.01, signed=True) for i in range(1, 5)})

_register(_fmb, {
    9: num("adc1", 2, 0.001),
    10: num("adc2", 2, 0.001),
    11: Element(8, _iccid),
    12: num("fuel_used", 4, 0.001),
    13: num("fuel_consumption", 2, 0.01),
    24: Element(2, _gnss_speed),
    30: num("fault_count", 1),
    31: num("engine_load", 1),
    32: num("coolant_temp", 1, signed=True),
    36: num(keys.RPM, 2),
    43: num("mil_distance", 2),
    57: num("hybrid_battery_level", 1, signed=True),
    68: num("battery_current", 2, 0.001),
    72: num("temp1_c", 4, 0.1, signed=True),
    73: num("temp2_c", 4, 0.1, signed=True),
    74: num("temp3_c", 4, 0.1, signed=True),
    75: num("temp4_c", 4, 0.1, signed=True),
    107: num("fuel_used", 4, 0.1),
    110: num("fuel_consumption", 2, 0.1),
    113: num(keys.BATTERY_PCT, 1),
    115: num("engine_temp", 2, 0.1, signed=True),
    175: alarm_choice({0: "geofenceExit", 1: "geofenceEnter"}),
    200: num("sleep_mode", 1),
    205: num("cid2g", 2),
    206: num("lac", 2),
    232: flag("cng_status"),
    233: num("cng_used", 4, 0.1),
    234: num("cng_level", 2),
    235: num("oil_level", 1),
    246: alarm("tow"),
    247: alarm("accident"),
    249: alarm("jamming"),
    251: alarm("idle"),
    252: alarm("powerCut"),
    636: num("cid4g", 4),
    662: flag(keys.DOOR),
    **{10643 + i: num(f"temp_probe{i}", 2, 0.01, signed=True) for i in range(1, 7)},
    **{10799 + i: num(f"eye_temp{i}", 2, 0.01, signed=True) for i in range(1, 5)},
    **{10831 + i: num(f"eye_roll{i}", 2, signed=True) for i in range(1, 5)},
})


def apply_io(p: Position, io_id: int, raw: bytes, model: str | None) -> None:
    """One fixed-width IO element (1, 2, 4 or 8 bytes) of codecs 8, 8E and 16."""
    for family, element in _TABLE.get(io_id, ()):
        if element.width == len(raw) and family(model):
            element.apply(p, raw)
            return
    # Unknown ids keep Traccar's raw reading: unsigned, except 8-byte values (a Java long).
    p.attributes[f"io{io_id}"] = _s(raw) if len(raw) == 8 else _u(raw)


# Codec 7 (GH3000 personal trackers) numbers its elements differently.
_GH3000: dict[int, Apply] = {
    1: _set(keys.BATTERY_PCT),
    2: _set("usb_connected", lambda raw: _u(raw) > 0),
    5: _set("uptime"),
    20: _hdop,
    21: _scaled(keys.VDOP, 0.1),
    22: _scaled(keys.PDOP, 0.1),
    67: _scaled(keys.BATTERY_V, 0.001),
    221: _set("button"),
    222: _alarm_if_set("sos"),
    240: _set(keys.MOTION, lambda raw: _u(raw) > 0),
    244: _set("roaming", lambda raw: _u(raw) > 0),
}


def apply_gh3000(p: Position, io_id: int, raw: bytes) -> None:
    apply = _GH3000.get(io_id)
    if apply is None:
        p.attributes[f"io{io_id}"] = _u(raw)
    else:
        apply(p, raw)


# --- codec 8E variable-length elements ---


def _ascii(raw: bytes) -> str:
    return raw.decode("ascii", "replace")


def _beacons(p: Position, r: Reader) -> None:
    # IO 385 "Beacon": one header byte, then per beacon a flags byte and an iBeacon
    # (UUID, major, minor) or Eddystone (namespace, instance) id, RSSI, optional battery/temp.
    r.take(1)
    index = 1
    while r.remaining > 0:
        flags = r.uint(1)
        prefix = f"beacon{index}_"
        if flags >> 4:
            p.attributes[prefix + "uuid"] = r.take(16).hex()
            p.attributes[prefix + "major"] = r.uint(2)
            p.attributes[prefix + "minor"] = r.uint(2)
        else:
            p.attributes[prefix + "namespace"] = r.take(10).hex()
            p.attributes[prefix + "instance"] = r.take(6).hex()
        p.attributes[prefix + "rssi"] = r.sint(1)
        if flags & 0x02:
            p.attributes[prefix + "battery"] = round(r.uint(2) * 0.01, 6)
        if flags & 0x04:
            p.attributes[prefix + "temp"] = r.uint(2)
        index += 1


def _tag_low_battery_flags(p: Position, prefix: str, r: Reader) -> None:
    flag = r.uint(1)
    if flag & 0x40:
        p.attributes[prefix + "low_battery"] = True
    if flag & 0x80:
        p.attributes[prefix + "voltage"] = r.uint(1) * 10 + 2000  # millivolts


_TAG_PARAMS: dict[int, tuple[str, Callable[[Reader, int], Any]]] = {
    0: ("rssi", lambda r, n: r.sint(1)),
    1: ("id", lambda r, n: r.take(n).hex()),
    5: ("name", lambda r, n: r.take(n).decode("utf-8", "replace").rstrip("\x00")),
    6: ("temp", lambda r, n: r.sint(2)),
    7: ("humidity", lambda r, n: r.uint(1)),
    8: ("magnet", lambda r, n: r.uint(1) > 0),
    9: ("motion", lambda r, n: r.uint(1) > 0),
    10: ("motion_count", lambda r, n: r.uint(2)),
    11: ("pitch", lambda r, n: r.sint(1)),
    12: ("angle_roll", lambda r, n: r.sint(2)),
    13: ("low_battery", lambda r, n: r.uint(1)),
    14: ("battery", lambda r, n: r.uint(2)),
    15: ("mac", lambda r, n: r.take(6).hex()),
}


def _ble_tags(p: Position, r: Reader) -> None:
    # BLE sensor lists (EYE sensors and beacons, IO 548/10828/10829/10831/11317): a header
    # byte, then per tag a length-prefixed run of (parameter id, length, value).
    r.take(1)
    index = 1
    while r.remaining > 0:
        tag = r.sub(r.uint(1))
        prefix = f"tag{index}_"
        while tag.remaining > 0:
            param, size = tag.uint(1), tag.uint(1)
            value = tag.sub(size)
            if param == 2:
                _tag_low_battery_flags(p, prefix, value)
            elif param in _TAG_PARAMS:
                name, read = _TAG_PARAMS[param]
                p.attributes[prefix + name] = read(value, size)
        index += 1


_TAG_LISTS = frozenset({548, 10828, 10829, 10831, 11317})


def apply_variable(p: Position, io_id: int, r: Reader) -> None:
    """One codec 8E variable-length element; ``r`` covers exactly its value."""
    if io_id in (256, 325):
        p.attributes[keys.VIN] = _ascii(r.take(r.remaining))
    elif io_id == 281:
        p.attributes["dtcs"] = _ascii(r.take(r.remaining)).replace(",", " ")
    elif io_id == 385:
        _beacons(p, r)
    elif io_id in _TAG_LISTS:
        _ble_tags(p, r)
    else:
        p.attributes[f"io{io_id}"] = r.take(r.remaining).hex()


def operator_codes(operator: Any) -> tuple[int | None, int | None]:
    """MCC and MNC of an operator code (IO 241, GH3000 cells): MCC digits then MNC, e.g. 24602."""
    if isinstance(operator, int) and not isinstance(operator, bool) and operator >= 1000:
        text = str(operator)
        return int(text[:3]), int(text[3:])
    return None, None


def finish_record(p: Position, model: str | None) -> None:
    """Combine elements that only mean something together (cell id, FM6 driver card)."""
    cid2g = p.attributes.pop("cid2g", None)
    cid4g = p.attributes.pop("cid4g", None)
    lac = p.attributes.pop("lac", None)
    cid = cid2g if cid2g is not None else cid4g
    if lac is not None and cid is not None:
        mcc, mnc = operator_codes(p.attributes.get("operator"))
        tower = {"mcc": mcc, "mnc": mnc, "lac": lac, "cid": cid, "rssi": None}
        p.attributes.setdefault(keys.CELL_TOWERS, []).append(tower)
    if _fm6(model):
        # FM6xx tachograph card: a 16-character driver id split over two 8-byte elements.
        msb, lsb = p.attributes.get("io195"), p.attributes.get("io196")
        if isinstance(msb, int) and isinstance(lsb, int):
            card = msb.to_bytes(8, "big", signed=True) + lsb.to_bytes(8, "big", signed=True)
            p.attributes[keys.DRIVER_UNIQUE_ID] = card.decode("latin-1").strip("\x00 ")
