"""Producers end to end through the real loops: expiry alerts routed by the policy's matrix (to a real
SMTP server and a PagerDuty sink), deduplicated per certificate + threshold + channel while delivered or on
their way, re-sent when dead; renewal success with PagerDuty resolve events; renewal failure."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from certctl.audit.models import AuditEvent
from certctl.clock import FrozenClock
from certctl.context import AppContext
from certctl.jobs.models import Job, JobStatus
from certctl.notifications.models import NotificationEvent
from certctl.policies.models import RenewalPolicy
from certctl.scheduler.runner import ManualTicks
from certctl.worker import JOB_PROCESSOR_LOOP, RENEWAL_LOOP, Background, build_background
from tests.conftest import client_for
from tests.factories import seed_inventory
from tests.notifications.peers import HttpSink, SmtpSink

BASE = {"owner_id": "o-alice", "team_id": "t-web", "issuer_id": "iss-local", "renewal_policy_id": "rp-default"}


@pytest.fixture
def world(
    context_factory: Callable[..., AppContext], clock: FrozenClock, smtp_sink: SmtpSink, http_sink: HttpSink
) -> Iterator[tuple[AppContext, Background]]:
    context = context_factory(
        clock,
        keygen_mode="server",
        smtp_host="127.0.0.1",
        smtp_port=smtp_sink.port,
        smtp_from_address="certctl@example.com",
        smtp_use_tls=False,
        pagerduty_routing_key="pd-routing-key",
        pagerduty_events_url=http_sink.url,
        outbound_allow_loopback=True,
    )
    seed_inventory(context)
    background = build_background(context, ticks=ManualTicks())
    yield context, background
    context.notifications.dispatcher.close()


def run(context: AppContext, background: Background, loop: str) -> Any:
    result = background.scheduler.tick(loop)
    assert result.run is not None
    assert result.run.wait(60)
    assert result.run.error is None, result.run.error
    context.notifications.dispatcher.wait_idle(60)  # deliveries handed over at the end of the run
    return result.run.summary


def issue(context: AppContext, background: Background, name: str = "web") -> str:
    with client_for(context) as client:
        created = client.post("/api/v1/certificates", json={"name": name, "common_name": f"{name}.example.com"} | BASE)
        assert created.status_code in (200, 201), created.text
    run(context, background, JOB_PROCESSOR_LOOP)
    return str(created.json()["id"])


def alerts(context: AppContext, cert_id: str) -> list[NotificationEvent]:
    with context.db.begin() as session:
        stmt = (
            select(NotificationEvent)
            .where(NotificationEvent.certificate_id == cert_id)
            .order_by(NotificationEvent.created_at, NotificationEvent.threshold_days.desc(), NotificationEvent.channel)
        )
        found = list(session.scalars(stmt))
        session.expunge_all()
        return found


def route(context: AppContext, channels: dict[str, list[str]], severity: dict[str, str] | None = None) -> None:
    with context.db.begin() as session:
        session.execute(
            update(RenewalPolicy)
            .where(RenewalPolicy.id == "rp-default")
            .values(alert_channels=channels, alert_severity_map=severity or {}, auto_renew=False)
        )


def test_thresholds_route_through_the_policy_matrix_and_are_sent_once(
    world: tuple[AppContext, Background], clock: FrozenClock, smtp_sink: SmtpSink, http_sink: HttpSink
) -> None:
    context, background = world
    cert_id = issue(context, background)
    route(context, {"informational": ["Email"], "warning": ["Email", "PagerDuty"], "critical": ["PagerDuty"]})
    expires = clock.now() + timedelta(days=90)

    clock.advance(timedelta(days=90 - 20))  # 20 days left: the 30-day threshold (informational)
    run(context, background, RENEWAL_LOOP)
    first = alerts(context, cert_id)
    assert [(a.type, a.channel, a.threshold_days, a.status) for a in first] == [
        ("ExpirationWarning", "Email", 30, "sent")
    ]
    assert first[0].recipient == "alice@example.com"
    assert first[0].message == (
        f"The certificate for web.example.com will expire in 20 days ({expires:%Y-%m-%d}).\n\n"
        "Please schedule renewal.\n\n[threshold:30]"
    )
    assert smtp_sink.wait_for(1)[0].rcpt_tos == ("alice@example.com",)

    run(context, background, RENEWAL_LOOP)  # nothing new crossed: deduplicated
    assert len(alerts(context, cert_id)) == 1
    with client_for(context) as client:
        lines = set(client.get("/metrics").text.splitlines())
    assert 'certctl_expiry_alerts_total{channel="Email",result="success",threshold="30"} 1.0' in lines
    assert 'certctl_expiry_alerts_total{channel="Email",result="deduped",threshold="30"} 1.0' in lines

    clock.advance(timedelta(days=14))  # 6 days left: 14 and 7 (warning) → Email + PagerDuty each
    run(context, background, RENEWAL_LOOP)
    crossed = [(a.channel, a.threshold_days) for a in alerts(context, cert_id)[1:]]
    assert sorted(crossed) == [("Email", 7), ("Email", 14), ("PagerDuty", 7), ("PagerDuty", 14)]
    events = [r.json for r in http_sink.requests]
    assert sorted(e["dedup_key"] for e in events) == [f"certctl-{cert_id}-14", f"certctl-{cert_id}-7"]
    assert {e["event_action"] for e in events} == {"trigger"}
    with context.db.begin() as session:
        sent = session.scalars(select(AuditEvent).where(AuditEvent.action == "expiration_alert_sent")).all()
        assert len(sent) == 5


def test_an_opted_out_tier_is_skipped_and_audited(world: tuple[AppContext, Background], clock: FrozenClock) -> None:
    context, background = world
    cert_id = issue(context, background)
    route(context, {"informational": [], "warning": ["Email"], "critical": ["Email"]})
    clock.advance(timedelta(days=70))
    run(context, background, RENEWAL_LOOP)
    assert alerts(context, cert_id) == []
    with context.db.begin() as session:
        skipped = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "expiration_alert_skipped_no_channels")
        ).all()
        assert [e.details["threshold_days"] for e in skipped] == [30]


def test_a_dead_alert_does_not_suppress_the_next_check(
    world: tuple[AppContext, Background], clock: FrozenClock, smtp_sink: SmtpSink
) -> None:
    context, background = world
    cert_id = issue(context, background)
    route(context, {"informational": ["Slack"], "warning": ["Email"], "critical": ["Email"]})  # Slack unset
    clock.advance(timedelta(days=70))
    run(context, background, RENEWAL_LOOP)
    [dead] = alerts(context, cert_id)
    assert (dead.channel, dead.status) == ("Slack", "dead")

    run(context, background, RENEWAL_LOOP)  # the alert never arrived, so it is raised again
    assert [a.status for a in alerts(context, cert_id)] == ["dead", "dead"]


def test_one_failing_channel_does_not_hold_back_the_others(
    world: tuple[AppContext, Background], clock: FrozenClock, smtp_sink: SmtpSink, http_sink: HttpSink
) -> None:
    context, background = world
    cert_id = issue(context, background)
    route(context, {"informational": ["PagerDuty", "Email"], "warning": ["Email"], "critical": ["Email"]})
    http_sink.respond(500, "pagerduty down")
    clock.advance(timedelta(days=70))
    run(context, background, RENEWAL_LOOP)
    by_channel = {a.channel: a.status for a in alerts(context, cert_id)}
    assert by_channel == {"PagerDuty": "failed", "Email": "sent"}
    run(context, background, RENEWAL_LOOP)  # a failed alert is on its way: not raised twice
    assert len(alerts(context, cert_id)) == 2


def test_renewal_success_mails_the_owner_and_resolves_pagerduty_incidents(
    world: tuple[AppContext, Background], clock: FrozenClock, smtp_sink: SmtpSink, http_sink: HttpSink
) -> None:
    context, background = world
    cert_id = issue(context, background)
    route(context, {"informational": ["PagerDuty"], "warning": ["PagerDuty"], "critical": ["PagerDuty"]})
    clock.advance(timedelta(days=70))
    run(context, background, RENEWAL_LOOP)
    with context.db.begin() as session:
        session.execute(update(RenewalPolicy).values(auto_renew=True))
    clock.advance(timedelta(hours=1))
    run(context, background, RENEWAL_LOOP)  # inside the 30-day window: a renewal job
    run(context, background, JOB_PROCESSOR_LOOP)

    renewed = [a for a in alerts(context, cert_id) if a.type == "RenewalSuccess"]
    assert sorted((a.channel, a.threshold_days, a.event_action, a.status) for a in renewed) == [
        ("Email", None, "trigger", "sent"),
        ("PagerDuty", 30, "resolve", "sent"),
    ]
    resolve = http_sink.requests[-1].json
    assert (resolve["event_action"], resolve["dedup_key"]) == ("resolve", f"certctl-{cert_id}-30")
    mail = smtp_sink.wait_for(1)[-1]
    assert "has been successfully renewed" in mail.raw.decode()

    # The renewed certificate's next lifetime alerts again: the old alerts do not silence it.
    clock.advance(timedelta(days=70))
    with context.db.begin() as session:
        session.execute(update(RenewalPolicy).values(auto_renew=False))
    run(context, background, RENEWAL_LOOP)
    again = [a for a in alerts(context, cert_id) if a.type == "ExpirationWarning" and a.created_at == clock.now()]
    assert [a.threshold_days for a in again] == [30]


def test_a_terminal_renewal_failure_mails_the_owner(
    world: tuple[AppContext, Background], clock: FrozenClock, smtp_sink: SmtpSink
) -> None:
    context, background = world
    cert_id = issue(context, background)
    clock.advance(timedelta(days=61))
    run(context, background, RENEWAL_LOOP)
    with context.db.begin() as session:
        [job] = session.scalars(select(Job).where(Job.certificate_id == cert_id, Job.status == JobStatus.PENDING))
        job.max_attempts = 1
        session.execute(update(RenewalPolicy).values(alert_thresholds_days=[0]))
    with context.db.begin() as session:  # the issuer vanishes: the job fails for good
        from certctl.issuers.models import Issuer

        session.execute(update(Issuer).where(Issuer.id == "iss-local").values(enabled=False))
    run(context, background, JOB_PROCESSOR_LOOP)
    failures = [a for a in alerts(context, cert_id) if a.type == "RenewalFailure"]
    assert len(failures) == 1
    assert failures[0].message.startswith("The certificate for web.example.com failed to renew.\n\nError: ")
    assert failures[0].status == "sent"


def test_deployment_and_revocation_producers_write_the_originals_messages(
    world: tuple[AppContext, Background], smtp_sink: SmtpSink
) -> None:
    """The deployment (issue 5) and revocation (issue 6) features call these in their own transactions."""
    from certctl.certificates.models import ManagedCertificate
    from certctl.notifications.lifecycle import LifecycleNotifier

    context, background = world
    cert_id = issue(context, background)
    for webhook_configured, expected_channels in ((False, ["Email"]), (True, ["Webhook", "Email"])):
        notifier = LifecycleNotifier(context.clock, webhook_configured=webhook_configured)
        with context.db.begin() as session:
            cert = session.get_one(ManagedCertificate, cert_id)
            notifier.revoked(session, [cert], "keyCompromise")
        ids = notifier.take_added()
        with context.db.begin() as session:
            rows = [session.get_one(NotificationEvent, i) for i in ids]
            assert [r.channel for r in rows] == expected_channels
            assert rows[-1].message == (
                "[REVOKED] The certificate for web.example.com has been revoked.\n\nReason: keyCompromise\n\n"
                "This certificate is no longer valid."
            )

    notifier = LifecycleNotifier(context.clock, webhook_configured=False)
    with context.db.begin() as session:
        cert = session.get_one(ManagedCertificate, cert_id)
        notifier.deployed(session, cert, "nginx-prod")
        notifier.deployed(session, cert, "nginx-edge", error="agent offline")
    ids = notifier.take_added()
    context.notifications.dispatcher.deliver(ids)
    with context.db.begin() as session:
        ok, failed = (session.get_one(NotificationEvent, i) for i in ids)
        assert (ok.type, ok.status, ok.recipient) == ("DeploymentSuccess", "sent", "alice@example.com")
        assert ok.message == "The certificate for web.example.com has been successfully deployed to nginx-prod."
        assert failed.type == "DeploymentFailure"
        assert failed.message == (
            "The certificate for web.example.com failed to deploy to nginx-edge.\n\nError: agent offline\n\n"
            "Please investigate."
        )
    assert len(smtp_sink.wait_for(2)) >= 2
