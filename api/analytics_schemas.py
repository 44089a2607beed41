"""What the analytics routes answer (what /docs shows); the definitions are in storage/analytics.py."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from storage.analytics import Figures
from storage.overdue import Overdue


class VisitFigures(BaseModel):
    planned: int = Field(description="plans of the period, neither rejected nor cancelled")
    done: int
    missed: int
    open: int = Field(description="plans still planned or approved")
    cancelled: int
    rejected: int
    unplanned_detected: int = Field(description="visits the detector found without a plan")
    checkin_attempts: int
    checkins_accepted: int
    checkin_success_rate: float | None = Field(description="accepted / attempts; null without attempts")
    on_duty_s: float = Field(description="working hours in the period (no calendar: first to last "
                                         "position of each day)")
    at_customers_s: float
    driving_s: float = Field(description="on-duty trip time, as in the mileage report")
    idle_s: float
    average_visit_s: float | None = Field(description="mean on-duty presence of the done visits that "
                                                      "have one")
    timed_visits: int = Field(description="done visits with a presence (the average's count)")
    customers_covered: int = Field(description="distinct customers with a done visit")
    customers_assigned: int = Field(description="a rep's assigned customers; a team's customers")
    assigned_covered: int = Field(description="assigned customers among the covered")
    business_km: float
    km_per_visit: float | None = Field(description="business km / done visits; null without one")


def figures_out(f: Figures) -> VisitFigures:
    rate = f.checkin_success_rate
    average = f.average_visit_s
    per_visit = f.km_per_visit
    return VisitFigures(
        planned=f.planned, done=f.done, missed=f.missed, open=f.open, cancelled=f.cancelled,
        rejected=f.rejected, unplanned_detected=f.unplanned_detected, checkin_attempts=f.checkin_attempts,
        checkins_accepted=f.checkins_accepted, checkin_success_rate=None if rate is None else round(rate, 4),
        on_duty_s=round(f.on_duty_s, 3), at_customers_s=round(f.at_customers_s, 3),
        driving_s=round(f.driving_s, 3), idle_s=round(f.idle_s, 3),
        average_visit_s=None if average is None else round(average, 3), timed_visits=f.timed_visits,
        customers_covered=len(f.covered), customers_assigned=len(f.assigned),
        assigned_covered=f.assigned_covered, business_km=round(f.business_m / 1000.0, 3),
        km_per_visit=None if per_visit is None else round(per_visit, 3))


class RepFiguresOut(VisitFigures):
    rep_id: int
    name: str
    team_id: int | None
    calendar: str = Field(description="whose working hours: own, team, or none")


class TeamFiguresOut(VisitFigures):
    team_id: int
    name: str
    reps: int = Field(description="reps of the team in this answer (their rows are summed)")


class VisitAnalytics(BaseModel):
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    reps: list[RepFiguresOut]
    teams: list[TeamFiguresOut]
    total: VisitFigures = Field(description="every row of the answer")


class OverdueOut(BaseModel):
    customer_id: int
    name: str
    address: str | None
    latitude: float
    longitude: float
    grade: str
    team_id: int | None
    assigned_rep_id: int | None
    assigned_rep_name: str | None
    cadence_days: int
    last_visit_day: date | None = Field(description="null: never visited")
    days_since: int | None
    days_overdue: int | None = Field(description="days_since - cadence_days; null: never visited")


def overdue_out(o: Overdue) -> OverdueOut:
    return OverdueOut(customer_id=o.customer_id, name=o.name, address=o.address, latitude=o.latitude,
                      longitude=o.longitude, grade=o.grade, team_id=o.team_id,
                      assigned_rep_id=o.assigned_rep_id, assigned_rep_name=o.assigned_rep_name,
                      cadence_days=o.cadence_days, last_visit_day=o.last_visit_day, days_since=o.days_since,
                      days_overdue=o.days_overdue)


class OverduePage(BaseModel):
    as_of: date
    items: list[OverdueOut]
    next_after: str | None = Field(description="pass as `after` (with the same as_of) for the next page")
