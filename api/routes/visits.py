"""Visit plans, their approval, check-in / check-out and the record of every attempt.

Who sees and does what is ``storage.visits``' module docstring; the verification rules are
``processors.checkin``'s. A refused check-in or check-out is a 422 whose detail carries the reason
code, a message with the numbers and the numbers themselves; it is recorded all the same.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Response

from api.access import Scope, Visible
from api.deps import Deps
from api.routes.customers import access_of
from api.timerange import decode_cursor, encode_cursor, range_or_last_day
from api.visit_schemas import (
    REFUSED_EXAMPLE,
    AttemptOut,
    AttemptPage,
    CancelIn,
    FixIn,
    RejectIn,
    Status,
    VisitIn,
    VisitOut,
    VisitPage,
    VisitPatch,
)
from processors.checkin import SubmittedFix
from storage.visits import (
    Attempt,
    AttemptFilters,
    NotAllowed,
    Visit,
    VisitAccess,
    VisitFilters,
    VisitInvalid,
    VisitStore,
)

router = APIRouter(tags=["visits"])
VisitId = Annotated[int, Path(ge=-(2**63), le=2**63 - 1)]
IdQuery = Annotated[int | None, Query(ge=1, le=2**63 - 1)]
Limit = Annotated[int, Query(ge=1, le=1000)]
_CURSOR = re.compile(r"^(\d{4}-\d{2}-\d{2})\.(\d{1,19})$")
_SEEN: dict[int | str, dict[str, Any]] = {404: {"description": "no such visit, or not one the caller sees"}}
_ACT: dict[int | str, dict[str, Any]] = {
    **_SEEN, 403: {"description": "the caller sees the visit but may not do this"},
    409: {"description": "the visit is not in a state for this"}}
_CHECK: dict[int | str, dict[str, Any]] = {**_ACT, 200: {"description": "accepted: the visit"},
          422: {"description": "refused (recorded): detail.reason, detail.message and the numbers; or "
                                "a malformed body (not recorded)",
                "content": {"application/json": {"example": REFUSED_EXAMPLE}}}}


def visit_access(scope: Scope) -> VisitAccess:
    if scope.everything:
        return VisitAccess(everything=True, user_id=scope.user_id, role="admin")
    if scope.user_id is None:
        return VisitAccess(role=scope.role)  # a token of no user: sees nothing
    return VisitAccess(user_id=scope.user_id, role=scope.role, rep_ids=scope.user_ids,
                       managed_team_ids=scope.managed_team_ids if scope.role == "manager" else frozenset())


def _out(v: Visit) -> VisitOut:
    return VisitOut.model_validate(v, from_attributes=True)


def _attempt(a: Attempt) -> AttemptOut:
    return AttemptOut.model_validate(a, from_attributes=True)


def _invalid(exc: VisitInvalid) -> HTTPException:
    return HTTPException(422, [{"where": f"body.{w}", "problem": p} for w, p in exc.problems])


async def _guarded(call: Any) -> Visit:
    try:
        visit: Visit = await call
    except VisitInvalid as exc:
        raise _invalid(exc) from exc
    except NotAllowed as exc:
        raise HTTPException(403, str(exc)) from exc
    return visit


@router.post("/visits", response_model=VisitOut, status_code=201,
             responses={403: {"description": "a rep planning for someone else"}})
async def create_visit(body: VisitIn, d: Deps, scope: Visible, response: Response) -> VisitOut:
    """A rep's plan is `planned` (waits for a manager); a manager's or admin's is `approved`."""
    values = body.model_dump()
    if values["rep_id"] is None:
        if scope.role != "rep" or scope.user_id is None:
            raise HTTPException(422, [{"where": "body.rep_id",
                                       "problem": "required unless the caller is a rep"}])
        values["rep_id"] = scope.user_id
    customers = access_of(scope).condition()
    visit = await _guarded(VisitStore(d.db()).create(values, visit_access(scope), customers[0],
                                                     list(customers[1])))
    response.headers["Location"] = f"/api/visits/{visit.id}"
    return _out(visit)


@router.get("/visits", response_model=VisitPage)
async def list_visits(
    d: Deps,
    scope: Visible,
    rep_id: IdQuery = None,
    team_id: IdQuery = None,
    customer_id: IdQuery = None,
    status: Status | None = None,
    day_from: Annotated[date | None, Query(description="first day, inclusive")] = None,
    day_to: Annotated[date | None, Query(description="last day, inclusive")] = None,
    flagged: Annotated[bool | None, Query(description="true: only visits with flags; false: none")] = None,
    limit: Limit = 100,
    after: Annotated[str | None, Query(max_length=40, description="next_after of the last page")] = None,
) -> VisitPage:
    """Visits the caller sees, by day then id."""
    if day_from is not None and day_to is not None and day_to < day_from:
        raise HTTPException(422, [{"where": "query.day_to", "problem": "must not be before day_from"}])
    cursor = _visit_cursor(after) if after else None
    filters = VisitFilters(rep_id=rep_id, team_id=team_id, customer_id=customer_id, status=status,
                           day_from=day_from, day_to=day_to, flagged=flagged)
    rows = await VisitStore(d.db()).list(visit_access(scope), filters, limit=limit + 1, after=cursor)
    more = len(rows) > limit
    rows = rows[:limit]
    return VisitPage(items=[_out(v) for v in rows],
                     next_after=f"{rows[-1].day.isoformat()}.{rows[-1].id}" if more else None)


def _visit_cursor(after: str) -> tuple[date, int]:
    match = _CURSOR.match(after)
    try:
        if match is None:
            raise ValueError(after)
        return date.fromisoformat(match[1]), int(match[2])
    except ValueError as exc:
        problem = [{"where": "query.after", "problem": "not a next_after of this list"}]
        raise HTTPException(422, problem) from exc


@router.get("/visits/{visit_id}", response_model=VisitOut, responses=_SEEN)
async def get_visit(visit_id: VisitId, d: Deps, scope: Visible) -> VisitOut:
    return _out(await VisitStore(d.db()).get(visit_id, visit_access(scope)))


@router.patch("/visits/{visit_id}", response_model=VisitOut, responses=_ACT)
async def patch_visit(visit_id: VisitId, body: VisitPatch, d: Deps, scope: Visible) -> VisitOut:
    changes = body.model_dump(exclude_unset=True)
    return _out(await _guarded(VisitStore(d.db()).update(visit_id, changes, visit_access(scope))))


@router.post("/visits/{visit_id}/approve", response_model=VisitOut, responses=_ACT)
async def approve_visit(visit_id: VisitId, d: Deps, scope: Visible) -> VisitOut:
    """By a manager of the visit's team or an admin, while it is planned."""
    return _out(await _guarded(VisitStore(d.db()).review(visit_id, "approve", visit_access(scope))))


@router.post("/visits/{visit_id}/reject", response_model=VisitOut, responses=_ACT)
async def reject_visit(visit_id: VisitId, body: RejectIn, d: Deps, scope: Visible) -> VisitOut:
    """By a manager of the visit's team or an admin, while it is planned; the note says why."""
    return _out(await _guarded(VisitStore(d.db()).review(visit_id, "reject", visit_access(scope), body.note)))


@router.post("/visits/{visit_id}/cancel", response_model=VisitOut, responses=_ACT)
async def cancel_visit(visit_id: VisitId, d: Deps, scope: Visible, body: CancelIn | None = None) -> VisitOut:
    """By the rep while it is planned; by a manager of the team or an admin while planned or approved."""
    note = body.note if body is not None else None
    return _out(await _guarded(VisitStore(d.db()).review(visit_id, "cancel", visit_access(scope), note)))


async def _check(kind: str, visit_id: int, body: FixIn, d: Deps, scope: Scope) -> VisitOut:
    fix = SubmittedFix(body.fix_time, body.latitude, body.longitude, body.accuracy_m, body.mock)
    try:
        outcome = await VisitStore(d.db()).check(visit_id, kind, fix, visit_access(scope),
                                                 device_id=body.device_id)
    except VisitInvalid as exc:
        raise _invalid(exc) from exc
    except NotAllowed as exc:
        raise HTTPException(403, str(exc)) from exc
    if not outcome.verdict.accepted:
        detail = {"reason": outcome.verdict.reason, **outcome.verdict.detail,
                  "attempt_id": outcome.attempt.id}
        raise HTTPException(409 if outcome.state_conflict else 422, detail)
    return _out(outcome.visit)


@router.post("/visits/{visit_id}/checkin", response_model=VisitOut, responses=_CHECK)
async def check_in(visit_id: VisitId, body: FixIn, d: Deps, scope: Visible) -> VisitOut:
    """The visit's own rep, with the phone's current fix, on the visit's day (the rep's local date).
    Checked in this order: future_fix, stale_fix, mock_location, inaccurate, too_far, teleport,
    track_mismatch (the rep's tracked positions around the fix time, from every device they carry);
    a planned visit that is not open or not of the fix's day: bad_state."""
    return await _check("checkin", visit_id, body, d, scope)


@router.post("/visits/{visit_id}/checkout", response_model=VisitOut, responses=_CHECK)
async def check_out(visit_id: VisitId, body: FixIn, d: Deps, scope: Visible) -> VisitOut:
    """After an accepted check-in (else 409, recorded as bad_state). The fix's freshness, mock flag
    and accuracy are checked as for a check-in; the distance is recorded, and beyond the radius plus
    the team's track tolerance the visit gets the flag `checkout_far`. dwell_s: fix time minus the
    check-in's fix time."""
    return await _check("checkout", visit_id, body, d, scope)


@router.get("/visits/{visit_id}/attempts", response_model=AttemptPage, responses=_SEEN)
async def visit_attempts(visit_id: VisitId, d: Deps, scope: Visible, limit: Limit = 100,
                         after: Annotated[str | None, Query(max_length=100)] = None) -> AttemptPage:
    """Every check-in and check-out attempt of the visit, oldest first."""
    rows = await VisitStore(d.db()).attempts(visit_access(scope), visit_id=visit_id, limit=limit + 1,
                                             after=decode_cursor(after) if after else None)
    return _attempt_page(rows, limit)


@router.get("/checkin-attempts", response_model=AttemptPage)
async def list_attempts(
    d: Deps,
    scope: Visible,
    accepted: Annotated[bool | None, Query(description="false: the refused ones; default: all")] = None,
    start: Annotated[datetime | None, Query(alias="from", description="ISO 8601 with a zone; default: "
                                                                      "`to` minus 24 h")] = None,
    end: Annotated[datetime | None, Query(alias="to", description="ISO 8601 with a zone; default: now")]
    = None,
    rep_id: IdQuery = None,
    team_id: IdQuery = None,
    limit: Limit = 100,
    after: Annotated[str | None, Query(max_length=100, description="next_after of the last page")] = None,
) -> AttemptPage:
    """Check-in and check-out attempts on the visits the caller sees, oldest first."""
    start, end = range_or_last_day(start, end)
    filters = AttemptFilters(start=start, end=end, accepted=accepted, rep_id=rep_id, team_id=team_id)
    rows = await VisitStore(d.db()).attempts(visit_access(scope), filters=filters, limit=limit + 1,
                                             after=decode_cursor(after) if after else None)
    return _attempt_page(rows, limit)


def _attempt_page(rows: list[Attempt], limit: int) -> AttemptPage:
    more = len(rows) > limit
    rows = rows[:limit]
    return AttemptPage(items=[_attempt(a) for a in rows],
                       next_after=encode_cursor(rows[-1].at, rows[-1].id) if more else None)
