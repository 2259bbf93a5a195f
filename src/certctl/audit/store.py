"""Audit queries: insert, look up by id, filtered lists by page or by cursor (newest first)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, or_, select

from certctl.audit.models import AuditEvent
from certctl.db.store import Store
from certctl.security.roles import ActorType


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actor: str | None = None
    actor_type: ActorType | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class AuditStore(Store[AuditEvent]):
    model = AuditEvent
    kind = "audit event"

    def filtered(self, flt: AuditFilter) -> Select[AuditEvent]:
        stmt = select(AuditEvent)
        for column, value in (
            (AuditEvent.actor, flt.actor),
            (AuditEvent.actor_type, flt.actor_type),
            (AuditEvent.action, flt.action),
            (AuditEvent.resource_type, flt.resource_type),
            (AuditEvent.resource_id, flt.resource_id),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        if flt.since is not None:
            stmt = stmt.where(AuditEvent.timestamp >= flt.since)
        if flt.until is not None:
            stmt = stmt.where(AuditEvent.timestamp <= flt.until)
        return stmt.order_by(AuditEvent.timestamp.desc(), AuditEvent.id.desc())

    def after_cursor(
        self, stmt: Select[AuditEvent], position: tuple[datetime, str] | None, limit: int
    ) -> Sequence[AuditEvent]:
        """Rows strictly older than `position` in (timestamp, id) order; keyset, so deep pages stay fast."""
        if position is not None:
            at, ident = position
            stmt = stmt.where(or_(AuditEvent.timestamp < at, and_(AuditEvent.timestamp == at, AuditEvent.id < ident)))
        return self.session.scalars(stmt.limit(limit)).all()
