"""Field readers shared by the ASCII tracker protocols (h02, tk103, gps103, osmand).

Pure functions, no I/O. Where a helper can refuse its input, it takes the protocol's name so the
:class:`~protocols.model.DecodeError` text still says which decoder refused the frame.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from protocols.model import DecodeError, Position

# Pattern pieces naming the groups lenient_datetime_of() reads, so patterns and reader agree.
DDMMYY = r"(?P<day>\d\d)(?P<month>\d\d)(?P<year>\d\d)"
HHMMSS = r"(?P<hh>\d\d)(?P<mi>\d\d)(?P<ss>\d\d)"


def lenient_datetime(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, *, protocol: str
) -> datetime:
    """Java-lenient date: overflowing fields roll into the next unit, two-digit years are 20xx.

    Traccar builds these dates with a lenient ``Calendar``, so second 69 or day 00 (sent by real
    devices) become the next minute or the previous month's last day; we store what Traccar stores.
    """
    if year < 100:
        year += 2000
    carry, month0 = divmod(month - 1, 12)
    try:
        base = datetime(year + carry, month0 + 1, 1, tzinfo=UTC)
        return base + timedelta(days=day - 1, hours=hour, minutes=minute, seconds=second)
    except (ValueError, OverflowError) as exc:
        raise DecodeError(f"{protocol} date out of range: {exc}") from exc


def lenient_datetime_of(m: re.Match[str], *, protocol: str) -> datetime:
    """:func:`lenient_datetime` from a match whose pattern holds :data:`DDMMYY` and :data:`HHMMSS`."""
    return lenient_datetime(int(m["year"]), int(m["month"]), int(m["day"]), int(m["hh"]), int(m["mi"]),
                            int(m["ss"]), protocol=protocol)


def degrees_minutes(degrees: str | None, minutes: str, hemisphere: str | None, negative: str) -> float:
    """``ddmm.mmmm`` split in degrees and decimal minutes, signed by its hemisphere letter.

    Empty degrees read as 0: some firmwares drop the degrees when they are zero (``38.6508,W``).
    More than three degree digits is off the globe: infinity, which every range check refuses
    (converting hundreds of digits would raise OverflowError instead).
    """
    if degrees and len(degrees.strip()) > 3:
        return math.inf
    value = int(degrees or 0) + float(minutes) / 60
    return -value if hemisphere == negative else value


def check_on_earth(lat: float, lon: float, frame: bytes, *, protocol: str) -> None:
    """Refuse a fix off the globe; the ``not`` form also refuses NaN."""
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise DecodeError(f"{protocol} coordinate out of range ({lat}, {lon})", frame)


def float_field(text: str, frame: bytes, *, protocol: str) -> float:
    """A number field the pattern let through loosely (spaces, dots), refused as a DecodeError."""
    try:
        return float(text)
    except ValueError as exc:
        raise DecodeError(f"{protocol} bad number {text!r}", frame) from exc


def status_report(at: datetime, unique_id: str | None, attributes: dict[str, Any]) -> Position:
    """A report without a fix: the gateway fills the last known location and marks it outdated."""
    return Position(fix_time=at, device_time=at, latitude=None, longitude=None, valid=False,
                    unique_id=unique_id, attributes=attributes)


def cell_tower(
    mcc: int | None, mnc: int | None, lac: int, cid: int, rssi: int | None = None
) -> dict[str, Any]:
    """One entry of ``keys.CELL_TOWERS``; ``rssi`` stays present (None) when the device omits it."""
    return {"mcc": mcc, "mnc": mnc, "lac": lac, "cid": cid, "rssi": rssi}


@contextmanager
def blamed_on(frame: bytes) -> Iterator[None]:
    """Attach ``frame`` to a DecodeError raised by a helper that never saw it (dates, numbers)."""
    try:
        yield
    except DecodeError as exc:
        if not exc.frame:
            exc.frame = bytes(frame)
        raise


def format_degrees_minutes(value: float, degree_digits: int, decimals: int = 4) -> str:
    """``abs(value)`` as ``d..dmm.mmmm`` (the hemisphere letter is the caller's), for encoders.

    Rounded in whole units of the last minute digit so 59.99999' carries into the degrees
    instead of printing an impossible ``60.0000``.
    """
    scale = 10**decimals
    units = round(abs(value) * 60 * scale)
    degrees, rest = divmod(units, 60 * scale)
    minutes, fraction = divmod(rest, scale)
    return f"{degrees:0{degree_digits}d}{minutes:02d}.{fraction:0{decimals}d}"
