"""/api/v1/renewal-policies."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from certctl.api.deps import Context, Paging
from certctl.api.schemas import CONFLICT, NOT_FOUND, PageOut, changes_of, page_out
from certctl.policies.schemas import NULLABLE, RenewalPolicyIn, RenewalPolicyOut, RenewalPolicyUpdate
from certctl.policies.service import RenewalPolicyService, RenewalPolicySpec

router = APIRouter(prefix="/renewal-policies", tags=["renewal-policies"])


async def renewal_policy_service(ctx: Context) -> RenewalPolicyService:
    return RenewalPolicyService(ctx.db, ctx.clock)


RenewalPolicies = Annotated[RenewalPolicyService, Depends(renewal_policy_service)]


@router.get("", response_model=PageOut[RenewalPolicyOut])
def list_renewal_policies(service: RenewalPolicies, paging: Paging) -> PageOut[RenewalPolicyOut]:
    return page_out(service.list(paging), RenewalPolicyOut)


@router.post("", response_model=RenewalPolicyOut, status_code=201, responses=CONFLICT)
def create_renewal_policy(service: RenewalPolicies, body: RenewalPolicyIn) -> RenewalPolicyOut:
    return RenewalPolicyOut.model_validate(service.create(RenewalPolicySpec(**body.model_dump())))


@router.get("/{policy_id}", response_model=RenewalPolicyOut, responses=NOT_FOUND)
def get_renewal_policy(service: RenewalPolicies, policy_id: str) -> RenewalPolicyOut:
    return RenewalPolicyOut.model_validate(service.get(policy_id))


@router.put("/{policy_id}", response_model=RenewalPolicyOut, responses=NOT_FOUND | CONFLICT)
@router.patch("/{policy_id}", response_model=RenewalPolicyOut, responses=NOT_FOUND | CONFLICT)
def update_renewal_policy(service: RenewalPolicies, policy_id: str, body: RenewalPolicyUpdate) -> RenewalPolicyOut:
    return RenewalPolicyOut.model_validate(service.update(policy_id, changes_of(body, nullable=NULLABLE)))


@router.delete("/{policy_id}", status_code=204, responses=NOT_FOUND | CONFLICT)
def delete_renewal_policy(service: RenewalPolicies, policy_id: str) -> Response:
    service.delete(policy_id)
    return Response(status_code=204)
