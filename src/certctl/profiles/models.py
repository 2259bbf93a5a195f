from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base
from certctl.db.types import JSONType, StrEnumType, UTCDateTime, json_default


class AcmeAuthMode(StrEnum):
    TRUST_AUTHENTICATED = "trust_authenticated"
    CHALLENGE = "challenge"


DEFAULT_KEY_ALGORITHMS: list[dict[str, Any]] = [
    {"algorithm": "ECDSA", "min_size": 256},
    {"algorithm": "RSA", "min_size": 2048},
]


class CertificateProfile(Base):
    __tablename__ = "certificate_profiles"
    __table_args__ = (CheckConstraint("acme_auth_mode IN ('trust_authenticated', 'challenge')", name="acme_auth_mode"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    allowed_key_algorithms: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONType,
        default=lambda: [dict(a) for a in DEFAULT_KEY_ALGORITHMS],
        server_default=json_default(DEFAULT_KEY_ALGORITHMS),
    )
    max_ttl_seconds: Mapped[int] = mapped_column(default=0, server_default="0")
    allowed_ekus: Mapped[list[str]] = mapped_column(
        JSONType, default=lambda: ["serverAuth"], server_default=json_default(["serverAuth"])
    )
    required_san_patterns: Mapped[list[str]] = mapped_column(JSONType, default=list, server_default=json_default([]))
    spiffe_uri_pattern: Mapped[str] = mapped_column(Text, default="", server_default="")
    allow_short_lived: Mapped[bool] = mapped_column(default=False, server_default="0")
    must_staple: Mapped[bool] = mapped_column(default=False, server_default="0")
    required_csr_attributes: Mapped[list[str]] = mapped_column(JSONType, default=list, server_default=json_default([]))
    acme_auth_mode: Mapped[AcmeAuthMode] = mapped_column(
        StrEnumType(AcmeAuthMode),
        default=AcmeAuthMode.TRUST_AUTHENTICATED,
        server_default="trust_authenticated",
    )
    requires_approval: Mapped[bool] = mapped_column(default=False, server_default="0")
    enabled: Mapped[bool] = mapped_column(default=True, server_default="1")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
