from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base
from certctl.db.types import JSONType, StrEnumType, UTCDateTime, json_default


class CertificateStatus(StrEnum):
    PENDING = "Pending"
    ACTIVE = "Active"
    EXPIRING = "Expiring"
    EXPIRED = "Expired"
    RENEWAL_IN_PROGRESS = "RenewalInProgress"
    FAILED = "Failed"
    REVOKED = "Revoked"
    ARCHIVED = "Archived"


class ManagedCertificate(Base):
    __tablename__ = "managed_certificates"
    __table_args__ = (
        Index("ix_managed_certificates_created_at_id", "created_at", "id"),
        Index("ix_managed_certificates_expires_at_id", "expires_at", "id"),
        Index("ix_managed_certificates_common_name_id", "common_name", "id"),
        Index("ix_managed_certificates_updated_at_id", "updated_at", "id"),
        Index("ix_managed_certificates_status_id", "status", "id"),
        Index("ix_managed_certificates_environment_id", "environment", "id"),
        Index("ix_managed_certificates_expires_at_status", "expires_at", "status"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    common_name: Mapped[str] = mapped_column(String(253))
    sans: Mapped[list[str]] = mapped_column(JSONType, default=list, server_default=json_default([]))
    environment: Mapped[str] = mapped_column(String(64), default="", server_default="")
    owner_id: Mapped[str] = mapped_column(ForeignKey("owners.id", ondelete="RESTRICT"), index=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    issuer_id: Mapped[str] = mapped_column(ForeignKey("issuers.id", ondelete="RESTRICT"), index=True)
    renewal_policy_id: Mapped[str] = mapped_column(ForeignKey("renewal_policies.id", ondelete="RESTRICT"))
    certificate_profile_id: Mapped[str | None] = mapped_column(
        ForeignKey("certificate_profiles.id", ondelete="SET NULL"), nullable=True, index=True
    )
    status: Mapped[CertificateStatus] = mapped_column(
        StrEnumType(CertificateStatus),
        default=CertificateStatus.PENDING,
        server_default="Pending",
        index=True,
    )
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    tags: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict, server_default=json_default({}))
    last_renewal_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_deployment_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revocation_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    source: Mapped[str] = mapped_column(String(16), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CertificateVersion(Base):
    __tablename__ = "certificate_versions"
    __table_args__ = (Index("ix_certificate_versions_certificate_created", "certificate_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    certificate_id: Mapped[str] = mapped_column(ForeignKey("managed_certificates.id", ondelete="CASCADE"))
    serial_number: Mapped[str] = mapped_column(String(64), index=True)  # canonical: lowercase hex, no padding
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    fingerprint_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    pem_chain: Mapped[str] = mapped_column(Text)
    csr_pem: Mapped[str] = mapped_column(Text, default="", server_default="")
    key_algorithm: Mapped[str] = mapped_column(String(16), default="", server_default="")
    key_size: Mapped[int] = mapped_column(default=0, server_default="0")
    # Server-generated private keys only, encrypted (v3 blob); never serialised by any endpoint.
    encrypted_private_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CertificateTargetMapping(Base):
    __tablename__ = "certificate_target_mappings"

    certificate_id: Mapped[str] = mapped_column(
        ForeignKey("managed_certificates.id", ondelete="CASCADE"), primary_key=True
    )
    target_id: Mapped[str] = mapped_column(
        ForeignKey("deployment_targets.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
