"""Request and response bodies of report templates, visit reports, photos and the customer timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FieldType = Literal["text", "number", "choice", "multichoice", "boolean", "date"]


class TemplateField(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(max_length=64, description="letters, digits, _; starts with a letter; unique")
    label: str = Field(max_length=200)
    type: FieldType
    required: bool = False
    choices: list[str] | None = Field(None, description="choice and multichoice only")
    min: float | None = Field(None, allow_inf_nan=False, description="number only")
    max: float | None = Field(None, allow_inf_nan=False, description="number only")


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fields: list[TemplateField] = Field(max_length=100)


class TemplateOut(BaseModel):
    team_id: int
    fields: list[dict[str, Any]]
    version: int = Field(description="0: the team has not saved a template yet")
    updated_by: int | None
    updated_at: datetime | None


class ReportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answers: dict[str, Any] = Field(default_factory=dict, description="field key -> value")
    notes: str | None = Field(None, max_length=10_000)


class PhotoOut(BaseModel):
    id: int
    visit_id: int
    report_id: int | None
    customer_id: int
    rep_id: int | None
    sha256: str = Field(description="of the original as uploaded; its ETag")
    watermarked_sha256: str | None
    content_type: str
    size_bytes: int
    phash: str = Field(description="64-bit perceptual hash, 16 hex digits")
    width: int
    height: int
    taken_at: datetime | None = Field(
        description="EXIF DateTimeOriginal (read in the rep's zone when it has no offset)")
    exif_latitude: float | None
    exif_longitude: float | None
    flags: list[str] = Field(description="reused_photo, exif_time_mismatch, exif_location_far, no_exif")
    duplicate_of: int | None = Field(description="the earlier photo this one reuses")
    uploaded_by: int | None
    uploaded_at: datetime


class PhotoList(BaseModel):
    items: list[PhotoOut]


class ReportOut(BaseModel):
    id: int
    visit_id: int
    template_version: int | None
    template: list[dict[str, Any]]
    answers: dict[str, Any]
    notes: str | None
    submitted_by: int | None
    submitted_at: datetime
    updated_at: datetime
    photos: list[PhotoOut]


class TimelineEntry(BaseModel):
    type: str = Field(description="visit_planned, visit_detected, visit_approved, visit_rejected, "
                                  "checked_in, checked_out, checkin_refused, checkout_refused, "
                                  "presence_detected, visit_missed, visit_cancelled, report, photo")
    time: datetime
    visit_id: int
    rep_id: int
    detail: dict[str, Any]


class TimelinePage(BaseModel):
    items: list[TimelineEntry]
    next_after: str | None = Field(description="pass as `after` for the next (older) page")
