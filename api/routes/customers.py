"""Customers: CRUD, nearby search and CSV import, each limited to what the caller may see.

Who sees what (an unseen id is a 404, exactly like an unknown one):
- admin: every customer.
- manager: customers of their teams (``Scope.team_ids``) and customers assigned to the reps they
  see; they create, change and delete customers of the teams they manage.
- rep: customers assigned to them and their team's unassigned ones. A rep may create a customer
  (a new shop found in the field) of their own team assigned to themselves, which is the default
  when they leave team_id and assigned_rep_id out; they change nothing else.
- a manager or rep token that belongs to no user: nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response

from api.access import ManagerOrAdmin, Scope, Visible
from api.customer_schemas import (
    MAX_IMPORT_BYTES,
    CsvRefused,
    CsvTooLarge,
    CustomerIn,
    CustomerOut,
    CustomerPage,
    CustomerPatch,
    ImportProblem,
    ImportReport,
    NearbyCustomer,
    NearbyPage,
    parse_csv,
)
from api.deps import Deps
from api.multipart import MULTIPART_SLACK, Part, media_type, parse_parts, read_body
from storage.customer_import import import_customers
from storage.customers import (
    Customer,
    CustomerAccess,
    CustomerInvalid,
    CustomerStore,
    Filters,
    NotAllowed,
)

router = APIRouter(prefix="/customers", tags=["customers"])
CustomerId = Annotated[int, Path(ge=-(2**63), le=2**63 - 1)]
MAX_NEARBY_RADIUS_M = 50_000
_CSV_TYPES = {"text/csv", "application/csv", "text/plain", "application/vnd.ms-excel"}


def access_of(scope: Scope) -> CustomerAccess:
    if scope.everything:
        return CustomerAccess(everything=True)
    if scope.user_id is None:
        return CustomerAccess()
    if scope.role == "manager":
        return CustomerAccess(team_ids=scope.team_ids, rep_ids=scope.user_ids,
                              write_team_ids=scope.managed_team_ids)
    # A rep's scope.team_ids is their own team (at most one).
    own_team = min(scope.team_ids, default=None)
    return CustomerAccess(rep_ids=frozenset({scope.user_id}), unassigned_team_ids=scope.team_ids,
                          self_rep=(scope.user_id, own_team))


def _out(c: Customer) -> CustomerOut:
    return CustomerOut.model_validate(c, from_attributes=True)


def _invalid(exc: CustomerInvalid) -> HTTPException:
    return HTTPException(422, [{"where": f"body.{p.where}", "problem": p.problem} for p in exc.problems])


def _forbidden(exc: NotAllowed) -> HTTPException:
    return HTTPException(403, str(exc))


@router.post("", response_model=CustomerOut, status_code=201,
             responses={403: {"description": "not a team the caller manages"},
                        409: {"description": "external_id in use"}})
async def create_customer(body: CustomerIn, d: Deps, scope: Visible, response: Response) -> CustomerOut:
    values = body.model_dump()
    if not scope.everything and scope.role == "rep" and scope.user_id is not None:
        if "team_id" not in body.model_fields_set:
            values["team_id"] = min(scope.team_ids, default=None)
        if "assigned_rep_id" not in body.model_fields_set:
            values["assigned_rep_id"] = scope.user_id
    try:
        customer = await CustomerStore(d.db()).create(values, access_of(scope))
    except CustomerInvalid as exc:
        raise _invalid(exc) from exc
    except NotAllowed as exc:
        raise _forbidden(exc) from exc
    response.headers["Location"] = f"/api/customers/{customer.id}"
    return _out(customer)


@router.get("", response_model=CustomerPage)
async def list_customers(
    d: Deps,
    scope: Visible,
    team: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="team id")] = None,
    rep: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="assigned rep's user id")] = None,
    grade: Annotated[str | None, Query(max_length=32)] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    q: Annotated[str | None, Query(max_length=200, description="part of the name or address, any case")]
    = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1, description="next_after of the last page")] = None,
) -> CustomerPage:
    filters = Filters(team_id=team, rep_id=rep, grade=grade, tag=tag, text=q)
    rows = await CustomerStore(d.db()).list(access_of(scope), filters, limit=limit + 1, after=after)
    more = len(rows) > limit
    rows = rows[:limit]
    return CustomerPage(items=[_out(c) for c in rows], next_after=rows[-1].id if more else None)


@router.get("/nearby", response_model=NearbyPage)
async def nearby_customers(
    d: Deps,
    scope: Visible,
    lat: Annotated[float, Query(ge=-90, le=90, allow_inf_nan=False)],
    lon: Annotated[float, Query(ge=-180, le=180, allow_inf_nan=False)],
    radius_m: Annotated[float, Query(gt=0, le=MAX_NEARBY_RADIUS_M, allow_inf_nan=False)] = 5000,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> NearbyPage:
    """Customers the caller sees within radius_m of the point, nearest first (haversine metres)."""
    found = await CustomerStore(d.db()).nearby(lat, lon, radius_m, limit, access_of(scope))
    return NearbyPage(items=[NearbyCustomer(**_out(c).model_dump(), distance_m=m) for c, m in found])


_IMPORT_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "text/csv": {"schema": {"type": "string"}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}}}}}


@router.post("/import", response_model=ImportReport, openapi_extra=_IMPORT_BODY,
             responses={413: {"description": "over 5 MB or 50,000 rows"},
                        415: {"description": "neither text/csv nor multipart/form-data"}})
async def import_csv(
    request: Request,
    d: Deps,
    scope: ManagerOrAdmin,
    dry_run: Annotated[bool, Query(description="check and count, write nothing")] = False,
) -> ImportReport:
    """CSV columns: name, latitude, longitude (needed); address, radius_m, grade, tags (split by
    `;`), team (id or name), rep (user id or email), external_id; any other column becomes a custom
    field. UTF-8, with or without BOM. A row with an external_id already stored updates that
    customer, but only the columns the file has (custom fields key by key); an empty cell means no
    value (no grade, the default radius). Each bad row is reported by line and writes nothing."""
    data = await _csv_bytes(request)
    try:
        parsed = parse_csv(data)
    except CsvTooLarge as exc:
        raise HTTPException(413, str(exc)) from exc
    except CsvRefused as exc:
        raise HTTPException(422, [{"where": "file", "problem": str(exc)}]) from exc
    result = await import_customers(d.db(), parsed.rows, parsed.columns, parsed.custom_keys,
                                    access_of(scope), dry_run=dry_run)
    errors = sorted(parsed.errors + result.errors)
    return ImportReport(imported=result.imported, updated=result.updated, unchanged=result.unchanged,
                        errors=[ImportProblem(line=n, error=e) for n, e in errors], dry_run=dry_run)


async def _csv_bytes(request: Request) -> bytes:
    header = request.headers.get("content-type", "")
    kind = media_type(request)
    multipart = kind == "multipart/form-data"
    if not multipart and kind not in _CSV_TYPES:
        raise HTTPException(415, "send the file as text/csv or as the `file` part of multipart/form-data")
    limit = MAX_IMPORT_BYTES + (MULTIPART_SLACK if multipart else 0)
    too_large = f"the file is larger than {MAX_IMPORT_BYTES // 2**20} MB"
    data = await read_body(request, limit, too_large)
    if multipart:
        data = _file_part(parse_parts(header, data))
        if len(data) > MAX_IMPORT_BYTES:
            raise HTTPException(413, too_large)
    return data


def _file_part(parts: list[Part]) -> bytes:
    """The part named ``file`` (or the only part)."""
    chosen = [p.data for p in parts if p.name == "file"] or ([parts[0].data] if len(parts) == 1 else [])
    if not chosen:
        raise HTTPException(422, [{"where": "body", "problem": "no multipart part named `file`"}])
    return chosen[0]


@router.get("/{customer_id}", response_model=CustomerOut)
async def get_customer(customer_id: CustomerId, d: Deps, scope: Visible) -> CustomerOut:
    return _out(await CustomerStore(d.db()).get(customer_id, access_of(scope)))


@router.patch("/{customer_id}", response_model=CustomerOut,
              responses={403: {"description": "the caller sees the customer but may not change it"}})
async def patch_customer(customer_id: CustomerId, body: CustomerPatch, d: Deps, scope: Visible
                         ) -> CustomerOut:
    try:
        customer = await CustomerStore(d.db()).update(customer_id, body.model_dump(exclude_unset=True),
                                                      access_of(scope))
    except CustomerInvalid as exc:
        raise _invalid(exc) from exc
    except NotAllowed as exc:
        raise _forbidden(exc) from exc
    return _out(customer)


@router.delete("/{customer_id}", status_code=204)
async def delete_customer(customer_id: CustomerId, d: Deps, scope: Visible) -> Response:
    try:
        await CustomerStore(d.db()).delete(customer_id, access_of(scope))
    except NotAllowed as exc:
        raise _forbidden(exc) from exc
    return Response(status_code=204)
