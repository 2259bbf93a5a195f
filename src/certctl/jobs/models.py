from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base
from certctl.db.types import JSONType, StrEnumType, UTCDateTime


class JobType(StrEnum):
    ISSUANCE = "Issuance"
    RENEWAL = "Renewal"
    DEPLOYMENT = "Deployment"
    VALIDATION = "Validation"
    REVOCATION = "Revocation"


class JobStatus(StrEnum):
    PENDING = "Pending"
    AWAITING_CSR = "AwaitingCSR"
    AWAITING_APPROVAL = "AwaitingApproval"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


class VerificationStatus(StrEnum):
    PENDING = "pending"
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"


_OPEN_ISSUANCE = (
    "type IN ('Issuance', 'Renewal') AND status IN ('Pending', 'AwaitingCSR', 'AwaitingApproval', 'Running')"
)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_scheduled_at", "status", "scheduled_at"),
        Index("ix_jobs_status_next_retry_at", "status", "next_retry_at"),
        # At most one open issuance/renewal job per certificate, across every replica (core.md §3.2).
        Index(
            "uq_jobs_open_issuance_per_certificate",
            "certificate_id",
            unique=True,
            postgresql_where=text(_OPEN_ISSUANCE),
            sqlite_where=text(_OPEN_ISSUANCE),
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[JobType] = mapped_column(StrEnumType(JobType))
    # Null only for a target's Validation job ("test target"), which concerns no certificate.
    certificate_id: Mapped[str | None] = mapped_column(
        ForeignKey("managed_certificates.id", ondelete="CASCADE"), index=True, nullable=True
    )
    target_id: Mapped[str | None] = mapped_column(
        ForeignKey("deployment_targets.id", ondelete="SET NULL"), nullable=True
    )
    agent_id: Mapped[str | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL"), nullable=True, index=True
    )
    status: Mapped[JobStatus] = mapped_column(StrEnumType(JobStatus), index=True)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    max_attempts: Mapped[int] = mapped_column(default=3, server_default="3")
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    next_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    verification_status: Mapped[VerificationStatus] = mapped_column(
        StrEnumType(VerificationStatus, 16), default=VerificationStatus.PENDING, server_default="pending"
    )
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    verification_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    verification_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    deployment_result: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    # Deployment: the version it installs; Issuance/Renewal: the version it produced.
    version_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
