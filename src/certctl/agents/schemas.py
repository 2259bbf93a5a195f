"""Wire shapes of /api/v1/agents and the agent protocol (field names as the original's)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from certctl.agents.models import AgentStatus
from certctl.api.schemas import StrictIn
from certctl.jobs.models import JobStatus, VerificationStatus
from certctl.targets.schemas import TargetOut

HostDetail = Field(default="", max_length=255)


class AgentIn(StrictIn):
    name: str = Field(max_length=128, description="unique; at most 128 characters")
    hostname: str = Field(max_length=255)
    os: str = Field(default="", max_length=64)
    architecture: str = Field(default="", max_length=64)
    ip_address: str = Field(default="", max_length=64)
    version: str = Field(default="", max_length=64)


class AgentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    hostname: str
    status: AgentStatus
    last_heartbeat_at: datetime | None
    registered_at: datetime
    os: str
    architecture: str
    ip_address: str
    version: str
    retired_at: datetime | None
    retired_reason: str | None


class RegisteredAgentOut(AgentOut):
    api_key: str = Field(description="the agent's own credential; shown once, only its SHA-256 is stored")


class HeartbeatIn(BaseModel):
    # Lenient like the original: every field optional, unknown fields ignored (older agents send more).
    version: str = HostDetail
    hostname: str = HostDetail
    os: str = HostDetail
    architecture: str = HostDetail
    ip_address: str = HostDetail


class HeartbeatOut(BaseModel):
    status: str = "heartbeat_recorded"


class WorkOut(BaseModel):
    jobs: list[dict[str, Any]]
    count: int


class CsrIn(StrictIn):
    csr_pem: str = Field(min_length=1, max_length=65536)
    certificate_id: str = Field(min_length=1, max_length=64)


class CsrOut(BaseModel):
    status: str = "csr_signed"
    job_id: str
    version_id: str


class CertificatePickupOut(BaseModel):
    certificate_pem: str
    version_id: str
    serial_number: str
    fingerprint_sha256: str
    private_key_pem: str | None = Field(default=None, description="only for server-generated keys")


class JobStatusIn(StrictIn):
    status: str = Field(description="Running, Completed or Failed")
    error: str = Field(default="", max_length=8000)
    result: dict[str, Any] | None = Field(default=None, description="the structured deployment result")


class JobStatusOut(BaseModel):
    status: str = "updated"
    job_id: str
    job_status: str
    next_retry_at: datetime | None


class VerifyIn(StrictIn):
    target_id: str = Field(min_length=1, max_length=64)
    expected_fingerprint: str = Field(default="", max_length=128)
    actual_fingerprint: str = Field(default="", max_length=128)
    verified: bool
    error: str = Field(default="", max_length=4000)


class VerificationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    job_id: str = Field(validation_alias="id")
    target_id: str | None
    verification_status: VerificationStatus
    verified_at: datetime | None
    verification_fingerprint: str | None
    verification_error: str | None


class RetireOut(BaseModel):
    retired_at: datetime
    already_retired: bool
    cascade: bool
    counts: dict[str, int]


class DeployIn(StrictIn):
    target_ids: list[str] | None = Field(default=None, description="only these mapped targets (default: all)")


class DeployOut(BaseModel):
    certificate_id: str
    job_ids: list[str]
    count: int


class LastDeploymentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    job_id: str = Field(validation_alias="id")
    status: JobStatus
    version_id: str | None
    attempts: int
    last_error: str | None
    created_at: datetime
    completed_at: datetime | None
    verification_status: VerificationStatus
    verification_fingerprint: str | None
    verification_error: str | None


class TargetDeploymentOut(TargetOut):
    last_deployment: LastDeploymentOut | None = Field(default=None, description="the newest deployment here")


class DeploymentsOut(BaseModel):
    """The original's `{data, total}` of mapped targets, each with the state of its last deployment."""

    data: list[TargetDeploymentOut]
    total: int
