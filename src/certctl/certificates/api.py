"""/api/v1/certificates: inventory, target mappings and the manual lifecycle actions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from certctl.api.deps import Context, CurrentActor, Paging
from certctl.api.params import parse_time_filter
from certctl.api.schemas import CONFLICT, NOT_FOUND, PageOut, changes_of, page_out
from certctl.certificates.issuance import KeygenMode
from certctl.certificates.listing import CertificateFilter, Sort
from certctl.certificates.models import CertificateStatus
from certctl.certificates.schemas import (
    CERTIFICATE_FIELDS,
    CertificateIn,
    CertificateListOut,
    CertificateOut,
    CertificateUpdate,
    RenewIn,
    RenewOut,
    TargetIdIn,
    TargetIdsIn,
    VersionOut,
)
from certctl.certificates.service import CertificateService, CertificateSpec, CertificateView
from certctl.db.store import MAX_PER_PAGE
from certctl.errors import ValidationFailed

router = APIRouter(prefix="/certificates", tags=["certificates"])


def certificate_service(ctx: Context) -> CertificateService:
    return CertificateService(ctx.db, ctx.clock, KeygenMode(getattr(ctx.settings, "keygen_mode", "agent")))


Certificates = Annotated[CertificateService, Depends(certificate_service)]


def to_out(view: CertificateView) -> CertificateOut:
    cert = view.certificate
    values = {name: getattr(cert, name) for name in CERTIFICATE_FIELDS if name != "target_ids"}
    return CertificateOut.model_validate(values | {"target_ids": view.target_ids})


def _project(view: CertificateView, fields: frozenset[str] | None) -> dict[str, Any]:
    data = to_out(view).model_dump(mode="json")
    return {k: v for k, v in data.items() if k in fields} if fields else data


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
) -> CertificateListOut:
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
        return CertificateListOut(
            data=[_project(v, wanted) for v in page.items], total=page.total, page=page.page, per_page=page.per_page
        )
    size = page_size if page_size is not None and page_size >= 1 else paging.per_page
    if size > MAX_PER_PAGE:
        raise ValidationFailed(f"page_size must be between 1 and {MAX_PER_PAGE}")
    result = service.list_after(flt, order, cursor, size)
    return CertificateListOut(
        data=[_project(v, wanted) for v in result.items],
        total=result.total,
        page_size=size,
        next_cursor=result.next_cursor,
    )


@router.post("", response_model=CertificateOut, status_code=201, responses=CONFLICT)
def create_certificate(service: Certificates, actor: CurrentActor, body: CertificateIn) -> CertificateOut:
    return to_out(service.create(CertificateSpec(**body.model_dump()), actor))


@router.get("/{cert_id}", response_model=CertificateOut, responses=NOT_FOUND)
def get_certificate(service: Certificates, cert_id: str) -> CertificateOut:
    return to_out(service.get(cert_id))


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
