"""Recording and reading the audit trail. Rows are only ever inserted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from certctl.audit.batching import RowBatcher
from certctl.audit.models import RESOURCE_ID_LENGTH, AuditEvent
from certctl.audit.redaction import redact
from certctl.audit.store import AuditFilter, AuditStore
from certctl.clock import Clock
from certctl.db.engine import Database
from certctl.db.store import Page, PageRequest
from certctl.ids import new_id
from certctl.security.roles import Actor


class AuditRecorder:
    """Adds audit rows inside the caller's transaction, so a row lives or dies with its change."""

    def __init__(self, session: Session, clock: Clock) -> None:
        self._store = AuditStore(session)
        self._clock = clock

    def record(
        self,
        actor: Actor,
        action: str,
        resource_type: str,
        resource_id: str,
        details: dict[str, Any] | None = None,
    ) -> AuditEvent:
        event = AuditEvent(**audit_row(actor, action, resource_type, resource_id, details, self._clock.now()))
        self._store.session.add(event)
        return event


def audit_row(
    actor: Actor,
    action: str,
    resource_type: str,
    resource_id: str,
    details: dict[str, Any] | None,
    timestamp: datetime,
) -> dict[str, Any]:
    """One audit_events row, details redacted: for AuditRecorder and for writers that insert rows in bulk."""
    return {
        "id": new_id("audit"),
        "actor": actor.name,
        "actor_type": actor.actor_type,
        "action": action,
        "resource_type": resource_type,
        # The column holds 2048 characters; an absurdly long path is kept whole in details.
        "resource_id": resource_id[:RESOURCE_ID_LENGTH],
        "details": redact(details or {}),
        "timestamp": timestamp,
    }


AUDIT_EVENTS: Table = AuditEvent.__table__  # type: ignore[assignment]  # a mapped class's table is a Table


class AuditService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db, self._clock = db, clock
        self._api_calls = RowBatcher(lambda rows: self._insert_rows(rows))

    async def record_api_call(self, actor: Actor, action: str, path: str, details: dict[str, Any]) -> None:
        """The middleware's row for one HTTP call (resource_type `api`, resource_id = the path); returns once
        it is committed. Rows of concurrent calls share a transaction (audit/batching.py), so this costs a
        fraction of a transaction under load. Raises what the insert raised, after a retry on its own."""
        await self._api_calls.write(audit_row(actor, action, "api", path, details, self._clock.now()))

    def _insert_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        self._db.insert_committed(AUDIT_EVENTS, rows)

    def get(self, event_id: str) -> AuditEvent:
        with self._db.begin() as session:
            return AuditStore(session).get(event_id)

    def list_page(self, flt: AuditFilter, request: PageRequest) -> Page[AuditEvent]:
        with self._db.read() as session:
            store = AuditStore(session)
            return store.paginate(store.filtered(flt), request)

    def list_after(
        self, flt: AuditFilter, position: tuple[datetime, str] | None, limit: int
    ) -> tuple[Sequence[AuditEvent], int]:
        """One keyset page and the true total of matching rows."""
        with self._db.begin() as session:
            store = AuditStore(session)
            stmt = store.filtered(flt)
            total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
            return store.after_cursor(stmt, position, limit), total
