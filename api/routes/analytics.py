"""Field-sales analytics: visit figures per rep and team for a period, and the overdue-customers list.

Who sees what: a rep their own row, a manager the reps of the teams they manage, an admin everyone
(``api.access``); customer counts and the overdue list follow the customer visibility rules
(``api.routes.customers.access_of``). A team or rep the caller may not see is a 404, like an unknown
one. Definitions of every figure: storage/analytics.py and storage/overdue.py.
"""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, HTTPException, Query, Response

from api.access import Scope, Visible, require_team, require_user
from api.analytics_schemas import (
    OverduePage,
    RepFiguresOut,
    TeamFiguresOut,
    VisitAnalytics,
    VisitFigures,
    figures_out,
    overdue_out,
)
from api.deps import Deps
from api.formats import table_csv, table_xlsx
from api.routes.customers import access_of
from api.timerange import checked_range
from storage.analytics import Analytics, TooManyReps, visit_analytics
from storage.errors import NotFound, StorageUnavailable
from storage.overdue import Cursor, overdue_customers

router = APIRouter(prefix="/analytics", tags=["analytics"])

MAX_RANGE = timedelta(days=93)
MAX_REPS = 1000
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_TABLES: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {}, XLSX: {}}}}


async def _check_filters(d: Deps, scope: Scope, team: int | None, rep: int | None) -> None:
    """404 for a team or user that does not exist or that the caller may not see."""
    if team is None and rep is None:
        return
    if team is not None:
        require_team(scope, team)
    if rep is not None:
        require_user(scope, rep)
    try:
        async with d.db().connection() as conn:
            cur = await conn.execute("SELECT (SELECT count(*) FROM teams WHERE id = %s),"
                                     " (SELECT count(*) FROM users WHERE id = %s)", (team, rep))
            found = await cur.fetchone()
    except psycopg.OperationalError as exc:
        raise StorageUnavailable(str(exc)) from exc
    assert found is not None
    if team is not None and not found[0]:
        raise NotFound(f"team {team}")
    if rep is not None and not found[1]:
        raise NotFound(f"user {rep}")


def _period(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    start, end = checked_range(start, end)
    if end - start > MAX_RANGE:
        raise HTTPException(422, [{"where": "query.to", "problem": "the range is longer than 93 days; "
                                                                    "ask for shorter ranges"}])
    return start, end


def _answer(a: Analytics, start: datetime, end: datetime) -> VisitAnalytics:
    return VisitAnalytics(
        start=start, end=end,
        reps=[RepFiguresOut(rep_id=r.rep_id, name=r.name, team_id=r.team_id, calendar=r.calendar,
                            **figures_out(r.figures).model_dump()) for r in a.reps],
        teams=[TeamFiguresOut(team_id=t.team_id, name=t.name, reps=t.reps,
                              **figures_out(t.figures).model_dump()) for t in a.teams],
        total=figures_out(a.total))


def _table(out: VisitAnalytics) -> tuple[list[str], list[list[Any]]]:
    """One row per rep, then one per team (``kind`` says which), then the total."""
    measures = list(VisitFigures.model_fields)
    columns = ["kind", "rep_id", "rep", "team_id", "team", *measures]
    names = {t.team_id: t.name for t in out.teams}
    rows = [["rep", r.rep_id, r.name, r.team_id, names.get(r.team_id) if r.team_id else None,
             *(getattr(r, m) for m in measures)] for r in out.reps]
    rows += [["team", None, None, t.team_id, t.name, *(getattr(t, m) for m in measures)] for t in out.teams]
    rows.append(["total", None, None, None, None, *(getattr(out.total, m) for m in measures)])
    return columns, rows


@router.get("/visits", response_model=VisitAnalytics, responses=_TABLES)
async def visit_figures(
    d: Deps,
    scope: Visible,
    start: Annotated[datetime, Query(alias="from", description="ISO 8601 with a zone, inclusive")],
    end: Annotated[datetime, Query(alias="to", description="ISO 8601 with a zone, exclusive; at most "
                                                          "93 days after `from`")],
    team: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="only the reps of this team")] = None,
    rep: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="only this rep")] = None,
    format: Literal["json", "csv", "xlsx"] = "json",
) -> VisitAnalytics | Response:
    """Per rep (those the caller sees, at most 1000: filter by team beyond that) and per team:
    visits planned/done/missed, check-in success rate, time at customers / driving / idle within
    working hours, customers covered vs assigned, average visit duration, km per visit. A visit
    counts in the period when its day (the rep's local date) begins inside [from, to)."""
    start, end = _period(start, end)
    await _check_filters(d, scope, team, rep)
    try:
        found = await visit_analytics(d.db(), start, end, user_ids=scope.users_filter(),
                                      access=access_of(scope), team_id=team, rep_id=rep, max_reps=MAX_REPS)
    except TooManyReps as exc:
        raise HTTPException(422, [{"where": "query.team", "problem": f"{exc}; ask for one team"}]) from exc
    out = _answer(found, start, end)
    if format == "json":
        return out
    stem = f"fieldtrack-visit-analytics-{start:%Y%m%dT%H%M%SZ}-{end:%Y%m%dT%H%M%SZ}"
    columns, rows = _table(out)
    if format == "csv":
        return Response(table_csv(columns, rows), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{stem}.csv"'})
    return Response(table_xlsx(columns, rows, sheet_name="visits"), media_type=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="{stem}.xlsx"'})


def _encode(c: Cursor) -> str:
    return base64.urlsafe_b64encode(":".join(map(str, c)).encode()).decode().rstrip("=")


def _decode(text: str) -> Cursor:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        g, k, i = (int(x) for x in raw.split(":"))
        if g not in (0, 1) or not -(2**31) < k < 2**31 or not 0 <= i < 2**63:
            raise ValueError("out of range")
    except ValueError as exc:  # binascii.Error and UnicodeDecodeError are ValueErrors too
        raise HTTPException(422, [{"where": "query.after", "problem": "invalid cursor"}]) from exc
    return g, k, i


@router.get("/overdue", response_model=OverduePage)
async def overdue(
    d: Deps,
    scope: Visible,
    team: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="customers of this team")] = None,
    rep: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="customers assigned to this rep")]
    = None,
    grade: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
    as_of: Annotated[date | None, Query(description="the day to judge on; default today (UTC)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[str | None, Query(max_length=200, description="next_after of the previous page")]
    = None,
) -> OverduePage:
    """Customers the caller sees whose last done visit is older than their grade's cadence
    (`settings.visit_cadence_days` of their team, default A 7, B 14, C 30 days), or who were never
    visited: never-visited first (shortest cadence first), then most days overdue. Customers of a
    grade without a cadence are not listed."""
    await _check_filters(d, scope, team, rep)
    day = as_of if as_of is not None else datetime.now(UTC).date()
    if not date(1900, 1, 1) <= day <= date(9999, 1, 1):
        raise HTTPException(422, [{"where": "query.as_of", "problem": "as_of must be between 1900 and 9999"}])
    rows = await overdue_customers(d.db(), access_of(scope), day, team_id=team, rep_id=rep, grade=grade,
                                   limit=limit + 1, after=_decode(after) if after else None)
    more = len(rows) > limit
    rows = rows[:limit]
    return OverduePage(as_of=day, items=[overdue_out(o) for o in rows],
                       next_after=_encode(rows[-1].cursor) if more else None)
