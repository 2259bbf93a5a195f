"""POST /api/v1/certificates/{id}/revoke (operator or admin) and /certificates/bulk-revoke (admin only)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from certctl.api.deps import AdminActor, Context, CurrentActor
from certctl.api.schemas import NOT_FOUND
from certctl.certificates.listing import CertificateFilter
from certctl.certificates.schemas import BulkError
from certctl.errors import ValidationFailed
from certctl.revocation.schemas import BulkRevokeIn, BulkRevokeOut, RevokeIn, RevokeOut

router = APIRouter(prefix="/certificates", tags=["certificates"])
JSON_MEDIA_TYPE = "application/json"


async def requested_reason(request: Request) -> str | None:
    """The body's `reason`, read only for a JSON body (as the original: any other body is ignored, so
    `curl -X POST …/revoke` revokes as unspecified). Media-type parameters such as charset are allowed."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != JSON_MEDIA_TYPE:
        return None
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return RevokeIn.model_validate(json.loads(raw)).reason
    except (ValueError, ValidationError) as exc:  # JSONDecodeError is a ValueError
        raise ValidationFailed(f'body must be {{"reason": "<name>"}}: {_first_error(exc)}') from exc


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "body"
        return f"{where}: {error['msg']}"
    return "malformed JSON"


RequestedReason = Annotated[str | None, Depends(requested_reason)]


@router.post(
    "/bulk-revoke",
    response_model=BulkRevokeOut,
    summary="Revoke every certificate matching the criteria (admin)",
)
def bulk_revoke(ctx: Context, actor: AdminActor, body: BulkRevokeIn) -> BulkRevokeOut:
    flt = CertificateFilter(
        profile_id=body.profile_id,
        owner_id=body.owner_id,
        agent_id=body.agent_id,
        issuer_id=body.issuer_id,
        team_id=body.team_id,
        ids=tuple(dict.fromkeys(body.certificate_ids or ())),
    )
    outcome = ctx.revocations.bulk_revoke(flt, body.reason, actor)
    return BulkRevokeOut(
        total_matched=outcome.total_matched,
        total_revoked=outcome.total_revoked,
        total_skipped=outcome.total_skipped,
        total_failed=outcome.total_failed,
        errors=[BulkError(certificate_id=c, error=e) for c, e in outcome.errors],
    )


@router.post(
    "/{cert_id}/revoke",
    response_model=RevokeOut,
    responses=NOT_FOUND,
    summary="Revoke a certificate",
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {JSON_MEDIA_TYPE: {"schema": RevokeIn.model_json_schema()}},
        }
    },
)
def revoke_certificate(ctx: Context, actor: CurrentActor, cert_id: str, reason: RequestedReason) -> RevokeOut:
    ctx.revocations.revoke(cert_id, reason, actor)
    return RevokeOut()
