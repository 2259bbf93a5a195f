"""Wire shapes of /api/v1/certificates (the original's JSON field names)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from certctl.api.schemas import ClientId, Name, StrictIn
from certctl.certificates.models import CertificateStatus
from certctl.targets.schemas import TargetOut

CommonName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=253)]
RefId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class CertificateIn(StrictIn):
    id: ClientId | None = Field(default=None, description="optional; generated as mc-… when omitted")
    name: Name
    common_name: CommonName
    sans: list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=253)]] = Field(
        default_factory=list, max_length=100
    )
    environment: str = Field(default="", max_length=64)
    owner_id: RefId
    team_id: RefId
    issuer_id: RefId
    renewal_policy_id: RefId
    certificate_profile_id: RefId | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    target_ids: list[RefId] = Field(default_factory=list)
    status: CertificateStatus | None = Field(
        default=None, description="omit (or Pending) to start issuance; another status imports without issuing"
    )
    certificate_pem: str | None = Field(
        default=None, description="import an existing certificate (leaf then chain, PEM); no issuance"
    )


class CertificateUpdate(StrictIn):
    name: Name | None = None
    common_name: CommonName | None = None
    sans: list[str] | None = None
    environment: str | None = Field(default=None, max_length=64)
    owner_id: RefId | None = None
    team_id: RefId | None = None
    issuer_id: RefId | None = None
    renewal_policy_id: RefId | None = None
    certificate_profile_id: RefId | None = None
    tags: dict[str, str] | None = None
    target_ids: list[RefId] | None = None
    status: CertificateStatus | None = Field(default=None, description="may only repeat the current status")


class CertificateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    common_name: str
    sans: list[str]
    environment: str
    owner_id: str
    team_id: str
    issuer_id: str
    renewal_policy_id: str
    certificate_profile_id: str | None
    target_ids: list[str]
    status: CertificateStatus
    expires_at: datetime | None
    tags: dict[str, str]
    last_renewal_at: datetime | None
    last_deployment_at: datetime | None
    revoked_at: datetime | None
    revocation_reason: str | None
    source: str
    created_at: datetime
    updated_at: datetime


CERTIFICATE_FIELDS = frozenset(CertificateOut.model_fields)


class CertificateListOut(BaseModel):
    """Offset pages carry `page`/`per_page`; cursor pages `page_size` and, unless last, `next_cursor`.
    With `fields=…` each item holds only the requested fields."""

    data: list[dict[str, Any]]
    total: int
    page: int | None = None
    per_page: int | None = None
    page_size: int | None = None
    next_cursor: str | None = None


class CertificatePageOut(BaseModel):
    """A CertificateListOut page without `fields=`, its items typed, so each is serialised once straight from
    its model; `to_json` leaves out the page fields that are None, and keeps the items' None fields, as
    CertificateListOut with exclude_none does (same JSON, half the work on a 100-row page)."""

    data: list[CertificateOut]
    total: int
    page: int | None = None
    per_page: int | None = None
    page_size: int | None = None
    next_cursor: str | None = None

    def to_json(self) -> str:
        unset = {name for name in ("page", "per_page", "page_size", "next_cursor") if getattr(self, name) is None}
        return self.model_dump_json(exclude=unset)


class VersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    certificate_id: str
    serial_number: str
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    pem_chain: str
    csr_pem: str
    key_algorithm: str
    key_size: int
    created_at: datetime


class RenewIn(StrictIn):
    force: bool = False


class RenewOut(BaseModel):
    status: str
    job_id: str


class TargetIdsIn(StrictIn):
    target_ids: list[RefId]


class TargetIdIn(StrictIn):
    target_id: RefId


class MappedTargetsOut(BaseModel):
    """`{data, total}`: the deployment targets mapped to a certificate (the original's shape)."""

    data: list[TargetOut]
    total: int


class ExportPemOut(BaseModel):
    cert_pem: str
    chain_pem: str
    full_pem: str


class Pkcs12In(StrictIn):
    password: str = Field(default="", max_length=1024)


class BulkCriteria(StrictIn):
    profile_id: RefId | None = None
    owner_id: RefId | None = None
    agent_id: RefId | None = None
    issuer_id: RefId | None = None
    team_id: RefId | None = None
    certificate_ids: list[RefId] | None = Field(default=None, max_length=100_000)


class BulkRenewIn(BulkCriteria):
    filter: BulkCriteria | None = Field(default=None, description="alias of the top-level criteria")


class EnqueuedJob(BaseModel):
    certificate_id: str
    job_id: str


class BulkError(BaseModel):
    certificate_id: str
    error: str


class BulkRenewOut(BaseModel):
    total_matched: int
    total_enqueued: int
    total_skipped: int
    total_failed: int
    enqueued_jobs: list[EnqueuedJob]
    errors: list[BulkError]


class BulkReassignIn(StrictIn):
    certificate_ids: list[RefId] = Field(min_length=1, max_length=100_000)
    owner_id: RefId
    team_id: RefId | None = None


class BulkReassignOut(BaseModel):
    total_matched: int
    total_reassigned: int
    total_skipped: int
    total_failed: int
    errors: list[BulkError]
