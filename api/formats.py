"""Report exports: a route as GeoJSON, GPX or CSV; any table as CSV or XLSX. Pure: values in, text out.

Conventions shared by every format:
- times are written in UTC (ISO 8601 with ``Z`` in text formats); a naive datetime is refused;
- ``None`` is an empty cell or a JSON null; a NaN or infinite number is written as text (``nan``) in
  tables and as null (JSON) or left out (GPX) in routes, since none of those formats has a number for it;
- text that a spreadsheet would run as a formula is neutralised in CSV (see ``_CSV_TRIGGERS``).
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any


@dataclass(frozen=True, slots=True)
class RoutePoint:
    """One stored position as the exports see it; ``filtered`` is the filter's reason, None if kept."""

    time: datetime
    latitude: float
    longitude: float
    speed_kmh: float | None = None
    course_deg: float | None = None
    altitude_m: float | None = None
    accuracy_m: float | None = None
    odometer_m: float | None = None
    filtered: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        iso_utc(self.time)
        # GPX's schema bounds (latitudeType, longitudeType); GeoJSON consumers assume the same.
        if not (math.isfinite(self.latitude) and -90.0 <= self.latitude <= 90.0):
            raise ValueError(f"latitude {self.latitude!r} is outside [-90, 90]")
        if not (math.isfinite(self.longitude) and -180.0 <= self.longitude <= 180.0):
            raise ValueError(f"longitude {self.longitude!r} is outside [-180, 180]")


def iso_utc(t: datetime) -> str:
    """``2024-05-01T08:30:00Z`` (fraction only when there is one); naive datetimes raise ValueError."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"naive datetime {t.isoformat()} has no time zone; Fieldtrack times are aware")
    return t.astimezone(UTC).isoformat().removesuffix("+00:00") + "Z"


_MEASURES = ("speed_kmh", "course_deg", "altitude_m", "accuracy_m", "odometer_m")


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


# ---------------------------------------------------------------- GeoJSON (RFC 7946)

def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        return _finite(v)  # RFC 8259 JSON has no NaN/Infinity
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, datetime):
        return iso_utc(v) if v.tzinfo is not None else v.isoformat()
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return _finite(float(v))
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v).hex()
    return str(v)


def _lon_lat(p: RoutePoint, with_alt: bool) -> list[float]:
    return [p.longitude, p.latitude, p.altitude_m] if with_alt and p.altitude_m is not None else [
        p.longitude, p.latitude]


def route_geojson(device_name: str, points: Sequence[RoutePoint], include_filtered: bool = False
                  ) -> dict[str, Any]:
    """A FeatureCollection: first the track, a LineString of the kept points (all points when
    ``include_filtered``) with ``coordTimes`` parallel to its coordinates (togeojson's convention), then
    one Point per position, filtered ones included and marked by their ``filtered`` reason.

    The line carries altitude only when every one of its points has one (mixed 2D/3D positions confuse
    consumers); with fewer than two points its geometry is null, as RFC 7946 wants a LineString of two
    or more positions. Points are written in the order given (callers pass them in time order)."""
    line = [p for p in points if include_filtered or p.filtered is None]
    with_alt = bool(line) and all(_finite(p.altitude_m) is not None for p in line)
    track = {
        "type": "Feature",
        "geometry": {"type": "LineString", "coordinates": [_lon_lat(p, with_alt) for p in line]}
        if len(line) >= 2 else None,
        "properties": {
            "name": device_name,
            "start_time": iso_utc(line[0].time) if line else None,
            "end_time": iso_utc(line[-1].time) if line else None,
            "count": len(line),
            "coordTimes": [iso_utc(p.time) for p in line],
        },
    }
    features: list[dict[str, Any]] = [track]
    for p in points:
        features.append({
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": _lon_lat(p, _finite(p.altitude_m) is not None)},
            "properties": {
                "time": iso_utc(p.time),
                **{k: _finite(getattr(p, k)) for k in _MEASURES},
                "filtered": p.filtered,
                "attributes": _jsonable(p.attributes),
            },
        })
    return {"type": "FeatureCollection", "features": features}


# ---------------------------------------------------------------- GPX 1.1

# XML 1.0 Char production: everything else cannot appear in a document, not even as &#n;.
_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# \r is a character reference because parsers turn a literal one into \n; in attributes \n and \t too.
_TEXT_ESC = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ATTR_ESC = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#13;",
                           "\n": "&#10;", "\t": "&#9;"})
_GPX_NS = "http://www.topografix.com/GPX/1/1"
# Garmin's TrackPointExtension v2 is what readers know for speed (m/s) and course, absent from GPX 1.1.
_TPX_NS = "http://www.garmin.com/xmlschemas/TrackPointExtension/v2"


def _xml_text(s: str) -> str:
    return _XML_ILLEGAL.sub("", s).translate(_TEXT_ESC)


def _decimal(x: float, places: int) -> str:
    """xsd:decimal (GPX lat, lon, ele): plain digits, never the exponent that repr() may use."""
    s = f"{x:.{places}f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _wrapped(x: float, places: int, low: float, period: float) -> str:
    """Round first, then wrap, so 179.99999999 goes out as -180 and 359.999 as 0: the schema's longitude
    and course ranges exclude their upper end."""
    return _decimal((round(x, places) - low) % period + low, places)


def route_gpx(device_name: str, points: Sequence[RoutePoint], include_filtered: bool = False) -> str:
    """A GPX 1.1 document with one track of one segment; filtered points are left out unless asked for.

    Per point: ele, time, then speed (m/s) and course in a Garmin TrackPointExtension v2 block.
    Coordinates have 7 decimals (about 1 cm)."""
    name = _xml_text(device_name)
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<gpx version="1.1" creator="Fieldtrack" xmlns="{_GPX_NS}" xmlns:gpxtpx="{_TPX_NS}" ',
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ',
        f'xsi:schemaLocation="{_GPX_NS} {_GPX_NS}/gpx.xsd ',
        f'{_TPX_NS} http://www.garmin.com/xmlschemas/TrackPointExtensionv2.xsd">\n',
        f"<metadata><name>{name}</name></metadata>\n<trk><name>{name}</name><trkseg>\n",
    ]
    for p in points:
        if p.filtered is not None and not include_filtered:
            continue
        out.append(f'<trkpt lat="{_decimal(p.latitude, 7)}" lon="{_wrapped(p.longitude, 7, -180.0, 360.0)}">')
        if (alt := _finite(p.altitude_m)) is not None:
            out.append(f"<ele>{_decimal(alt, 2)}</ele>")
        out.append(f"<time>{iso_utc(p.time)}</time>")
        speed, course = _finite(p.speed_kmh), _finite(p.course_deg)
        if speed is not None or course is not None:
            out.append("<extensions><gpxtpx:TrackPointExtension>")
            if speed is not None:
                out.append(f"<gpxtpx:speed>{_decimal(max(speed, 0.0) / 3.6, 3)}</gpxtpx:speed>")
            if course is not None:
                out.append(f"<gpxtpx:course>{_wrapped(course, 2, 0.0, 360.0)}</gpxtpx:course>")
            out.append("</gpxtpx:TrackPointExtension></extensions>")
        out.append("</trkpt>\n")
    out.append("</trkseg></trk>\n</gpx>\n")
    return "".join(out)


# ---------------------------------------------------------------- CSV (RFC 4180)

# OWASP "CSV injection": a cell starting with one of these may be run as a formula by a spreadsheet.
_CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
ROUTE_COLUMNS = ("time", "latitude", "longitude", *_MEASURES, "filtered")


def _is_number(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    # math.isfinite would overflow on a huge int; a Decimal beyond a double's range counts as not finite.
    return isinstance(v, int) or (isinstance(v, float | Decimal) and math.isfinite(v))


def _csv_cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if _is_number(v):
        return str(v)  # repr-exact for floats; a leading minus is a number, not a formula
    if isinstance(v, datetime):
        return iso_utc(v)
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, str | float | Decimal):
        s = str(v)
        return "'" + s if s.startswith(_CSV_TRIGGERS) else s
    raise TypeError(f"cannot write a {type(v).__name__} to a table cell")


def _checked(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[Sequence[Any]]:
    for n, row in enumerate(rows, start=1):
        if len(row) != len(columns):
            raise ValueError(f"row {n} has {len(row)} cells for {len(columns)} columns")
        yield row


def _csv_text(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([_csv_cell(c) for c in columns])
    writer.writerows([_csv_cell(v) for v in row] for row in _checked(columns, rows))
    return buf.getvalue()


def route_csv(points: Sequence[RoutePoint]) -> str:
    """One row per point, filtered ones included (see the ``filtered`` column), under ROUTE_COLUMNS."""
    return _csv_text(ROUTE_COLUMNS, ([p.time, p.latitude, p.longitude, *(getattr(p, k) for k in _MEASURES),
                                      p.filtered] for p in points))


def table_csv(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """UTF-8 CSV with a byte-order mark, which is what makes Excel read it as UTF-8.

    Cells: str, int, float, Decimal, bool (true/false), datetime (ISO UTC), date, None (empty); any other
    type raises TypeError, a row of the wrong length ValueError. A lone surrogate becomes "?"."""
    return ("\ufeff" + _csv_text(columns, rows)).encode("utf-8", errors="replace")


# ---------------------------------------------------------------- XLSX (ECMA-376, SpreadsheetML)

_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_CT_BASE = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_CONTENT_TYPES = (
    f'{_HEAD}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    f'<Override PartName="/xl/workbook.xml" ContentType="{_CT_BASE}.sheet.main+xml"/>'
    f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{_CT_BASE}.worksheet+xml"/>'
    f'<Override PartName="/xl/styles.xml" ContentType="{_CT_BASE}.styles+xml"/></Types>')
_ROOT_RELS = (
    f'{_HEAD}<Relationships xmlns="{_PKG_REL_NS}"><Relationship Id="rId1" '
    f'Type="{_REL_NS}/officeDocument" Target="xl/workbook.xml"/></Relationships>')
_WORKBOOK_RELS = (
    f'{_HEAD}<Relationships xmlns="{_PKG_REL_NS}">'
    f'<Relationship Id="rId1" Type="{_REL_NS}/worksheet" Target="worksheets/sheet1.xml"/>'
    f'<Relationship Id="rId2" Type="{_REL_NS}/styles" Target="styles.xml"/></Relationships>')
# Excel wants fonts, two fills (none, gray125), borders and the Normal style present; cellXfs 1 and 2
# are the date-time and date formats (custom ids start at 164) used by _xlsx_cell.
_STYLES = (
    f'{_HEAD}<styleSheet xmlns="{_MAIN_NS}"><numFmts count="2">'
    '<numFmt numFmtId="164" formatCode="yyyy-mm-dd hh:mm:ss"/>'
    '<numFmt numFmtId="165" formatCode="yyyy-mm-dd"/></numFmts>'
    '<fonts count="1"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="3"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>')
# Excel's limits (specifications and limits page): rows, columns, digits kept of a number.
_MAX_ROWS, _MAX_COLS, _EXACT_DIGITS = 1_048_576, 16_384, 15
# Serial day 0 is 1899-12-30 for every date from 1900-03-01 on (Lotus's phantom 1900-02-29 before that).
_EXCEL_EPOCH, _FIRST_SERIAL_DATE = datetime(1899, 12, 30), datetime(1900, 3, 1)
_XSTRING_UNDERSCORE = re.compile("_(?=[xX][0-9A-Fa-f]{4})")
_SHEET_NAME_BAD = re.compile(r"[\[\]:*?/\\]")


def _xstring(s: str) -> str:
    """ST_Xstring: a character XML cannot hold travels as _xHHHH_; an underscore that would begin such a
    code is itself written _x005F_ so that the reader gives back exactly the text we had."""
    s = _XSTRING_UNDERSCORE.sub("_x005F_", s)
    return _XML_ILLEGAL.sub(lambda m: f"_x{ord(m.group()):04X}_", s).translate(_TEXT_ESC)


def safe_sheet_name(name: str) -> str:
    """A name Excel accepts: no []:*?/\\, no apostrophe at either end, 1-31 UTF-16 units, not History."""
    s = _SHEET_NAME_BAD.sub("_", _XML_ILLEGAL.sub("", name)).strip("'")
    while len(s.encode("utf-16-le")) > 62:
        s = s[:-1]
    s = s.rstrip("'")
    return "Report" if not s.strip() or s.lower() == "history" else s


def _col(i: int) -> str:
    letters = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        letters = chr(65 + r) + letters
    return letters


def _xlsx_cell(ref: str, v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return f'<c r="{ref}" t="b"><v>{int(v)}</v></c>'
    if _is_number(v) and not (isinstance(v, int) and abs(v) >= 10**_EXACT_DIGITS):
        # Longer integers (IMEIs, ids) would lose digits as Excel numbers, so they go out as text.
        return f'<c r="{ref}"><v>{v}</v></c>'
    if isinstance(v, date):
        text = iso_utc(v) if isinstance(v, datetime) else v.isoformat()
        naive = v.astimezone(UTC).replace(tzinfo=None) if isinstance(v, datetime) else datetime(
            v.year, v.month, v.day)
        if naive >= _FIRST_SERIAL_DATE:
            serial = (naive - _EXCEL_EPOCH) / timedelta(days=1)
            return f'<c r="{ref}" s="{1 if isinstance(v, datetime) else 2}"><v>{serial!r}</v></c>'
        v = text
    elif not isinstance(v, str | int | float | Decimal):
        raise TypeError(f"cannot write a {type(v).__name__} to a table cell")
    return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{_xstring(str(v))}</t></is></c>'


def _sheet_rows(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    if len(columns) > _MAX_COLS:
        raise ValueError(f"{len(columns)} columns: a sheet holds at most {_MAX_COLS}")
    refs = [_col(i) for i in range(len(columns))]
    header = [columns] if columns else []
    for r, row in enumerate(itertools.chain(header, _checked(columns, rows)), start=1):
        if r > _MAX_ROWS:
            raise ValueError(f"more than {_MAX_ROWS} rows with the header: a sheet holds no more")
        cells = "".join(_xlsx_cell(f"{c}{r}", v) for c, v in zip(refs, row, strict=True))
        yield f'<row r="{r}">{cells}</row>'


def table_xlsx(columns: Sequence[str], rows: Iterable[Sequence[Any]], sheet_name: str = "Report") -> bytes:
    """A one-sheet workbook: the header row (frozen), then one row per row.

    Cells: int/float/Decimal are numbers (integers of 15+ digits, NaN and infinities are text); bool is a
    boolean; datetime is an Excel serial date in UTC shown as yyyy-mm-dd hh:mm:ss, date one shown as
    yyyy-mm-dd (before 1900-03-01, where Excel's calendar is wrong, both are ISO text); str is an inline
    string (never a formula, so no injection guard is needed); None an empty cell. Other types raise
    TypeError. The output is deterministic (fixed zip timestamps)."""
    sheet_head = (f'{_HEAD}<worksheet xmlns="{_MAIN_NS}"><sheetViews><sheetView workbookViewId="0">'
                  '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
                  '</sheetView></sheetViews><sheetData>')
    workbook = (f'{_HEAD}<workbook xmlns="{_MAIN_NS}" xmlns:r="{_REL_NS}"><sheets>'
                f'<sheet name="{safe_sheet_name(sheet_name).translate(_ATTR_ESC)}" sheetId="1" r:id="rId1"/>'
                '</sheets></workbook>')
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        def part(name: str) -> zipfile.ZipInfo:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            return info

        for name, text in (("[Content_Types].xml", _CONTENT_TYPES), ("_rels/.rels", _ROOT_RELS),
                           ("xl/workbook.xml", workbook), ("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS),
                           ("xl/styles.xml", _STYLES)):
            zf.writestr(part(name), text.encode("utf-8"))
        with zf.open(part("xl/worksheets/sheet1.xml"), "w") as sheet:
            sheet.write(sheet_head.encode("utf-8"))
            for row_xml in _sheet_rows(columns, rows):
                sheet.write(row_xml.encode("utf-8"))
            sheet.write(b"</sheetData></worksheet>")
    return buf.getvalue()
