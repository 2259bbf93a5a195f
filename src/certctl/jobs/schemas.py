from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from certctl.jobs.models import JobStatus, JobType, VerificationStatus


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    type: JobType
    certificate_id: str | None
    target_id: str | None
    agent_id: str | None
    status: JobStatus
    attempts: int
    max_attempts: int
    last_error: str | None
    scheduled_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    next_retry_at: datetime | None
    created_at: datetime
    verification_status: VerificationStatus
    verified_at: datetime | None
    verification_fingerprint: str | None
    verification_error: str | None
    deployment_result: dict[str, Any] | None
    version_id: str | None = None  # Deployment: the version it installs; Issuance/Renewal: the one it produced
