"""/api/v1/targets: CRUD, and `POST /targets/{id}/test`, which has the target's agent check it for real."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from certctl.agents.deployments import queue_validation
from certctl.api.deps import Context, CurrentActor, Paging
from certctl.api.schemas import CONFLICT, NOT_FOUND, PageOut, changes_of, page_out
from certctl.errors import ValidationFailed
from certctl.jobs.queue import OPEN_STATUSES
from certctl.jobs.service import JobQueue
from certctl.targets.models import TargetType
from certctl.targets.schemas import TargetIn, TargetOut, TargetTestOut, TargetUpdate
from certctl.targets.service import TargetService, TargetSpec
from certctl.targets.store import TargetStore

router = APIRouter(prefix="/targets", tags=["targets"])
MAX_TEST_WAIT_SECONDS = 30.0
TEST_POLL_SECONDS = 0.2


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


@router.post("/{target_id}/test", response_model=TargetTestOut, status_code=202, responses=NOT_FOUND | CONFLICT)
def run_target_test(
    ctx: Context,
    actor: CurrentActor,
    target_id: str,
    wait: Annotated[
        float, Query(ge=0, le=MAX_TEST_WAIT_SECONDS, description="seconds to wait for the agent's answer")
    ] = 0,
) -> TargetTestOut:
    """Queue a Validation job for the target's agent; with `wait`, answer with its result when it comes
    in time (`job_status` Completed or Failed, `checks` from the agent), else with the job still open."""
    with ctx.db.begin() as session:
        target = TargetStore(session).get(target_id)
        job = queue_validation(session, target, ctx.clock.now(), actor)
    queue = JobQueue(ctx.db, ctx.clock)
    deadline = time.monotonic() + wait
    while True:
        job = queue.get(job.id)
        if job.status not in OPEN_STATUSES or time.monotonic() >= deadline:
            break
        time.sleep(TEST_POLL_SECONDS)
    result = job.deployment_result or {}
    return TargetTestOut(
        target_id=target_id,
        job_id=job.id,
        job_status=job.status.value,
        error=job.last_error,
        checks=result.get("checks", []),
    )


@router.delete("/{target_id}", status_code=204, responses=NOT_FOUND)
def delete_target(service: Targets, target_id: str) -> Response:
    service.delete(target_id)
    return Response(status_code=204)
