"""Teams: admins create, change and remove them and name their managers; people read the teams
in their scope (a rep their own, a manager those they manage and their own)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response

from api.access import Visible, require_team
from api.deps import Admin, Deps
from api.people_schemas import TeamIn, TeamOut, TeamPage, TeamPatch
from storage.teams import Team, TeamStore

router = APIRouter(prefix="/teams", tags=["teams"])
Id = Annotated[int, Path(ge=-(2**63), le=2**63 - 1)]  # a bigint, so an absurd id is a 422, not a 500


def _out(t: Team) -> TeamOut:
    return TeamOut(id=t.id, name=t.name, time_zone=t.time_zone, working_hours=t.working_hours,
                   settings=t.settings, created_at=t.created_at, manager_ids=t.manager_ids)


@router.post("", response_model=TeamOut, status_code=201, responses={409: {"description": "name taken"}})
async def create_team(body: TeamIn, d: Deps, _: Admin, response: Response) -> TeamOut:
    team = await TeamStore(d.db()).create(body.name, time_zone=body.time_zone,
                                          working_hours=body.working_hours, settings=body.settings)
    response.headers["Location"] = f"/api/teams/{team.id}"
    return _out(team)


@router.get("", response_model=TeamPage)
async def list_teams(
    d: Deps,
    scope: Visible,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1, description="next_after of the last page")] = None,
) -> TeamPage:
    rows = await TeamStore(d.db()).list(limit=limit + 1, after=after, ids=scope.teams_filter())
    more = len(rows) > limit
    rows = rows[:limit]
    return TeamPage(items=[_out(t) for t in rows], next_after=rows[-1].id if more else None)


@router.get("/{team_id}", response_model=TeamOut)
async def get_team(team_id: Id, d: Deps, scope: Visible) -> TeamOut:
    require_team(scope, team_id)
    return _out(await TeamStore(d.db()).get(team_id))


@router.patch("/{team_id}", response_model=TeamOut)
async def patch_team(team_id: Id, body: TeamPatch, d: Deps, _: Admin) -> TeamOut:
    return _out(await TeamStore(d.db()).update(team_id, body.model_dump(exclude_unset=True)))


@router.delete("/{team_id}", status_code=204)
async def delete_team(team_id: Id, d: Deps, _: Admin) -> Response:
    """Its members stay, without a team."""
    await TeamStore(d.db()).delete(team_id)
    return Response(status_code=204)


@router.put("/{team_id}/managers/{user_id}", status_code=204,
            responses={422: {"description": "the user's role is not manager"}})
async def add_manager(team_id: Id, user_id: Id, d: Deps, _: Admin) -> Response:
    try:
        await TeamStore(d.db()).add_manager(team_id, user_id)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    return Response(status_code=204)


@router.delete("/{team_id}/managers/{user_id}", status_code=204)
async def remove_manager(team_id: Id, user_id: Id, d: Deps, _: Admin) -> Response:
    await TeamStore(d.db()).remove_manager(team_id, user_id)
    return Response(status_code=204)
