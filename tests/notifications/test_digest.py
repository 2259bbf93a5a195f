"""The digest e-mail (notifications.md §10, §10.1, §12-O): content, HTML, recipients, sending through a real
SMTP server (aiosmtpd on loopback), the HTTP endpoints and the scheduler loop."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, update
from sqlalchemy.exc import OperationalError

from certctl.certificates.models import CertificateStatus, ManagedCertificate
from certctl.clock import FrozenClock
from certctl.context import AppContext
from certctl.jobs.models import Job, JobStatus, JobType
from certctl.notifications.digest import (
    DIGEST_LOOP,
    DigestError,
    DigestSendFailed,
    DigestService,
    EmailSenderNotConfigured,
    build_digest,
    digest_loops,
    render_html,
)
from certctl.notifications.models import NotificationEvent
from certctl.org.models import Owner
from certctl.scheduler.runner import ManualTicks, RunOutcome
from certctl.stats.service import DashboardSummary, StatsService
from certctl.worker import build_background
from tests.conftest import client_for
from tests.factories import seed_inventory
from tests.notifications.peers import SmtpSink, free_port
from tests.notifications.rows import enqueue

CERT_DEFAULTS: dict[str, Any] = {
    "owner_id": "o-alice",
    "team_id": "t-web",
    "issuer_id": "iss-local",
    "renewal_policy_id": "rp-default",
}
SENDER = "certctl@example.com"
HOSTILE = "<script>alert('x')</script>&.example.com"


def smtp_settings(sink: SmtpSink, **more: Any) -> dict[str, Any]:
    return {
        "digest_enabled": True,
        "smtp_host": sink.host,
        "smtp_port": sink.port,
        "smtp_from_address": SENDER,
        "smtp_tls_mode": "none",
    } | more


@pytest.fixture
def digest_context(
    context_factory: Callable[..., AppContext], clock: FrozenClock, smtp_sink: SmtpSink
) -> Callable[..., AppContext]:
    """A seeded context (o-alice <alice@example.com>) with the digest on and SMTP pointed at the sink."""

    def build(**overrides: Any) -> AppContext:
        context = context_factory(clock, **smtp_settings(smtp_sink, **overrides))
        seed_inventory(context)
        return context

    return build


def add_certificate(
    context: AppContext,
    ident: str,
    expires_in: timedelta | None,
    *,
    common_name: str | None = None,
    status: CertificateStatus = CertificateStatus.ACTIVE,
    owner_id: str = "o-alice",
) -> None:
    add_certificates(context, [ident], expires_in, common_name=common_name, status=status, owner_id=owner_id)


def add_certificates(
    context: AppContext,
    idents: list[str],
    expires_in: timedelta | Callable[[int], timedelta] | None,
    *,
    common_name: str | None = None,
    status: CertificateStatus = CertificateStatus.ACTIVE,
    owner_id: str = "o-alice",
) -> None:
    now = context.clock.now()

    def expiry(n: int) -> datetime | None:
        if expires_in is None:
            return None
        return now + (expires_in(n) if callable(expires_in) else expires_in)

    rows = [
        CERT_DEFAULTS
        | {
            "id": ident,
            "name": ident,
            "common_name": common_name or f"{ident}.example.com",
            "status": status,
            "expires_at": expiry(n),
            "owner_id": owner_id,
            "created_at": now,
            "updated_at": now,
        }
        for n, ident in enumerate(idents)
    ]
    with context.db.begin() as session:
        session.execute(insert(ManagedCertificate), rows)


def add_owner(context: AppContext, owner_id: str, email: str, name: str = "") -> None:
    now = context.clock.now()
    with context.db.begin() as session:
        session.add(Owner(id=owner_id, name=name or owner_id, email=email, created_at=now, updated_at=now))


def add_failed_jobs(
    context: AppContext, prefix: str, count: int, *, failed_ago: timedelta, retry_at: datetime | None = None
) -> None:
    now = context.clock.now()
    rows = [
        {
            "id": f"{prefix}-{n:02d}",
            "type": JobType.RENEWAL,
            "certificate_id": "mc-jobs",
            "status": JobStatus.FAILED,
            "attempts": 3,
            "last_error": f"issuer refused #{n} <b>",
            "scheduled_at": now - failed_ago,
            "completed_at": now - failed_ago + timedelta(seconds=n),
            "next_retry_at": retry_at,
            "created_at": now - failed_ago,
        }
        for n in range(count)
    ]
    with context.db.begin() as session:
        session.execute(insert(Job), rows)


def service_of(context: AppContext, **kwargs: Any) -> DigestService:
    service = build_digest(context, **kwargs)
    assert service is not None
    return service


# -- content ----------------------------------------------------------------------------------------------


def test_three_certificates_give_a_total_of_three_and_two_expiring_entries(
    digest_context: Callable[..., AppContext],
) -> None:
    context = digest_context()
    add_certificate(context, "mc-ten", timedelta(days=10, hours=-1))
    add_certificate(context, "mc-twentyfive", timedelta(days=25))
    add_certificate(context, "mc-past", timedelta(days=-5))

    digest = service_of(context).generate()

    assert digest.summary.total_certificates == 3
    assert digest.summary.expired_certificates == 1
    assert [(c.certificate_id, c.days_left) for c in digest.expiring] == [("mc-ten", 9), ("mc-twentyfive", 25)]
    assert digest.expiring[0].common_name == "mc-ten.example.com"
    assert (digest.expiring[0].owner_id, digest.expiring[0].owner_name) == ("o-alice", "Alice")
    assert digest.generated_at == context.clock.now()


def test_the_window_is_open_at_both_ends_and_revoked_or_archived_certificates_are_not_listed(
    digest_context: Callable[..., AppContext],
) -> None:
    context = digest_context()
    add_certificate(context, "mc-now", timedelta(0))
    add_certificate(context, "mc-edge", timedelta(days=30))
    add_certificate(context, "mc-inside", timedelta(days=30, seconds=-1))
    add_certificate(context, "mc-unset", None)
    add_certificate(context, "mc-revoked", timedelta(days=3), status=CertificateStatus.REVOKED)
    add_certificate(context, "mc-archived", timedelta(days=3), status=CertificateStatus.ARCHIVED)

    digest = service_of(context).generate()

    assert [(c.certificate_id, c.days_left) for c in digest.expiring] == [("mc-inside", 29)]


def test_an_empty_inventory_gives_zero_counts_and_the_empty_state(
    context_factory: Callable[..., AppContext], clock: FrozenClock, smtp_sink: SmtpSink
) -> None:
    context = context_factory(clock, **smtp_settings(smtp_sink))

    digest = service_of(context).generate()

    assert digest.summary.total_certificates == 0
    assert digest.expiring == []
    assert digest.recent_failures == []
    assert digest.notifications_dead == 0
    assert "No certificates expiring in the next 30 days." in render_html(digest)


def test_every_expiring_certificate_is_listed_across_batches_soonest_first(
    digest_context: Callable[..., AppContext],
) -> None:
    context = digest_context()
    idents = [f"mc-{n:03d}" for n in range(120)]
    # Pairs share an expiry instant, so the keyset must break ties by id.
    add_certificates(context, idents, lambda n: timedelta(days=1 + (n // 2) % 28))
    add_certificates(context, ["mc-tie-a", "mc-tie-b"], timedelta(days=2))

    expiring = service_of(context, batch_size=7).generate().expiring

    assert len(expiring) == 122
    assert len({c.certificate_id for c in expiring}) == 122
    keys = [(c.expires_at, c.certificate_id) for c in expiring]
    assert keys == sorted(keys)


def test_recent_failures_are_terminal_failures_of_the_last_interval_twenty_shown(
    digest_context: Callable[..., AppContext],
) -> None:
    context = digest_context(digest_interval="24h")
    add_certificate(context, "mc-jobs", timedelta(days=90), common_name="jobs.example.com")
    add_failed_jobs(context, "job-recent", 25, failed_ago=timedelta(hours=2))
    add_failed_jobs(context, "job-old", 2, failed_ago=timedelta(hours=25))
    add_failed_jobs(context, "job-retrying", 2, failed_ago=timedelta(hours=1), retry_at=context.clock.now())

    digest = service_of(context).generate()

    assert digest.recent_failures_total == 25
    assert [f.job_id for f in digest.recent_failures] == [f"job-recent-{n:02d}" for n in range(24, 4, -1)]
    assert digest.recent_failures[0].common_name == "jobs.example.com"
    html = render_html(digest)
    assert "issuer refused #24 &lt;b&gt;" in html
    assert "and 5 more in the last day." in html
    assert "sent by certctl every day." in html


def test_the_dead_letter_count_is_reported(digest_context: Callable[..., AppContext]) -> None:
    context = digest_context()
    dead = enqueue(context, 3)
    with context.db.begin() as session:
        session.execute(update(NotificationEvent).where(NotificationEvent.id.in_(dead[:2])).values(status="dead"))

    digest = service_of(context).generate()

    assert digest.notifications_dead == 2
    assert '<div class="value">2</div><div class="label">Dead Letters</div>' in render_html(digest)


class _UnreachableStats(StatsService):
    def summary(self) -> DashboardSummary:
        raise OperationalError("SELECT count(*) FROM managed_certificates", {}, Exception("connection reset"))


def test_a_database_failure_is_reported_as_a_digest_error_naming_the_step(
    digest_context: Callable[..., AppContext],
) -> None:
    context = digest_context()
    stats = _UnreachableStats(context.db, context.clock, started_at=context.clock.now())
    service = DigestService(context.db, context.clock, stats, lambda: 0, None)

    with pytest.raises(DigestError, match=r"^failed to generate digest: failed to get dashboard summary: connection"):
        service.generate()
    with pytest.raises(DigestError, match="failed to get dashboard summary"):
        service.preview()


# -- HTML -------------------------------------------------------------------------------------------------


def test_the_html_is_a_full_document_with_cards_table_badges_and_footer(
    digest_context: Callable[..., AppContext], clock: FrozenClock
) -> None:
    clock.advance(timedelta(days=45, hours=14, minutes=5))  # 2026-02-15 14:05 UTC
    context = digest_context()
    add_certificate(context, "mc-five", timedelta(days=5, hours=1), common_name="example.com")
    add_certificate(context, "mc-twelve", timedelta(days=12, hours=1))
    add_certificate(context, "mc-twenty", timedelta(days=20, hours=1))
    add_certificates(context, [f"mc-later-{n}" for n in range(39)], timedelta(days=200))

    html = service_of(context).preview()

    assert html.startswith("<!DOCTYPE html>")
    assert "<title>certctl Certificate Digest</title>" in html
    assert "Generated: February 15, 2026 2:05 PM UTC" in html
    for section in ("System Overview", "Jobs Summary", "Notifications", "Certificates Expiring Soon"):
        assert f"<h2>{section}</h2>" in html
    assert '<div class="value">42</div><div class="label">Total Certs</div>' in html
    assert '<div class="value">3</div><div class="label">Expiring</div>' in html
    for label in ("Expired", "Active Agents", "Pending", "Failed", "Completed"):
        assert f'<div class="label">{label}</div>' in html
    assert "<td>example.com</td><td>Alice</td><td>Feb 20, 2026</td>" in html
    assert '<span class="badge badge-danger">5 days</span>' in html
    assert '<span class="badge badge-warn">12 days</span>' in html
    assert '<span class="badge badge-ok">20 days</span>' in html
    assert "No certificates expiring" not in html
    assert "CERTCTL_DIGEST_" in html
    assert html.rstrip().endswith("</html>")


def test_a_hostile_common_name_and_owner_name_are_escaped(digest_context: Callable[..., AppContext]) -> None:
    context = digest_context()
    add_owner(context, "o-evil", "evil@example.com", name='Eve "<img src=x onerror=alert(1)>"')
    add_certificate(context, "mc-evil", timedelta(days=3), common_name=HOSTILE, owner_id="o-evil")

    html = service_of(context).preview()

    assert "<script>" not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;.example.com" in html
    assert "Eve &quot;&lt;img src=x onerror=alert(1)&gt;&quot;" in html


# -- sending ----------------------------------------------------------------------------------------------


def test_two_configured_recipients_get_one_html_email_each_in_order(
    digest_context: Callable[..., AppContext], smtp_sink: SmtpSink
) -> None:
    context = digest_context(digest_recipients=" admin@example.com, ,ops@example.com ")
    add_certificate(context, "mc-soon", timedelta(days=4))

    result = service_of(context).send()

    assert (result.recipients, result.sent) == (2, 2)
    mails = smtp_sink.wait_for(2)
    assert [m.rcpt_tos for m in mails] == [("admin@example.com",), ("ops@example.com",)]
    for mail in mails:
        assert mail.mail_from == SENDER
        assert mail.message["Subject"] == "certctl Certificate Digest — 2026-01-01"
        assert mail.message.get_content_type() == "text/html"
        body = mail.message.get_content()
        assert "<!DOCTYPE html>" in body
        assert "mc-soon.example.com" in body
    assert smtp_sink.messages[0].message["To"] == "admin@example.com"


def test_without_configured_recipients_every_distinct_owner_email_gets_the_digest(
    digest_context: Callable[..., AppContext], smtp_sink: SmtpSink
) -> None:
    context = digest_context()
    add_owner(context, "o-bob", "bob@example.com")
    add_owner(context, "o-bob2", " BOB@example.com ")
    add_owner(context, "o-nomail", "")

    result = service_of(context).send()

    assert (result.recipients, result.sent) == (2, 2)
    assert sorted(m.rcpt_tos[0] for m in smtp_sink.wait_for(2)) == ["alice@example.com", "bob@example.com"]


def test_no_recipients_at_all_is_a_success_that_sends_nothing(
    context_factory: Callable[..., AppContext],
    clock: FrozenClock,
    smtp_sink: SmtpSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    context = context_factory(clock, **smtp_settings(smtp_sink))
    with caplog.at_level(logging.WARNING, logger="certctl.notifications.digest"):
        result = service_of(context).send()
    assert (result.recipients, result.sent) == (0, 0)
    assert smtp_sink.messages == []
    assert "no recipients" in caplog.text


def test_one_failed_recipient_fails_the_send_and_the_others_still_get_it(
    digest_context: Callable[..., AppContext], smtp_sink: SmtpSink
) -> None:
    context = digest_context(digest_recipients="a@example.com,b@example.com,c@example.com")
    smtp_sink.fail_next(1, "554 5.7.1 rejected")

    with pytest.raises(DigestSendFailed, match=r"^failed to send digest to 1 of 3 recipients$") as failed:
        service_of(context).send()

    assert (failed.value.failed, failed.value.total) == (1, 3)
    assert [m.rcpt_tos for m in smtp_sink.wait_for(2)] == [("b@example.com",), ("c@example.com",)]


def test_an_unreachable_smtp_server_fails_every_recipient(
    context_factory: Callable[..., AppContext], clock: FrozenClock
) -> None:
    context = context_factory(
        clock,
        digest_enabled=True,
        smtp_host="127.0.0.1",
        smtp_port=free_port(),
        smtp_from_address=SENDER,
        smtp_tls_mode="none",
        digest_recipients="a@example.com,b@example.com",
    )
    with pytest.raises(DigestSendFailed, match="failed to send digest to 2 of 2 recipients"):
        service_of(context).send()


def test_without_an_email_sender_sending_says_what_to_configure(
    digest_context: Callable[..., AppContext],
) -> None:
    context = digest_context(digest_recipients="a@example.com")
    stats = StatsService(context.db, context.clock, started_at=context.clock.now())
    service = DigestService(context.db, context.clock, stats, lambda: 0, None, recipients=["a@example.com"])

    with pytest.raises(EmailSenderNotConfigured, match="email sender not configured") as failed:
        service.send()
    assert "CERTCTL_SMTP_HOST" in str(failed.value)
    assert "CERTCTL_SMTP_FROM_ADDRESS" in str(failed.value)
    assert "<!DOCTYPE html>" in service.preview()


# -- HTTP -------------------------------------------------------------------------------------------------


def test_preview_is_html_for_any_role_and_only_get(digest_context: Callable[..., AppContext]) -> None:
    context = digest_context()
    add_certificate(context, "mc-preview", timedelta(days=6))
    with client_for(context, "viewer") as client:
        response = client.get("/api/v1/digest/preview")
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.text.startswith("<!DOCTYPE html>")
        assert "certctl Certificate Digest" in response.text
        assert "mc-preview.example.com" in response.text
    with client_for(context) as client:
        not_allowed = client.post("/api/v1/digest/preview")
        assert not_allowed.status_code == 405
        assert not_allowed.json()["error"] == "Method Not Allowed"
        assert client.get("/api/v1/digest/send").status_code == 405
    with client_for(context, None) as client:
        assert client.get("/api/v1/digest/preview").status_code == 401


def test_send_endpoint_mails_the_digest_and_needs_a_writing_role(
    digest_context: Callable[..., AppContext], smtp_sink: SmtpSink
) -> None:
    context = digest_context(digest_recipients="admin@example.com")
    with client_for(context, "viewer") as client:
        assert client.post("/api/v1/digest/send").status_code == 403
    assert smtp_sink.messages == []
    with client_for(context, "operator") as client:
        response = client.post("/api/v1/digest/send")
    assert response.status_code == 200
    assert response.json() == {"status": "sent"}
    assert smtp_sink.wait_for(1)[0].rcpt_tos == ("admin@example.com",)


def test_a_failed_send_is_a_500_in_the_error_shape_and_preview_still_works(
    digest_context: Callable[..., AppContext], smtp_sink: SmtpSink
) -> None:
    context = digest_context(digest_recipients="a@example.com,b@example.com")
    smtp_sink.fail_always("421 4.3.2 service not available")
    with client_for(context) as client:
        response = client.post("/api/v1/digest/send")
        assert response.status_code == 500
        body = response.json()
        assert body["error"] == "Internal Server Error"
        assert body["message"] == "failed to send digest to 2 of 2 recipients"
        assert body["request_id"]
        assert client.get("/api/v1/digest/preview").status_code == 200


@pytest.mark.parametrize(
    "settings",
    [
        {},  # the default: digest off
        {"digest_enabled": True},  # on, but no SMTP
        {"digest_enabled": True, "smtp_host": "smtp.example.com"},  # no sender address
        {"digest_enabled": False, "smtp_host": "smtp.example.com", "smtp_from_address": SENDER},
    ],
)
def test_both_endpoints_answer_503_while_the_digest_is_not_enabled(
    context_factory: Callable[..., AppContext], clock: FrozenClock, settings: dict[str, Any]
) -> None:
    context = context_factory(clock, **settings)
    with client_for(context) as client:
        for response in (client.get("/api/v1/digest/preview"), client.post("/api/v1/digest/send")):
            assert response.status_code == 503
            body = response.json()
            assert body["error"] == "Service Unavailable"
            assert body["message"].startswith("digest service not configured")
            assert "CERTCTL_DIGEST_ENABLED" in body["message"]
            assert body["request_id"]


# -- scheduler --------------------------------------------------------------------------------------------


def test_the_loop_is_a_singleton_that_first_runs_one_interval_after_start(
    digest_context: Callable[..., AppContext], smtp_sink: SmtpSink
) -> None:
    context = digest_context(digest_interval="12h", digest_recipients="admin@example.com")
    [loop] = digest_loops(context)
    assert (loop.name, loop.interval, loop.timeout) == (DIGEST_LOOP, timedelta(hours=12), timedelta(minutes=5))
    assert loop.singleton
    assert not loop.run_at_startup

    scheduler = build_background(context, ticks=ManualTicks()).scheduler
    assert DIGEST_LOOP in scheduler.loop_names
    started = scheduler.start()
    try:
        assert DIGEST_LOOP not in started
        assert smtp_sink.messages == []
        tick = scheduler.tick(DIGEST_LOOP)  # what the interval tick does 12 h later
        assert tick.run is not None
        assert tick.run.wait(30)
        assert tick.run.outcome is RunOutcome.SUCCEEDED, tick.run.error
    finally:
        scheduler.stop(5)
    assert smtp_sink.wait_for(1)[0].rcpt_tos == ("admin@example.com",)


@pytest.mark.parametrize(
    ("settings", "warns"),
    [
        ({}, False),
        ({"smtp_host": "smtp.example.com", "smtp_from_address": SENDER}, False),
        ({"digest_enabled": True}, True),
        ({"digest_enabled": True, "smtp_from_address": SENDER}, True),
    ],
)
def test_the_loop_is_registered_only_when_enabled_with_smtp_and_warns_when_smtp_is_missing(
    context_factory: Callable[..., AppContext],
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
    settings: dict[str, Any],
    warns: bool,
) -> None:
    context = context_factory(clock, **settings)
    with caplog.at_level(logging.WARNING, logger="certctl.notifications.digest"):
        scheduler = build_background(context, ticks=ManualTicks()).scheduler
    assert DIGEST_LOOP not in scheduler.loop_names
    assert ("CERTCTL_SMTP_HOST" in caplog.text) is warns
