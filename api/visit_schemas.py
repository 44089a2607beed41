"""Visit and check-in bodies (what /docs shows)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

Id = Annotated[int, Field(ge=1, le=2**63 - 1)]
Purpose = Annotated[str, Field(min_length=1, max_length=1000)]
Note = Annotated[str, Field(min_length=1, max_length=2000)]
Status = Literal["planned", "approved", "rejected", "done", "missed", "cancelled"]
_WINDOW = "aware ISO 8601 time, within 12 h of the rep's local day"


class _Strict(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")


class VisitIn(_Strict):
    customer_id: Id
    rep_id: Id | None = Field(default=None, description="default: the caller, when the caller is a rep")
    day: date = Field(description="the rep's local date of the visit")
    window_start: AwareDatetime | None = Field(default=None, description=_WINDOW)
    window_end: AwareDatetime | None = Field(default=None, description=_WINDOW + "; after window_start")
    purpose: Purpose | None = None


class VisitPatch(_Strict):
    """Reschedule a planned or approved visit; only the fields sent change (null clears a window or
    the purpose). A rep moving an approved visit sends it back for approval."""

    day: date | None = None
    window_start: AwareDatetime | None = None
    window_end: AwareDatetime | None = None
    purpose: Purpose | None = None

    @model_validator(mode="after")
    def _day_not_null(self) -> VisitPatch:
        if "day" in self.model_fields_set and self.day is None:
            raise ValueError("day cannot be null")
        return self


class RejectIn(_Strict):
    note: Note = Field(description="why the plan is rejected (the rep reads it)")


class CancelIn(_Strict):
    note: Note | None = None


class FixIn(_Strict):
    """The phone's current fix, sent with a check-in or check-out."""

    latitude: float = Field(ge=-90, le=90, allow_inf_nan=False, description="WGS84 degrees")
    longitude: float = Field(ge=-180, le=180, allow_inf_nan=False, description="WGS84 degrees")
    fix_time: AwareDatetime = Field(description="when the phone took the fix (ISO 8601 with a zone)")
    accuracy_m: float | None = Field(default=None, ge=0, le=1_000_000, allow_inf_nan=False,
                                     description="horizontal accuracy the phone reports, metres")
    mock: bool = Field(default=False, description="the phone's mock-location flag (Android isMock)")
    device_id: Id | None = Field(default=None, description="the rep's device that took the fix")


class VisitOut(BaseModel):
    id: int
    customer_id: int
    rep_id: int
    team_id: int | None
    day: date
    window_start: datetime | None
    window_end: datetime | None
    purpose: str | None
    status: Status
    source: Literal["plan", "detected"]
    created_by: int | None
    reviewed_by: int | None
    reviewed_at: datetime | None
    review_note: str | None
    checkin_at: datetime | None
    checkin_fix_time: datetime | None
    checkin_latitude: float | None
    checkin_longitude: float | None
    checkin_accuracy_m: float | None
    checkin_distance_m: float | None = Field(description="metres from the customer at check-in")
    checkout_at: datetime | None
    checkout_fix_time: datetime | None
    checkout_latitude: float | None
    checkout_longitude: float | None
    checkout_distance_m: float | None
    dwell_s: float | None = Field(description="check-out fix time minus check-in fix time")
    detected_device_id: int | None
    detected_start: datetime | None
    detected_end: datetime | None
    detected_distance_m: float | None
    flags: list[str] = Field(description="checkout_far, checkin_without_presence, presence_without_checkin")
    created_at: datetime
    updated_at: datetime


class VisitPage(BaseModel):
    items: list[VisitOut]
    next_after: str | None = Field(description="pass as `after` for the next page; null at the end")


class AttemptOut(BaseModel):
    id: int
    visit_id: int
    rep_id: int
    customer_id: int
    team_id: int | None
    user_id: int | None
    kind: Literal["checkin", "checkout"]
    at: datetime = Field(description="server time of the attempt")
    fix_time: datetime | None
    latitude: float | None
    longitude: float | None
    accuracy_m: float | None
    mock: bool
    accepted: bool
    reason: str | None = Field(description="refused only: too_far, stale_fix, future_fix, inaccurate, "
                                           "mock_location, teleport, track_mismatch, bad_state")
    detail: dict[str, Any] = Field(description="the numbers behind the verdict and a `message`")


class AttemptPage(BaseModel):
    items: list[AttemptOut]
    next_after: str | None = Field(description="pass as `after` for the next page; null at the end")


REFUSED_EXAMPLE = {"error": "invalid", "detail": {
    "reason": "too_far", "message": "412 m from the customer; the check-in radius is 150 m",
    "distance_m": 412.3, "radius_m": 150.0, "age_s": 8.2, "accuracy_m": 12.0, "attempt_id": 17}}
