from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base
from certctl.db.types import JSONType, StrEnumType, UTCDateTime, json_default
from certctl.security.roles import ActorType

RESOURCE_ID_LENGTH = 2048


class AuditEvent(Base):
    """One row per recorded action. Rows are never updated or deleted (a trigger refuses both)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_resource", "resource_type", "resource_id"),
        Index("ix_audit_events_timestamp_id", "timestamp", "id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    actor: Mapped[str] = mapped_column(String(255), index=True)
    actor_type: Mapped[ActorType] = mapped_column(StrEnumType(ActorType, 16))
    action: Mapped[str] = mapped_column(String(64), index=True)
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(RESOURCE_ID_LENGTH))
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default=json_default({}))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
