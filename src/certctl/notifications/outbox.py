"""How producers create notifications: rows added in the producer's own transaction.

The row commits or rolls back with the change it reports (a renewal, a revocation, an expiry status), so
an alert can neither describe something that did not happen nor be lost when the process dies after the
change. After the commit the producer hands the ids to `NotificationDispatcher.deliver_soon`; should that
never run, the pending processor sends the rows on its next tick.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from certctl.certificates.models import ManagedCertificate
from certctl.clock import Clock
from certctl.ids import new_id
from certctl.notifications.channels.base import EventAction
from certctl.notifications.models import NotificationEvent, NotificationStatus
from certctl.org.models import Owner


class NotificationOutbox:
    def __init__(self, session: Session, clock: Clock) -> None:
        self._session, self._clock = session, clock
        self.added: list[str] = []  # ids to hand to the dispatcher after commit

    def add(
        self,
        *,
        type: str,
        channel: str,
        recipient: str,
        message: str,
        certificate_id: str | None = None,
        threshold_days: int | None = None,
        action: EventAction = EventAction.TRIGGER,
    ) -> str:
        row = NotificationEvent(
            id=new_id("notif"),
            type=type,
            certificate_id=certificate_id,
            channel=channel,
            recipient=recipient,
            message=message,
            status=NotificationStatus.PENDING.value,
            created_at=self._clock.now(),
            retry_count=0,
            attempt_count=0,
            threshold_days=threshold_days,
            event_action=action.value,
        )
        self._session.add(row)
        self.added.append(row.id)
        return row.id

    def recipient_for(self, certificate: ManagedCertificate) -> str:
        """The owner's e-mail address, else the raw owner id (as the original)."""
        email = self._session.scalar(select(Owner.email).where(Owner.id == certificate.owner_id))
        return email or certificate.owner_id

    def recipients_for(self, certificates: Sequence[ManagedCertificate]) -> dict[str, str]:
        """`recipient_for` of many certificates, keyed by certificate id, with one query."""
        owner_ids = {certificate.owner_id for certificate in certificates}
        rows = self._session.execute(select(Owner.id, Owner.email).where(Owner.id.in_(owner_ids)))
        emails = {owner_id: email for owner_id, email in rows}
        return {
            certificate.id: emails.get(certificate.owner_id) or certificate.owner_id for certificate in certificates
        }
