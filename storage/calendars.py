"""The shape of a weekly working calendar and of a time zone name, checked before they are stored.

A calendar maps weekday keys to working periods: ``{"mon": [["08:00", "12:00"], ["13:00", "17:30"]]}``.
Keys are ``mon``..``sun``; a day left out is not a working day. Periods are local ``HH:MM`` times
(an end may be ``24:00``, the end of the day), each start before its end, in order and not
overlapping. The time zone that gives the times meaning is an IANA name.
"""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$")


def _minutes(value: Any, where: str, *, end: bool) -> int:
    if isinstance(value, str) and (_TIME.match(value) or (end and value == "24:00")):
        return int(value[:2]) * 60 + int(value[3:])
    raise ValueError(f"{where} must be a time HH:MM (00:00 to 23:59{', or 24:00 as an end' if end else ''}),"
                     f" not {value!r}")


def check_working_hours(value: Any) -> dict[str, list[list[str]]]:
    """The calendar as given, or ValueError naming the first problem."""
    if not isinstance(value, dict):
        raise ValueError("working_hours must be an object like {\"mon\": [[\"08:00\", \"17:00\"]]}")
    unknown = sorted(set(value) - set(DAYS))
    if unknown:
        raise ValueError(f"working_hours has unknown days {unknown}; use {', '.join(DAYS)}")
    for day, periods in value.items():
        if not isinstance(periods, list):
            raise ValueError(f"working_hours.{day} must be a list of [start, end] pairs")
        previous_end = -1
        for i, period in enumerate(periods):
            where = f"working_hours.{day}[{i}]"
            if not isinstance(period, list) or len(period) != 2:
                raise ValueError(f"{where} must be a pair [\"HH:MM\", \"HH:MM\"]")
            start = _minutes(period[0], f"{where} start", end=False)
            stop = _minutes(period[1], f"{where} end", end=True)
            if start >= stop:
                raise ValueError(f"{where}: the start {period[0]} must be before the end {period[1]}")
            if start < previous_end:
                raise ValueError(f"{where} overlaps or precedes the period before it; list periods in order")
            previous_end = stop
    return value


def check_time_zone(value: Any) -> str:
    """An IANA zone name that this system knows, or ValueError."""
    if isinstance(value, str) and value in _zone_names():
        try:
            ZoneInfo(value)
            return value
        except (KeyError, ValueError, OSError):
            pass
    raise ValueError(f"unknown time zone {value!r}; use an IANA name like Europe/Amsterdam")


_NAMES: set[str] = set()


def _zone_names() -> set[str]:
    # ZoneInfo alone loads any file under the zone folder (e.g. "posixrules"), so the name must be
    # a listed zone; "localtime" is listed on some systems but means this machine's zone.
    if not _NAMES:
        _NAMES.update(available_timezones() - {"localtime"})
    return _NAMES
