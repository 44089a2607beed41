"""The mileage reimbursement report: per rep and local day, business km (on duty) and what they pay.

The km, days and the choice of device are defined in storage/mileage.py. This route picks the reps
the caller may see (a rep: themself; a manager: the reps of the teams they manage; an admin: all),
narrowed by ``team`` and ``rep`` (an id the caller may not see is a 404, as an unknown one), and
prices the days: amount = business km × rate, with the rate asked for (``rate``) or the rep's
team's ``mileage.rate`` and the team's currency. The amount is computed from the km as shown
(3 decimals) and rounded to cents, so a sheet's columns multiply out; totals add up the rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response

from api.access import Scope, Visible, can_see_team, require_user
from api.deps import Deps
from api.formats import table_csv, table_xlsx
from api.mileage_schemas import (
    CurrencyTotal,
    MileageDayOut,
    MileageReport,
    MileageTotal,
    MileageTripOut,
    NotCountedOut,
    RepMileageOut,
)
from api.schemas import BigInt
from api.timerange import checked_range
from storage.errors import NotFound
from storage.mileage import MileageDay, MileageRep, MileageTrip, mileage_days, mileage_reps
from storage.teams import TeamStore

router = APIRouter(tags=["reports"])

# A reimbursement period is a month or a quarter; longer ranges belong in several reports.
MAX_RANGE = timedelta(days=93)
MAX_REPS = 1000
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_TABLES: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {}, XLSX: {}}}}
COLUMNS = ("rep_id", "rep", "team_id", "team", "day", "working", "device_id", "business_km", "personal_km",
           "total_km", "rate", "currency", "amount", "driving_time_s", "trips", "not_counted_device_ids")


def _km(metres: float) -> float:
    return round(metres / 1000.0, 3)


def _money(x: float) -> float:
    return round(x, 2)


def _trip_out(t: MileageTrip) -> MileageTripOut:
    # The sheet goes to managers and accounting: an end of the trip that lay off duty (often the
    # rep's home) is not shown, only the on-duty part's times.
    first, last = t.starts_on_duty, t.ends_on_duty
    return MileageTripOut(device_id=t.device_id, start_time=t.duty_start or t.start_time,
                          end_time=t.duty_end or t.end_time,
                          start_latitude=t.start_latitude if first else None,
                          start_longitude=t.start_longitude if first else None,
                          end_latitude=t.end_latitude if last else None,
                          end_longitude=t.end_longitude if last else None,
                          clipped=not (first and last), business_km=_km(t.business_m),
                          business_time_s=round(t.business_s, 3), open=t.open)


def _day_out(day: MileageDay, rate: float) -> MileageDayOut:
    business = _km(day.business_m)
    return MileageDayOut(
        day=day.day, working=day.working, device_id=day.device_id, business_km=business,
        personal_km=_km(day.personal_m), total_km=_km(day.total_m), amount=_money(business * rate),
        driving_time_s=round(day.driving_s, 3),
        trips=[_trip_out(t) for t in day.trips],
        not_counted=[NotCountedOut(device_id=o.device_id, business_km=_km(o.business_m),
                                   personal_km=_km(o.personal_m)) for o in day.not_counted])


def _total(days: Sequence[MileageDayOut]) -> MileageTotal:
    return MileageTotal(business_km=round(sum(d.business_km for d in days), 3),
                        personal_km=round(sum(d.personal_km for d in days), 3),
                        amount=_money(sum(d.amount for d in days)),
                        driving_time_s=round(sum(d.driving_time_s for d in days), 3))


def _rep_out(rep: MileageRep, days: Sequence[MileageDay], rate: float | None) -> RepMileageOut:
    price = rep.rate if rate is None else rate
    rows = [_day_out(d, price) for d in days]
    return RepMileageOut(rep_id=rep.id, name=rep.name, team_id=rep.team_id, team=rep.team_name,
                         time_zone=rep.time_zone, rate=price, currency=rep.currency, days=rows,
                         total=_total(rows))


def _totals(reps: Sequence[RepMileageOut]) -> list[CurrencyTotal]:
    out = []
    for currency in sorted({r.currency for r in reps}):
        t = _total([d for r in reps if r.currency == currency for d in r.days])
        out.append(CurrencyTotal(currency=currency, **t.model_dump()))
    return out


def _table_rows(reps: Sequence[RepMileageOut]) -> list[list[Any]]:
    return [[r.rep_id, r.name, r.team_id, r.team, d.day, d.working, d.device_id, d.business_km, d.personal_km,
             d.total_km, r.rate, r.currency, d.amount, d.driving_time_s, len(d.trips),
             " ".join(str(o.device_id) for o in d.not_counted) or None] for r in reps for d in r.days]


def _checked_rate(rate: float | None) -> float | None:
    if rate is not None and (not math.isfinite(rate) or rate < 0):
        raise HTTPException(422, [{"where": "query.rate",
                                   "problem": "must be a finite number of at least 0"}])
    return rate


async def _reps(d: Deps, scope: Scope, team: int | None, rep: int | None) -> list[MileageRep]:
    if team is not None:
        if not can_see_team(scope, team):
            raise NotFound(f"team {team}")
        await TeamStore(d.db()).get(team)
    if rep is not None:
        require_user(scope, rep)
    reps = await mileage_reps(d.db(), scope.users_filter(), team_id=team, rep_id=rep, limit=MAX_REPS + 1)
    if rep is not None and not reps:
        # Not a rep, or not in that team: nothing to report, answered like an unknown id.
        raise NotFound(f"user {rep}")
    if len(reps) > MAX_REPS:
        raise HTTPException(422, f"more than {MAX_REPS} reps; ask for one team or one rep")
    return reps


@router.get("/reports/mileage", response_model=MileageReport, responses=_TABLES)
async def mileage_report(
    d: Deps, scope: Visible,
    start: Annotated[datetime, Query(alias="from", description="ISO 8601 with a zone, inclusive")],
    end: Annotated[datetime, Query(alias="to",
                                   description="ISO 8601 with a zone, exclusive; at most 93 days")],
    team: Annotated[BigInt | None, Query(description="only this team's reps")] = None,
    rep: Annotated[BigInt | None, Query(description="only this rep")] = None,
    rate: Annotated[float | None, Query(description="per km, instead of each team's mileage.rate")] = None,
    format: Literal["json", "csv", "xlsx"] = "json",
) -> MileageReport | Response:
    """Per rep and local day: business km (on duty, from the odometer), personal km (reported, not
    paid), amount = business km × rate, and the trips as evidence. Working days are listed even
    without movement; other days only when a device moved. With a phone and a vehicle tracker, the
    device with the most business km counts that day and the other is listed as not counted.
    `format=csv|xlsx`: one row per rep and day."""
    start, end = checked_range(start, end)
    if end - start > MAX_RANGE:
        raise HTTPException(422, "the range is longer than 93 days; ask for one month or quarter at a time")
    price = _checked_rate(rate)
    reps = await _reps(d, scope, team, rep)
    by_rep: dict[int, list[MileageDay]] = {r.id: [] for r in reps}
    try:
        days = await mileage_days(d.db(), [r.id for r in reps], start, end)
    except OverflowError as exc:  # local days at the ends of the calendar (years 1 and 9999)
        raise HTTPException(422, "the range reaches beyond the years 1 to 9999") from exc
    for day in days:
        by_rep[day.rep_id].append(day)
    out = [_rep_out(r, by_rep[r.id], price) for r in reps]
    if format == "json":
        # Serialized here: a quarter of trips as evidence is megabytes, and letting FastAPI validate the
        # model again against response_model doubles the time for nothing.
        body = MileageReport(start=start, end=end, rate=price, reps=out, totals=_totals(out))
        return Response(body.model_dump_json(by_alias=True), media_type="application/json")
    stem = f"fieldtrack-mileage-{start:%Y%m%dT%H%M%SZ}-{end:%Y%m%dT%H%M%SZ}"
    rows = _table_rows(out)
    if format == "csv":
        table, media, name = table_csv(COLUMNS, rows), "text/csv; charset=utf-8", f"{stem}.csv"
    else:
        table, media, name = table_xlsx(COLUMNS, rows, sheet_name="mileage"), XLSX, f"{stem}.xlsx"
    return Response(table, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
