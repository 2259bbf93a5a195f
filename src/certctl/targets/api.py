"""/api/v1/targets (`POST /targets/{id}/test` comes with the agent protocol)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from certctl.api.deps import Context, Paging
from certctl.api.schemas import CONFLICT, NOT_FOUND, PageOut, changes_of, page_out
from certctl.errors import ValidationFailed
from certctl.targets.models import TargetType
from certctl.targets.schemas import TargetIn, TargetOut, TargetUpdate
from certctl.targets.service import TargetService, TargetSpec

router = APIRouter(prefix="/targets", tags=["targets"])


async def target_service(ctx: Context) -> TargetService:
    return TargetService(ctx.db, ctx.clock, ctx.cipher)


Targets = Annotated[TargetService, Depends(target_service)]


@router.get("", response_model=PageOut[TargetOut])
def list_targets(
    service: Targets,
    paging: Paging,
    agent_id: Annotated[str | None, Query(description="only targets of this agent")] = None,
    type_name: Annotated[
        str | None, Query(alias="type", description="only targets of this type (case-insensitive)")
    ] = None,
) -> PageOut[TargetOut]:
    try:
        target_type = TargetType.parse(type_name) if type_name else None
    except ValueError as exc:
        raise ValidationFailed(f"type: {exc}") from exc
    return page_out(service.list(paging, agent_id=agent_id or None, target_type=target_type), TargetOut)


@router.post("", response_model=TargetOut, status_code=201, responses=CONFLICT)
def create_target(service: Targets, body: TargetIn) -> TargetOut:
    spec = TargetSpec(
        id=body.id,
        name=body.name,
        type=body.type,
        agent_id=body.agent_id,
        config=body.config,
        enabled=body.enabled,
    )
    return TargetOut.model_validate(service.create(spec))


@router.get("/{target_id}", response_model=TargetOut, responses=NOT_FOUND)
def get_target(service: Targets, target_id: str) -> TargetOut:
    return TargetOut.model_validate(service.get(target_id))


@router.put("/{target_id}", response_model=TargetOut, responses=NOT_FOUND | CONFLICT)
@router.patch("/{target_id}", response_model=TargetOut, responses=NOT_FOUND | CONFLICT)
def update_target(service: Targets, target_id: str, body: TargetUpdate) -> TargetOut:
    return TargetOut.model_validate(service.update(target_id, changes_of(body)))


@router.delete("/{target_id}", status_code=204, responses=NOT_FOUND)
def delete_target(service: Targets, target_id: str) -> Response:
    service.delete(target_id)
    return Response(status_code=204)
