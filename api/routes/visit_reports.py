"""Report templates of a team, the report of a visit and its photos.

A phone sends a report with its photos in one request: ``PUT /visits/{id}/report`` as
multipart/form-data with a ``report`` part (JSON ``{answers, notes}``) and ``photo`` parts; the
report and every photo are written in one transaction, or nothing is. Each photo is checked before
anything is written: an image (JPEG, PNG, WebP; 415 otherwise), at most 10 MB and 60 MP (413).
Photo bytes are served with their sha256 as ETag, so a client re-fetches nothing it has.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, Response
from pydantic import ValidationError

from api.access import Scope, Visible, can_manage_team, can_see_team
from api.deps import Deps
from api.multipart import MULTIPART_SLACK, Part, media_type, parse_parts, read_body
from api.report_schemas import (
    PhotoList,
    PhotoOut,
    ReportIn,
    ReportOut,
    TemplateIn,
    TemplateOut,
)
from processors.photos import PhotoRefused, to_unsigned
from storage.errors import NotFound
from storage.report_forms import Invalid
from storage.visit_reports import NotAllowed, StoredPhoto, Upload, VisitAccess, VisitReportStore

router = APIRouter(tags=["visit reports"])
Id = Annotated[int, Path(ge=-(2**63), le=2**63 - 1)]
MAX_PHOTO_BYTES = 10 * 2**20
MAX_PHOTOS = 6  # per request: a phone on a slow link sends a few at a time
MAX_REPORT_BYTES = 256 * 1024
_BODY_LIMIT = MAX_PHOTOS * MAX_PHOTO_BYTES + MAX_REPORT_BYTES + MULTIPART_SLACK
_PHOTO_PART = {"type": "array", "items": {"type": "string", "format": "binary"}}
_REPORT_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/ReportIn"}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["report"], "properties": {
        "report": {"type": "string", "description": "JSON {answers, notes}"}, "photo": _PHOTO_PART}}}}}}
_PHOTOS_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {"multipart/form-data": {
    "schema": {"type": "object", "required": ["photo"], "properties": {"photo": _PHOTO_PART}}}}}}
_UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "the caller sees the visit but is not its rep"},
    409: {"description": "the visit is cancelled or rejected"},
    413: {"description": "a photo over 10 MB or 60 MP, or more than 6 photos"},
    415: {"description": "a part that is not a JPEG, PNG or WebP image"}}


def visit_access(scope: Scope) -> VisitAccess:
    if scope.everything:
        return VisitAccess(everything=True, user_id=scope.user_id)
    return VisitAccess(rep_ids=scope.user_ids, team_ids=scope.managed_team_ids, user_id=scope.user_id)


def _invalid(problems: list[tuple[str, str]]) -> HTTPException:
    return HTTPException(422, [{"where": w, "problem": p} for w, p in problems])


def _photo_out(p: StoredPhoto) -> PhotoOut:
    values = {k: getattr(p, k) for k in PhotoOut.model_fields if k != "phash"}
    return PhotoOut(**values, phash=f"{to_unsigned(p.phash):016x}")


# Templates -------------------------------------------------------------------------------------

@router.get("/teams/{team_id}/report-template", response_model=TemplateOut)
async def get_template(team_id: Id, d: Deps, scope: Visible) -> TemplateOut:
    """The team's visit report form; version 0 and no fields when it never saved one."""
    if not can_see_team(scope, team_id):
        raise NotFound(f"team {team_id}")
    t = await VisitReportStore(d.db()).template(team_id)
    return TemplateOut(team_id=t.team_id, fields=t.fields, version=t.version, updated_by=t.updated_by,
                       updated_at=t.updated_at)


@router.put("/teams/{team_id}/report-template", response_model=TemplateOut,
            responses={403: {"description": "the caller sees the team but does not manage it"}})
async def put_template(team_id: Id, body: TemplateIn, d: Deps, scope: Visible) -> TemplateOut:
    """Replaces the form (version + 1). Reports already written keep the form they were filled against."""
    if not can_manage_team(scope, team_id):
        if can_see_team(scope, team_id):
            raise HTTPException(403, "only the team's managers and admins change its report template")
        raise NotFound(f"team {team_id}")
    try:
        t = await VisitReportStore(d.db()).put_template(
            team_id, [f.model_dump() for f in body.fields], scope.user_id)
    except Invalid as exc:
        raise _invalid([(f"body.{p.where}", p.problem) for p in exc.problems]) from exc
    return TemplateOut(team_id=t.team_id, fields=t.fields, version=t.version, updated_by=t.updated_by,
                       updated_at=t.updated_at)


# Reports ---------------------------------------------------------------------------------------

def _report_in(raw: bytes, where: str) -> ReportIn:
    try:
        return ReportIn.model_validate_json(raw)
    except ValidationError as exc:
        raise _invalid([(".".join([where, *(str(x) for x in e["loc"])]), e["msg"])
                        for e in exc.errors()]) from exc


def _uploads(parts: list[Part]) -> list[Upload]:
    for n, part in enumerate(parts):
        if len(part.data) > MAX_PHOTO_BYTES:
            name = part.filename or f"photo {n + 1}"
            raise HTTPException(413, f"{name} is larger than {MAX_PHOTO_BYTES // 2**20} MB")
    return [Upload(p.data, p.content_type, p.filename) for p in parts]


def _refused(exc: PhotoRefused) -> HTTPException:
    return HTTPException(413 if exc.kind == "too_large" else 415, str(exc))


async def _multipart(request: Request, *, report: bool) -> tuple[ReportIn | None, list[Upload]]:
    header = request.headers.get("content-type", "")
    too_large = f"at most {MAX_PHOTOS} photos of {MAX_PHOTO_BYTES // 2**20} MB"
    body = await read_body(request, _BODY_LIMIT, too_large)
    parts = parse_parts(header, body, max_parts=MAX_PHOTOS + (1 if report else 0))
    unknown = sorted({p.name or "" for p in parts} - ({"photo", "report"} if report else {"photo"}))
    if unknown:
        raise _invalid([(f"body.{n}", "unknown part: send `report` and `photo` parts") for n in unknown])
    photos = [p for p in parts if p.name == "photo"]
    found = [p for p in parts if p.name == "report"]
    if report and len(found) != 1:
        raise _invalid([("body.report", "exactly one `report` part (JSON {answers, notes})")])
    if not report and not photos:
        raise _invalid([("body.photo", "at least one `photo` part")])
    if len(photos) > MAX_PHOTOS:
        raise HTTPException(413, f"more than {MAX_PHOTOS} photos in one request")
    return (_report_in(found[0].data, "report") if report else None), _uploads(photos)


async def _report_out(store: VisitReportStore, visit_id: int, access: VisitAccess) -> ReportOut:
    r = await store.report(visit_id, access)
    photos = [p for p in await store.photos(visit_id, access) if p.report_id == r.id]
    return ReportOut(id=r.id, visit_id=r.visit_id, template_version=r.template_version,
                     template=r.template, answers=r.answers, notes=r.notes, submitted_by=r.submitted_by,
                     submitted_at=r.submitted_at, updated_at=r.updated_at,
                     photos=[_photo_out(p) for p in photos])


@router.put("/visits/{visit_id}/report", response_model=ReportOut, openapi_extra=_REPORT_BODY,
            responses=_UPLOAD_ERRORS)
async def put_report(visit_id: Id, request: Request, d: Deps, scope: Visible) -> ReportOut:
    """Writes (or rewrites) the visit's report, with the answers checked against the team's template
    (422 per field), and adds the photos sent with it. The visit's own rep only."""
    kind = media_type(request)
    if kind == "multipart/form-data":
        body, uploads = await _multipart(request, report=True)
    elif kind == "application/json":
        body, uploads = _report_in(await read_body(request, MAX_REPORT_BYTES, "the report is over 256 KB"),
                                   "body"), []
    else:
        raise HTTPException(415, "send application/json or multipart/form-data (`report` + `photo` parts)")
    assert body is not None
    store, access = VisitReportStore(d.db()), visit_access(scope)
    try:
        await store.put_report(visit_id, access, body.answers, body.notes, uploads)
    except Invalid as exc:
        raise _invalid([(f"body.{p.where}", p.problem) for p in exc.problems]) from exc
    except NotAllowed as exc:
        raise HTTPException(403, str(exc)) from exc
    except PhotoRefused as exc:
        raise _refused(exc) from exc
    return await _report_out(store, visit_id, access)


@router.get("/visits/{visit_id}/report", response_model=ReportOut)
async def get_report(visit_id: Id, d: Deps, scope: Visible) -> ReportOut:
    return await _report_out(VisitReportStore(d.db()), visit_id, visit_access(scope))


# Photos ----------------------------------------------------------------------------------------

@router.post("/visits/{visit_id}/photos", response_model=PhotoList, status_code=201,
             openapi_extra=_PHOTOS_BODY, responses=_UPLOAD_ERRORS)
async def add_photos(visit_id: Id, request: Request, d: Deps, scope: Visible) -> PhotoList:
    """Adds photos (``photo`` parts) to the visit, linked to its report when it has one."""
    if media_type(request) != "multipart/form-data":
        raise HTTPException(415, "send the photos as `photo` parts of multipart/form-data")
    _, uploads = await _multipart(request, report=False)
    try:
        stored = await VisitReportStore(d.db()).add_photos(visit_id, visit_access(scope), uploads)
    except NotAllowed as exc:
        raise HTTPException(403, str(exc)) from exc
    except PhotoRefused as exc:
        raise _refused(exc) from exc
    return PhotoList(items=[_photo_out(p) for p in stored])


@router.get("/visits/{visit_id}/photos", response_model=PhotoList)
async def list_photos(visit_id: Id, d: Deps, scope: Visible) -> PhotoList:
    photos = await VisitReportStore(d.db()).photos(visit_id, visit_access(scope))
    return PhotoList(items=[_photo_out(p) for p in photos])


@router.get("/photos/{photo_id}", response_model=PhotoOut)
async def get_photo(photo_id: Id, d: Deps, scope: Visible) -> PhotoOut:
    return _photo_out(await VisitReportStore(d.db()).photo(photo_id, visit_access(scope)))


async def _bytes(request: Request, d: Deps, scope: Scope, photo_id: int, watermarked: bool) -> Response:
    store = VisitReportStore(d.db())
    photo = await store.photo(photo_id, visit_access(scope))
    digest = photo.watermarked_sha256 if watermarked else photo.sha256
    if digest is None:
        raise NotFound(f"watermarked copy of photo {photo_id}")
    etag = f'"{digest}"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=86400"}
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    content_type, data = await store.media(digest)
    return Response(data, media_type=content_type, headers=headers)


_IMAGE: dict[int | str, dict[str, Any]] = {200: {
    "content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}},
    "description": "the image; ETag is its sha256"}}


@router.get("/photos/{photo_id}/original", response_class=Response, responses=_IMAGE)
async def photo_original(photo_id: Id, request: Request, d: Deps, scope: Visible) -> Response:
    """The bytes as uploaded (EXIF included)."""
    return await _bytes(request, d, scope, photo_id, watermarked=False)


@router.get("/photos/{photo_id}/watermarked", response_class=Response, responses=_IMAGE)
async def photo_watermarked(photo_id: Id, request: Request, d: Deps, scope: Visible) -> Response:
    """The stamped JPEG copy: time received (rep's zone), place, customer, rep."""
    return await _bytes(request, d, scope, photo_id, watermarked=True)
