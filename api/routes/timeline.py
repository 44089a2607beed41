"""A customer's timeline: visits and their status changes, check-ins (refused attempts too, for
managers), reports and photos, newest first in one keyset-paginated list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.access import Visible
from api.deps import Deps
from api.report_schemas import TimelineEntry, TimelinePage
from api.routes.customers import access_of
from api.routes.visit_reports import visit_access
from api.timerange import decode_cursor, encode_cursor
from storage.customers import CustomerStore
from storage.timeline import customer_timeline

router = APIRouter(tags=["customers"])


@router.get("/customers/{customer_id}/timeline", response_model=TimelinePage)
async def timeline(
    customer_id: Annotated[int, Path(ge=-(2**63), le=2**63 - 1)],
    d: Deps,
    scope: Visible,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    after: Annotated[str | None, Query(max_length=200, description="next_after of the previous page")] = None,
) -> TimelinePage:
    """Everything about the customer the caller may see, newest first. A rep sees the entries of their
    own visits; refused check-in and check-out attempts are shown to managers and admins."""
    await CustomerStore(d.db()).get(customer_id, access_of(scope))  # 404 for an unseen customer
    cursor = decode_cursor(after) if after else None
    rows = await customer_timeline(d.db(), customer_id, visit_access(scope),
                                   show_refused=scope.everything or scope.role == "manager",
                                   limit=limit + 1, after=cursor)
    more = len(rows) > limit
    rows = rows[:limit]
    return TimelinePage(items=[TimelineEntry(type=e.type, time=e.time, visit_id=e.visit_id, rep_id=e.rep_id,
                                             detail=e.detail) for e in rows],
                        next_after=encode_cursor(rows[-1].time, rows[-1].key) if more else None)
