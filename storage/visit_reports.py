"""Visit reports: a team's report template, a visit's report filled against it, and the visit's photos.

Who (``VisitAccess``; an unseen visit is a 404 exactly like an unknown one): admins see every visit,
managers the visits of the reps they see and of the teams they manage, reps their own. Only the
visit's own rep writes its report and photos; everyone who sees the visit reads them.

Photos: the original bytes and the watermarked copy go to ``media`` keyed by sha256 (insert if
absent, so a re-upload stores nothing new). The same bytes sent again to the same visit (a phone
retrying after a timeout) answer the photo already stored instead of a second row. A photo whose
perceptual hash is within ``REUSE_MAX_DISTANCE`` bits of an earlier photo of another visit is flagged
``reused_photo`` with ``duplicate_of`` the closest (then earliest) one; photo inserts take one
transaction-level advisory lock so two uploads of one picture at once cannot both miss each other.
The scan is over every photo (bit_count of an XOR has no index); fine to a few 100,000 photos.

EXIF, when present, is checked against the visit: the time must fall in the rep's presence (check-in
to check-out, else the detected stop, else the planned window, else the rep's local day) give or
take ``TIME_TOLERANCE``; the place within the customer's radius plus the team's
``checkin.track_tolerance_m``. A time without OffsetTimeOriginal is read in the rep's time zone.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from hashlib import sha256
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from processors.geo import haversine_m
from processors.photos import (
    REUSE_MAX_DISTANCE,
    Exif,
    PhotoRefused,
    open_photo,
    phash,
    stamp_lines,
    to_signed,
    watermark,
)
from processors.team_policy import TeamPolicy
from storage.db import transaction
from storage.errors import Conflict, NotFound, StorageError
from storage.report_forms import Invalid, answer_problems, template_problems

# Photos taken this long before arriving (the shop front from the car park) or after leaving still fit.
TIME_TOLERANCE = timedelta(minutes=30)
_CLOSED = ("cancelled", "rejected")
_PHOTO_LOCK = 0x66747068  # "ftph": one advisory lock key for photo inserts
_PHOTO_COLUMNS = ("p.id, p.visit_id, p.report_id, p.customer_id, p.rep_id, p.sha256, p.watermarked_sha256,"
                  " p.phash, p.width, p.height, p.taken_at, p.exif_latitude, p.exif_longitude, p.flags,"
                  " p.duplicate_of, p.uploaded_by, p.uploaded_at, m.content_type, m.size_bytes")
_REPORT_COLUMNS = ("id, visit_id, template_version, template, answers, notes, submitted_by, submitted_at,"
                   " updated_at")


class NotAllowed(StorageError):
    """The caller sees the visit (or team) but may not write this."""


@dataclass(frozen=True, slots=True)
class VisitAccess:
    everything: bool = False
    rep_ids: frozenset[int] = frozenset()  # visits of these reps
    team_ids: frozenset[int] = frozenset()  # visits of these teams (a manager's teams)
    user_id: int | None = None  # the caller; writes only their own visits

    def condition(self, alias: str = "v") -> tuple[str, tuple[Any, ...]]:
        if self.everything:
            return "true", ()
        return (f"({alias}.rep_id = ANY(%s) OR {alias}.team_id = ANY(%s))",
                (list(self.rep_ids), list(self.team_ids)))


@dataclass(frozen=True, slots=True)
class Template:
    team_id: int
    fields: list[dict[str, Any]]
    version: int  # 0: the team never saved one (an empty form)
    updated_by: int | None
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class Report:
    id: int
    visit_id: int
    template_version: int | None
    template: list[dict[str, Any]]
    answers: dict[str, Any]
    notes: str | None
    submitted_by: int | None
    submitted_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class StoredPhoto:
    id: int
    visit_id: int
    report_id: int | None
    customer_id: int
    rep_id: int | None
    sha256: str
    watermarked_sha256: str | None
    phash: int
    width: int
    height: int
    taken_at: datetime | None
    exif_latitude: float | None
    exif_longitude: float | None
    flags: list[str]
    duplicate_of: int | None
    uploaded_by: int | None
    uploaded_at: datetime
    content_type: str
    size_bytes: int


@dataclass(frozen=True, slots=True)
class Upload:
    """A photo as uploaded: its bytes and what the request said it is (content type, file name)."""

    data: bytes
    content_type: str | None = None
    filename: str | None = None


@dataclass(frozen=True, slots=True)
class VisitContext:
    """What judging and stamping a visit's photos needs."""

    visit_id: int
    rep_id: int
    team_id: int | None
    customer_id: int
    status: str
    day: date
    intervals: tuple[tuple[datetime, datetime | None], ...]  # presence, else the planned window
    customer_name: str
    customer_lat: float
    customer_lon: float
    radius_m: float
    rep_name: str
    zone: ZoneInfo
    place_tolerance_m: float
    checkin_position: tuple[float, float] | None


@dataclass(frozen=True, slots=True)
class Prepared:
    data: bytes
    content_type: str
    width: int
    height: int
    exif: Exif
    digest: str
    phash: int
    stamped: bytes
    stamped_digest: str
    flags: tuple[str, ...]
    taken_at: datetime | None


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _aware(when: datetime, zone: ZoneInfo) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=zone)


def exif_flags(exif: Exif, ctx: VisitContext, now: datetime) -> list[str]:
    """The EXIF flags of a photo of this visit (empty: consistent)."""
    if exif.taken_at is None and exif.latitude is None:
        return ["no_exif"]
    flags = []
    if exif.taken_at is not None:
        taken = _aware(exif.taken_at, ctx.zone)
        windows = ctx.intervals or ((datetime.combine(ctx.day, time(), ctx.zone),
                                     datetime.combine(ctx.day + timedelta(days=1), time(), ctx.zone)),)
        if not any(start - TIME_TOLERANCE <= taken <= (end or now) + TIME_TOLERANCE
                   for start, end in windows):
            flags.append("exif_time_mismatch")
    if exif.latitude is not None and exif.longitude is not None:
        distance = haversine_m(exif.latitude, exif.longitude, ctx.customer_lat, ctx.customer_lon)
        if distance > ctx.radius_m + ctx.place_tolerance_m:
            flags.append("exif_location_far")
    return flags


def prepare(upload: Upload, ctx: VisitContext, now: datetime) -> Prepared:
    """The CPU part of storing a photo (decode, hash, stamp, EXIF checks), outside any transaction;
    PhotoRefused when it is no photo. Only the bytes are kept, so a request holds one decoded
    image at a time, not one per photo."""
    photo = open_photo(upload.data, upload.content_type, upload.filename)
    if photo.exif.latitude is not None and photo.exif.longitude is not None:
        place, source = (photo.exif.latitude, photo.exif.longitude), "photo GPS"
    elif ctx.checkin_position is not None:
        place, source = ctx.checkin_position, "check-in"
    else:
        place, source = (ctx.customer_lat, ctx.customer_lon), "customer"
    # The stamp shows when the server received the photo: the phone's EXIF clock can be set at will.
    lines = stamp_lines(now.astimezone(ctx.zone), place[0], place[1], source, ctx.customer_name, ctx.rep_name)
    stamped = watermark(photo.image, lines)
    taken = _aware(photo.exif.taken_at, ctx.zone) if photo.exif.taken_at is not None else None
    return Prepared(upload.data, photo.content_type, photo.width, photo.height, photo.exif,
                    sha256(upload.data).hexdigest(), phash(photo.image), stamped, sha256(stamped).hexdigest(),
                    tuple(exif_flags(photo.exif, ctx, now)), taken)


class VisitReportStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    def _tx(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return transaction(self.pool)

    # Templates ---------------------------------------------------------------------------------

    async def template(self, team_id: int) -> Template:
        async with self._tx() as conn:
            return await _template(conn, team_id)

    async def put_template(self, team_id: int, fields: Sequence[dict[str, Any]], user_id: int | None
                           ) -> Template:
        """Invalid naming each bad field; NotFound for an unknown team."""
        clean = [{k: v for k, v in f.items() if v is not None} for f in fields]
        problems = template_problems(clean)
        if problems:
            raise Invalid(problems)
        async with self._tx() as conn:
            await _template(conn, team_id)  # NotFound for an unknown team
            cur = await conn.execute(
                "INSERT INTO report_templates (team_id, fields, version, updated_by) VALUES (%s, %s, 1, %s)"
                " ON CONFLICT (team_id) DO UPDATE SET fields = EXCLUDED.fields,"
                " version = report_templates.version + 1, updated_by = EXCLUDED.updated_by,"
                " updated_at = now()"
                " RETURNING version, updated_at", (team_id, Jsonb(clean), user_id))
            row = await cur.fetchone()
        assert row is not None
        return Template(team_id, clean, row[0], user_id, row[1])

    # Visits ------------------------------------------------------------------------------------

    async def context(self, visit_id: int, access: VisitAccess, *, write: bool) -> VisitContext:
        async with self._tx() as conn:
            return await _context(conn, visit_id, access, write=write, lock=False)

    # Reports -----------------------------------------------------------------------------------

    async def report(self, visit_id: int, access: VisitAccess) -> Report:
        async with self._tx() as conn:
            await _context(conn, visit_id, access, write=False, lock=False)
            report = await _report(conn, visit_id)
        if report is None:
            raise NotFound(f"report of visit {visit_id}")
        return report

    async def put_report(self, visit_id: int, access: VisitAccess, answers: dict[str, Any], notes: str | None,
                         uploads: Sequence[Upload] = ()) -> tuple[Report, builtins.list[StoredPhoto]]:
        """The report (answers checked against the team's template: Invalid) and its photos, written
        together or not at all."""
        prepared = await self._prepare(visit_id, access, uploads)
        async with self._tx() as conn:
            ctx = await _context(conn, visit_id, access, write=True, lock=True)
            template = await _template(conn, ctx.team_id) if ctx.team_id is not None else None
            fields = template.fields if template is not None else []
            problems = answer_problems(fields, answers)
            if problems:
                raise Invalid(problems)
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(
                    f"INSERT INTO visit_reports (visit_id, template_version, template, answers, notes,"
                    f" submitted_by) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (visit_id) DO UPDATE SET"
                    f" template_version = EXCLUDED.template_version, template = EXCLUDED.template,"
                    f" answers = EXCLUDED.answers, notes = EXCLUDED.notes,"
                    f" submitted_by = EXCLUDED.submitted_by,"
                    f" updated_at = now() RETURNING {_REPORT_COLUMNS}".encode(),
                    (visit_id, template.version if template and template.version else None, Jsonb(fields),
                     Jsonb(answers), notes, access.user_id))
                row = await cur.fetchone()
            assert row is not None
            report = Report(**row)
            photos = await _insert_photos(conn, ctx, prepared, access.user_id, report.id)
            await conn.execute("UPDATE visit_photos SET report_id = %s WHERE visit_id = %s"
                               " AND report_id IS NULL", (report.id, visit_id))
        return report, photos

    # Photos ------------------------------------------------------------------------------------

    async def _prepare(self, visit_id: int, access: VisitAccess, uploads: Sequence[Upload]
                       ) -> builtins.list[Prepared]:
        if not uploads:
            return []
        ctx = await self.context(visit_id, access, write=True)
        now = datetime.now(UTC)
        out = []
        for n, upload in enumerate(uploads):
            try:
                out.append(await asyncio.to_thread(prepare, upload, ctx, now))
            except PhotoRefused as exc:  # say which of the photos it was
                raise PhotoRefused(exc.kind, f"{upload.filename or f'photo {n + 1}'}: {exc}") from exc
        return out

    async def add_photos(self, visit_id: int, access: VisitAccess, uploads: Sequence[Upload]
                         ) -> builtins.list[StoredPhoto]:
        prepared = await self._prepare(visit_id, access, uploads)
        async with self._tx() as conn:
            ctx = await _context(conn, visit_id, access, write=True, lock=True)
            report = await _report(conn, visit_id)
            return await _insert_photos(conn, ctx, prepared, access.user_id, report.id if report else None)

    async def photos(self, visit_id: int, access: VisitAccess) -> builtins.list[StoredPhoto]:
        async with self._tx() as conn:
            await _context(conn, visit_id, access, write=False, lock=False)
            return await _photos(conn, "p.visit_id = %s ORDER BY p.id", (visit_id,))

    async def photo(self, photo_id: int, access: VisitAccess) -> StoredPhoto:
        cond, params = access.condition()
        async with self._tx() as conn:
            found = await _photos(conn, f"p.id = %s AND EXISTS (SELECT 1 FROM visits v"
                                        f" WHERE v.id = p.visit_id AND {cond})", (photo_id, *params))
        if not found:
            raise NotFound(f"photo {photo_id}")
        return found[0]

    async def media(self, digest: str) -> tuple[str, bytes]:
        async with self._tx() as conn:
            cur = await conn.execute("SELECT content_type, data FROM media WHERE sha256 = %s", (digest,))
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"media {digest}")
        return row[0], bytes(row[1])


async def _template(conn: AsyncConnection, team_id: int) -> Template:
    cur = await conn.execute(
        "SELECT t.id, r.fields, r.version, r.updated_by, r.updated_at FROM teams t"
        " LEFT JOIN report_templates r ON r.team_id = t.id WHERE t.id = %s", (team_id,))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"team {team_id}")
    return Template(team_id, row[1] or [], row[2] or 0, row[3], row[4])


async def _report(conn: AsyncConnection, visit_id: int) -> Report | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_REPORT_COLUMNS} FROM visit_reports WHERE visit_id = %s".encode(),
                          (visit_id,))
        row = await cur.fetchone()
    return Report(**row) if row is not None else None


_CONTEXT_SQL = """
SELECT v.id, v.rep_id, coalesce(v.team_id, u.team_id) AS team_id, v.customer_id, v.status, v.day,
       v.window_start, v.window_end, v.checkin_at, v.checkout_at, v.detected_start, v.detected_end,
       v.checkin_latitude, v.checkin_longitude, c.name AS customer_name, c.latitude, c.longitude,
       c.radius_m, u.name AS rep_name, coalesce(u.time_zone, t.time_zone) AS zone, t.settings
FROM visits v JOIN customers c ON c.id = v.customer_id JOIN users u ON u.id = v.rep_id
LEFT JOIN teams t ON t.id = coalesce(v.team_id, u.team_id)
WHERE v.id = %s AND {cond}
"""


async def _context(conn: AsyncConnection, visit_id: int, access: VisitAccess, *, write: bool, lock: bool
                   ) -> VisitContext:
    cond, params = access.condition()
    sql = _CONTEXT_SQL.format(cond=cond) + (" FOR UPDATE OF v" if lock else "")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.encode(), (visit_id, *params))
        r = await cur.fetchone()
    if r is None:
        raise NotFound(f"visit {visit_id}")
    if write:
        if access.user_id != r["rep_id"]:
            raise NotAllowed("only the visit's own rep writes its report and photos")
        if r["status"] in _CLOSED:
            raise Conflict(f"visit {visit_id} is {r['status']}: it takes no report or photos")
    intervals: list[tuple[datetime, datetime | None]] = []
    if r["checkin_at"] is not None:
        intervals.append((r["checkin_at"], r["checkout_at"]))
    if r["detected_start"] is not None:
        intervals.append((r["detected_start"], r["detected_end"]))
    if not intervals and r["window_start"] is not None and r["window_end"] is not None:
        intervals.append((r["window_start"], r["window_end"]))
    try:
        tolerance = TeamPolicy.from_settings(r["settings"]).checkin.track_tolerance_m
    except ValueError:
        tolerance = TeamPolicy().checkin.track_tolerance_m
    checkin = ((r["checkin_latitude"], r["checkin_longitude"])
               if r["checkin_latitude"] is not None and r["checkin_longitude"] is not None else None)
    return VisitContext(r["id"], r["rep_id"], r["team_id"], r["customer_id"], r["status"], r["day"],
                        tuple(intervals), r["customer_name"], r["latitude"], r["longitude"], r["radius_m"],
                        r["rep_name"], _zone(r["zone"]), tolerance, checkin)


async def _photos(conn: AsyncConnection, where: str, params: Sequence[Any]) -> builtins.list[StoredPhoto]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_PHOTO_COLUMNS} FROM visit_photos p JOIN media m ON m.sha256 = p.sha256"
                          f" WHERE {where}".encode(), params)
        return [StoredPhoto(**r) for r in await cur.fetchall()]


async def _put_media(conn: AsyncConnection, digest: str, content_type: str, data: bytes) -> None:
    await conn.execute("INSERT INTO media (sha256, content_type, size_bytes, data) VALUES (%s, %s, %s, %s)"
                       " ON CONFLICT (sha256) DO NOTHING", (digest, content_type, len(data), data))


async def _insert_photos(conn: AsyncConnection, ctx: VisitContext, prepared: Sequence[Prepared],
                         user_id: int | None, report_id: int | None) -> builtins.list[StoredPhoto]:
    if not prepared:
        return []
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PHOTO_LOCK,))
    ids = []
    for p in prepared:
        cur = await conn.execute("SELECT id FROM visit_photos WHERE visit_id = %s AND sha256 = %s",
                                 (ctx.visit_id, p.digest))
        again = await cur.fetchone()
        if again is not None:  # the same bytes sent again to this visit: a retry, not a new photo
            ids.append(again[0])
            continue
        hashed = to_signed(p.phash)
        cur = await conn.execute(
            "SELECT id FROM visit_photos WHERE visit_id <> %s AND bit_count((phash # %s)::bit(64)) <= %s"
            " ORDER BY bit_count((phash # %s)::bit(64)), id LIMIT 1",
            (ctx.visit_id, hashed, REUSE_MAX_DISTANCE, hashed))
        earlier = await cur.fetchone()
        flags = [*p.flags, "reused_photo"] if earlier is not None else list(p.flags)
        await _put_media(conn, p.digest, p.content_type, p.data)
        await _put_media(conn, p.stamped_digest, "image/jpeg", p.stamped)
        cur = await conn.execute(
            "INSERT INTO visit_photos (visit_id, report_id, customer_id, rep_id, sha256, watermarked_sha256,"
            " phash, width, height, taken_at, exif_latitude, exif_longitude, flags, duplicate_of,"
            " uploaded_by)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (ctx.visit_id, report_id, ctx.customer_id, ctx.rep_id, p.digest, p.stamped_digest, hashed,
             p.width, p.height, p.taken_at, p.exif.latitude, p.exif.longitude, flags,
             earlier[0] if earlier is not None else None, user_id))
        row = await cur.fetchone()
        assert row is not None
        ids.append(row[0])
    found = {p.id: p for p in await _photos(conn, "p.id = ANY(%s)", (ids,))}
    return [found[i] for i in ids]
