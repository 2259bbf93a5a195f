from __future__ import annotations

from datetime import datetime
from enum import IntEnum

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base
from certctl.db.types import UTCDateTime


class ReasonCode(IntEnum):
    """RFC 5280 §5.3.1 CRLReason codes the REST API accepts (pki.md §A2.1); 8 and 10 are not among them."""

    UNSPECIFIED = 0
    KEY_COMPROMISE = 1
    CA_COMPROMISE = 2
    AFFILIATION_CHANGED = 3
    SUPERSEDED = 4
    CESSATION_OF_OPERATION = 5
    CERTIFICATE_HOLD = 6
    PRIVILEGE_WITHDRAWN = 9


class CertificateRevocation(Base):
    """One revoked serial of one issuer: the ledger CRLs and OCSP answers are built from. Rows are only added."""

    __tablename__ = "certificate_revocations"
    __table_args__ = (
        UniqueConstraint("issuer_id", "serial_number", name="uq_certificate_revocations_issuer_serial"),
        Index("ix_certificate_revocations_issuer_not_after", "issuer_id", "not_after"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    certificate_id: Mapped[str | None] = mapped_column(
        ForeignKey("managed_certificates.id", ondelete="SET NULL"), nullable=True, index=True
    )
    issuer_id: Mapped[str] = mapped_column(ForeignKey("issuers.id", ondelete="CASCADE"))
    serial_number: Mapped[str] = mapped_column(String(64), index=True)  # canonical form (pki.md §A2.5)
    reason: Mapped[str] = mapped_column(String(32))  # the RFC 5280 name, e.g. keyCompromise
    revoked_by: Mapped[str] = mapped_column(String(128))
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    """The revoked certificate's expiry: CRLs leave the entry out once it has passed."""
    short_lived: Mapped[bool] = mapped_column(default=False, server_default="0")
    """Issued under a short-lived profile: left off CRLs and answered `good` by OCSP (pki.md §A2.3-4)."""
    issuer_notified: Mapped[bool] = mapped_column(default=False, server_default="0")
