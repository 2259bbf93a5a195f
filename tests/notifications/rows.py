"""Adding notification rows the way producers do, for the tests."""

from __future__ import annotations

from sqlalchemy import select

from certctl.context import AppContext
from certctl.notifications.models import NotificationAttempt, NotificationEvent
from certctl.notifications.outbox import NotificationOutbox


def enqueue(
    context: AppContext, count: int = 1, *, channel: str = "Webhook", recipient: str = "ops@example.com"
) -> list[str]:
    with context.db.begin() as session:
        outbox = NotificationOutbox(session, context.clock)
        for n in range(count):
            outbox.add(type="RenewalFailure", channel=channel, recipient=recipient, message=f"renewal failed #{n}")
        return list(outbox.added)


def row(context: AppContext, notification_id: str) -> NotificationEvent:
    with context.db.begin() as session:
        found = session.get(NotificationEvent, notification_id)
        assert found is not None
        session.expunge(found)
        return found


def attempts(context: AppContext, notification_id: str) -> list[NotificationAttempt]:
    with context.db.begin() as session:
        stmt = (
            select(NotificationAttempt)
            .where(NotificationAttempt.notification_id == notification_id)
            .order_by(NotificationAttempt.attempt_number)
        )
        found = list(session.scalars(stmt))
        session.expunge_all()
        return found
