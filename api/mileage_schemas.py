"""What the mileage report answers (what /docs shows); the definitions are in storage/mileage.py."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field


class MileageTripOut(BaseModel):
    device_id: int
    start_time: datetime = Field(description="start of the trip's on-duty part (the trip's start when "
                                             "it began on duty)")
    end_time: datetime = Field(description="end of the trip's on-duty part")
    start_latitude: float | None = Field(description="where the trip began; null when it began off duty "
                                                     "(off-duty places are private)")
    start_longitude: float | None
    end_latitude: float | None = Field(description="where the trip ended; null when it ended off duty")
    end_longitude: float | None
    clipped: bool = Field(description="the trip began or ended off duty: times are its on-duty part")
    business_km: float = Field(description="km of the trip's on-duty part on this day")
    business_time_s: float = Field(description="seconds of the trip's on-duty part on this day")
    open: bool = Field(description="still under way: the end is the last fix so far")


class NotCountedOut(BaseModel):
    device_id: int
    business_km: float
    personal_km: float


class MileageDayOut(BaseModel):
    day: date = Field(description="the rep's local date (in the rep's calendar zone)")
    working: bool = Field(description="the rep's calendar has on-duty hours on this day")
    device_id: int | None = Field(description="the device counted (most business km); null: none carried")
    business_km: float = Field(description="on-duty km of the counted device (paid)")
    personal_km: float = Field(description="off-duty km of the counted device (never paid)")
    total_km: float = Field(description="business + personal: the summary report's distance of the "
                                        "device and day")
    amount: float = Field(description="business_km × rate, rounded to cents")
    driving_time_s: float = Field(description="on-duty seconds of the counted device's trips")
    trips: list[MileageTripOut] = Field(description="the counted device's trips that overlap on-duty hours")
    not_counted: list[NotCountedOut] = Field(description="the rep's other devices that day: a phone "
                                                         "and a tracker in one car measure one road")


class MileageTotal(BaseModel):
    business_km: float
    personal_km: float
    amount: float
    driving_time_s: float


class RepMileageOut(BaseModel):
    rep_id: int
    name: str
    team_id: int | None
    team: str | None
    time_zone: str
    rate: float = Field(description="per km: the `rate` asked for, else the team's mileage.rate")
    currency: str
    days: list[MileageDayOut]
    total: MileageTotal


class CurrencyTotal(MileageTotal):
    currency: str


class MileageReport(BaseModel):
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    rate: float | None = Field(description="the rate asked for (null: each team's own)")
    reps: list[RepMileageOut]
    totals: list[CurrencyTotal] = Field(description="all reps, per currency")
