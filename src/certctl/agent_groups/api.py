"""/api/v1/agent-groups: CRUD, evaluated members, and the manual include/exclude rows (core.md §2.6)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from certctl.agent_groups.membership import Membership
from certctl.agent_groups.schemas import (
    NULLABLE,
    AgentGroupIn,
    AgentGroupMemberOut,
    AgentGroupOut,
    AgentGroupUpdate,
    MemberIn,
    MemberRowOut,
    MembershipTypeIn,
)
from certctl.agent_groups.service import AgentGroupService, AgentGroupSpec, GroupMember
from certctl.api.deps import Context, CurrentActor, Paging
from certctl.api.schemas import CONFLICT, NOT_FOUND, PageOut, changes_of, page_out

router = APIRouter(prefix="/agent-groups", tags=["agent-groups"])


async def agent_group_service(ctx: Context) -> AgentGroupService:
    return AgentGroupService(ctx.db, ctx.clock)


AgentGroups = Annotated[AgentGroupService, Depends(agent_group_service)]
_AGENT_FIELDS = tuple(name for name in AgentGroupMemberOut.model_fields if name != "membership")


@router.get("", response_model=PageOut[AgentGroupOut])
def list_agent_groups(service: AgentGroups, paging: Paging) -> PageOut[AgentGroupOut]:
    return page_out(service.list(paging), AgentGroupOut)


@router.post("", response_model=AgentGroupOut, status_code=201, responses=CONFLICT)
def create_agent_group(service: AgentGroups, actor: CurrentActor, body: AgentGroupIn) -> AgentGroupOut:
    spec = AgentGroupSpec(
        id=body.id,
        name=body.name,
        description=body.description or "",
        match_os=body.match_os or "",
        match_architecture=body.match_architecture or "",
        match_ip_cidr=body.match_ip_cidr or "",
        match_version=body.match_version or "",
        enabled=body.enabled,
    )
    return AgentGroupOut.model_validate(service.create(spec, actor))


@router.get("/{group_id}", response_model=AgentGroupOut, responses=NOT_FOUND)
def get_agent_group(service: AgentGroups, group_id: str) -> AgentGroupOut:
    return AgentGroupOut.model_validate(service.get(group_id))


@router.put("/{group_id}", response_model=AgentGroupOut, responses=NOT_FOUND | CONFLICT)
@router.patch("/{group_id}", response_model=AgentGroupOut, responses=NOT_FOUND | CONFLICT)
def update_agent_group(
    service: AgentGroups, actor: CurrentActor, group_id: str, body: AgentGroupUpdate
) -> AgentGroupOut:
    changes = {name: "" if value is None else value for name, value in changes_of(body, NULLABLE).items()}
    return AgentGroupOut.model_validate(service.update(group_id, changes, actor))


@router.delete("/{group_id}", status_code=204, responses=NOT_FOUND)
def delete_agent_group(service: AgentGroups, actor: CurrentActor, group_id: str) -> Response:
    service.delete(group_id, actor)
    return Response(status_code=204)


@router.get("/{group_id}/members", response_model=PageOut[AgentGroupMemberOut], responses=NOT_FOUND)
def list_agent_group_members(
    service: AgentGroups,
    paging: Paging,
    group_id: str,
    membership: Annotated[
        Membership | None,
        Query(description="only dynamic or include members; exclude lists the agents kept out by hand instead"),
    ] = None,
) -> PageOut[AgentGroupMemberOut]:
    page = service.members(group_id, paging, membership)
    return PageOut[AgentGroupMemberOut](
        data=[_member_out(member) for member in page.items],
        total=page.total,
        page=page.page,
        per_page=page.per_page,
    )


@router.post("/{group_id}/members", response_model=MemberRowOut, status_code=201, responses=NOT_FOUND | CONFLICT)
def add_agent_group_member(service: AgentGroups, actor: CurrentActor, group_id: str, body: MemberIn) -> MemberRowOut:
    return MemberRowOut.model_validate(service.add_member(group_id, body.agent_id, body.membership_type, actor))


@router.put(
    "/{group_id}/members/{agent_id}",
    response_model=MemberRowOut,
    responses=NOT_FOUND | {201: {"model": MemberRowOut, "description": "Manual row created"}},
)
def set_agent_group_member(
    service: AgentGroups, actor: CurrentActor, group_id: str, agent_id: str, body: MembershipTypeIn
) -> Response:
    row, created = service.set_member(group_id, agent_id, body.membership_type, actor)
    out = MemberRowOut.model_validate(row)
    return Response(out.model_dump_json(), status_code=201 if created else 200, media_type="application/json")


@router.delete("/{group_id}/members/{agent_id}", status_code=204, responses=NOT_FOUND)
def remove_agent_group_member(service: AgentGroups, actor: CurrentActor, group_id: str, agent_id: str) -> Response:
    service.remove_member(group_id, agent_id, actor)
    return Response(status_code=204)


def _member_out(member: GroupMember) -> AgentGroupMemberOut:
    fields = {name: getattr(member.agent, name) for name in _AGENT_FIELDS}
    return AgentGroupMemberOut.model_validate(fields | {"membership": member.membership})
