"""/api/v1/teams and /api/v1/owners."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from certctl.api.deps import Context, Paging
from certctl.api.schemas import CONFLICT, NOT_FOUND, PageOut, changes_of, page_out
from certctl.org.schemas import OwnerIn, OwnerOut, OwnerUpdate, TeamIn, TeamOut, TeamUpdate
from certctl.org.service import OwnerService, OwnerSpec, TeamService, TeamSpec

teams = APIRouter(prefix="/teams", tags=["teams"])
owners = APIRouter(prefix="/owners", tags=["owners"])


async def team_service(ctx: Context) -> TeamService:
    return TeamService(ctx.db, ctx.clock)


async def owner_service(ctx: Context) -> OwnerService:
    return OwnerService(ctx.db, ctx.clock)


Teams = Annotated[TeamService, Depends(team_service)]
Owners = Annotated[OwnerService, Depends(owner_service)]


@teams.get("", response_model=PageOut[TeamOut])
def list_teams(service: Teams, paging: Paging) -> PageOut[TeamOut]:
    return page_out(service.list(paging), TeamOut)


@teams.post("", response_model=TeamOut, status_code=201, responses=CONFLICT)
def create_team(service: Teams, body: TeamIn) -> TeamOut:
    return TeamOut.model_validate(service.create(TeamSpec(**body.model_dump())))


@teams.get("/{team_id}", response_model=TeamOut, responses=NOT_FOUND)
def get_team(service: Teams, team_id: str) -> TeamOut:
    return TeamOut.model_validate(service.get(team_id))


@teams.put("/{team_id}", response_model=TeamOut, responses=NOT_FOUND | CONFLICT)
@teams.patch("/{team_id}", response_model=TeamOut, responses=NOT_FOUND | CONFLICT)
def update_team(service: Teams, team_id: str, body: TeamUpdate) -> TeamOut:
    return TeamOut.model_validate(service.update(team_id, changes_of(body)))


@teams.delete("/{team_id}", status_code=204, responses=NOT_FOUND | CONFLICT)
def delete_team(service: Teams, team_id: str) -> Response:
    service.delete(team_id)
    return Response(status_code=204)


@owners.get("", response_model=PageOut[OwnerOut])
def list_owners(service: Owners, paging: Paging, team_id: Annotated[str | None, Query()] = None) -> PageOut[OwnerOut]:
    return page_out(service.list(paging, team_id=team_id), OwnerOut)


@owners.post("", response_model=OwnerOut, status_code=201, responses=CONFLICT)
def create_owner(service: Owners, body: OwnerIn) -> OwnerOut:
    data = body.model_dump()
    data["email"] = data["email"] or ""
    return OwnerOut.model_validate(service.create(OwnerSpec(**data)))


@owners.get("/{owner_id}", response_model=OwnerOut, responses=NOT_FOUND)
def get_owner(service: Owners, owner_id: str) -> OwnerOut:
    return OwnerOut.model_validate(service.get(owner_id))


@owners.put("/{owner_id}", response_model=OwnerOut, responses=NOT_FOUND | CONFLICT)
@owners.patch("/{owner_id}", response_model=OwnerOut, responses=NOT_FOUND | CONFLICT)
def update_owner(service: Owners, owner_id: str, body: OwnerUpdate) -> OwnerOut:
    return OwnerOut.model_validate(service.update(owner_id, changes_of(body, nullable=frozenset({"team_id"}))))


@owners.delete("/{owner_id}", status_code=204, responses=NOT_FOUND | CONFLICT)
def delete_owner(service: Owners, owner_id: str) -> Response:
    service.delete(owner_id)
    return Response(status_code=204)
