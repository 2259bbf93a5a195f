"""Notification queries. Claims are one statement each; outcomes are written only while the claim is ours.

On PostgreSQL the claim's inner SELECT takes `FOR UPDATE SKIP LOCKED`, so replicas claiming at the same
moment split the rows instead of queueing on them; on SQLite every write transaction runs alone
(BEGIN IMMEDIATE, db/engine.py). Every outcome UPDATE repeats `claimed_by = :worker`: if an operator
requeued the row mid-send, or our lease ran out and another replica took it, our late result changes
nothing (the attempt itself is still recorded).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from certctl.db.store import Page, PageRequest, Store
from certctl.errors import Conflict
from certctl.notifications.models import (
    MAX_ATTEMPTS,
    NotificationAttempt,
    NotificationEvent,
    NotificationStatus,
    NotificationType,
)

REQUEUEABLE = (NotificationStatus.FAILED.value, NotificationStatus.DEAD.value)
_EVENTS = cast(Table, NotificationEvent.__table__)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A claimed row as the sender needs it after the claim's transaction has committed."""

    id: str
    type: str
    channel: str
    recipient: str
    message: str
    certificate_id: str | None
    threshold_days: int | None
    event_action: str
    retry_count: int
    attempt_count: int
    created_at: datetime

    @classmethod
    def of(cls, row: NotificationEvent) -> Claimed:
        return cls(
            id=row.id,
            type=row.type,
            channel=row.channel,
            recipient=row.recipient,
            message=row.message,
            certificate_id=row.certificate_id,
            threshold_days=row.threshold_days,
            event_action=row.event_action,
            retry_count=row.retry_count,
            attempt_count=row.attempt_count,
            created_at=row.created_at,
        )


@dataclass(frozen=True, slots=True)
class NotificationFilter:
    status: str | None = None
    channel: str | None = None
    type: str | None = None
    certificate_id: str | None = None
    ids: Collection[str] | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        event = NotificationEvent
        found: list[ColumnElement[bool]] = []
        for column, value in (
            (event.status, self.status),
            (event.channel, self.channel),
            (event.type, self.type),
            (event.certificate_id, self.certificate_id),
        ):
            if value is not None:
                found.append(column == value)
        if self.ids is not None:
            found.append(event.id.in_(list(self.ids)))
        return found


@dataclass(frozen=True, slots=True)
class Delivered:
    id: str


@dataclass(frozen=True, slots=True)
class Retrying:
    id: str
    retry_count: int
    error: str
    next_retry_at: datetime


@dataclass(frozen=True, slots=True)
class Dead:
    id: str
    retry_count: int
    error: str


Outcome = Delivered | Retrying | Dead


class NotificationStore(Store[NotificationEvent]):
    model = NotificationEvent
    kind = "notification"

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self._postgres = session.get_bind().dialect.name == "postgresql"

    # -- claims ------------------------------------------------------------------------------------

    def claim_pending(
        self, worker: str, now: datetime, lease: timedelta, limit: int, ids: Collection[str] | None = None
    ) -> list[Claimed]:
        """Up to `limit` pending rows nobody holds (or whose holder's lease ran out), oldest first."""
        event = NotificationEvent
        status = event.status == NotificationStatus.PENDING.value
        where = [status, _unclaimed(now)]
        if ids is not None:
            where.append(event.id.in_(list(ids)))
        return self._claim(worker, now, lease, limit, where, status, (event.created_at, event.id))

    def claim_due_retries(self, worker: str, now: datetime, lease: timedelta, limit: int) -> list[Claimed]:
        """Failed rows whose retry is due, oldest due first; the WHERE matches the partial sweep index."""
        event = NotificationEvent
        status = event.status == NotificationStatus.FAILED.value
        where = [
            status,
            event.next_retry_at.is_not(None),
            event.next_retry_at <= now,
            event.retry_count < MAX_ATTEMPTS,
            _unclaimed(now),
        ]
        return self._claim(worker, now, lease, limit, where, status, (event.next_retry_at, event.id))

    def _claim(
        self,
        worker: str,
        now: datetime,
        lease: timedelta,
        limit: int,
        where: Sequence[ColumnElement[bool]],
        recheck: ColumnElement[bool],
        order: tuple[Any, ...],
    ) -> list[Claimed]:
        candidates = select(NotificationEvent.id).where(*where).order_by(*order).limit(limit)
        if self._postgres:
            candidates = candidates.with_for_update(skip_locked=True)
        # MATERIALIZED: evaluated once, so the LIMIT holds (see jobs/store.py claim).
        picked = candidates.cte("picked").prefix_with("MATERIALIZED")
        stmt = (
            update(NotificationEvent)
            # Only the cheap status test is repeated: repeating the whole candidate WHERE makes PostgreSQL
            # misestimate the join and rescan the picked ids per row (104 ms vs 31 ms for 1,000 due rows
            # among 1,000,000, bench/notifications_bench.py).
            .where(NotificationEvent.id.in_(select(picked.c.id)), recheck)
            .values(claimed_by=worker, claim_expires_at=now + lease)
            .returning(NotificationEvent)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return [Claimed.of(row) for row in self.session.scalars(stmt)]

    # -- outcomes ----------------------------------------------------------------------------------

    def record_outcomes(self, worker: str, now: datetime, outcomes: Sequence[Outcome]) -> None:
        """Write each outcome and release its claim, one executemany per kind of outcome."""
        mine = and_(_EVENTS.c.id == bindparam("b_id"), _EVENTS.c.claimed_by == worker)
        released = {"claimed_by": None, "claim_expires_at": None, "attempt_count": _EVENTS.c.attempt_count + 1}
        delivered = [{"b_id": o.id} for o in outcomes if isinstance(o, Delivered)]
        if delivered:
            stmt = (
                update(_EVENTS)
                .where(mine)
                .values(status=NotificationStatus.SENT.value, sent_at=now, next_retry_at=None, **released)
            )
            self.session.execute(stmt, delivered)
        # Failed and dead rows differ only in status and next_retry_at: one executemany for both.
        failed = [
            {
                "b_id": o.id,
                "b_status": (NotificationStatus.FAILED if isinstance(o, Retrying) else NotificationStatus.DEAD).value,
                "b_count": o.retry_count,
                "b_error": o.error,
                "b_next": o.next_retry_at if isinstance(o, Retrying) else None,
            }
            for o in outcomes
            if not isinstance(o, Delivered)
        ]
        if failed:
            stmt = (
                update(_EVENTS)
                .where(mine)
                .values(
                    status=bindparam("b_status"),
                    retry_count=bindparam("b_count"),
                    last_error=bindparam("b_error"),
                    error=bindparam("b_error"),
                    next_retry_at=bindparam("b_next"),
                    **released,
                )
            )
            self.session.execute(stmt, failed)

    def add_attempts(self, attempts: Sequence[dict[str, Any]]) -> None:
        if attempts:
            self.session.execute(insert(NotificationAttempt), list(attempts))

    # -- operator actions --------------------------------------------------------------------------

    def requeue(self, notification_id: str) -> NotificationEvent:
        """failed/dead → pending with a fresh budget; 404 when unknown, 409 for any other status."""
        stmt = (
            update(NotificationEvent)
            .where(NotificationEvent.id == notification_id, NotificationEvent.status.in_(REQUEUEABLE))
            .values(**_fresh_budget())
            .returning(NotificationEvent)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        row = self.session.scalars(stmt).one_or_none()
        if row is not None:
            return row
        current = self.get(notification_id)
        if current.status == NotificationStatus.PENDING.value:
            raise Conflict("Notification is already pending delivery")
        raise Conflict("Notification already delivered")

    def requeue_matching(self, flt: NotificationFilter) -> list[str]:
        """Every failed/dead row matching `flt` back to pending in one statement; returns their ids."""
        stmt = (
            update(NotificationEvent)
            .where(NotificationEvent.status.in_(REQUEUEABLE), *flt.clauses())
            .values(**_fresh_budget())
            .returning(NotificationEvent.id)
            .execution_options(synchronize_session=False)
        )
        return sorted(self.session.scalars(stmt))

    def mark_read(self, notification_id: str, now: datetime) -> NotificationEvent:
        """Delivered rows become `read`; undelivered ones keep their status (and their delivery)."""
        row = self.get(notification_id)
        row.read_at = now
        if row.status == NotificationStatus.SENT.value:
            row.status = NotificationStatus.READ.value
        self.flush()
        return row

    # -- reading -----------------------------------------------------------------------------------

    def page(self, flt: NotificationFilter, request: PageRequest) -> Page[NotificationEvent]:
        stmt: Select[Any] = (
            select(NotificationEvent)
            .where(*flt.clauses())
            .order_by(NotificationEvent.created_at.desc(), NotificationEvent.id.desc())
        )
        return self.paginate(stmt, request)

    def attempts(self, notification_id: str) -> list[NotificationAttempt]:
        self.get(notification_id)
        stmt = (
            select(NotificationAttempt)
            .where(NotificationAttempt.notification_id == notification_id)
            .order_by(NotificationAttempt.attempt_number, NotificationAttempt.attempted_at)
        )
        return list(self.session.scalars(stmt))

    def count_by_status(self, status: str) -> int:
        stmt = select(func.count()).select_from(NotificationEvent).where(NotificationEvent.status == status)
        return int(self.session.scalar(stmt) or 0)

    def has_live_alert(
        self, certificate_id: str, threshold_days: int, channel: str, since: datetime | None = None
    ) -> bool:
        """An expiry alert for (certificate, threshold, channel) that is delivered or still on its way.

        Dead rows do not count: an alert that never arrived is sent again on the next check. `since` (the
        current version's issuance) keeps the alerts of an earlier lifetime from silencing this one's.
        """
        event = NotificationEvent
        stmt = select(event.id).where(
            event.certificate_id == certificate_id,
            event.type == NotificationType.EXPIRATION_WARNING.value,
            event.threshold_days == threshold_days,
            event.channel == channel,
            event.status != NotificationStatus.DEAD.value,
        )
        if since is not None:
            stmt = stmt.where(event.created_at >= since)
        return self.any(stmt)

    def delivered_alert_thresholds(self, certificate_ids: Sequence[str], channel: str) -> dict[str, list[int]]:
        """Per certificate, the thresholds whose expiry alert reached `channel` (PagerDuty resolves them);
        certificates without any are left out."""
        event = NotificationEvent
        stmt = (
            select(event.certificate_id, event.threshold_days)
            .where(
                event.certificate_id.in_(list(certificate_ids)),
                event.type == NotificationType.EXPIRATION_WARNING.value,
                event.channel == channel,
                event.threshold_days.is_not(None),
                event.status.in_((NotificationStatus.SENT.value, NotificationStatus.READ.value)),
                event.event_action == "trigger",
            )
            .distinct()
            .order_by(event.certificate_id, event.threshold_days)
        )
        found: dict[str, list[int]] = {}
        for certificate_id, days in self.session.execute(stmt):
            if certificate_id is not None and days is not None:
                found.setdefault(certificate_id, []).append(int(days))
        return found


def _unclaimed(now: datetime) -> ColumnElement[bool]:
    return or_(NotificationEvent.claim_expires_at.is_(None), NotificationEvent.claim_expires_at < now)


def _fresh_budget() -> dict[str, Any]:
    return {
        "status": NotificationStatus.PENDING.value,
        "retry_count": 0,
        "next_retry_at": None,
        "last_error": None,
        "error": None,
        "claimed_by": None,
        "claim_expires_at": None,
    }
