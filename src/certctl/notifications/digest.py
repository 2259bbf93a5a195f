"""The periodic HTML digest e-mail (notifications.md §10, §10.1): what it says, how it looks, who gets it.

`DigestService.generate()` reads the dashboard counts, every certificate expiring in the next 30 days (in
keyset batches, without the original's 10 000 cap), the jobs that failed for good during the last interval
and the dead-letter count; `render_html()` turns that into one self-contained, escaped HTML document;
`send()` mails it to each recipient separately. The scheduler runs it as a singleton loop (`digest_loops`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from string import Template
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from certctl.certificates.models import CertificateStatus, ManagedCertificate
from certctl.clock import Clock
from certctl.config import Settings
from certctl.db.engine import Database
from certctl.errors import CertctlError
from certctl.jobs.models import Job, JobStatus
from certctl.notifications.channels.base import DeliveryFailed, Receipt
from certctl.notifications.channels.email import FROM_SETTING, HOST_SETTING, EmailChannel
from certctl.notifications.channels.registry import ChannelRegistry
from certctl.org.models import Owner
from certctl.scheduler.deadline import Deadline
from certctl.scheduler.runner import Loop
from certctl.stats.service import EXPIRING_WINDOW, DashboardSummary, StatsService

if TYPE_CHECKING:
    from certctl.context import AppContext

log = logging.getLogger("certctl.notifications.digest")

DIGEST_LOOP = "digest"
DIGEST_RUN_TIMEOUT = timedelta(minutes=5)  # notifications.md §10: same per-run budget as the other loops
DEFAULT_BATCH_SIZE = 500  # expiring certificates read per query
RECENT_FAILURES_SHOWN = 20
ERROR_CHARS_SHOWN = 200
TITLE = "certctl Certificate Digest"
EMPTY_EXPIRING_TEXT = "No certificates expiring in the next 30 days."
DANGER_DAYS, WARN_DAYS = 7, 14  # Days Left badge: ≤ 7 danger, ≤ 14 warn, else ok
# A certificate in these states needs no action before it expires, so it is not listed.
_NOT_LISTED = (CertificateStatus.REVOKED, CertificateStatus.EXPIRED, CertificateStatus.ARCHIVED)
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


class DigestError(CertctlError):
    """Generating or sending the digest failed (HTTP 500); the message says which step."""


class EmailSenderNotConfigured(DigestError):
    def __init__(self) -> None:
        super().__init__(f"email sender not configured: set {HOST_SETTING} and {FROM_SETTING}")


class DigestSendFailed(DigestError):
    def __init__(self, failed: int, total: int) -> None:
        super().__init__(f"failed to send digest to {failed} of {total} recipients")
        self.failed, self.total = failed, total


class HtmlMailer(Protocol):
    def send_html(self, recipients: Sequence[str], subject: str, html: str) -> Receipt:
        """Send one text/html message; raise DeliveryFailed on any failure."""
        ...


@dataclass(frozen=True, slots=True)
class ExpiringCertificate:
    certificate_id: str
    common_name: str
    expires_at: datetime
    days_left: int  # whole days until expiry, truncated
    owner_id: str
    owner_name: str


@dataclass(frozen=True, slots=True)
class FailedJob:
    job_id: str
    job_type: str
    certificate_id: str
    common_name: str
    error: str
    failed_at: datetime


@dataclass(frozen=True, slots=True)
class Digest:
    generated_at: datetime
    interval: timedelta
    summary: DashboardSummary
    expiring: Sequence[ExpiringCertificate]  # soonest first, every one of them
    recent_failures: Sequence[FailedJob]  # newest first, at most RECENT_FAILURES_SHOWN
    recent_failures_total: int
    notifications_dead: int


@dataclass(frozen=True, slots=True)
class DigestSendResult:
    recipients: int
    sent: int


class DigestService:
    """Builds and mails the digest; reads only, and opens one short read transaction per question."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        stats: StatsService,
        count_dead_notifications: Callable[[], int],
        mailer: HtmlMailer | None,
        *,
        recipients: Sequence[str] = (),
        interval: timedelta = timedelta(hours=24),
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._db, self._clock, self._stats = db, clock, stats
        self._count_dead = count_dead_notifications
        self._mailer = mailer
        self._recipients = [r.strip() for r in recipients if r.strip()]
        self._interval = interval
        self._batch_size = batch_size

    def generate(self) -> Digest:
        """The digest as of the clock's now. Raises DigestError naming the read that failed."""
        now = self._clock.now()
        try:
            summary = self._stats.summary()
        except SQLAlchemyError as exc:
            raise _failed("failed to get dashboard summary", exc) from exc
        try:
            expiring = self._expiring(now)
        except SQLAlchemyError as exc:
            raise _failed("failed to list expiring certificates", exc) from exc
        try:
            with self._db.read() as session:
                failures, failures_total = _recent_failures(session, now - self._interval, now)
            dead = self._count_dead()
        except SQLAlchemyError as exc:
            raise _failed("failed to read job and notification failures", exc) from exc
        return Digest(
            generated_at=now,
            interval=self._interval,
            summary=summary,
            expiring=expiring,
            recent_failures=failures,
            recent_failures_total=failures_total,
            notifications_dead=dead,
        )

    def preview(self) -> str:
        """The HTML a send would mail now (no e-mail configuration needed)."""
        return render_html(self.generate())

    def send(self, deadline: Deadline | None = None) -> DigestSendResult:
        """Mail the digest to each recipient separately, in order.

        Recipients are CERTCTL_DIGEST_RECIPIENTS, else every distinct owner e-mail; with none, nothing is
        sent and that is a success. Raises EmailSenderNotConfigured, DigestError from `generate`, and
        DigestSendFailed when any recipient failed (recipients left when `deadline` expires count as failed).
        """
        if self._mailer is None:
            raise EmailSenderNotConfigured()
        digest = self.generate()
        try:
            recipients = self._recipients or self._owner_emails()
        except SQLAlchemyError as exc:
            raise _failed("failed to list owner e-mail addresses", exc, "send") from exc
        if not recipients:
            log.warning("digest: no recipients (set CERTCTL_DIGEST_RECIPIENTS or give owners an e-mail address)")
            return DigestSendResult(recipients=0, sent=0)
        html = render_html(digest)
        subject = f"{TITLE} — {digest.generated_at.astimezone(UTC):%Y-%m-%d}"
        sent = 0
        for position, recipient in enumerate(recipients):
            if deadline is not None and deadline.expired:
                log.warning("digest: run deadline reached with %d recipient(s) left", len(recipients) - position)
                break
            try:
                self._mailer.send_html([recipient], subject, html)
            except DeliveryFailed as exc:
                log.warning("digest: sending to %s failed: %s", recipient, exc)
                continue
            sent += 1
        if sent < len(recipients):
            raise DigestSendFailed(len(recipients) - sent, len(recipients))
        log.info("digest: sent to %d recipient(s)", sent)
        return DigestSendResult(recipients=len(recipients), sent=sent)

    def _expiring(self, now: datetime) -> list[ExpiringCertificate]:
        cert = ManagedCertificate
        stmt = (
            select(cert.id, cert.common_name, cert.expires_at, cert.owner_id, Owner.name)
            .outerjoin(Owner, Owner.id == cert.owner_id)
            .where(cert.expires_at > now, cert.expires_at < now + EXPIRING_WINDOW, cert.status.not_in(_NOT_LISTED))
            .order_by(cert.expires_at, cert.id)
            .limit(self._batch_size)
        )
        found: list[ExpiringCertificate] = []
        with self._db.read() as session:
            while True:
                if found:  # keyset: strictly after the last (expires_at, id) of the previous batch
                    last = found[-1]
                    after = or_(
                        cert.expires_at > last.expires_at,
                        and_(cert.expires_at == last.expires_at, cert.id > last.certificate_id),
                    )
                    rows = session.execute(stmt.where(after)).all()
                else:
                    rows = session.execute(stmt).all()
                for ident, common_name, expires_at, owner_id, owner_name in rows:
                    assert expires_at is not None  # the WHERE clause compares it
                    found.append(
                        ExpiringCertificate(
                            certificate_id=ident,
                            common_name=common_name,
                            expires_at=expires_at,
                            days_left=int((expires_at - now) / timedelta(days=1)),
                            owner_id=owner_id,
                            owner_name=owner_name or "",
                        )
                    )
                if len(rows) < self._batch_size:
                    return found

    def _owner_emails(self) -> list[str]:
        with self._db.read() as session:
            emails = session.scalars(select(Owner.email).where(Owner.email != "").order_by(Owner.id)).all()
        unique: dict[str, str] = {}
        for address in (e.strip() for e in emails):
            if address:
                unique.setdefault(address.lower(), address)
        return list(unique.values())


def _failed(step: str, exc: SQLAlchemyError, action: str = "generate") -> DigestError:
    cause = str(getattr(exc, "orig", None) or exc).strip()
    return DigestError(f"failed to {action} digest: {step}: {cause.splitlines()[0] if cause else type(exc).__name__}")


def _recent_failures(session: Session, since: datetime, now: datetime) -> tuple[list[FailedJob], int]:
    """Jobs that failed for good (no retry left) in (since, now], newest first, and how many there were."""
    terminal = and_(
        Job.status == JobStatus.FAILED, Job.next_retry_at.is_(None), Job.completed_at > since, Job.completed_at <= now
    )
    total = int(session.scalar(select(func.count()).select_from(Job).where(terminal)) or 0)
    rows = session.execute(
        select(Job.id, Job.type, Job.certificate_id, ManagedCertificate.common_name, Job.last_error, Job.completed_at)
        .outerjoin(ManagedCertificate, ManagedCertificate.id == Job.certificate_id)
        .where(terminal)
        .order_by(Job.completed_at.desc(), Job.id)
        .limit(RECENT_FAILURES_SHOWN)
    ).all()
    failures = [
        FailedJob(
            job_id=job_id,
            job_type=str(job_type),
            certificate_id=cert_id or "",
            common_name=common_name or "",
            error=error or "",
            failed_at=completed_at or now,  # never None: the WHERE clause compares it
        )
        for job_id, job_type, cert_id, common_name, error, completed_at in rows
    ]
    return failures, total


# -- HTML ----------------------------------------------------------------------------------------------------

_PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
body { margin: 0; padding: 24px; background: #f4f5f7; color: #1f2933;
       font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
.container { max-width: 760px; margin: 0 auto; background: #ffffff; border-radius: 8px; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #e4e7eb; }
.generated { margin: 0; color: #616e7c; font-size: 13px; }
table.cards { width: 100%; border-collapse: separate; border-spacing: 8px; }
td.card { background: #f5f7fa; border-radius: 6px; padding: 12px; text-align: center; }
td.card .value { font-size: 24px; font-weight: bold; }
td.card .label { font-size: 12px; color: #616e7c; text-transform: uppercase; }
table.list { width: 100%; border-collapse: collapse; font-size: 14px; }
table.list th, table.list td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #e4e7eb; }
.badge { display: inline-block; padding: 2px 8px; border-radius: 10px; font-size: 12px; font-weight: bold; }
.badge-danger { background: #fde8e8; color: #c81e1e; }
.badge-warn { background: #fdf6b2; color: #8e4b10; }
.badge-ok { background: #def7ec; color: #03543f; }
.empty { color: #616e7c; font-style: italic; }
.footer { margin-top: 28px; font-size: 12px; color: #9aa5b1; }
</style>
</head>
<body>
<div class="container">
<h1>$title</h1>
<p class="generated">Generated: $generated</p>
<h2>System Overview</h2>
$overview
<h2>Jobs Summary</h2>
$jobs
<h2>Notifications</h2>
$notifications
<h2>Certificates Expiring Soon</h2>
$expiring
<h2>Recent Job Failures</h2>
$failures
<p class="footer">This digest is sent by certctl every $interval. Configure it with the CERTCTL_DIGEST_* \
settings (CERTCTL_DIGEST_ENABLED, CERTCTL_DIGEST_INTERVAL, CERTCTL_DIGEST_RECIPIENTS).</p>
</div>
</body>
</html>
""")


def render_html(digest: Digest) -> str:
    """The digest as one HTML document; every value from the database is escaped."""
    s = digest.summary
    return _PAGE.substitute(
        title=_e(TITLE),
        generated=_e(_long_datetime(digest.generated_at)),
        overview=_cards(
            ("Total Certs", s.total_certificates),
            ("Expiring", s.expiring_certificates),
            ("Expired", s.expired_certificates),
            ("Revoked", s.revoked_certificates),
            ("Active Agents", s.active_agents),
        ),
        jobs=_cards(("Pending", s.pending_jobs), ("Failed", s.failed_jobs), ("Completed", s.complete_jobs)),
        notifications=_cards(("Dead Letters", digest.notifications_dead)),
        expiring=_expiring_table(digest.expiring),
        failures=_failures_table(digest),
        interval=_e(_describe_interval(digest.interval)),
    )


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _cards(*cards: tuple[str, int]) -> str:
    cells = "".join(
        f'<td class="card"><div class="value">{_e(value)}</div><div class="label">{_e(label)}</div></td>'
        for label, value in cards
    )
    return f'<table class="cards" role="presentation"><tr>{cells}</tr></table>'


def _badge(days_left: int) -> str:
    level = "danger" if days_left <= DANGER_DAYS else "warn" if days_left <= WARN_DAYS else "ok"
    return f'<span class="badge badge-{level}">{_e(days_left)} days</span>'


def _expiring_table(expiring: Sequence[ExpiringCertificate]) -> str:
    if not expiring:
        return f'<p class="empty">{_e(EMPTY_EXPIRING_TEXT)}</p>'
    rows = "\n".join(
        f"<tr><td>{_e(c.common_name)}</td><td>{_e(c.owner_name or c.owner_id)}</td>"
        f"<td>{_e(_short_date(c.expires_at))}</td><td>{_badge(c.days_left)}</td></tr>"
        for c in expiring
    )
    return (
        '<table class="list"><thead><tr><th>Common Name</th><th>Owner</th><th>Expires</th><th>Days Left</th>'
        f"</tr></thead><tbody>\n{rows}\n</tbody></table>"
    )


def _failures_table(digest: Digest) -> str:
    window = _describe_interval(digest.interval)
    if not digest.recent_failures:
        return f'<p class="empty">{_e(f"No jobs failed in the last {window}.")}</p>'
    rows = "\n".join(
        f"<tr><td>{_e(f.job_id)}</td><td>{_e(f.job_type)}</td><td>{_e(f.common_name or f.certificate_id)}</td>"
        f"<td>{_e(_clip(f.error))}</td><td>{_e(_short_datetime(f.failed_at))}</td></tr>"
        for f in digest.recent_failures
    )
    more = digest.recent_failures_total - len(digest.recent_failures)
    note = f'<p class="empty">{_e(f"… and {more} more in the last {window}.")}</p>' if more > 0 else ""
    return (
        '<table class="list"><thead><tr><th>Job</th><th>Type</th><th>Certificate</th><th>Error</th><th>Failed</th>'
        f"</tr></thead><tbody>\n{rows}\n</tbody></table>{note}"
    )


def _clip(text: str) -> str:
    return text if len(text) <= ERROR_CHARS_SHOWN else text[: ERROR_CHARS_SHOWN - 1] + "…"


def _short_date(at: datetime) -> str:
    """`Jan 2, 2006` (UTC), independent of the process locale."""
    at = at.astimezone(UTC)
    return f"{_MONTHS[at.month - 1][:3]} {at.day}, {at.year}"


def _short_datetime(at: datetime) -> str:
    at = at.astimezone(UTC)
    return f"{_short_date(at)} {_clock_time(at)} UTC"


def _long_datetime(at: datetime) -> str:
    """`January 2, 2006 3:04 PM UTC`."""
    at = at.astimezone(UTC)
    return f"{_MONTHS[at.month - 1]} {at.day}, {at.year} {_clock_time(at)} UTC"


def _clock_time(at: datetime) -> str:
    return f"{at.hour % 12 or 12}:{at.minute:02d} {'AM' if at.hour < 12 else 'PM'}"


def _describe_interval(interval: timedelta) -> str:
    seconds = int(interval.total_seconds())
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return unit if count == 1 else f"{count} {unit}s"  # "every day", "in the last 12 hours"
    return f"{seconds} seconds"


# -- wiring --------------------------------------------------------------------------------------------------


def smtp_configured(settings: Settings) -> bool:
    return bool(settings.smtp_host and settings.smtp_from_address)


def build_digest(context: AppContext, *, batch_size: int = DEFAULT_BATCH_SIZE) -> DigestService | None:
    """The digest service when CERTCTL_DIGEST_ENABLED is true and SMTP host and sender are set, else None."""
    settings = context.settings
    if not (settings.digest_enabled and smtp_configured(settings)):
        return None
    return DigestService(
        context.db,
        context.clock,
        StatsService(context.db, context.clock, started_at=context.started_at),
        context.notification_service.count_dead,
        _email_sender(context),
        recipients=settings.digest_recipients,
        interval=settings.digest_interval,
        batch_size=batch_size,
    )


def _email_sender(context: AppContext) -> HtmlMailer:
    """The process's Email channel (same TLS trust as the alerts), or one built from the settings."""
    channels = context.notifications.channels
    if isinstance(channels, ChannelRegistry):
        return channels.email
    return EmailChannel.from_settings(context.settings)


def digest_loops(context: AppContext) -> list[Loop]:
    """The digest loop when the digest is enabled and SMTP is set: one replica at a time (singleton), first
    run one interval after start, 5 minutes per run. Enabled without SMTP logs a warning and adds nothing."""
    settings = context.settings
    if not settings.digest_enabled:
        return []
    service = build_digest(context)
    if service is None:
        log.warning(
            "CERTCTL_DIGEST_ENABLED is true but e-mail is not configured: set %s and %s; no digest will be sent",
            HOST_SETTING,
            FROM_SETTING,
        )
        return []

    def send_digest(now: datetime, deadline: Deadline) -> DigestSendResult:
        return service.send(deadline)

    return [
        Loop(
            DIGEST_LOOP, settings.digest_interval, DIGEST_RUN_TIMEOUT, send_digest, singleton=True, run_at_startup=False
        )
    ]
