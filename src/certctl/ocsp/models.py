from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base
from certctl.db.types import UTCDateTime


class OCSPResponder(Base):
    """The delegated OCSP signing certificate of one issuer (RFC 6960 §4.2.2.2), its key encrypted at rest."""

    __tablename__ = "ocsp_responders"

    issuer_id: Mapped[str] = mapped_column(ForeignKey("issuers.id", ondelete="CASCADE"), primary_key=True)
    cert_pem: Mapped[str] = mapped_column(Text)
    cert_serial: Mapped[str] = mapped_column(String(64))
    encrypted_key: Mapped[bytes] = mapped_column(LargeBinary)
    key_alg: Mapped[str] = mapped_column(String(16))
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    rotated_from: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The serial of the responder certificate this one replaced."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
