"""Users: admins create and change them; managers link devices to their reps and set their
calendars; everyone reads the people in their scope (api.access) and manages their own tokens
under ``/api/me``. Tokens only: there is no password login."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Response

from api.access import ManagerOrAdmin, Scope, Visible, can_manage_team, require_user
from api.deps import Admin, Caller, Deps
from api.people_schemas import (
    CalendarIn,
    MeOut,
    Role,
    ScopeOut,
    TokenCreated,
    TokenIn,
    TokenOut,
    TokenPage,
    UserIn,
    UserOut,
    UserPage,
    UserPatch,
)
from storage.errors import Conflict
from storage.tokens import TokenInfo, TokenStore
from storage.users import User, UserStore

router = APIRouter(prefix="/users", tags=["users"])
me_router = APIRouter(prefix="/me", tags=["users"])
Id = Annotated[int, Path(ge=-(2**63), le=2**63 - 1)]  # a bigint, so an absurd id is a 422, not a 500
Limit = Annotated[int, Query(ge=1, le=1000)]
After = Annotated[int | None, Query(ge=0, le=2**63 - 1, description="next_after of the last page")]
_MANAGED: dict[int | str, dict[str, Any]] = {
    403: {"description": "not an admin or a manager of the user's team"},
    404: {"description": "no such user or device (or not in the caller's scope)"}}


def user_out(u: User) -> UserOut:
    assert u.created_at is not None
    return UserOut(id=u.id, name=u.name, email=u.email, role=u.role,  # type: ignore[arg-type]
                   team_id=u.team_id, working_hours=u.working_hours, time_zone=u.time_zone,
                   disabled=u.disabled, created_at=u.created_at, device_ids=u.device_ids or [],
                   managed_team_ids=u.managed_team_ids or [])


def token_out(t: TokenInfo) -> TokenOut:
    return TokenOut(id=t.id, name=t.name, role=t.role, user_id=t.user_id,  # type: ignore[arg-type]
                    created_at=t.created_at)


@router.post("", response_model=UserOut, status_code=201, responses={409: {"description": "email taken"}})
async def create_user(body: UserIn, d: Deps, _: Admin, response: Response) -> UserOut:
    user = await UserStore(d.db()).create(body.name, body.role, email=body.email, team_id=body.team_id,
                                          working_hours=body.working_hours, time_zone=body.time_zone)
    response.headers["Location"] = f"/api/users/{user.id}"
    return user_out(user)


@router.get("", response_model=UserPage)
async def list_users(d: Deps, scope: Visible, limit: Limit = 100, after: After = None,
                     team: Annotated[int | None, Query(ge=0, le=2**63 - 1, description="team id")] = None,
                     role: Annotated[Role | None, Query()] = None) -> UserPage:
    """The people the caller may see: admins everyone, managers their teams' reps and themselves,
    reps themselves."""
    rows = await UserStore(d.db()).list(limit=limit + 1, after=after, ids=scope.users_filter(),
                                        team_id=team, role=role)
    more = len(rows) > limit
    rows = rows[:limit]
    return UserPage(items=[user_out(u) for u in rows], next_after=rows[-1].id if more else None)


@router.get("/{user_id}", response_model=UserOut)
async def get_user(user_id: Id, d: Deps, scope: Visible) -> UserOut:
    require_user(scope, user_id)
    return user_out(await UserStore(d.db()).get(user_id))


@router.patch("/{user_id}", response_model=UserOut)
async def patch_user(user_id: Id, body: UserPatch, d: Deps, owner: Admin) -> UserOut:
    changes = body.model_dump(exclude_unset=True)
    if owner.user_id == user_id and (changes.get("disabled") or changes.get("role", "admin") != "admin"):
        raise Conflict("an admin cannot disable or demote themselves; ask another admin")
    return user_out(await UserStore(d.db()).update(user_id, changes))


@router.delete("/{user_id}", status_code=204)
async def delete_user(user_id: Id, d: Deps, owner: Admin) -> Response:
    """Their tokens and device links go with them."""
    if owner.user_id == user_id:
        raise Conflict("an admin cannot delete themselves; ask another admin")
    await UserStore(d.db()).delete(user_id)
    return Response(status_code=204)


async def _managed(user_id: int, scope: Scope, d: Deps) -> User:
    require_user(scope, user_id)
    user = await UserStore(d.db()).get(user_id)
    if not can_manage_team(scope, user.team_id):
        raise HTTPException(403, "this needs an admin or a manager of the user's team")
    return user


@router.put("/{user_id}/calendar", response_model=UserOut, responses=_MANAGED)
async def set_calendar(user_id: Id, body: CalendarIn, d: Deps, scope: ManagerOrAdmin) -> UserOut:
    """The person's own weekly working hours and zone (null: their team's)."""
    await _managed(user_id, scope, d)
    return user_out(await UserStore(d.db()).update(user_id, body.model_dump()))


@router.put("/{user_id}/devices/{device_id}", status_code=204,
            responses={**_MANAGED, 409: {"description": "another person carries the device"}})
async def link_device(user_id: Id, device_id: Id, d: Deps, scope: ManagerOrAdmin) -> Response:
    """The person carries the device (a phone, a vehicle tracker) from now on: its positions,
    trips and reports become theirs. A device is carried by one person at a time."""
    await _managed(user_id, scope, d)
    await UserStore(d.db()).link_device(user_id, device_id)
    return Response(status_code=204)


@router.delete("/{user_id}/devices/{device_id}", status_code=204, responses=_MANAGED)
async def unlink_device(user_id: Id, device_id: Id, d: Deps, scope: ManagerOrAdmin) -> Response:
    await _managed(user_id, scope, d)
    await UserStore(d.db()).unlink_device(user_id, device_id)
    return Response(status_code=204)


async def _token_page(d: Deps, user_id: int, limit: int, after: int | None) -> TokenPage:
    rows = await TokenStore(d.db()).for_user(user_id, limit=limit + 1, after=after)
    more = len(rows) > limit
    rows = rows[:limit]
    return TokenPage(items=[token_out(t) for t in rows], next_after=rows[-1].id if more else None)


async def _issue(d: Deps, user_id: int, body: TokenIn) -> TokenCreated:
    info, secret = await UserStore(d.db()).issue_token(user_id, body.name)
    return TokenCreated(**token_out(info).model_dump(), token=secret)


@router.get("/{user_id}/tokens", response_model=TokenPage)
async def user_tokens(user_id: Id, d: Deps, _: Admin, limit: Limit = 100, after: After = None) -> TokenPage:
    await UserStore(d.db()).get(user_id)
    return await _token_page(d, user_id, limit, after)


@router.post("/{user_id}/tokens", response_model=TokenCreated, status_code=201,
             responses={409: {"description": "the user is disabled"}})
async def create_user_token(user_id: Id, d: Deps, _: Admin, body: TokenIn | None = None) -> TokenCreated:
    """A new token for the user, shown only in this response."""
    return await _issue(d, user_id, body or TokenIn())


@router.delete("/{user_id}/tokens/{token_id}", status_code=204)
async def revoke_user_token(user_id: Id, token_id: Id, d: Deps, _: Admin) -> Response:
    await TokenStore(d.db()).revoke(token_id, user_id=user_id)
    return Response(status_code=204)


@me_router.get("", response_model=MeOut)
async def me(d: Deps, owner: Caller, scope: Visible) -> MeOut:
    """Who the token belongs to and what it may see."""
    user = None if owner.user_id is None else user_out(await UserStore(d.db()).get(owner.user_id))
    return MeOut(token_id=owner.token_id, token_name=owner.name, role=owner.role,  # type: ignore[arg-type]
                 user=user, scope=ScopeOut(
                     everything=scope.everything, user_ids=sorted(scope.user_ids),
                     team_ids=sorted(scope.team_ids), managed_team_ids=sorted(scope.managed_team_ids),
                     device_ids=sorted(scope.device_ids)))


def _own(owner_user: int | None) -> int:
    if owner_user is None:
        raise HTTPException(403, "this token belongs to no user; use /api/users/{id}/tokens or"
                            " `fieldtrack token` for system tokens")
    return owner_user


@me_router.get("/tokens", response_model=TokenPage)
async def my_tokens(d: Deps, owner: Caller, limit: Limit = 100, after: After = None) -> TokenPage:
    return await _token_page(d, _own(owner.user_id), limit, after)


@me_router.post("/tokens", response_model=TokenCreated, status_code=201)
async def create_my_token(d: Deps, owner: Caller, body: TokenIn | None = None) -> TokenCreated:
    """Another token for yourself (e.g. one per phone), shown only in this response."""
    return await _issue(d, _own(owner.user_id), body or TokenIn())


@me_router.delete("/tokens/{token_id}", status_code=204)
async def revoke_my_token(token_id: Id, d: Deps, owner: Caller) -> Response:
    """Revoking the token in use signs this client out."""
    await TokenStore(d.db()).revoke(token_id, user_id=_own(owner.user_id))
    return Response(status_code=204)
