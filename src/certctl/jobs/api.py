"""/api/v1/jobs: the queue as operators see it; cancel and manual retry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from certctl.api.deps import Context, CurrentActor, Paging
from certctl.api.schemas import CONFLICT, NOT_FOUND, PageOut, page_out
from certctl.jobs.models import Job, JobStatus, JobType
from certctl.jobs.schemas import JobOut
from certctl.jobs.service import JobQueue
from certctl.jobs.store import JobStore

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("", response_model=PageOut[JobOut])
def list_jobs(
    ctx: Context,
    paging: Paging,
    status: Annotated[JobStatus | None, Query()] = None,
    job_type: Annotated[JobType | None, Query(alias="type")] = None,
    certificate_id: Annotated[str | None, Query()] = None,
) -> PageOut[JobOut]:
    stmt = select(Job).order_by(Job.created_at.desc(), Job.id.desc())
    if status is not None:
        stmt = stmt.where(Job.status == status)
    if job_type is not None:
        stmt = stmt.where(Job.type == job_type)
    if certificate_id is not None:
        stmt = stmt.where(Job.certificate_id == certificate_id)
    with ctx.db.begin() as session:
        return page_out(JobStore(session).paginate(stmt, paging), JobOut)


@router.get("/{job_id}", response_model=JobOut, responses=NOT_FOUND)
def get_job(ctx: Context, job_id: str) -> JobOut:
    return JobOut.model_validate(JobQueue(ctx.db, ctx.clock).get(job_id))


@router.post("/{job_id}/cancel", response_model=JobOut, responses=NOT_FOUND | CONFLICT)
def cancel_job(ctx: Context, actor: CurrentActor, job_id: str) -> JobOut:
    return JobOut.model_validate(JobQueue(ctx.db, ctx.clock).cancel(job_id, actor))


@router.post("/{job_id}/retry", response_model=JobOut, responses=NOT_FOUND | CONFLICT)
def retry_job(ctx: Context, actor: CurrentActor, job_id: str) -> JobOut:
    """One more attempt for a terminally failed job (attempts exhausted)."""
    return JobOut.model_validate(JobQueue(ctx.db, ctx.clock).manual_retry(job_id, actor))
