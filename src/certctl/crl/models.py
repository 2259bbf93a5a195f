from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base
from certctl.db.types import UTCDateTime


class CRLCache(Base):
    """The current CRL of one issuer; `crl_number` only ever grows (pki.md §A2.5)."""

    __tablename__ = "crl_cache"

    issuer_id: Mapped[str] = mapped_column(ForeignKey("issuers.id", ondelete="CASCADE"), primary_key=True)
    crl_der: Mapped[bytes] = mapped_column(LargeBinary)
    crl_number: Mapped[int] = mapped_column(BigInteger)
    this_update: Mapped[datetime] = mapped_column(UTCDateTime)
    next_update: Mapped[datetime] = mapped_column(UTCDateTime)
    generated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    generation_duration_ms: Mapped[int] = mapped_column(default=0, server_default="0")
    revoked_count: Mapped[int] = mapped_column(default=0, server_default="0")
    revision: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """The issuer's `revocation_revision` this CRL was built from."""


class CRLGenerationEvent(Base):
    """History of CRL builds, failures included, for the admin view."""

    __tablename__ = "crl_generation_events"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    issuer_id: Mapped[str] = mapped_column(ForeignKey("issuers.id", ondelete="CASCADE"), index=True)
    crl_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    trigger: Mapped[str] = mapped_column(String(16))  # scheduled | revocation | read | admin
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_ms: Mapped[int] = mapped_column(default=0, server_default="0")
    revoked_count: Mapped[int] = mapped_column(default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
