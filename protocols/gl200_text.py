"""Queclink @Track ASCII sentences: dispatch by message type, the smaller reports, and replies.

Report families (Queclink GV300CAN V12 §3.3, GL300 V6 §3.3):

- GTFRI/GTRTL/GTGEO/GTDOG fixed and on-demand reports, GTERI, GTCAN, GTOBD, GTINF: see
  :mod:`protocols.gl200_reports`;
- GTIGN/GTIGF/GTVGN/GTVGF ignition on/off: ``duration, block, hour meter, mileage``;
- alarms and events sharing the generic layout ``name, reserved, report id/type, number, block``
  (GTSOS, GTSPD, GTHBM, GTSTT, GTIGL, GTDIS, GTBPL, GTPNA ...): read around the first block with
  a fix, wherever the firmware put it; the alarm comes from the message type;
- Wi-Fi, cell and LBS reports (GTWIF, GTGSM, GTLBS), Bluetooth accessories (GTBAA, GTBID),
  transparent data (GTDAT, GTDTT), GTVER, driver id (GTIDA), driver alert (GTDAR);
- ``+ACK:GTHBD`` heartbeat, answered ``+SACK:GTHBD,<protocol version>,<count>$``; other
  ``+ACK:GT...`` command answers become status positions carrying ``result``.

``+BUFF:`` marks a report replayed from the device's memory: same layout, ``archive`` set. With
``session.config["ack"]`` every sentence with a count number is acknowledged ``+SACK:<count>$``
(the device's "SACK enable"; it then waits for it before sending the next report).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from protocols import keys
from protocols.gl200_fields import (
    Block,
    Sentence,
    find_fix,
    hours_to_s,
    integer,
    km_to_m,
    motion_state,
    mv_to_v,
    number,
    parse_sentence,
    put,
    read_block,
    read_fix,
    read_radio,
    scan_cell,
    tower,
    version,
)
from protocols.gl200_reports import decode_can, decode_eri, decode_fri, decode_inf, decode_obd
from protocols.model import Decoded, DecodeError, Position, Session

NAME = "gl200"

# Message type -> alarm, in Traccar's vocabulary (Queclink's names: SOS, speed alarm, tow, idling,
# power on/off, main/external power on/off, low backup battery, motion state, shock/swing,
# temperature alarms, jamming detected/stopped).
ALARMS: dict[str, str] = {
    "SOS": "sos", "SPD": "overspeed", "TOW": "tow", "IDL": "idle", "PNA": "powerOn", "PFA": "powerOff",
    "EPN": "powerRestored", "MPN": "powerRestored", "EPF": "powerCut", "MPF": "powerCut",
    "BPL": "lowBattery", "STT": "movement", "SWG": "geofence", "TMP": "temperature",
    "TEM": "temperature", "JDR": "jamming", "JDS": "jamming",
}
# GTHBM low nibble: 0 braking, 1 acceleration, 2 cornering, 3/4 braking/acceleration in a turn.
_HARSH = {0: "hardBraking", 1: "hardAcceleration", 2: "hardCornering", 3: "hardBraking",
          4: "hardAcceleration"}
# Dash cameras report GTIGL 1 = ignition on; every other family 0 = on (GV350M V4.03 p.159 against
# CV200 V2.21 p.159). An unknown model gets no ignition value rather than a guess.
_IGL_ON_IS_ONE = frozenset({"CV100LG", "CV200"})
_REPORT_TYPE = re.compile(r"[0-9A-Fa-f]{1,2}")
_BATTERY = re.compile(r"\d{1,3}")

Handler = Callable[[Sentence], list[Position]]


def _generic(s: Sentence) -> list[Position]:
    """The shared event layout, read around the first block with a fix (firmwares put one to five
    fields before it); without one, a status report with the serving cell if it is there."""
    v = s.v
    start = find_fix(v, 2 if s.gt300 else 3)
    p = s.position()
    if start is not None:
        block, i = read_fix(s, start)
        trailer = read_radio(s, i, block)
        block.apply(p)
        # Battery % closes the report when a field follows the block's trailing field.
        if len(v) - 3 > trailer and _BATTERY.fullmatch(v[-3]):
            put(p, keys.BATTERY_PCT, integer(v[-3]))
    elif (cell := scan_cell(v, 3)) is not None:
        p.attributes[keys.CELL_TOWERS] = [cell]
    report = int(v[5], 16) if not s.gt300 and _REPORT_TYPE.fullmatch(s.at(5)) else None
    if report is not None:
        _report_type(s, p, report)
    if s.type == "STT" and (state := integer(s.at(4), 16)) is not None:
        motion_state(p, state)
    if s.type == "BPL":
        put(p, keys.BATTERY_V, number(s.at(4)))  # backup battery voltage
    if s.type in ALARMS:
        p.attributes[keys.ALARM] = ALARMS[s.type]
    if p.latitude is None and set(p.attributes) <= {"type", keys.ARCHIVE}:
        return []
    return [p]


def _report_type(s: Sentence, p: Position, report: int) -> None:
    """``<Report ID/Type>``: high nibble id, low nibble type, meaning per message."""
    if s.type in ("STR", "CTN") and s.model in ("GL500", "GL530"):
        put(p, keys.BATTERY_PCT, integer(s.at(8)))
    elif s.type == "NMR":
        p.attributes[keys.MOTION] = report == 1
    elif s.type == "DIS" and report >> 4:
        p.attributes[f"in{report >> 4}"] = report & 0xF == 1
    elif s.type == "IGL" and s.model:
        p.attributes[keys.IGNITION] = (report & 0xF == 1) == (s.model in _IGL_ON_IS_ONE)
    elif s.type == "HBM" and report & 0xF in _HARSH:
        p.attributes[keys.ALARM] = _HARSH[report & 0xF]


def _ignition(s: Sentence) -> list[Position]:
    # name, [CV200: reserved, report type], duration of the previous state (s), block, hour meter,
    # mileage (GV300CAN V12 p.275: hour meter before mileage here, unlike GTFRI).
    i = 7 if s.model == "CV200" else 5
    p = s.position()
    i = read_block(s, i, p)
    p.attributes[keys.IGNITION] = s.type in ("IGN", "VGN")
    put(p, keys.ENGINE_HOURS_S, hours_to_s(s.at(i)))
    put(p, keys.ODOMETER_M, km_to_m(s.at(i + 1)))
    return [p]


def _switch(s: Sentence) -> list[Position]:
    # GTLSW/GTTSW: name, type, state (the line's new level), block.
    p = s.position()
    read_block(s, 6, p)
    p.attributes["in1" if s.type == "LSW" else "in2"] = s.at(5) == "1"
    return [p]


def _driver_id(s: Sentence) -> list[Position]:
    # GTIDA: name, reserved, RFID, report type, number, block, mileage.
    p = s.position()
    put(p, keys.DRIVER_UNIQUE_ID, s.at(5) or None)
    i = read_block(s, 8, p)
    put(p, keys.ODOMETER_M, km_to_m(s.at(i)))
    return [p]


def _driver_alert(s: Sentence) -> list[Position]:
    # GTDAR (dash camera driver monitoring): warning type, fatigue degree, two reserved, block.
    p = s.position()
    read_block(s, 8, p)
    warning, degree = integer(s.at(4)), integer(s.at(5))
    if warning == 1:
        p.attributes[keys.ALARM] = "fatigueDriving"
        put(p, "fatigue_degree", degree)
    else:
        put(p, "warning_type", warning)
    return [p]


def _transparent(s: Sentence) -> list[Position]:
    # GTDAT: name, report type, two reserved, data (may hold commas), block.
    start = find_fix(s.v, 8)
    start = 8 if start is None else start
    p = s.position()
    p.attributes["data"] = ",".join(s.v[7:start])
    read_block(s, start, p)
    return [p]


def _transparent_hex(s: Sentence) -> list[Position]:
    # GTDTT: name, two reserved, data type, length, data in hex (a fuel probe's "COMB" line here).
    raw = s.at(8)
    if not re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", raw):
        raise DecodeError(f"{NAME}: GTDTT data is not hex", s.frame)
    data = bytes.fromhex(raw).decode("latin-1")
    p = s.position()
    parts = data.split(",")
    if "COMB" in data and len(parts) > 2 and number(parts[2]) is not None:
        p.attributes[keys.FUEL] = number(parts[2])
    else:
        p.attributes[keys.RESULT] = data
    return [p]


# Bluetooth accessory append mask (GV300CAN V12 p.44): bit -> attribute.
_ACCESSORY: tuple[tuple[str, Callable[[str], object]], ...] = (
    ("accessory_name", str), ("accessory_mac", str), ("accessory_status", integer),
    ("accessory_voltage", mv_to_v), ("accessory_temp", integer), ("accessory_humidity", integer),
)


def _accessory(s: Sentence, i: int) -> list[Position]:
    """Accessory append mask at ``i``, the fields it announces, then a block."""
    mask = integer(s.at(i), 16)
    if mask is None:
        raise DecodeError(f"{NAME}: bad accessory mask", s.frame)
    p = s.position()
    i += 1
    for bit, (key, convert) in enumerate(_ACCESSORY):
        if mask & (1 << bit):
            put(p, key, convert(s.at(i)) if s.at(i) else None)
            i += 1
    read_block(s, i, p)
    return [p]


def _wifi(s: Sentence) -> list[Position]:
    # GTWIF: name, count, (MAC, RSSI, 3 reserved) x count, ..., battery %. No fix.
    p = s.position()
    read_radio(s, 4, block := Block())
    block.apply(p)
    put(p, keys.BATTERY_PCT, integer(s.at(len(s.v) - 3)))
    return [p]


def _cells(s: Sentence) -> list[Position]:
    # GTGSM: fix type, then (MCC, MNC, LAC, cell id, RX level, reserved) x 7, serving cell last.
    return _cell_groups(s, 4)


def _lbs(s: Sentence) -> list[Position]:
    # GTLBS: name, trigger, report type, battery %, five reserved/state fields, then cell groups.
    positions = _cell_groups(s, 12)
    put(positions[0], keys.BATTERY_PCT, integer(s.at(6)))
    return positions


def _cell_groups(s: Sentence, i: int) -> list[Position]:
    towers = []
    while i + 5 <= len(s.v) - 2:
        mcc, mnc, lac, cid, rssi = s.v[i : i + 5]
        cell = tower(mcc, mnc, lac, cid, rssi)
        if cell is not None:
            towers.append(cell)
        i += 6
    p = s.position()
    if towers:
        p.attributes[keys.CELL_TOWERS] = towers
    return [p]


def _version(s: Sentence) -> list[Position]:
    # GTVER: name, device type, firmware (hex), hardware (hex).
    p = s.position()
    put(p, "device_type", s.at(4) or None)
    put(p, keys.VERSION_FW, version(s.at(5)))
    put(p, keys.VERSION_HW, version(s.at(6)))
    return [p]


HANDLERS: dict[str, Handler] = {
    "FRI": decode_fri, "GEO": decode_fri, "RTL": decode_fri, "DOG": decode_fri,
    "ERI": decode_eri, "CAN": decode_can, "OBD": decode_obd, "INF": decode_inf,
    "IGN": _ignition, "IGF": _ignition, "VGN": _ignition, "VGF": _ignition,
    "LSW": _switch, "TSW": _switch, "IDA": _driver_id, "DAR": _driver_alert,
    "DAT": _transparent, "DTT": _transparent_hex, "BAA": lambda s: _accessory(s, 8),
    "BID": lambda s: _accessory(s, 6), "WIF": _wifi, "GSM": _cells, "LBS": _lbs, "VER": _version,
}


def heartbeat_reply(s: Sentence) -> bytes | None:
    """``+SACK:GTHBD,<protocol version>,<count>$``, both echoed as received (GV300CAN §3.4)."""
    return f"+SACK:GTHBD,{s.version},{s.count}$".encode("latin-1") if s.count else None


def decode_text(frame: bytes, session: Session) -> Decoded:
    s = parse_sentence(frame, session.config)
    reply = None
    positions: list[Position] = []
    if s.kind == "ACK" and s.type == "HBD":
        reply = heartbeat_reply(s)
    elif s.kind == "ACK" and s.type:
        p = s.position()
        p.attributes[keys.RESULT] = s.v[0]
        positions = [p]
    elif s.kind in ("RESP", "BUFF") and s.type:
        positions = HANDLERS.get(s.type, _generic)(s)
    if reply is None and session.config.get("ack") and s.kind in ("RESP", "BUFF", "ACK") and s.type \
            and s.count:
        reply = f"+SACK:{s.count}$".encode("latin-1")
    return Decoded(positions=positions, reply=reply, unique_id=s.unique_id)
