from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base
from certctl.db.types import JSONType, StrEnumType, UTCDateTime, json_default


class CAState(StrEnum):
    ACTIVE = "active"
    RETIRING = "retiring"
    RETIRED = "retired"


_ACTIVE_ROOT = "parent_ca_id IS NULL AND state = 'active'"


class IntermediateCA(Base):
    """A CA in an issuer's hierarchy (pki.md §A1.6): a registered root or a child signed by its parent."""

    __tablename__ = "intermediate_cas"
    __table_args__ = (
        UniqueConstraint("owning_issuer_id", "name", name="uq_intermediate_cas_issuer_name"),
        CheckConstraint("state IN ('active', 'retiring', 'retired')", name="state"),
        CheckConstraint("not_after > not_before", name="validity"),
        CheckConstraint("parent_ca_id IS NULL OR parent_ca_id <> id", name="not_own_parent"),
        Index(
            "uq_intermediate_cas_active_root",
            "owning_issuer_id",
            unique=True,
            postgresql_where=text(_ACTIVE_ROOT),
            sqlite_where=text(_ACTIVE_ROOT),
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owning_issuer_id: Mapped[str] = mapped_column(ForeignKey("issuers.id", ondelete="RESTRICT"), index=True)
    parent_ca_id: Mapped[str | None] = mapped_column(
        ForeignKey("intermediate_cas.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(Text)
    state: Mapped[CAState] = mapped_column(StrEnumType(CAState), default=CAState.ACTIVE, server_default="active")
    cert_pem: Mapped[str] = mapped_column(Text)
    key_driver_id: Mapped[str] = mapped_column(String(512))
    """Where the key lives: `db` (encrypted_key below), `issuer` (the issuer's own CA key), or `pkcs11:…`."""
    encrypted_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    path_len_constraint: Mapped[int | None] = mapped_column(nullable=True)
    name_constraints: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONType, default=list, server_default=json_default([])
    )
    ocsp_responder_url: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    ca_metadata: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONType, default=dict, server_default=json_default({})
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
