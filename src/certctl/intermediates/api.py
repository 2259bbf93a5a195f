"""HTTP for the intermediate CA hierarchy (pki.md §A1.6); every operation is admin-only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from certctl.api.deps import AdminActor, Context
from certctl.api.schemas import CONFLICT, NOT_FOUND
from certctl.errors import ValidationFailed
from certctl.intermediates.schemas import IntermediateCAIn, IntermediateCAList, IntermediateCAOut, RetireIn
from certctl.intermediates.service import CASpec, IntermediateCAService
from certctl.intermediates.template import SubjectSpec
from certctl.pki.name_constraints import NameConstraintSet

router = APIRouter(tags=["intermediates"])


async def intermediate_service(ctx: Context) -> IntermediateCAService:
    return IntermediateCAService(ctx.db, ctx.clock, ctx.cipher, ctx.settings.server_public_url)


Intermediates = Annotated[IntermediateCAService, Depends(intermediate_service)]


@router.get("/issuers/{issuer_id}/intermediates", response_model=IntermediateCAList, responses=NOT_FOUND)
def list_intermediates(service: Intermediates, _: AdminActor, issuer_id: str) -> IntermediateCAList:
    cas = service.list(issuer_id)
    return IntermediateCAList(data=[IntermediateCAOut.model_validate(ca) for ca in cas], total=len(cas))


@router.post(
    "/issuers/{issuer_id}/intermediates",
    response_model=IntermediateCAOut,
    status_code=201,
    responses=NOT_FOUND | CONFLICT,
)
def create_intermediate(
    service: Intermediates, actor: AdminActor, issuer_id: str, body: IntermediateCAIn
) -> IntermediateCAOut:
    """No parent_ca_id: register the root (root_cert_pem + key_pem or a pkcs11 key_driver_id, or the issuer's
    own CA). With parent_ca_id: sign a child CA under it."""
    return IntermediateCAOut.model_validate(service.create(issuer_id, _spec(body), actor))


@router.get("/intermediates/{ca_id}", response_model=IntermediateCAOut, responses=NOT_FOUND)
def get_intermediate(service: Intermediates, _: AdminActor, ca_id: str) -> IntermediateCAOut:
    return IntermediateCAOut.model_validate(service.get(ca_id))


@router.post("/intermediates/{ca_id}/retire", response_model=IntermediateCAOut, responses=NOT_FOUND | CONFLICT)
def retire_intermediate(service: Intermediates, actor: AdminActor, ca_id: str, body: RetireIn) -> IntermediateCAOut:
    """active → retiring; retiring → retired with confirm=true once no active child, issuing role or live
    certificate depends on it (409 otherwise)."""
    return IntermediateCAOut.model_validate(service.retire(ca_id, note=body.note, confirm=body.confirm, actor=actor))


def _spec(body: IntermediateCAIn) -> CASpec:
    constraints = None
    if body.name_constraints is not None:
        try:
            constraints = NameConstraintSet.parse(
                [name for entry in body.name_constraints for name in entry.permitted],
                [name for entry in body.name_constraints for name in entry.excluded],
            )
        except ValueError as exc:
            raise ValidationFailed(f"name_constraints: {exc}") from exc
    subject = None
    if body.subject is not None:
        subject = SubjectSpec(
            common_name=body.subject.common_name,
            organization=tuple(body.subject.organization),
            organizational_unit=tuple(body.subject.organizational_unit),
            country=tuple(c.upper() for c in body.subject.country),
            locality=tuple(body.subject.locality),
            province=tuple(body.subject.province),
        )
    return CASpec(
        name=body.name,
        parent_ca_id=body.parent_ca_id,
        root_cert_pem=body.root_cert_pem,
        key_pem=body.key_pem,
        key_driver_id=body.key_driver_id,
        subject=subject,
        algorithm=body.algorithm,
        ttl_days=body.ttl_days,
        path_len_constraint=body.path_len_constraint,
        name_constraints=constraints,
        ocsp_responder_url=body.ocsp_responder_url,
        metadata=body.metadata,
    )
