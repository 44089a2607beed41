"""A customer's timeline: what happened at that customer, newest first, as one list of typed entries.

Entries (``type``: where its time comes from):
- ``visit_planned`` / ``visit_detected``: visits.created_at (a plan, or presence found with no plan)
- ``visit_approved`` / ``visit_rejected`` / ``visit_cancelled``: visits.reviewed_at, the last review
  (a visit approved and since done shows its approval; one approved then cancelled, the cancel)
- ``checked_in`` / ``checked_out``: the accepted check-in and check-out kept on the visit
- ``checkin_refused`` / ``checkout_refused``: refused attempts (checkin_attempts), for managers and
  admins only: the rep was told why at the time
- ``presence_detected``: visits.detected_start (a stop in the rep's track at the customer)
- ``visit_missed`` (and ``visit_cancelled`` with no review time): visits.updated_at, the last change,
  as no column keeps the moment of that status change
- ``report``: visit_reports.submitted_at; ``photo``: visit_photos.uploaded_at

Only entries of visits the caller sees (``VisitAccess``) are listed: a rep sees their own visits at a
customer, not a colleague's. Keyset pages on (time, key) descending, where key = source id × 16 +
the entry's rank, unique across the union.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from storage.errors import StorageUnavailable
from storage.visit_reports import VisitAccess

# One SELECT per entry type: (rank, type, time, visit, source id, detail as jsonb).
_PARTS = (
    "SELECT 0, CASE WHEN v.source = 'detected' THEN 'visit_detected' ELSE 'visit_planned' END,"
    " v.created_at, v.id, v.rep_id, v.id, jsonb_build_object('day', v.day, 'purpose', v.purpose,"
    " 'window_start', v.window_start, 'window_end', v.window_end, 'created_by', v.created_by,"
    " 'status', v.status)"
    " FROM visits v WHERE v.customer_id = %(customer)s AND {cond}",
    # A review is the last approve, reject or cancel; a visit done since was approved before.
    "SELECT 1, CASE v.status WHEN 'rejected' THEN 'visit_rejected' WHEN 'cancelled' THEN 'visit_cancelled'"
    " ELSE 'visit_approved' END, v.reviewed_at, v.id, v.rep_id, v.id,"
    " jsonb_build_object('reviewed_by', v.reviewed_by, 'note', v.review_note) FROM visits v"
    " WHERE v.customer_id = %(customer)s AND v.reviewed_at IS NOT NULL AND {cond}",
    "SELECT 2, 'checked_in', v.checkin_at, v.id, v.rep_id, v.id, jsonb_build_object('fix_time',"
    " v.checkin_fix_time, 'latitude', v.checkin_latitude, 'longitude', v.checkin_longitude, 'accuracy_m',"
    " v.checkin_accuracy_m, 'distance_m', v.checkin_distance_m) FROM visits v"
    " WHERE v.customer_id = %(customer)s AND v.checkin_at IS NOT NULL AND {cond}",
    "SELECT 3, 'checked_out', v.checkout_at, v.id, v.rep_id, v.id, jsonb_build_object('fix_time',"
    " v.checkout_fix_time, 'latitude', v.checkout_latitude, 'longitude', v.checkout_longitude,"
    " 'distance_m', v.checkout_distance_m, 'dwell_s', v.dwell_s) FROM visits v"
    " WHERE v.customer_id = %(customer)s AND v.checkout_at IS NOT NULL AND {cond}",
    "SELECT 4, 'presence_detected', v.detected_start, v.id, v.rep_id, v.id, jsonb_build_object('end',"
    " v.detected_end, 'device_id', v.detected_device_id, 'distance_m', v.detected_distance_m)"
    " FROM visits v WHERE v.customer_id = %(customer)s AND v.detected_start IS NOT NULL AND {cond}",
    "SELECT 5, 'visit_' || v.status, v.updated_at, v.id, v.rep_id, v.id, jsonb_build_object('note',"
    " v.review_note) FROM visits v WHERE v.customer_id = %(customer)s"
    " AND (v.status = 'missed' OR (v.status = 'cancelled' AND v.reviewed_at IS NULL)) AND {cond}",
    "SELECT 6, a.kind || '_refused', a.at, v.id, v.rep_id, a.id, jsonb_build_object('reason', a.reason,"
    " 'fix_time', a.fix_time, 'latitude', a.latitude, 'longitude', a.longitude, 'accuracy_m', a.accuracy_m,"
    " 'mock', a.mock, 'detail', a.detail, 'user_id', a.user_id) FROM checkin_attempts a"
    " JOIN visits v ON v.id = a.visit_id WHERE v.customer_id = %(customer)s AND NOT a.accepted"
    " AND %(refused)s AND {cond}",
    "SELECT 7, 'report', r.submitted_at, v.id, v.rep_id, r.id, jsonb_build_object('report_id', r.id,"
    " 'updated_at', r.updated_at, 'answers', r.answers, 'notes', r.notes, 'submitted_by', r.submitted_by)"
    " FROM visit_reports r JOIN visits v ON v.id = r.visit_id WHERE v.customer_id = %(customer)s AND {cond}",
    "SELECT 8, 'photo', p.uploaded_at, v.id, v.rep_id, p.id, jsonb_build_object('photo_id', p.id,"
    " 'report_id', p.report_id, 'taken_at', p.taken_at, 'flags', p.flags, 'duplicate_of', p.duplicate_of,"
    " 'sha256', p.sha256) FROM visit_photos p JOIN visits v ON v.id = p.visit_id"
    " WHERE p.customer_id = %(customer)s AND {cond}",
)
_RANKS = 16


@dataclass(frozen=True, slots=True)
class Entry:
    type: str
    time: datetime
    visit_id: int
    rep_id: int
    key: int  # the cursor's tie-breaker
    detail: dict[str, Any]


async def customer_timeline(pool: AsyncConnectionPool, customer_id: int, access: VisitAccess, *,
                            show_refused: bool, limit: int, after: tuple[datetime, int] | None = None
                            ) -> list[Entry]:
    """Entries older than ``after`` (the (time, key) of the previous page's last), newest first. The
    caller checks first that it may see the customer."""
    cond, params = access.condition()
    args: dict[str, Any] = {"customer": customer_id, "refused": show_refused, "limit": limit}
    # The access condition's positional %s become named ones so one dict serves every part.
    for n, value in enumerate(params):
        args[f"a{n}"] = value
        cond = cond.replace("%s", f"%(a{n})s", 1)
    union = " UNION ALL ".join(f"({p.format(cond=cond)})" for p in _PARTS)
    page = ""
    if after is not None:
        args["after_time"], args["after_key"] = after
        page = "WHERE (time, key) < (%(after_time)s, %(after_key)s)"
    sql = (f"SELECT type, time, visit_id, rep_id, key, detail FROM (SELECT kind AS type, time, visit_id,"
           f" rep_id, source_id::numeric * {_RANKS} + rank AS key, detail FROM ({union})"
           f" AS e (rank, kind, time, visit_id, rep_id, source_id, detail)) entries {page}"
           " ORDER BY time DESC, key DESC LIMIT %(limit)s")
    try:
        async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql.encode(), args)
            rows = await cur.fetchall()
    except psycopg.OperationalError as exc:
        raise StorageUnavailable(str(exc)) from exc
    return [Entry(r["type"], r["time"], r["visit_id"], r["rep_id"], int(r["key"]), r["detail"]) for r in rows]
