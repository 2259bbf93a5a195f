"""Notifications about lifecycle events: renewal success and failure, deployment, revocation (§8.8).

Each method runs inside the transaction of the event it reports, adding rows through the outbox; the
caller hands `take_added()` to the dispatcher after its commit. Notification trouble never fails the
caller's operation: rows are only inserted here, delivery happens later.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from certctl.certificates.models import ManagedCertificate
from certctl.clock import Clock
from certctl.jobs.models import Job, JobType
from certctl.notifications import messages
from certctl.notifications.channels.base import ChannelName, EventAction
from certctl.notifications.models import NotificationType
from certctl.notifications.outbox import NotificationOutbox
from certctl.notifications.store import NotificationStore


class LifecycleNotifier:
    def __init__(self, clock: Clock, *, webhook_configured: bool) -> None:
        self._clock = clock
        self._webhook_configured = webhook_configured
        self._added: list[str] = []

    def take_added(self) -> list[str]:
        added, self._added = self._added, []
        return added

    def renewed(self, session: Session, done: Sequence[tuple[ManagedCertificate, Job]]) -> None:
        """RenewalSuccess by e-mail to the owner; PagerDuty incidents opened by expiry alerts are resolved.
        For a batch of (certificate, job) issued in one transaction: two queries whatever its size."""
        renewed = [(cert, job) for cert, job in done if job.type is JobType.RENEWAL]
        if not renewed:
            return
        outbox = NotificationOutbox(session, self._clock)
        recipients = outbox.recipients_for([cert for cert, _ in renewed])
        resolvable = NotificationStore(session).delivered_alert_thresholds(
            [cert.id for cert, _ in renewed], ChannelName.PAGERDUTY.value
        )
        for cert, _ in renewed:
            body = messages.renewal_success_body(cert.common_name, cert.expires_at)
            outbox.add(
                type=NotificationType.RENEWAL_SUCCESS.value,
                channel=ChannelName.EMAIL.value,
                recipient=recipients[cert.id],
                message=body,
                certificate_id=cert.id,
            )
            for threshold in resolvable.get(cert.id, []):
                outbox.add(
                    type=NotificationType.RENEWAL_SUCCESS.value,
                    channel=ChannelName.PAGERDUTY.value,
                    recipient=recipients[cert.id],
                    message=body,
                    certificate_id=cert.id,
                    threshold_days=threshold,
                    action=EventAction.RESOLVE,
                )
        self._added.extend(outbox.added)

    def renewal_failed(self, session: Session, job: Job, now: datetime) -> None:
        """RenewalFailure on a renewal's terminal failure only (a retry still pending is not news)."""
        if job.type is not JobType.RENEWAL:
            return
        cert = session.get(ManagedCertificate, job.certificate_id)
        if cert is None:
            return
        outbox = NotificationOutbox(session, self._clock)
        outbox.add(
            type=NotificationType.RENEWAL_FAILURE.value,
            channel=ChannelName.EMAIL.value,
            recipient=outbox.recipient_for(cert),
            message=messages.renewal_failure_body(cert.common_name, job.last_error or "unknown error"),
            certificate_id=cert.id,
        )
        self._added.extend(outbox.added)

    def deployed(self, session: Session, cert: ManagedCertificate, target_name: str, error: str | None = None) -> None:
        """DeploymentSuccess / DeploymentFailure by e-mail to the owner."""
        outbox = NotificationOutbox(session, self._clock)
        if error is None:
            kind, body = (
                NotificationType.DEPLOYMENT_SUCCESS,
                messages.deployment_success_body(cert.common_name, target_name),
            )
        else:
            kind = NotificationType.DEPLOYMENT_FAILURE
            body = messages.deployment_failure_body(cert.common_name, target_name, error)
        outbox.add(
            type=kind.value,
            channel=ChannelName.EMAIL.value,
            recipient=outbox.recipient_for(cert),
            message=body,
            certificate_id=cert.id,
        )
        self._added.extend(outbox.added)

    def revoked(self, session: Session, certs: Sequence[ManagedCertificate], reason: str) -> None:
        """Revocation of each certificate: a Webhook row first when CERTCTL_WEBHOOK_URL is set, then the
        owner's e-mail (owners read in one query, however many certificates a bulk revoke hands in)."""
        outbox = NotificationOutbox(session, self._clock)
        recipients = outbox.recipients_for(certs)
        channels = [ChannelName.WEBHOOK, ChannelName.EMAIL] if self._webhook_configured else [ChannelName.EMAIL]
        for cert in certs:
            body = messages.revocation_body(cert.common_name, reason)
            for channel in channels:
                outbox.add(
                    type=NotificationType.REVOCATION.value,
                    channel=channel.value,
                    recipient=recipients[cert.id],
                    message=body,
                    certificate_id=cert.id,
                )
        self._added.extend(outbox.added)
