"""Vendor sentences that ride on Traccar's generic NMEA ("t55") port.

Each parser takes the comma fields after the sentence address and returns a :class:`Report`:
a position (or status) plus the device id when the sentence itself carries one. Field layouts
were learned from Traccar's T55 decoder and its test frames; malformed fields raise
``ValueError``/``IndexError``, which :mod:`protocols.nmea` turns into ``DecodeError``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from protocols import keys
from protocols.model import Position, knots_to_kmh

Now = Callable[[], datetime]


@dataclass(slots=True)
class Report:
    position: Position
    unique_id: str | None = None


def _signed(value: str, hemisphere: str, negative: str) -> float:
    if hemisphere not in ("N", "S", "E", "W"):
        raise ValueError(f"hemisphere {hemisphere!r}")
    number = float(value)
    return -number if hemisphere == negative else number


def trccr(fields: list[str], now: Now) -> Report:
    """``$TRCCR,yyyymmddhhmmss.sss,A,lat,lon,speed kn,course,altitude,battery V,``."""
    stamp = datetime.strptime(fields[0][:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    if len(fields[0]) > 15 and fields[0][14] == ".":
        stamp = stamp.replace(microsecond=round(float("0" + fields[0][14:]) * 1e6) % 1_000_000)
    position = Position(
        fix_time=stamp,
        latitude=float(fields[2]),
        longitude=float(fields[3]),
        valid=fields[1] == "A",
        speed_kmh=knots_to_kmh(float(fields[4])),
        course_deg=float(fields[5]),
        altitude_m=float(fields[6]),
    )
    position.attributes[keys.BATTERY_V] = float(fields[7])
    return Report(position)


def gpiop(fields: list[str], now: Now) -> Report:
    """``$GPIOP,inputs,outputs,adc1..adc4,power V,battery V``: a status report without a fix."""
    if not (re.fullmatch(r"[01]{8}", fields[0]) and re.fullmatch(r"[01]{8}", fields[1])):
        raise ValueError("GPIOP input/output bits")
    position = Position(fix_time=now(), latitude=None, longitude=None, valid=False)
    position.attributes[keys.POWER_V] = float(fields[6])
    position.attributes[keys.BATTERY_V] = float(fields[7])
    return Report(position)


def net_text(fields: list[str], now: Now) -> Report:
    """``$GPTXT,NET,code,operator,rssi dBm,mcc mnc``: the modem's network status, no fix."""
    position = Position(fix_time=now(), latitude=None, longitude=None, valid=False)
    position.attributes[keys.from_traccar("operator")[0]] = fields[2]
    position.attributes[keys.RSSI] = int(fields[3])
    return Report(position)


def qze(fields: list[str], now: Now) -> Report:
    """``QZE,imei,event,ddmmyyyy,hhmmss,lat,lon,speed km/h,course,A,ignition`` (decimal degrees)."""
    if not re.fullmatch(r"\d{15}", fields[0]):
        raise ValueError("QZE imei")
    position = Position(
        fix_time=datetime.strptime(fields[2] + fields[3], "%d%m%Y%H%M%S").replace(tzinfo=UTC),
        latitude=float(fields[4]),
        longitude=float(fields[5]),
        valid=fields[8] == "A",
        speed_kmh=float(int(fields[6])),
        course_deg=float(int(fields[7])),
    )
    position.attributes[keys.EVENT] = int(fields[1])
    position.attributes[keys.IGNITION] = int(fields[9]) > 0
    return Report(position, unique_id=fields[0])


def wmcs(fields: list[str], now: Now) -> Report:
    """``$ID,imei,...,GPSEx,A,D,ddmmyy,T,hhmmss,S,vis:used,La,deg,N,Lo,deg,E,H,course,V,km/h,DD,n``.

    Tag/value pairs after the ``GPSE?`` status; any may be missing (no date: status report).
    """
    imei = fields[0]
    if not imei.isdigit():
        raise ValueError("WMCS imei")
    status = next((i for i, f in enumerate(fields) if re.fullmatch(r"GPSE[A-Z]", f)), None)
    if status is None:
        raise ValueError("WMCS without GPS status")
    tags: dict[str, list[str]] = {}
    i = status + 2
    while i < len(fields):
        tag = fields[i]
        width = 2 if tag in ("La", "Lo") else 1
        tags[tag] = fields[i + 1 : i + 1 + width]
        i += 1 + width
    position = Position(fix_time=now(), latitude=None, longitude=None, valid=fields[status + 1] == "A")
    if "D" in tags and "T" in tags:
        position.fix_time = datetime.strptime(tags["D"][0] + tags["T"][0], "%d%m%y%H%M%S").replace(
            tzinfo=UTC)
    if "La" in tags and "Lo" in tags:
        position.latitude = _signed(tags["La"][0], tags["La"][1], "S")
        position.longitude = _signed(tags["Lo"][0], tags["Lo"][1], "W")
    if "H" in tags:
        position.course_deg = float(tags["H"][0])
    if "V" in tags:
        position.speed_kmh = float(tags["V"][0])
    if "S" in tags:
        visible, used = tags["S"][0].split(":")
        position.attributes[keys.SATELLITES_VISIBLE] = int(visible)
        position.attributes[keys.SATELLITES] = int(used)
    for tag, name in (("ALARM", "alarm_code"), ("O", keys.OUTPUT), ("I", keys.INPUT)):
        if tag in fields[1:status]:
            value = fields[fields.index(tag, 1) + 1]
            position.attributes[name] = int(value, 16)
    return Report(position, unique_id=imei)


def rmc_tail(tail: str, position: Position) -> str | None:
    """Fields some trackers append after an RMC checksum: ``,sats,imei,ignition,fuel[,battery][,io..]``.

    Returns the IMEI, or None when the tail is not that extension.
    """
    match = re.fullmatch(r",(\d+),(\d+),([01]),(\d+)(?:,(\d+))?((?:,\d+)*)", tail)
    if not match:
        return None
    position.attributes[keys.SATELLITES] = int(match[1])
    position.attributes[keys.IGNITION] = match[3] == "1"
    position.attributes[keys.FUEL_PCT] = int(match[4])
    if match[5] is not None:
        # Traccar files it as volts, but values like "086" are no voltage: keep it raw.
        position.attributes["battery_raw"] = int(match[5])
    for n, value in enumerate(match[6].split(",")[1:], start=1):
        position.attributes[f"io{n}"] = value
    return match[2]
