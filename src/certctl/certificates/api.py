"""/api/v1/certificates: inventory, target mappings and the manual lifecycle actions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy import inspect

from certctl.api.deps import Context, CurrentActor, Paging
from certctl.api.errors import error_response, request_id_of
from certctl.api.params import parse_time_filter
from certctl.api.schemas import CONFLICT, NOT_FOUND, PageOut, changes_of, page_out
from certctl.certificates.bulk import BulkService
from certctl.certificates.listing import CertificateFilter, Sort
from certctl.certificates.models import CertificateStatus
from certctl.certificates.schemas import (
    CERTIFICATE_FIELDS,
    BulkError,
    BulkReassignIn,
    BulkReassignOut,
    BulkRenewIn,
    BulkRenewOut,
    CertificateIn,
    CertificateListOut,
    CertificateOut,
    CertificatePageOut,
    CertificateUpdate,
    EnqueuedJob,
    ExportPemOut,
    MappedTargetsOut,
    Pkcs12In,
    RenewIn,
    RenewOut,
    TargetIdIn,
    TargetIdsIn,
    VersionOut,
)
from certctl.certificates.service import CertificateService, CertificateSpec, CertificateView
from certctl.config import KeygenMode
from certctl.context import AppContext
from certctl.db.store import MAX_PER_PAGE
from certctl.errors import ValidationFailed
from certctl.targets.schemas import TargetOut

router = APIRouter(prefix="/certificates", tags=["certificates"])


def _keygen_mode(ctx: AppContext) -> KeygenMode:
    return ctx.settings.keygen_mode


async def certificate_service(ctx: Context) -> CertificateService:
    return CertificateService(ctx.db, ctx.clock, _keygen_mode(ctx))


Certificates = Annotated[CertificateService, Depends(certificate_service)]


def to_out(view: CertificateView) -> CertificateOut:
    cert = view.certificate
    state = inspect(cert)
    # A loaded row holds every column in its dict: read there, not through ~20 instrumented attributes.
    values = state.dict if not state.unloaded else {n: getattr(cert, n) for n in CERTIFICATE_FIELDS - {"target_ids"}}
    return CertificateOut.model_validate(values | {"target_ids": view.target_ids})


def _project(out: CertificateOut, fields: frozenset[str] | None) -> dict[str, Any]:
    data = out.model_dump(mode="json")
    return {k: v for k, v in data.items() if k in fields} if fields else data


def _page_json(
    items: Sequence[CertificateOut] | Sequence[dict[str, Any]], fields: frozenset[str] | None, **page: Any
) -> Response:
    """A list page of certificates (models, or rows as CertificateOut reads them: validated in one call);
    without `fields`, its items typed (CertificatePageOut: the same JSON, serialised once)."""
    if fields is None:
        listed = CertificatePageOut.model_validate({"data": items, **page})
        return Response(listed.to_json(), media_type="application/json")
    outs = (CertificateOut.model_validate(item) for item in items)
    return _json(CertificateListOut(data=[_project(out, fields) for out in outs], **page), exclude_none=True)


def _json(model: BaseModel, status_code: int = 200, *, exclude_none: bool = False) -> Response:
    """The model serialised once, here. Returning the model instead would make FastAPI validate it again
    (for a `def` route, in a second trip to the thread pool) before serialising it: on the busiest routes
    that costs more than the work itself. `response_model` on the route still documents the shape."""
    return Response(model.model_dump_json(exclude_none=exclude_none), status_code, media_type="application/json")


def _fields(text: str | None) -> frozenset[str] | None:
    if not text:
        return None
    wanted = frozenset(f.strip() for f in text.split(",") if f.strip())
    unknown = wanted - CERTIFICATE_FIELDS
    if unknown:
        raise ValidationFailed(f"unknown field(s) in fields: {', '.join(sorted(unknown))}")
    return wanted | {"id"}


@router.get("", response_model=CertificateListOut, response_model_exclude_none=True)
def list_certificates(
    service: Certificates,
    paging: Paging,
    status: Annotated[CertificateStatus | None, Query()] = None,
    environment: Annotated[str | None, Query()] = None,
    owner_id: Annotated[str | None, Query()] = None,
    team_id: Annotated[str | None, Query()] = None,
    issuer_id: Annotated[str | None, Query()] = None,
    agent_id: Annotated[str | None, Query(description="certificates mapped to a target of this agent")] = None,
    profile_id: Annotated[str | None, Query()] = None,
    expires_before: Annotated[str | None, Query(description="RFC 3339 time or YYYY-MM-DD")] = None,
    expires_after: Annotated[str | None, Query(description="RFC 3339 time or YYYY-MM-DD")] = None,
    created_after: Annotated[str | None, Query(description="RFC 3339 time or YYYY-MM-DD")] = None,
    updated_after: Annotated[str | None, Query(description="RFC 3339 time or YYYY-MM-DD")] = None,
    sort: Annotated[
        str | None,
        Query(
            description="name, commonName, status, environment, notAfter, createdAt, updatedAt; prefix - for descending"
        ),
    ] = None,
    sort_desc: Annotated[bool, Query()] = False,
    fields: Annotated[str | None, Query(description="comma-separated fields to return (sparse)")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    page_size: Annotated[int | None, Query(description=f"cursor page size, 1-{MAX_PER_PAGE}")] = None,
) -> Response:
    flt = CertificateFilter(
        status=status,
        environment=environment,
        owner_id=owner_id,
        team_id=team_id,
        issuer_id=issuer_id,
        agent_id=agent_id,
        profile_id=profile_id,
        expires_before=parse_time_filter("expires_before", expires_before),
        expires_after=parse_time_filter("expires_after", expires_after),
        created_after=parse_time_filter("created_after", created_after),
        updated_after=parse_time_filter("updated_after", updated_after),
    )
    order = Sort.parse(sort, sort_desc)
    wanted = _fields(fields)
    if cursor is None and page_size is None:
        page = service.list_page(flt, order, paging)
        outs = [to_out(view) for view in page.items]
        return _page_json(outs, wanted, total=page.total, page=page.page, per_page=page.per_page)
    size = page_size if page_size is not None and page_size >= 1 else paging.per_page
    if size > MAX_PER_PAGE:
        raise ValidationFailed(f"page_size must be between 1 and {MAX_PER_PAGE}")
    result = service.list_after(flt, order, cursor, size)
    return _page_json(result.items, wanted, total=result.total, page_size=size, next_cursor=result.next_cursor)


@router.post("", response_model=CertificateOut, status_code=201, responses=CONFLICT)
async def create_certificate(service: Certificates, actor: CurrentActor, body: CertificateIn) -> Response:
    # On the event loop: concurrent creates then share a transaction and a single worker-thread hop.
    return _json(to_out(await service.create_together(CertificateSpec(**body.model_dump()), actor)), 201)


@router.get("/{cert_id}", response_model=CertificateOut, responses=NOT_FOUND)
def get_certificate(service: Certificates, cert_id: str) -> Response:
    return _json(to_out(service.get(cert_id)))


@router.put("/{cert_id}", response_model=CertificateOut, responses=NOT_FOUND | CONFLICT)
@router.patch("/{cert_id}", response_model=CertificateOut, responses=NOT_FOUND | CONFLICT)
def update_certificate(
    service: Certificates, actor: CurrentActor, cert_id: str, body: CertificateUpdate
) -> CertificateOut:
    changes = changes_of(body, nullable=frozenset({"certificate_profile_id"}))
    return to_out(service.update(cert_id, changes, actor))


@router.delete("/{cert_id}", status_code=204, responses=NOT_FOUND)
def archive_certificate(service: Certificates, actor: CurrentActor, cert_id: str) -> Response:
    service.archive(cert_id, actor)
    return Response(status_code=204)


@router.get("/{cert_id}/versions", response_model=PageOut[VersionOut], responses=NOT_FOUND)
def list_versions(service: Certificates, cert_id: str, paging: Paging) -> PageOut[VersionOut]:
    return page_out(service.versions(cert_id, paging), VersionOut)


@router.post("/{cert_id}/renew", response_model=RenewOut, status_code=202, responses=NOT_FOUND | CONFLICT)
def renew_certificate(
    service: Certificates,
    actor: CurrentActor,
    cert_id: str,
    body: RenewIn | None = None,
    force: Annotated[bool, Query()] = False,
) -> RenewOut:
    job = service.renew(cert_id, actor, force=force or (body.force if body else False))
    return RenewOut(status="renewal_triggered", job_id=job.id)


@router.get("/{cert_id}/export/pem", response_model=ExportPemOut, responses=NOT_FOUND)
def export_pem(
    service: Certificates, actor: CurrentActor, cert_id: str, download: Annotated[bool, Query()] = False
) -> ExportPemOut | Response:
    exported = service.export_pem(cert_id, actor)
    if download:
        return Response(
            exported.full_pem,
            media_type="application/x-pem-file",
            headers={"Content-Disposition": f'attachment; filename="{cert_id}.pem"'},
        )
    return ExportPemOut(cert_pem=exported.cert_pem, chain_pem=exported.chain_pem, full_pem=exported.full_pem)


@router.post(
    "/{cert_id}/export/pkcs12",
    response_class=Response,
    responses=NOT_FOUND | {200: {"content": {"application/x-pkcs12": {}}, "description": "PKCS#12 trust store"}},
)
def export_pkcs12(
    request: Request, ctx: Context, service: Certificates, actor: CurrentActor, cert_id: str, body: Pkcs12In
) -> Response:
    wait = ctx.export_limiter.acquire(actor.name)  # keyed on the authenticated actor, never a client header
    if wait:
        return error_response(
            429,
            "certificate export rate limit exceeded for this API key",
            request_id_of(request),
            error="Rate limit exceeded",
            headers={"Retry-After": str(wait)},
        )
    bundle = service.export_pkcs12(cert_id, body.password, actor)
    return Response(
        bundle,
        media_type="application/x-pkcs12",
        headers={"Content-Disposition": f'attachment; filename="{cert_id}.p12"'},
    )


@router.post("/bulk-renew", response_model=BulkRenewOut)
def bulk_renew(ctx: Context, actor: CurrentActor, body: BulkRenewIn) -> BulkRenewOut:
    criteria = body.filter or body
    flt = CertificateFilter(
        profile_id=criteria.profile_id,
        owner_id=criteria.owner_id,
        agent_id=criteria.agent_id,
        issuer_id=criteria.issuer_id,
        team_id=criteria.team_id,
        ids=tuple(criteria.certificate_ids or ()),
    )
    outcome = BulkService(ctx.db, ctx.clock, _keygen_mode(ctx)).renew(flt, actor)
    return BulkRenewOut(
        total_matched=outcome.total_matched,
        total_enqueued=outcome.total_done,
        total_skipped=outcome.total_skipped,
        total_failed=outcome.total_failed,
        enqueued_jobs=[EnqueuedJob(certificate_id=c, job_id=j) for c, j in outcome.enqueued],
        errors=[BulkError(certificate_id=c, error=e) for c, e in outcome.errors],
    )


@router.post("/bulk-reassign", response_model=BulkReassignOut)
def bulk_reassign(ctx: Context, actor: CurrentActor, body: BulkReassignIn) -> BulkReassignOut:
    outcome = BulkService(ctx.db, ctx.clock, _keygen_mode(ctx)).reassign(
        body.certificate_ids, body.owner_id, body.team_id, actor
    )
    return BulkReassignOut(
        total_matched=outcome.total_matched,
        total_reassigned=outcome.total_done,
        total_skipped=outcome.total_skipped,
        total_failed=outcome.total_failed,
        errors=[BulkError(certificate_id=c, error=e) for c, e in outcome.errors],
    )


@router.get("/{cert_id}/targets", response_model=MappedTargetsOut, responses=NOT_FOUND)
def mapped_targets(service: Certificates, cert_id: str) -> MappedTargetsOut:
    targets = [TargetOut.model_validate(t) for t in service.mapped_targets(cert_id)]
    return MappedTargetsOut(data=targets, total=len(targets))


@router.put("/{cert_id}/targets", response_model=TargetIdsIn, responses=NOT_FOUND)
def replace_targets(service: Certificates, actor: CurrentActor, cert_id: str, body: TargetIdsIn) -> TargetIdsIn:
    return TargetIdsIn(target_ids=service.replace_targets(cert_id, body.target_ids, actor))


@router.post("/{cert_id}/targets", response_model=TargetIdsIn, status_code=201, responses=NOT_FOUND)
def add_target(
    service: Certificates, actor: CurrentActor, cert_id: str, body: TargetIdIn, response: Response
) -> TargetIdsIn:
    if not service.add_target(cert_id, body.target_id, actor):
        response.status_code = 200
    return TargetIdsIn(target_ids=service.get(cert_id).target_ids)


@router.delete("/{cert_id}/targets/{target_id}", status_code=204, responses=NOT_FOUND)
def remove_target(service: Certificates, actor: CurrentActor, cert_id: str, target_id: str) -> Response:
    service.remove_target(cert_id, target_id, actor)
    return Response(status_code=204)
