"""Exports are checked by reading them back: json, xml.etree, csv and a small XLSX reader written here."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import zipfile
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from api.formats import (
    ROUTE_COLUMNS,
    RoutePoint,
    route_csv,
    route_geojson,
    route_gpx,
    safe_sheet_name,
    table_csv,
    table_xlsx,
)

GPX = "{http://www.topografix.com/GPX/1/1}"
TPX = "{http://www.garmin.com/xmlschemas/TrackPointExtension/v2}"
MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
CT = "{http://schemas.openxmlformats.org/package/2006/content-types}"
PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
OFFICE_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
T0 = datetime(2024, 5, 1, 8, 30, tzinfo=UTC)
NASTY = 'Rep <A&B> "North", east\nline 2'


def route() -> list[RoutePoint]:
    """Latitudes and longitudes differ enough that swapping them shows."""
    return [
        RoutePoint(T0, 48.8566, 2.3522, 0.0, 90.0, 35.0, 5.0, 0.0, None, {"ignition": True}),
        RoutePoint(T0 + timedelta(seconds=10), 48.8570, 2.3530, 36.0, 45.5, 36.5, 4.0, 70.0, None,
                   {"at": T0, "raw": b"\x01\xff", "nan": math.nan}),
        RoutePoint(T0 + timedelta(seconds=20), 49.9, 3.9, 900.0, None, None, 80.0, 70.0, "-jump"),
        RoutePoint(T0 + timedelta(seconds=30), 48.8575, 2.3541, 28.8, 180.0, 37.25, 3.0, 150.0, None),
    ]


# ---------------------------------------------------------------- RoutePoint

def test_route_point_refuses_naive_time_and_impossible_coordinates() -> None:
    with pytest.raises(ValueError, match="naive"):
        RoutePoint(datetime(2024, 5, 1), 1.0, 2.0)
    for lat, lon in ((90.5, 0.0), (0.0, -180.1), (math.nan, 0.0), (0.0, math.inf)):
        with pytest.raises(ValueError):
            RoutePoint(T0, lat, lon)
    assert hash(RoutePoint(T0, 1.0, 2.0, attributes={"a": 1})) == hash(RoutePoint(T0, 1.0, 2.0))


# ---------------------------------------------------------------- GeoJSON

def test_geojson_track_is_lon_lat_with_parallel_times_and_skips_filtered() -> None:
    pts = route()
    doc = json.loads(json.dumps(route_geojson(NASTY, pts), allow_nan=False))
    assert doc["type"] == "FeatureCollection"
    track, *points = doc["features"]
    assert track["geometry"]["type"] == "LineString"
    kept = [p for p in pts if p.filtered is None]
    assert track["geometry"]["coordinates"] == [[p.longitude, p.latitude, p.altitude_m] for p in kept]
    props = track["properties"]
    assert props["name"] == NASTY
    assert props["count"] == 3 == len(props["coordTimes"])
    assert [datetime.fromisoformat(t) for t in props["coordTimes"]] == [p.time for p in kept]
    assert props["start_time"] == "2024-05-01T08:30:00Z" and props["end_time"] == "2024-05-01T08:30:30Z"
    # every position is a Point, the filtered one marked with its reason
    assert [f["geometry"]["coordinates"][:2] for f in points] == [[p.longitude, p.latitude] for p in pts]
    assert [f["properties"]["filtered"] for f in points] == [None, None, "-jump", None]
    assert points[1]["properties"]["speed_kmh"] == 36.0
    assert points[1]["properties"]["attributes"] == {"at": "2024-05-01T08:30:00Z", "raw": "01ff", "nan": None}
    assert len(points[2]["geometry"]["coordinates"]) == 2  # no altitude, no third ordinate


def test_geojson_include_filtered_and_altitude_only_when_every_point_has_one() -> None:
    pts = route()
    track = route_geojson("d", pts, include_filtered=True)["features"][0]
    assert track["geometry"]["coordinates"] == [[p.longitude, p.latitude] for p in pts]
    assert track["properties"]["count"] == 4


def test_geojson_line_of_fewer_than_two_points_has_null_geometry() -> None:
    one = route()[:1]
    track = route_geojson("d", one)["features"][0]
    assert track["geometry"] is None and track["properties"]["count"] == 1
    empty = route_geojson("d", [])
    assert empty["features"] == [{"type": "Feature", "geometry": None, "properties": {
        "name": "d", "start_time": None, "end_time": None, "count": 0, "coordTimes": []}}]


# ---------------------------------------------------------------- GPX

def test_gpx_is_namespaced_ordered_escaped_and_skips_filtered() -> None:
    text = route_gpx(NASTY + "\x01", route())
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == f"{GPX}gpx" and root.get("version") == "1.1" and root.get("creator")
    assert root.findtext(f"{GPX}metadata/{GPX}name") == NASTY  # the control character is dropped
    trk = root.find(f"{GPX}trk")
    assert trk is not None and trk.findtext(f"{GPX}name") == NASTY
    trkpts = trk.findall(f"{GPX}trkseg/{GPX}trkpt")
    kept = [p for p in route() if p.filtered is None]
    assert len(trkpts) == len(kept)
    for el, p in zip(trkpts, kept, strict=True):
        assert [c.tag for c in el] == [f"{GPX}ele", f"{GPX}time", f"{GPX}extensions"]
        assert float(el.get("lat", "")) == pytest.approx(p.latitude, abs=1e-7)
        assert float(el.get("lon", "")) == pytest.approx(p.longitude, abs=1e-7)
        assert float(el.findtext(f"{GPX}ele", "")) == p.altitude_m
        stamp = el.findtext(f"{GPX}time", "")
        assert stamp.endswith("Z") and datetime.fromisoformat(stamp) == p.time
        speed = el.findtext(f"{GPX}extensions/{TPX}TrackPointExtension/{TPX}speed")
        assert speed is not None and float(speed) == pytest.approx((p.speed_kmh or 0) / 3.6, abs=1e-3)
    assert len(route_gpx("d", route(), include_filtered=True).split("<trkpt ")) == 5


def test_gpx_point_without_altitude_or_motion_has_time_only() -> None:
    root = ET.fromstring(route_gpx("d", [RoutePoint(T0, 1.5, -2.5)]))
    (el,) = root.iter(f"{GPX}trkpt")
    assert [c.tag for c in el] == [f"{GPX}time"]


DECIMAL = re.compile(r"-?\d+(\.\d+)?")
coords = st.tuples(st.floats(-90, 90), st.floats(-180, 180))


@given(st.lists(coords, min_size=1, max_size=20), st.floats(-1e4, 1e4), st.floats(-720, 720))
@example([(1e-9, 179.99999999), (-90.0, -180.0), (90.0, 180.0)], 1e-30, 359.999)
def test_gpx_numbers_are_plain_decimals_inside_the_schema_ranges(
        latlons: list[tuple[float, float]], alt: float, course: float) -> None:
    pts = [RoutePoint(T0, lat, lon, 10.0, course, alt) for lat, lon in latlons]
    root = ET.fromstring(route_gpx("d", pts))
    for el, (lat, lon) in zip(root.iter(f"{GPX}trkpt"), latlons, strict=True):
        values = [el.get("lat", ""), el.get("lon", ""), el.findtext(f"{GPX}ele", ""),
                  el.findtext(f"{GPX}extensions/{TPX}TrackPointExtension/{TPX}course", "")]
        assert all(DECIMAL.fullmatch(v) for v in values), values  # xsd:decimal has no exponent
        assert -90 <= float(values[0]) <= 90 and -180 <= float(values[1]) < 180
        assert 0 <= float(values[3]) < 360
        assert float(values[0]) == pytest.approx(lat, abs=1e-7)
        # the same meridian, possibly written as -180 for 180
        assert (float(values[1]) - lon + 180) % 360 - 180 == pytest.approx(0, abs=1e-7)


# ---------------------------------------------------------------- CSV

def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_route_csv_has_header_and_one_row_per_point() -> None:
    pts = route()
    rows = read_csv(route_csv(pts))
    assert rows[0] == list(ROUTE_COLUMNS)
    assert len(rows) == 1 + len(pts)
    for row, p in zip(rows[1:], pts, strict=True):
        cell = dict(zip(ROUTE_COLUMNS, row, strict=True))
        assert datetime.fromisoformat(cell["time"]) == p.time and cell["time"].endswith("Z")
        assert (float(cell["latitude"]), float(cell["longitude"])) == (p.latitude, p.longitude)
        assert cell["altitude_m"] == ("" if p.altitude_m is None else str(p.altitude_m))
    assert rows[3][-1] == "'-jump"  # the filter reason is text, so it is guarded


def test_table_csv_bom_quoting_and_formula_guard() -> None:
    data = table_csv(["name", "n", "at", "day", "ok", "none"], [
        [NASTY, -5, T0.astimezone(timezone(timedelta(hours=2))), date(2024, 5, 1), True, None],
        ["=HYPERLINK(\"http://x\")", 2.5, None, None, False, None],
        ["+1", Decimal("-1.50"), None, None, None, None],
        ["@SUM(A1)", 0, None, None, None, None],
        ["-5", 0, None, None, None, None],
    ])
    assert data.startswith(b"\xef\xbb\xbf")
    rows = read_csv(data.decode("utf-8-sig"))
    assert rows[1] == [NASTY, "-5", "2024-05-01T08:30:00Z", "2024-05-01", "true", ""]
    assert rows[2][:3] == ["'=HYPERLINK(\"http://x\")", "2.5", ""]
    assert rows[3][:2] == ["'+1", "-1.50"]  # numbers keep their sign
    assert [r[0] for r in rows[4:]] == ["'@SUM(A1)", "'-5"]


def test_tables_refuse_bad_rows_types_and_naive_times() -> None:
    for writer in (table_csv, table_xlsx):
        with pytest.raises(ValueError, match="row 2"):
            writer(["a", "b"], [[1, 2], [1]])
        with pytest.raises(TypeError, match="set"):
            writer(["a"], [[{1}]])
        with pytest.raises(ValueError, match="naive"):
            writer(["a"], [[datetime(2024, 1, 1)]])


# ---------------------------------------------------------------- XLSX, read back by a tiny reader

def unescape_xstring(s: str) -> str:
    return re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), s)


def col_index(ref: str) -> int:
    n = 0
    for ch in re.match(r"[A-Z]+", ref).group():  # type: ignore[union-attr]
        n = n * 26 + ord(ch) - 64
    return n - 1


def read_xlsx(data: bytes) -> tuple[str, list[list[Any]]]:
    """Sheet name and cell values: numbers as int/float, t="b" as bool, styled serials as
    datetime (style with a time) or date, inline strings decoded, missing cells None."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        workbook = ET.fromstring(zf.read("xl/workbook.xml"))
        styles = ET.fromstring(zf.read("xl/styles.xml"))
        sheet = ET.fromstring(zf.read("xl/worksheets/sheet1.xml"))
    formats = {f.get("numFmtId"): f.get("formatCode", "") for f in styles.iter(f"{MAIN}numFmt")}
    xfs = [formats.get(xf.get("numFmtId"), "") for xf in styles.findall(f"{MAIN}cellXfs/{MAIN}xf")]
    sheet_el = workbook.find(f"{MAIN}sheets/{MAIN}sheet")
    assert sheet_el is not None
    rows: list[list[Any]] = []
    for r, row in enumerate(sheet.iter(f"{MAIN}row"), start=1):
        assert row.get("r") == str(r)
        values: dict[int, Any] = {}
        for c in row.iter(f"{MAIN}c"):
            ref, kind, v = c.get("r", ""), c.get("t", "n"), c.findtext(f"{MAIN}v")
            assert ref.endswith(str(r))
            if kind == "inlineStr":
                value: Any = unescape_xstring("".join(t.text or "" for t in c.iter(f"{MAIN}t")))
            elif kind == "b":
                value = v == "1"
            else:
                assert kind == "n" and v is not None
                fmt = xfs[int(c.get("s", "0"))]
                if "yy" in fmt:
                    when = datetime(1899, 12, 30) + timedelta(days=float(v))
                    value = when.replace(tzinfo=UTC) if "hh" in fmt else when.date()
                else:
                    value = int(v) if re.fullmatch(r"-?\d+", v) else float(v)
            values[col_index(ref)] = value
        rows.append([values.get(i) for i in range(max(values, default=-1) + 1)])
    return sheet_el.get("name", ""), rows


def test_xlsx_package_declares_and_links_every_part() -> None:
    data = table_xlsx(["a"], [[1]])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert names[0] == "[Content_Types].xml"
        types = ET.fromstring(zf.read("[Content_Types].xml"))
        overrides = {o.get("PartName"): o.get("ContentType", "") for o in types.iter(f"{CT}Override")}
        defaults = {d.get("Extension"): d.get("ContentType") for d in types.iter(f"{CT}Default")}
        for name in names:
            if name != "[Content_Types].xml":
                assert "/" + name in overrides or name.rsplit(".", 1)[-1] in defaults, name
        for name, kind in (("xl/workbook.xml", "sheet.main+xml"),
                           ("xl/worksheets/sheet1.xml", "worksheet+xml"), ("xl/styles.xml", "styles+xml")):
            assert overrides["/" + name].endswith("spreadsheetml." + kind)
        assert defaults["rels"] == "application/vnd.openxmlformats-package.relationships+xml"
        # every relationship points at a part that is there, and the sheet's r:id resolves
        root_rels = ET.fromstring(zf.read("_rels/.rels"))
        assert [r.get("Target") for r in root_rels.iter(f"{PKG_REL}Relationship")] == ["xl/workbook.xml"]
        wb_rels_xml = ET.fromstring(zf.read("xl/_rels/workbook.xml.rels"))
        wb_rels = {r.get("Id"): r.get("Target", "") for r in wb_rels_xml.iter(f"{PKG_REL}Relationship")}
        assert all("xl/" + target in names for target in wb_rels.values())
        sheet = ET.fromstring(zf.read("xl/workbook.xml")).find(f"{MAIN}sheets/{MAIN}sheet")
        assert sheet is not None and wb_rels[sheet.get(f"{OFFICE_REL}id", "")] == "worksheets/sheet1.xml"
    assert table_xlsx(["a"], [[1]]) == data  # deterministic bytes


def test_xlsx_cells_read_back_with_their_types() -> None:
    rows = [
        [NASTY, 42, -2.5, True, T0, date(2024, 5, 1), None, Decimal("12.50")],
        ["  pad  \r\n", 0, 1e-7, False, datetime(1899, 1, 1, tzinfo=UTC), date(1900, 1, 1), "=1+1", math.nan],
        ["_x0041_ and _x0041\x01 \x00\x0b\ufffe", 123456789012345678, math.inf, None, None, None, "", 10**14],
    ]
    name, back = read_xlsx(table_xlsx(["text", "int", "float", "bool", "at", "day", "x", "y"], rows, "r"))
    assert name == "r"
    assert back[0] == ["text", "int", "float", "bool", "at", "day", "x", "y"]
    assert back[1][:4] == rows[0][:4] and back[1][6] is None and back[1][7] == 12.5
    assert abs(back[1][4] - T0) < timedelta(milliseconds=1) and back[1][5] == date(2024, 5, 1)
    # before 1900-03-01 Excel's calendar is wrong, so those go out as ISO text; formulas stay text
    assert back[2] == ["  pad  \r\n", 0, 1e-7, False, "1899-01-01T00:00:00Z", "1900-01-01", "=1+1", "nan"]
    # control characters and literal _xHHHH_ survive; integers past 15 digits become text
    assert back[3] == [rows[2][0], "123456789012345678", "inf", None, None, None, "", 10**14]


def test_sheet_names_are_made_acceptable_to_excel() -> None:
    assert safe_sheet_name("Q1: [north]/south*?\\") == "Q1_ _north__south___"
    assert safe_sheet_name("x" * 40) == "x" * 31
    assert safe_sheet_name("'quoted'") == "quoted"
    assert safe_sheet_name("𝄞" * 20) == "𝄞" * 15  # Excel counts UTF-16 units
    for bad in ("", "   ", "''", "History", "\x01"):
        assert safe_sheet_name(bad) == "Report"
    assert read_xlsx(table_xlsx(["a"], [], 'Rep "A&B" <x>'))[0] == 'Rep "A&B" <x>'


# ---------------------------------------------------------------- property: any table round-trips

cell = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30),
                 st.floats(allow_nan=False, allow_infinity=False))
table = st.integers(1, 5).flatmap(lambda n: st.tuples(
    st.lists(st.text(max_size=10), min_size=n, max_size=n),
    st.lists(st.lists(cell, min_size=n, max_size=n), max_size=8)))


@given(table)
@example((["_x0041_", "a"], [["_x005F_\x01", -(10**15)], ["\r", 10**15 - 1]]))
def test_any_table_round_trips_through_xlsx(t: tuple[list[str], list[list[Any]]]) -> None:
    columns, rows = t
    _, back = read_xlsx(table_xlsx(columns, rows))
    assert len(back) == 1 + len(rows)

    def expected(v: Any) -> Any:
        big = isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10**15
        return str(v) if big else v

    for got, want in zip(back, [columns, *rows], strict=True):
        want = [expected(v) for v in want]
        got = got + [None] * (len(want) - len(got))  # the reader stops at the last cell present
        assert got == want
        assert [type(g) for g in got] == [type(w) for w in want]  # True is not 1, 2.0 is not 2


@given(table)
def test_any_table_round_trips_through_csv(t: tuple[list[str], list[list[Any]]]) -> None:
    columns, rows = t
    back = read_csv(table_csv(columns, rows).decode("utf-8-sig"))
    assert len(back) == 1 + len(rows)

    def same(text: str, v: Any) -> bool:
        if v is None:
            return text == ""
        if isinstance(v, bool):
            return text == ("true" if v else "false")
        if isinstance(v, int):
            return int(text) == v
        if isinstance(v, float):
            return float(text) == v
        return text == ("'" + v if v[:1] in ("=", "+", "-", "@", "\t", "\r") else v)

    for got, want in zip(back, [columns, *rows], strict=True):
        assert len(got) == len(want) and all(same(g, w) for g, w in zip(got, want, strict=True)), (got, want)


@given(st.datetimes(min_value=datetime(1900, 3, 2), max_value=datetime(9998, 12, 31),
                    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                                               timezone(timedelta(hours=-8))])))
def test_xlsx_datetimes_are_utc_serials_to_the_tenth_of_a_millisecond(at: datetime) -> None:
    _, back = read_xlsx(table_xlsx(["at"], [[at]]))
    assert abs(back[1][0] - at) < timedelta(microseconds=100)
