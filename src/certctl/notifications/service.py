"""What operators do with notifications: read them and their attempts, mark read, requeue, send a test."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, timedelta

from certctl.audit.service import AuditRecorder
from certctl.certificates.models import ManagedCertificate
from certctl.clock import Clock
from certctl.db.engine import Database
from certctl.db.store import Page, PageRequest
from certctl.errors import NotFound, ValidationFailed
from certctl.notifications import messages
from certctl.notifications.channels.base import Channel, ChannelName, Message
from certctl.notifications.delivery import AttemptResult, NotificationDispatcher, attempt_once
from certctl.notifications.models import NotificationAttempt, NotificationEvent, NotificationType
from certctl.notifications.outbox import NotificationOutbox
from certctl.notifications.store import NotificationFilter, NotificationStore
from certctl.security.roles import Actor

RESOURCE_TYPE = "notification"
BULK_AUDIT_ID_LIMIT = 100  # ids listed in one bulk-requeue audit row; the count is always exact


@dataclass(frozen=True, slots=True)
class TestDelivery:
    channel: str
    result: AttemptResult


class NotificationService:
    def __init__(
        self, db: Database, clock: Clock, channels: Mapping[ChannelName, Channel], dispatcher: NotificationDispatcher
    ) -> None:
        self._db, self._clock, self._channels, self._dispatcher = db, clock, channels, dispatcher

    def get(self, notification_id: str) -> NotificationEvent:
        with self._db.read() as session:
            return NotificationStore(session).get(notification_id)

    def page(self, flt: NotificationFilter, request: PageRequest) -> Page[NotificationEvent]:
        with self._db.read() as session:
            return NotificationStore(session).page(flt, request)

    def attempts(self, notification_id: str) -> list[NotificationAttempt]:
        with self._db.read() as session:
            return NotificationStore(session).attempts(notification_id)

    def count_dead(self) -> int:
        with self._db.read() as session:
            return NotificationStore(session).count_by_status("dead")

    def mark_read(self, notification_id: str) -> NotificationEvent:
        with self._db.begin() as session:
            return NotificationStore(session).mark_read(notification_id, self._clock.now())

    def requeue(self, notification_id: str, actor: Actor) -> NotificationEvent:
        """failed/dead → pending with a fresh budget, audited; delivered at once in the background."""
        with self._db.begin() as session:
            row = NotificationStore(session).requeue(notification_id)
            AuditRecorder(session, self._clock).record(
                actor,
                "notification_requeued",
                RESOURCE_TYPE,
                notification_id,
                {"channel": row.channel, "type": row.type, "attempt_count": row.attempt_count},
            )
        self._dispatcher.deliver_soon([notification_id])
        return row

    def requeue_matching(self, flt: NotificationFilter, actor: Actor) -> list[str]:
        """Bulk requeue of failed/dead rows matching the filter (the dead-letter queue by default)."""
        with self._db.begin() as session:
            ids = NotificationStore(session).requeue_matching(flt)
            if ids:
                AuditRecorder(session, self._clock).record(
                    actor,
                    "notifications_bulk_requeued",
                    RESOURCE_TYPE,
                    "bulk",
                    {
                        "count": len(ids),
                        "filter": {k: v for k, v in _filter_details(flt).items() if v is not None},
                        "ids": ids[:BULK_AUDIT_ID_LIMIT],
                    },
                )
        if ids:
            self._dispatcher.deliver_soon(ids)
        return ids

    def send_test(
        self,
        channel: str,
        actor: Actor,
        *,
        certificate_id: str | None = None,
        threshold_days: int | None = None,
        recipient: str | None = None,
    ) -> TestDelivery:
        """One synchronous delivery through `channel`, stored nowhere but the audit trail.

        The body is the real expiry template (or a fixed text) prefixed `[TEST]` and without the
        `[threshold:N]` tag, so a test can never count as an already-sent alert.
        """
        if channel not in set(ChannelName):
            raise ValidationFailed(f"channel must be one of {', '.join(ChannelName)}, got {channel!r}")
        now = self._clock.now()
        with self._db.begin() as session:
            text = "This is a test notification from certctl."
            target = recipient or ""
            if certificate_id is not None:
                cert = session.get(ManagedCertificate, certificate_id)
                if cert is None:
                    raise NotFound("certificate", certificate_id)
                days = threshold_days if threshold_days is not None else 30
                left = math.trunc((cert.expires_at - now) / timedelta(days=1)) if cert.expires_at else days
                text = messages.expiry_body(cert.common_name, cert.expires_at, left, days, tag=False)
                target = recipient or NotificationOutbox(session, self._clock).recipient_for(cert)
            message = Message(
                notification_id=f"test-{int(now.astimezone(UTC).timestamp())}",
                type=NotificationType.EXPIRATION_WARNING.value,
                recipient=target,
                body=messages.test_body(text),
                created_at=now,
                certificate_id=certificate_id,
            )
        result = attempt_once(self._channels, channel, message, self._clock)
        with self._db.begin() as session:
            AuditRecorder(session, self._clock).record(
                actor,
                "notification_test_sent",
                RESOURCE_TYPE,
                channel,
                {
                    "channel": channel,
                    "certificate_id": certificate_id,
                    "threshold_days": threshold_days,
                    "outcome": result.outcome.value,
                    "error": result.error,
                },
            )
        return TestDelivery(channel=channel, result=result)


def _filter_details(flt: NotificationFilter) -> dict[str, str | None]:
    return {"status": flt.status, "channel": flt.channel, "type": flt.type, "certificate_id": flt.certificate_id}
