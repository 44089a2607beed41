"""Request and response bodies of users, teams, tokens and ``/api/me``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, model_validator

from api.schemas import BigInt
from processors.team_policy import TeamPolicy
from storage.calendars import check_time_zone, check_working_hours

Role = Literal["admin", "manager", "rep"]
Calendar = Annotated[dict[str, Any], AfterValidator(check_working_hours), Field(
    description='weekly working periods in local time: {"mon": [["08:00", "12:00"], ["13:00", "17:00"]],'
    " ...};"
    " days mon..sun, a day left out is not worked; periods in order, start before end (24:00 may end one)",
    examples=[{"mon": [["08:00", "17:00"]], "tue": [["08:00", "17:00"]]}])]
TimeZone = Annotated[str, Field(max_length=64, description="IANA name, e.g. Europe/Amsterdam"),
                     AfterValidator(check_time_zone)]


def _policy(value: dict[str, Any]) -> dict[str, Any]:
    TeamPolicy.from_settings(value)
    return value


Settings = Annotated[dict[str, Any], AfterValidator(_policy), Field(
    description="team policy; unknown keys are kept. Known: store_off_hours (false: off-hours positions"
    " are acknowledged but not stored), checkin {max_fix_age_s 120, max_accuracy_m 100, max_future_s 30,"
    " teleport_speed_kmh 300, track_window_s 300, track_tolerance_m 100}, visit_detection"
    " {min_stop_minutes 5}, mileage {rate 0, currency EUR}, visit_cadence_days {A 7, B 14, C 30},"
    " grades [A, B, C]",
    examples=[{"store_off_hours": True, "mileage": {"rate": 0.3, "currency": "EUR"},
               "visit_cadence_days": {"A": 7, "B": 14, "C": 30}}])]
Email = Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$",
                             description="unique, compared without case")]
Name = Annotated[str, Field(min_length=1, max_length=200)]


def _not_null(model: BaseModel, fields: tuple[str, ...]) -> None:
    nulls = [k for k in fields if k in model.model_fields_set and getattr(model, k) is None]
    if nulls:
        raise ValueError(f"{', '.join(nulls)} cannot be null")


class UserIn(BaseModel):
    name: Name
    role: Role
    email: Email | None = None
    team_id: BigInt | None = Field(default=None, description="a rep's team (managers: their own team)")
    working_hours: Calendar | None = Field(default=None, description="null: the team's calendar")
    time_zone: TimeZone | None = Field(default=None, description="null: the team's zone")


class UserPatch(BaseModel):
    """Only the fields sent change; null clears email, team, calendar and zone."""

    name: Name | None = None
    role: Role | None = None
    email: Email | None = None
    team_id: BigInt | None = None
    working_hours: Calendar | None = None
    time_zone: TimeZone | None = None
    disabled: bool | None = Field(default=None, description="a disabled user's tokens stop working")

    @model_validator(mode="after")
    def _required(self) -> UserPatch:
        _not_null(self, ("name", "role", "disabled"))
        return self


class CalendarIn(BaseModel):
    working_hours: Calendar | None = Field(description="null: the team's calendar")
    time_zone: TimeZone | None = Field(description="null: the team's zone")


class UserOut(BaseModel):
    id: int
    name: str
    email: str | None
    role: Role
    team_id: int | None
    working_hours: dict[str, Any] | None
    time_zone: str | None
    disabled: bool
    created_at: datetime
    device_ids: list[int] = Field(description="the devices this person carries")
    managed_team_ids: list[int] = Field(description="the teams this person manages")


class UserPage(BaseModel):
    items: list[UserOut]
    next_after: int | None = Field(description="pass as `after` to get the next page; null at the end")


class TeamIn(BaseModel):
    name: Name
    time_zone: TimeZone = "UTC"
    working_hours: Calendar = Field(default_factory=dict)
    settings: Settings = Field(default_factory=dict)


class TeamPatch(BaseModel):
    name: Name | None = None
    time_zone: TimeZone | None = None
    working_hours: Calendar | None = None
    settings: Settings | None = None

    @model_validator(mode="after")
    def _required(self) -> TeamPatch:
        _not_null(self, ("name", "time_zone", "working_hours", "settings"))
        return self


class TeamOut(BaseModel):
    id: int
    name: str
    time_zone: str
    working_hours: dict[str, Any]
    settings: dict[str, Any]
    created_at: datetime
    manager_ids: list[int]


class TeamPage(BaseModel):
    items: list[TeamOut]
    next_after: int | None = Field(description="pass as `after` to get the next page; null at the end")


class TokenIn(BaseModel):
    name: Name = Field(default="api", description="what the token is for, e.g. the phone it is on")


class TokenOut(BaseModel):
    id: int
    name: str
    role: Role
    user_id: int | None
    created_at: datetime


class TokenCreated(TokenOut):
    token: str = Field(description="the bearer token; only its hash is kept, so it is not shown again")


class TokenPage(BaseModel):
    items: list[TokenOut]
    next_after: int | None = Field(description="pass as `after` to get the next page; null at the end")


class ScopeOut(BaseModel):
    everything: bool = Field(description="admin: every user, team and device (the lists are then empty)")
    user_ids: list[int]
    team_ids: list[int] = Field(description="teams whose record the caller may read")
    managed_team_ids: list[int]
    device_ids: list[int]


class MeOut(BaseModel):
    token_id: int
    token_name: str
    role: Role
    user: UserOut | None = Field(description="null for a system token (e.g. the bootstrap admin token)")
    scope: ScopeOut
