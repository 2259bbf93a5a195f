"""/api/v1/profiles."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from certctl.api.deps import Context, Paging
from certctl.api.schemas import CONFLICT, NOT_FOUND, PageOut, changes_of, page_out
from certctl.profiles.schemas import ProfileIn, ProfileOut, ProfileUpdate
from certctl.profiles.service import ProfileService, ProfileSpec

router = APIRouter(prefix="/profiles", tags=["profiles"])


async def profile_service(ctx: Context) -> ProfileService:
    return ProfileService(ctx.db, ctx.clock)


Profiles = Annotated[ProfileService, Depends(profile_service)]


@router.get("", response_model=PageOut[ProfileOut])
def list_profiles(service: Profiles, paging: Paging) -> PageOut[ProfileOut]:
    return page_out(service.list(paging), ProfileOut)


@router.post("", response_model=ProfileOut, status_code=201, responses=CONFLICT)
def create_profile(service: Profiles, body: ProfileIn) -> ProfileOut:
    return ProfileOut.model_validate(service.create(ProfileSpec(**body.model_dump())))


@router.get("/{profile_id}", response_model=ProfileOut, responses=NOT_FOUND)
def get_profile(service: Profiles, profile_id: str) -> ProfileOut:
    return ProfileOut.model_validate(service.get(profile_id))


@router.put("/{profile_id}", response_model=ProfileOut, responses=NOT_FOUND | CONFLICT)
@router.patch("/{profile_id}", response_model=ProfileOut, responses=NOT_FOUND | CONFLICT)
def update_profile(service: Profiles, profile_id: str, body: ProfileUpdate) -> ProfileOut:
    return ProfileOut.model_validate(service.update(profile_id, changes_of(body)))


@router.delete("/{profile_id}", status_code=204, responses=NOT_FOUND)
def delete_profile(service: Profiles, profile_id: str) -> Response:
    service.delete(profile_id)
    return Response(status_code=204)
