"""/api/v1/issuers (the intermediate-CA hierarchy comes with the revocation work)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from certctl.api.deps import Context, Paging
from certctl.api.schemas import CONFLICT, NOT_FOUND, PageOut, changes_of, page_out
from certctl.errors import CertctlError
from certctl.issuers.schemas import IssuerIn, IssuerOut, IssuerTestOut, IssuerUpdate
from certctl.issuers.service import IssuerService, IssuerSpec
from certctl.pki.errors import IssuerError

router = APIRouter(prefix="/issuers", tags=["issuers"])


async def issuer_service(ctx: Context) -> IssuerService:
    return IssuerService(ctx.db, ctx.clock, ctx.cipher)


Issuers = Annotated[IssuerService, Depends(issuer_service)]


@router.get("", response_model=PageOut[IssuerOut])
def list_issuers(service: Issuers, paging: Paging) -> PageOut[IssuerOut]:
    return page_out(service.list(paging), IssuerOut)


@router.post("", response_model=IssuerOut, status_code=201, responses=CONFLICT)
def create_issuer(service: Issuers, body: IssuerIn) -> IssuerOut:
    spec = IssuerSpec(
        id=body.id,
        name=body.name,
        type=body.type,
        config=body.config,
        enabled=body.enabled,
        hierarchy_mode=body.hierarchy_mode,
    )
    return IssuerOut.model_validate(service.create(spec))


@router.get("/{issuer_id}", response_model=IssuerOut, responses=NOT_FOUND)
def get_issuer(service: Issuers, issuer_id: str) -> IssuerOut:
    return IssuerOut.model_validate(service.get(issuer_id))


@router.put("/{issuer_id}", response_model=IssuerOut, responses=NOT_FOUND | CONFLICT)
@router.patch("/{issuer_id}", response_model=IssuerOut, responses=NOT_FOUND | CONFLICT)
def update_issuer(service: Issuers, issuer_id: str, body: IssuerUpdate) -> IssuerOut:
    return IssuerOut.model_validate(service.update(issuer_id, changes_of(body)))


@router.post("/{issuer_id}/test", response_model=IssuerTestOut, responses=NOT_FOUND)
def test_issuer(ctx: Context, service: Issuers, issuer_id: str) -> IssuerTestOut:
    """Build the connector from the decrypted config and validate it; records test_status."""
    issuer = service.get(issuer_id)
    try:
        ctx.connectors.test(issuer)
    except (IssuerError, CertctlError) as exc:
        service.record_test(issuer_id, ok=False)
        return IssuerTestOut(status="failed", message=str(exc))
    service.record_test(issuer_id, ok=True)
    return IssuerTestOut(status="success", message=f"{issuer.type.value} issuer {issuer_id} is usable")


@router.delete("/{issuer_id}", status_code=204, responses=NOT_FOUND | CONFLICT)
def delete_issuer(service: Issuers, issuer_id: str) -> Response:
    service.delete(issuer_id)
    return Response(status_code=204)
