"""POST /api/v1/admin/scheduler/run-now/{loop}: run one loop now on this replica (admin)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from certctl.api.deps import AdminActor
from certctl.api.schemas import CONFLICT, NOT_FOUND, ErrorOut
from certctl.errors import Conflict, NotFound
from certctl.scheduler.runner import RunStatus, Scheduler

router = APIRouter(prefix="/admin/scheduler", tags=["admin"])


class RunNowOut(BaseModel):
    status: str
    loop: str


def _scheduler(request: Request) -> Scheduler | None:
    background = getattr(request.app.state, "background", None)
    return background.scheduler if background is not None else None


@router.post(
    "/run-now/{loop}",
    response_model=RunNowOut,
    status_code=202,
    responses=NOT_FOUND | CONFLICT | {503: {"model": ErrorOut, "description": "Scheduler not running here"}},
)
def run_now(request: Request, loop: str, actor: AdminActor) -> RunNowOut | JSONResponse:
    scheduler = _scheduler(request)
    if scheduler is None:
        return JSONResponse(
            {
                "error": "Service Unavailable",
                "request_id": getattr(request.state, "request_id", ""),
                "message": "the scheduler is disabled in this process (CERTCTL_SCHEDULER_ENABLED)",
            },
            status_code=503,
        )
    result = scheduler.run_now(loop)
    if result.status is RunStatus.STARTED:
        return RunNowOut(status="started", loop=loop)
    if result.status is RunStatus.UNKNOWN_LOOP:
        raise NotFound("scheduler loop", f"{loop!r} (known: {', '.join(scheduler.loop_names)})")
    if result.status in (RunStatus.ALREADY_RUNNING, RunStatus.LEASE_HELD_ELSEWHERE):
        where = f" on {result.holder}" if result.holder else ""
        raise Conflict(f"loop {loop} is already running{where}")
    return JSONResponse(
        {
            "error": "Service Unavailable",
            "request_id": getattr(request.state, "request_id", ""),
            "message": f"loop {loop} cannot start now: {result.status.value}",
        },
        status_code=503,
    )
