"""Demo notifications (ui-cli-mcp.md §5.2): 20 rows with their attempt history, in every delivery state.

Each row is played through the delivery rule of notifications.md §2.10 (immediate send, retries after
min(2^n minutes, 1 h), dead after the 5th failure, dead at once on an unconfigured channel), so its
retry_count, attempt_count, times and errors agree with its `notification_attempts` rows:

* sent / read: the Email expiry alerts of the three expired certificates, one per threshold of their
  policy (30, 14, 7 and 0 days) as the hourly check queued them; renewal and deployment notices
  (mc-pay-prod's was delivered on attempt 2);
* dead (the dead-letter tab): mc-compromised's revocation, to the webhook (503 five times) and to
  bob@example.com (SMTP 451 five times); an expiry alert routed to Slack, which is not configured;
* failed: mc-vpn-prod's renewal failure to bob@example.com, dead six days ago, requeued five minutes
  ago, failing again with 451 and waiting for its next retry a few minutes from now;
* pending: a deployment notice to dave@example.com (550 five times a week ago), requeued seconds ago.

Rows and attempts are built new for each load (times relative to `now`); the loader inserts those whose
id is missing. Types and channels are the canonical strings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from certctl.demo.certificates import ISSUED_AFTER, REVOCATION_REASON, REVOKED_DAYS_AGO, SPECS_BY_ID, version_plans
from certctl.demo.history import CHAINS, VPN_DNS_ERROR
from certctl.demo.inventory import DAY
from certctl.notifications import messages
from certctl.notifications.delivery import backoff
from certctl.notifications.models import (
    MAX_ATTEMPTS,
    AttemptOutcome,
    AttemptTrigger,
    NotificationAttempt,
    NotificationEvent,
    NotificationStatus,
    NotificationType,
)

ID_PREFIX = "notif-demo-"
EMAIL, WEBHOOK, SLACK = "Email", "Webhook", "Slack"
EXPIRED_CERTIFICATES = ("mc-old-api", "mc-wiki-prod", "mc-legacy-prod")
THRESHOLDS = (30, 14, 7, 0)  # rp-manual's alert thresholds, the policy of the three expired certificates
ALERT_CHECK_DELAY = timedelta(minutes=17)  # the hourly renewal check noticed the crossing this much later
READ_AFTER = timedelta(hours=3)
SENT_UNREAD_FOR = timedelta(days=10)  # alerts newer than this are still unread (`sent`)
SWEEP_LAG = timedelta(seconds=40)  # a due retry waits for the next sweep tick (every 2 minutes)
PROCESSOR_LAG = timedelta(seconds=25)  # a pending row waits for the next processor tick (every minute)
IMMEDIATE_LAG = timedelta(milliseconds=300)  # the producer sends right after its commit
WORKERS = ("certctl-prod-1:2817", "certctl-prod-2:3141")

WEBHOOK_503 = "webhook returned status 503: upstream unavailable"
SMTP_451_REPLY = "451 4.3.0 <bob@example.com>: Temporary lookup failure"
SMTP_451 = f"email: failed to set recipient bob@example.com: {SMTP_451_REPLY}"
SMTP_550_REPLY = "550 5.1.1 <dave@example.com>: Recipient address rejected: User unknown in virtual mailbox table"
SMTP_550 = f"email: failed to set recipient dave@example.com: {SMTP_550_REPLY}"
SMTP_REFUSED = "email: failed to connect: connection refused"
SLACK_NOT_CONFIGURED = "channel Slack is not configured: set CERTCTL_SLACK_WEBHOOK_URL"


@dataclass(frozen=True, slots=True)
class _Try:
    """One attempt's result."""

    outcome: AttemptOutcome
    duration_ms: int
    error: str | None = None
    http_status: int | None = None
    smtp_reply: str | None = None


def _ok_email(number: int) -> _Try:
    return _Try(AttemptOutcome.SUCCESS, 640 + number * 7, smtp_reply=f"250 2.0.0 Ok: queued as 4F{number:03d}A1C0D")


SMTP_451_TRY = _Try(AttemptOutcome.FAILURE, 830, SMTP_451, smtp_reply=SMTP_451_REPLY)
SMTP_550_TRY = _Try(AttemptOutcome.FAILURE, 410, SMTP_550, smtp_reply=SMTP_550_REPLY)
WEBHOOK_503_TRY = _Try(AttemptOutcome.FAILURE, 120, WEBHOOK_503, http_status=503)
REFUSED_TRY = _Try(AttemptOutcome.FAILURE, 3, SMTP_REFUSED)
SLACK_TRY = _Try(AttemptOutcome.NOT_CONFIGURED, 0, SLACK_NOT_CONFIGURED)


@dataclass(frozen=True, slots=True)
class _Plan:
    """A notification and what happened to it: tries from creation, then (optionally) a requeue and more."""

    number: int
    type: NotificationType
    channel: str
    certificate_id: str
    recipient: str
    message: str
    created_at: datetime
    tries: Sequence[_Try]
    threshold_days: int | None = None
    requeued_at: datetime | None = None
    tries_after_requeue: Sequence[_Try] = ()
    read: bool = False

    @property
    def id(self) -> str:
        return f"{ID_PREFIX}{self.number:03d}"


@dataclass(slots=True)
class _Played:
    """The row's state while the plan is played through the delivery rule."""

    status: str = NotificationStatus.PENDING.value
    retry_count: int = 0
    next_retry_at: datetime | None = None
    last_error: str | None = None
    error: str | None = None
    sent_at: datetime | None = None
    attempts: list[NotificationAttempt] = field(default_factory=list)


def events(now: datetime) -> list[NotificationEvent]:
    return [event for event, _ in _played(now)]


def attempts(now: datetime) -> list[NotificationAttempt]:
    return [attempt for _, rows in _played(now) for attempt in rows]


def _played(now: datetime) -> list[tuple[NotificationEvent, list[NotificationAttempt]]]:
    return [_play(plan) for plan in _plans(now)]


def _play(plan: _Plan) -> tuple[NotificationEvent, list[NotificationAttempt]]:
    state = _Played()
    at = plan.created_at + IMMEDIATE_LAG
    _run(plan, state, plan.tries, at, AttemptTrigger.IMMEDIATE, WORKERS[0])
    if plan.requeued_at is not None:
        # POST …/requeue: a fresh budget, the attempt history kept (and `error`, as the store leaves it).
        state.status, state.retry_count = NotificationStatus.PENDING.value, 0
        state.next_retry_at = state.last_error = None
        at = plan.requeued_at + PROCESSOR_LAG
        _run(plan, state, plan.tries_after_requeue, at, AttemptTrigger.PROCESSOR, WORKERS[1])
    read_at = state.sent_at + READ_AFTER if plan.read and state.sent_at is not None else None
    event = NotificationEvent(
        id=plan.id,
        type=plan.type.value,
        certificate_id=plan.certificate_id,
        channel=plan.channel,
        recipient=plan.recipient,
        message=plan.message,
        sent_at=state.sent_at,
        status=NotificationStatus.READ.value if read_at is not None else state.status,
        error=state.error,
        created_at=plan.created_at,
        retry_count=state.retry_count,
        next_retry_at=state.next_retry_at,
        last_error=state.last_error,
        attempt_count=len(state.attempts),
        read_at=read_at,
        threshold_days=plan.threshold_days,
    )
    return event, state.attempts


def _run(
    plan: _Plan, state: _Played, tries: Sequence[_Try], at: datetime, trigger: AttemptTrigger, worker: str
) -> None:
    """The delivery rule of notifications.md §2.10, one try after another, each when it would be due."""
    for attempt in tries:
        if state.status not in (NotificationStatus.PENDING.value, NotificationStatus.FAILED.value):
            raise ValueError(f"{plan.id}: a try after the row became {state.status}")
        number = len(state.attempts) + 1
        state.attempts.append(
            NotificationAttempt(
                id=f"nattempt-demo-{plan.number:03d}-{number}",
                notification_id=plan.id,
                attempt_number=number,
                channel=plan.channel,
                attempted_at=at,
                duration_ms=attempt.duration_ms,
                outcome=attempt.outcome.value,
                error=attempt.error,
                http_status=attempt.http_status,
                smtp_reply=attempt.smtp_reply,
                trigger=trigger.value,
                worker=worker,
            )
        )
        done = at + timedelta(milliseconds=attempt.duration_ms)
        if attempt.outcome is AttemptOutcome.SUCCESS:
            state.status, state.sent_at, state.next_retry_at = NotificationStatus.SENT.value, done, None
            continue
        state.last_error = state.error = attempt.error
        if attempt.outcome is AttemptOutcome.NOT_CONFIGURED:  # dead at once, retry_count kept
            state.status, state.next_retry_at = NotificationStatus.DEAD.value, None
            continue
        if state.retry_count >= MAX_ATTEMPTS - 1:  # the 5th failure
            state.status, state.next_retry_at = NotificationStatus.DEAD.value, None
            state.retry_count += 1
            continue
        state.next_retry_at = done + backoff(state.retry_count)
        state.status, state.retry_count = NotificationStatus.FAILED.value, state.retry_count + 1
        at, trigger = state.next_retry_at + SWEEP_LAG, AttemptTrigger.RETRY


def _plans(now: datetime) -> list[_Plan]:
    plans = _expiry_alerts(now)
    return plans + [replace(plan, number=len(plans) + n) for n, plan in enumerate(_lifecycle_notices(now), start=1)]


def _email_of(owner_id: str) -> str:
    return f"{owner_id.removeprefix('o-')}@example.com"  # inventory.owners


def _expiry_alerts(now: datetime) -> list[_Plan]:
    """One Email alert per threshold of each expired certificate, as the hourly check queued them."""
    latest = {plan.spec.id: plan for plan in version_plans(now)}
    plans: list[_Plan] = []
    for cert_id in EXPIRED_CERTIFICATES:
        spec, expires_at = SPECS_BY_ID[cert_id], latest[cert_id].not_after
        for threshold in THRESHOLDS:
            created = expires_at - threshold * DAY + ALERT_CHECK_DELAY
            days_left = math.trunc((expires_at - created) / DAY)
            plans.append(
                _Plan(
                    number=len(plans) + 1,
                    type=NotificationType.EXPIRATION_WARNING,
                    channel=EMAIL,
                    certificate_id=cert_id,
                    recipient=_email_of(spec.owner_id),
                    message=messages.expiry_body(spec.common_name, expires_at, days_left, threshold),
                    created_at=created,
                    tries=[_ok_email(len(plans) + 1)],
                    threshold_days=threshold,
                    read=created < now - SENT_UNREAD_FOR,
                )
            )
    old_api = plans[len(THRESHOLDS) - 1]  # mc-old-api at threshold 0: the critical tier went to Slack as well
    plans.append(
        _Plan(
            number=len(plans) + 1,
            type=NotificationType.EXPIRATION_WARNING,
            channel=SLACK,
            certificate_id=old_api.certificate_id,
            recipient=old_api.recipient,
            message=old_api.message,
            created_at=old_api.created_at,
            tries=[SLACK_TRY],
            threshold_days=0,
        )
    )
    return plans


def _lifecycle_notices(now: datetime) -> list[_Plan]:
    """Renewal, deployment and revocation notices from the demo history (numbered by `_plans`)."""
    plans = {(plan.spec.id, plan.number): plan for plan in version_plans(now)}
    chains = {chain.number: chain for chain in CHAINS}

    def completed(chain_number: int) -> tuple[str, datetime, datetime]:
        chain = chains[chain_number]
        version = plans[(chain.certificate_id, chain.version)]
        return chain.certificate_id, version.not_before + ISSUED_AFTER, version.not_after

    api, api_renewed, api_expires = completed(140)
    pay, pay_renewed, pay_expires = completed(160)
    dash, dash_renewed, _ = completed(150)
    revoked_at = now - REVOKED_DAYS_AGO * DAY + 2 * ISSUED_AFTER  # the revocation job completed
    vpn_failed_at = now - 6 * DAY  # job-ren-170 ran out of attempts
    cn = {cert_id: SPECS_BY_ID[cert_id].common_name for cert_id in (api, pay, dash, "mc-compromised", "mc-vpn-prod")}
    bob = _email_of("o-bob")
    reported = timedelta(seconds=14)  # the agent reported the deployment this long after the issuance
    return [
        _Plan(0, NotificationType.RENEWAL_SUCCESS, EMAIL, api, _email_of("o-alice"),
              messages.renewal_success_body(cn[api], api_expires), api_renewed, [_ok_email(101)], read=True),
        _Plan(0, NotificationType.DEPLOYMENT_SUCCESS, EMAIL, api, _email_of("o-alice"),
              messages.deployment_success_body(cn[api], "NGINX Production"), api_renewed + reported,
              [_ok_email(102)]),
        _Plan(0, NotificationType.RENEWAL_SUCCESS, EMAIL, pay, _email_of("o-carol"),
              messages.renewal_success_body(cn[pay], pay_expires), pay_renewed, [REFUSED_TRY, _ok_email(103)]),
        _Plan(0, NotificationType.REVOCATION, WEBHOOK, "mc-compromised", bob,
              messages.revocation_body(cn["mc-compromised"], REVOCATION_REASON), revoked_at,
              [WEBHOOK_503_TRY] * MAX_ATTEMPTS),
        _Plan(0, NotificationType.REVOCATION, EMAIL, "mc-compromised", bob,
              messages.revocation_body(cn["mc-compromised"], REVOCATION_REASON), revoked_at,
              [SMTP_451_TRY] * MAX_ATTEMPTS),
        _Plan(0, NotificationType.RENEWAL_FAILURE, EMAIL, "mc-vpn-prod", bob,
              messages.renewal_failure_body(cn["mc-vpn-prod"], VPN_DNS_ERROR), vpn_failed_at,
              [SMTP_451_TRY] * MAX_ATTEMPTS, requeued_at=now - timedelta(minutes=5),
              tries_after_requeue=[SMTP_451_TRY] * 3),
        _Plan(0, NotificationType.DEPLOYMENT_SUCCESS, EMAIL, dash, _email_of("o-dave"),
              messages.deployment_success_body(cn[dash], "NGINX Production"), dash_renewed + reported,
              [SMTP_550_TRY] * MAX_ATTEMPTS, requeued_at=now - timedelta(seconds=20)),
    ]  # fmt: skip
