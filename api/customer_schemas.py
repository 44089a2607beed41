"""Customer bodies (what /docs shows) and the CSV import's file format, checked by the same rules."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from storage.customer_import import ImportRow
from storage.customers import FIELDS

MAX_TAGS = 50
MAX_CUSTOM_FIELDS_BYTES = 16 * 1024
MAX_IMPORT_BYTES = 5 * 1024 * 1024
MAX_IMPORT_ROWS = 50_000

Tag = Annotated[str, Field(min_length=1, max_length=64)]
TeamOrUserId = Annotated[int, Field(ge=1, le=2**63 - 1)]
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False, description="WGS84 degrees")]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False, description="WGS84 degrees")]
Radius = Annotated[float, Field(ge=20, le=3000, allow_inf_nan=False,
                                description="check-in radius in metres (20–3000)")]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Address = Annotated[str, Field(max_length=500)]
Grade = Annotated[str, Field(min_length=1, max_length=32,
                             description="one of the team's `settings.grades` (default A, B, C)")]
ExternalId = Annotated[str, Field(min_length=1, max_length=200,
                                  description="your system's id; unique; CSV import upserts on it")]


class _Checked(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    @field_validator("tags", check_fields=False)
    @classmethod
    def _distinct_tags(cls, value: list[str] | None) -> list[str] | None:
        # A tag is a label: repeats add nothing, so they are dropped, keeping the first's place.
        return None if value is None else list(dict.fromkeys(value))

    @field_validator("custom_fields", check_fields=False)
    @classmethod
    def _small_custom_fields(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        size = len(json.dumps(value, ensure_ascii=False).encode()) if value is not None else 0
        if size > MAX_CUSTOM_FIELDS_BYTES:
            raise ValueError(f"larger than {MAX_CUSTOM_FIELDS_BYTES} bytes as JSON")
        return value


class CustomerIn(_Checked):
    name: Name
    address: Address | None = None
    latitude: Latitude
    longitude: Longitude
    radius_m: Radius = 150.0
    grade: Grade | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    team_id: TeamOrUserId | None = Field(default=None, description="default: the rep's team; for a rep "
                                                                   "creating a customer, their own team")
    assigned_rep_id: TeamOrUserId | None = Field(default=None,
                                                 description="a rep's user id; a rep creating: themselves")
    custom_fields: dict[str, Any] = Field(default_factory=dict, description="any JSON object up to 16 kB")
    external_id: ExternalId | None = None


_REQUIRED = ("name", "latitude", "longitude", "radius_m", "tags", "custom_fields")


class CustomerPatch(_Checked):
    """Only the fields sent change; null clears address, grade, team_id, assigned_rep_id, external_id."""

    name: Name | None = None
    address: Address | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    radius_m: Radius | None = None
    grade: Grade | None = None
    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS)
    team_id: TeamOrUserId | None = None
    assigned_rep_id: TeamOrUserId | None = None
    custom_fields: dict[str, Any] | None = None
    external_id: ExternalId | None = None

    @model_validator(mode="after")
    def _no_null_for_required(self) -> CustomerPatch:
        cleared = sorted(k for k in _REQUIRED if k in self.model_fields_set and getattr(self, k) is None)
        if cleared:
            raise ValueError(f"{', '.join(cleared)} cannot be null")
        return self


class CustomerOut(BaseModel):
    id: int
    name: str
    address: str | None
    latitude: float
    longitude: float
    radius_m: float
    grade: str | None
    tags: list[str]
    team_id: int | None
    assigned_rep_id: int | None
    custom_fields: dict[str, Any]
    external_id: str | None
    created_at: datetime
    updated_at: datetime


class CustomerPage(BaseModel):
    items: list[CustomerOut]
    next_after: int | None = Field(description="pass as `after` for the next page; null at the end")


class NearbyCustomer(CustomerOut):
    distance_m: float = Field(description="great-circle (haversine) distance from the query point")


class NearbyPage(BaseModel):
    items: list[NearbyCustomer] = Field(description="nearest first")


class ImportProblem(BaseModel):
    line: int = Field(description="line in the file, the header being line 1")
    error: str


class ImportReport(BaseModel):
    imported: int = Field(description="new customers (with dry_run: that would be created)")
    updated: int = Field(description="customers found by external_id whose values changed")
    unchanged: int = Field(description="customers found by external_id that already had these values")
    errors: list[ImportProblem] = Field(description="rows not imported; each wrote nothing")
    dry_run: bool


# ---- The CSV file

COLUMNS = ("name", "address", "latitude", "longitude", "radius_m", "grade", "tags", "team", "rep",
           "external_id")
NEEDED = ("name", "latitude", "longitude")
_RANGES = {"latitude": (-90, 90), "longitude": (-180, 180), "radius_m": (20, 3000)}
_RANGE_ERRORS = {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}


class CsvRefused(ValueError):
    """The file as a whole is unusable (422): not UTF-8, no header, a needed column missing."""


class CsvTooLarge(ValueError):
    """More rows than an import takes (413)."""


@dataclass(slots=True)
class ParsedCsv:
    rows: list[ImportRow] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    # Storage FIELDS the file sets (team -> team_id, ...); custom fields go by custom_keys.
    columns: frozenset[str] = frozenset()
    custom_keys: list[str] = field(default_factory=list)


def _row_error(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        where = str(e["loc"][0]) if e["loc"] else "row"
        if e["type"] in _RANGE_ERRORS and where in _RANGES:
            low, high = _RANGES[where]
            parts.append(f"{where} {e['input']} out of range ({low} to {high})")
        else:
            parts.append(f"{where}: {e['msg']}" if where != "row" else e["msg"])
    return "; ".join(parts)


def _header(names: list[str]) -> tuple[list[str], list[str]]:
    header = [n.strip() for n in names]
    known = [n.lower() if n.lower() in COLUMNS else n for n in header]
    if any(not n for n in known):
        raise CsvRefused(f"column {known.index('') + 1} of the header has no name")
    repeated = sorted({n for n in known if known.count(n) > 1})
    if repeated:
        raise CsvRefused(f"the header repeats {', '.join(repeated)}")
    missing = [n for n in NEEDED if n not in known]
    if missing:
        raise CsvRefused(f"the header lacks {', '.join(missing)} (it has {', '.join(header)})")
    return known, [n for n in known if n not in COLUMNS]


def _values(cells: dict[str, str], custom_keys: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {k: cells[k] for k in ("name", "latitude", "longitude")}
    for k in ("address", "grade", "external_id", "radius_m"):
        if cells.get(k):
            values[k] = cells[k]
    values["tags"] = [t.strip() for t in cells.get("tags", "").split(";") if t.strip()]
    values["custom_fields"] = {k: cells[k] for k in custom_keys if cells[k]}
    return values


def parse_csv(data: bytes) -> ParsedCsv:
    """Rows checked one by one; an empty cell is "no value" (the default radius, no grade, ...).
    Raises CsvRefused for an unusable file and CsvTooLarge past MAX_IMPORT_ROWS."""
    try:
        text = data.decode("utf-8-sig")  # Excel writes a BOM; it is not part of the first column name
    except UnicodeDecodeError as exc:
        raise CsvRefused(f"the file is not UTF-8 (byte {exc.start})") from exc
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    parsed = ParsedCsv()
    try:
        first = next(reader, None)
        if first is None:
            raise CsvRefused("the file is empty")
        names, parsed.custom_keys = _header(first)
        present = {"team": "team_id", "rep": "assigned_rep_id"}
        parsed.columns = frozenset(present.get(n, n) for n in names if n in COLUMNS) & set(FIELDS)
        line = reader.line_num + 1
        count = 0
        for cells in reader:
            start, line = line, reader.line_num + 1
            if not any(c.strip() for c in cells):
                continue
            count += 1
            if count > MAX_IMPORT_ROWS:
                raise CsvTooLarge(f"the file has more than {MAX_IMPORT_ROWS} rows")
            if len(cells) != len(names):
                parsed.errors.append((start, f"{len(cells)} fields where the header has {len(names)}"))
                continue
            row = {n: c.strip() for n, c in zip(names, cells, strict=True)}
            empty = [k for k in NEEDED if not row[k]]
            if empty:
                parsed.errors.append((start, f"{', '.join(empty)} missing"))
                continue
            try:
                checked = CustomerIn.model_validate(_values(row, parsed.custom_keys))
            except ValidationError as exc:
                parsed.errors.append((start, _row_error(exc)))
                continue
            values = checked.model_dump(exclude={"team_id", "assigned_rep_id"})
            parsed.rows.append(ImportRow(start, values, row.get("team") or None, row.get("rep") or None))
    except csv.Error as exc:
        raise CsvRefused(f"line {reader.line_num}: {exc}") from exc
    return parsed
