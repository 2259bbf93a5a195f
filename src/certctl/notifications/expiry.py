"""Expiry alerts: thresholds crossed → one row per channel of the policy's severity tier (notifications.md §9).

Called by the renewal checker for every certificate it looked at, inside the checker's transaction, so an
alert row commits with the Expiring/Expired change it reports. A threshold is crossed when the whole days
left (truncated toward zero) are ≤ it; its tier comes from the policy's `alert_severity_map` (else the
default map, else informational) and its channels from the policy's `alert_channels` (a configured matrix
replaces the default wholesale; an empty tier is the documented opt-out). Each (certificate, threshold,
channel) is sent once while a row for it is delivered or still on its way; a dead row does not count, so an
alert that never arrived is sent again on the next check. Channels are independent: one failing never
holds back another.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from certctl.audit.service import AuditRecorder
from certctl.certificates.models import ManagedCertificate
from certctl.certificates.renewal import ExpiryCheck
from certctl.clock import Clock
from certctl.notifications import messages
from certctl.notifications.metrics import ExpiryAlertMetrics
from certctl.notifications.models import NotificationType
from certctl.notifications.outbox import NotificationOutbox
from certctl.notifications.store import NotificationStore
from certctl.policies.models import DEFAULT_ALERT_THRESHOLDS_DAYS, RenewalPolicy, SeverityTier
from certctl.policies.rules import ALERT_CHANNELS
from certctl.security.roles import SYSTEM_ACTOR

DEFAULT_ALERT_CHANNELS: Mapping[str, Sequence[str]] = {tier.value: ["Email"] for tier in SeverityTier}
DEFAULT_SEVERITY_MAP: Mapping[int, str] = {30: "informational", 14: "warning", 7: "warning", 0: "critical"}
_EXPIRY = NotificationType.EXPIRATION_WARNING.value


def tier_for(threshold: int, severity_map: Mapping[str, str] | None) -> str:
    tier = (severity_map or {}).get(str(threshold)) or DEFAULT_SEVERITY_MAP.get(threshold, "informational")
    return tier if tier in set(SeverityTier) else SeverityTier.INFORMATIONAL.value


class ExpiryAlerter:
    """The renewal checker's expiry hook. `take_added()` hands the new rows' ids over after the commit."""

    def __init__(self, clock: Clock, metrics: ExpiryAlertMetrics) -> None:
        self._clock, self._metrics = clock, metrics
        self._added: list[str] = []

    def take_added(self) -> list[str]:
        added, self._added = self._added, []
        return added

    def __call__(self, session: Session, check: ExpiryCheck) -> None:
        cert = session.get(ManagedCertificate, check.certificate_id)
        policy = session.get(RenewalPolicy, check.renewal_policy_id)
        if cert is None:
            return
        days_left = math.trunc(check.days_left)
        thresholds = list(check.alert_thresholds_days) or list(DEFAULT_ALERT_THRESHOLDS_DAYS)
        matrix = (policy.alert_channels if policy is not None else None) or DEFAULT_ALERT_CHANNELS
        severity_map = policy.alert_severity_map if policy is not None else None
        store = NotificationStore(session)
        outbox = NotificationOutbox(session, self._clock)
        audit = AuditRecorder(session, self._clock)
        recipient: str | None = None
        for threshold in thresholds:
            if days_left > threshold:
                continue
            tier = tier_for(threshold, severity_map)
            base: dict[str, Any] = {
                "threshold_days": threshold,
                "days_until_expiry": days_left,
                "severity_tier": tier,
            }
            channels = list(matrix.get(tier) or [])
            if not channels:
                audit.record(SYSTEM_ACTOR, "expiration_alert_skipped_no_channels", "certificate", cert.id, base)
                continue
            for channel in channels:
                if channel not in ALERT_CHANNELS:
                    audit.record(
                        SYSTEM_ACTOR,
                        "expiration_alert_skipped_invalid_channel",
                        "certificate",
                        cert.id,
                        base | {"invalid_channel": channel},
                    )
                    continue
                if store.has_live_alert(cert.id, threshold, channel, since=cert.last_renewal_at):
                    self._metrics.record(channel, threshold, "deduped")
                    continue
                recipient = recipient or outbox.recipient_for(cert)
                outbox.add(
                    type=_EXPIRY,
                    channel=channel,
                    recipient=recipient,
                    message=messages.expiry_body(cert.common_name, check.expires_at, days_left, threshold),
                    certificate_id=cert.id,
                    threshold_days=threshold,
                )
                audit.record(
                    SYSTEM_ACTOR,
                    "expiration_alert_sent",
                    "certificate",
                    cert.id,
                    base | {"channel": channel, "result": "queued"},
                )
        self._added.extend(outbox.added)
