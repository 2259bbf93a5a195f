from __future__ import annotations

import hashlib
import itertools
import threading
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from certctl.audit.models import AuditEvent
from certctl.certificates.issuance import start_issuance
from certctl.certificates.models import CertificateStatus, CertificateVersion, ManagedCertificate
from certctl.certificates.renewal import ExpiryCheck, RenewalChecker, RenewalSummary, expire_short_lived
from certctl.clock import FrozenClock
from certctl.config import KeygenMode
from certctl.context import AppContext
from certctl.errors import Conflict
from certctl.issuers.models import Issuer, IssuerType
from certctl.jobs.models import Job, JobStatus, JobType
from certctl.policies.models import RenewalPolicy
from certctl.profiles.models import CertificateProfile
from certctl.scheduler.deadline import Deadline
from certctl.security.roles import SYSTEM_ACTOR
from tests.factories import seed_inventory

S = CertificateStatus
DAY = timedelta(days=1)
TICK = timedelta(microseconds=1)
CONNECTED_ISSUER = "iss-local"


@pytest.fixture
def env(context_factory: Any) -> tuple[AppContext, FrozenClock]:
    clock = FrozenClock()
    context: AppContext = context_factory(clock)
    seed_inventory(context)
    now = clock.now()
    with context.db.begin() as session:
        session.add(
            Issuer(
                id="iss-gone",
                name="No connector",
                type=IssuerType.GENERIC_CA,
                config={},
                created_at=now,
                updated_at=now,
            )
        )
    return context, clock


def checker(context: AppContext, mode: KeygenMode = KeygenMode.SERVER, **kwargs: Any) -> RenewalChecker:
    return RenewalChecker(
        context.db, context.clock, mode, has_connector=lambda issuer_id: issuer_id == CONNECTED_ISSUER, **kwargs
    )


def add_policy(
    context: AppContext,
    policy_id: str,
    *,
    days: int = 30,
    percent: int | None = None,
    auto_renew: bool = True,
    thresholds: list[int] | None = None,
) -> None:
    now = context.clock.now()
    with context.db.begin() as session:
        session.add(
            RenewalPolicy(
                id=policy_id,
                name=policy_id,
                renewal_window_days=days,
                renewal_window_percent=percent,
                auto_renew=auto_renew,
                alert_thresholds_days=thresholds if thresholds is not None else [30, 14, 7, 0],
                created_at=now,
                updated_at=now,
            )
        )


def add_profile(context: AppContext, profile_id: str, **fields: Any) -> None:
    now = context.clock.now()
    with context.db.begin() as session:
        session.add(CertificateProfile(id=profile_id, name=profile_id, created_at=now, updated_at=now, **fields))


def add_certificates(
    context: AppContext,
    ids: list[str],
    *,
    status: CertificateStatus = S.ACTIVE,
    expires_at: datetime | None,
    lifetime: timedelta = timedelta(days=90),
    policy: str = "rp-default",
    issuer: str = CONNECTED_ISSUER,
    profile: str | None = None,
) -> None:
    """Certificates with one version each (valid `lifetime` up to `expires_at`), inserted directly."""
    now = context.clock.now()
    certs = [
        {
            "id": cert_id,
            "name": cert_id,
            "common_name": f"{cert_id}.example.com",
            "owner_id": "o-alice",
            "team_id": "t-web",
            "issuer_id": issuer,
            "renewal_policy_id": policy,
            "certificate_profile_id": profile,
            "status": status,
            "expires_at": expires_at,
            "created_at": now,
            "updated_at": now,
        }
        for cert_id in ids
    ]
    versions = [
        {
            "id": f"v-{cert_id}",
            "certificate_id": cert_id,
            "serial_number": hashlib.sha256(cert_id.encode()).hexdigest()[:16],
            "not_before": expires_at - lifetime,
            "not_after": expires_at,
            "fingerprint_sha256": hashlib.sha256(cert_id.encode()).hexdigest(),
            "pem_chain": "",
            "created_at": now,
        }
        for cert_id in ids
        if expires_at is not None
    ]
    with context.db.begin() as session:
        session.execute(insert(ManagedCertificate), certs)
        if versions:
            session.execute(insert(CertificateVersion), versions)


def add_cert(context: AppContext, cert_id: str, **kwargs: Any) -> None:
    add_certificates(context, [cert_id], **kwargs)


def status_of(context: AppContext, cert_id: str) -> CertificateStatus:
    with context.db.begin() as session:
        return session.get_one(ManagedCertificate, cert_id).status


def jobs_of(context: AppContext, cert_id: str) -> list[Job]:
    with context.db.begin() as session:
        return list(session.scalars(select(Job).where(Job.certificate_id == cert_id)))


def audit_of(context: AppContext, cert_id: str) -> list[AuditEvent]:
    with context.db.begin() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.resource_id == cert_id)))


def actions_of(context: AppContext, cert_id: str) -> list[str]:
    return sorted(event.action for event in audit_of(context, cert_id))


def test_days_window_marks_expiring_and_renews_exactly_at_the_trigger(env: Any) -> None:
    context, clock = env
    start = clock.now()
    add_cert(context, "mc-days", expires_at=start + 40 * DAY)  # rp-default: 30 days, auto_renew
    clock.advance(10 * DAY - TICK)

    before = checker(context).run()
    assert (before.scanned, before.marked_expiring, before.jobs_created) == (1, 0, 0)
    assert status_of(context, "mc-days") is S.ACTIVE
    assert jobs_of(context, "mc-days") == []

    clock.advance(TICK)
    summary = checker(context).run()
    assert (summary.marked_expiring, summary.jobs_created, summary.finished) == (1, 1, True)
    (job,) = jobs_of(context, "mc-days")
    assert (job.type, job.status, job.max_attempts) == (JobType.RENEWAL, JobStatus.PENDING, 4)
    assert status_of(context, "mc-days") is S.RENEWAL_IN_PROGRESS
    events = {event.action: event for event in audit_of(context, "mc-days")}
    assert set(events) == {"certificate_expiring", "renewal_job_created"}
    assert events["certificate_expiring"].details["previous_status"] == "Active"
    assert events["certificate_expiring"].actor == "system"
    assert events["renewal_job_created"].details["renewal_trigger"] == "window_days"


def test_percent_window_renews_at_its_share_of_the_lifetime(env: Any) -> None:
    context, clock = env
    start = clock.now()
    # Alerts at expiry only and a one-day window: only the percent window can bring this certificate in.
    add_policy(context, "rp-third", days=1, percent=33, thresholds=[0])
    add_cert(context, "mc-pct", expires_at=start + 90 * DAY, lifetime=90 * DAY, policy="rp-third")
    add_cert(context, "mc-days-only", expires_at=start + 120 * DAY, lifetime=120 * DAY)
    trigger = start + timedelta(days=60, hours=7, minutes=12)  # 33 % of 90 days = 29.7 days before expiry
    clock.advance(trigger - start - TICK)

    before = checker(context).run()
    assert (before.scanned, before.marked_expiring, before.jobs_created) == (1, 0, 0)  # rp-default: out of range

    clock.advance(TICK)
    summary = checker(context).run()
    assert (summary.marked_expiring, summary.jobs_created) == (1, 1)
    assert status_of(context, "mc-pct") is S.RENEWAL_IN_PROGRESS
    assert status_of(context, "mc-days-only") is S.ACTIVE
    (created,) = [e for e in audit_of(context, "mc-pct") if e.action == "renewal_job_created"]
    assert created.details["renewal_trigger"] == "window_percent"
    (expiring,) = [e for e in audit_of(context, "mc-pct") if e.action == "certificate_expiring"]
    assert expiring.details["renewal_trigger"] == "window_percent"
    assert expiring.details["trigger_at"] == trigger.isoformat()


def test_certificates_beyond_every_horizon_are_not_even_read(env: Any) -> None:
    context, clock = env
    add_policy(context, "rp-short", days=7, thresholds=[7, 0])
    add_cert(context, "mc-far", expires_at=clock.now() + 32 * DAY)  # rp-default horizon: 30 + 1 days
    add_cert(context, "mc-far-short", expires_at=clock.now() + 9 * DAY, policy="rp-short")
    add_cert(context, "mc-near-short", expires_at=clock.now() + 8 * DAY - TICK, policy="rp-short")
    summary = checker(context).run()
    assert (summary.scanned, summary.marked_expiring) == (1, 0)


def test_auto_renew_off_marks_expiring_but_creates_no_job(env: Any) -> None:
    context, clock = env
    add_policy(context, "rp-manual", auto_renew=False)
    add_cert(context, "mc-manual", expires_at=clock.now() + 5 * DAY, policy="rp-manual")
    summary = checker(context).run()
    assert (summary.marked_expiring, summary.jobs_created, summary.skipped_auto_renew_off) == (1, 0, 1)
    assert status_of(context, "mc-manual") is S.EXPIRING
    assert jobs_of(context, "mc-manual") == []

    again = checker(context).run()
    assert (again.scanned, again.marked_expiring, again.skipped_auto_renew_off) == (1, 0, 1)
    assert actions_of(context, "mc-manual") == ["certificate_expiring"]


def test_failed_certificates_expire_but_are_never_renewed_automatically(env: Any) -> None:
    context, clock = env
    add_cert(context, "mc-failed-window", status=S.FAILED, expires_at=clock.now() + 10 * DAY)
    add_cert(context, "mc-failed-past", status=S.FAILED, expires_at=clock.now() + 6 * DAY)
    clock.advance(6 * DAY)
    summary = checker(context).run()
    assert (summary.marked_expired, summary.marked_expiring, summary.jobs_created) == (1, 0, 0)
    assert summary.skipped_failed == 1
    assert status_of(context, "mc-failed-window") is S.FAILED
    assert status_of(context, "mc-failed-past") is S.EXPIRED
    assert actions_of(context, "mc-failed-past") == ["certificate_expired"]
    assert jobs_of(context, "mc-failed-past") == jobs_of(context, "mc-failed-window") == []


def test_expired_certificates_are_not_renewed_automatically(env: Any) -> None:
    context, clock = env
    add_cert(context, "mc-lapsed", expires_at=clock.now() + DAY)
    add_cert(context, "mc-expiring", status=S.EXPIRING, expires_at=clock.now() + DAY)
    clock.advance(DAY)  # expires_at == now counts as expired
    summary = checker(context).run()
    assert (summary.marked_expired, summary.jobs_created) == (2, 0)
    assert status_of(context, "mc-lapsed") is status_of(context, "mc-expiring") is S.EXPIRED
    (event,) = audit_of(context, "mc-expiring")
    assert (event.action, event.details["previous_status"]) == ("certificate_expired", "Expiring")
    assert jobs_of(context, "mc-lapsed") == []
    assert checker(context).run().scanned == 0  # Expired certificates leave the checker for good


def test_renewal_in_progress_and_finished_certificates_are_untouched(env: Any) -> None:
    context, clock = env
    past = clock.now() - DAY
    add_cert(context, "mc-renewing", status=S.RENEWAL_IN_PROGRESS, expires_at=past)
    add_cert(context, "mc-revoked", status=S.REVOKED, expires_at=past)
    add_cert(context, "mc-archived", status=S.ARCHIVED, expires_at=past)
    summary = checker(context).run()
    assert summary == RenewalSummary(batches=0)
    assert status_of(context, "mc-renewing") is S.RENEWAL_IN_PROGRESS
    assert audit_of(context, "mc-renewing") == []


def test_certificates_without_expiry_never_enter_the_checker(env: Any) -> None:
    context, _ = env
    add_cert(context, "mc-never-issued", status=S.PENDING, expires_at=None)
    add_cert(context, "mc-odd", status=S.ACTIVE, expires_at=None)
    assert checker(context).run().scanned == 0
    assert status_of(context, "mc-odd") is S.ACTIVE
    assert jobs_of(context, "mc-never-issued") == []


def test_no_connector_for_the_issuer_means_no_job(env: Any) -> None:
    context, clock = env
    add_cert(context, "mc-orphan", expires_at=clock.now() + 5 * DAY, issuer="iss-gone")
    summary = checker(context).run()
    assert (summary.marked_expiring, summary.skipped_no_connector, summary.jobs_created) == (1, 1, 0)
    assert status_of(context, "mc-orphan") is S.EXPIRING
    assert jobs_of(context, "mc-orphan") == []


def test_a_second_run_or_an_open_job_never_adds_a_job(env: Any) -> None:
    context, clock = env
    now = clock.now()
    add_cert(context, "mc-once", expires_at=now + 5 * DAY)
    add_cert(context, "mc-busy", status=S.EXPIRING, expires_at=now + 5 * DAY)
    with context.db.begin() as session:
        session.add(
            Job(
                id="job-open",
                type=JobType.RENEWAL,
                certificate_id="mc-busy",
                status=JobStatus.AWAITING_APPROVAL,
                scheduled_at=now,
                created_at=now,
            )
        )
    first = checker(context).run()
    assert (first.jobs_created, first.skipped_open_job) == (1, 1)
    second = checker(context).run()
    assert (second.jobs_created, second.skipped_open_job) == (0, 1)
    assert len(jobs_of(context, "mc-once")) == 1
    assert [job.id for job in jobs_of(context, "mc-busy")] == ["job-open"]
    assert status_of(context, "mc-busy") is S.EXPIRING


def test_manual_renewals_racing_the_checker_end_with_one_job_per_certificate(env: Any) -> None:
    context, clock = env
    ids = [f"mc-manual-race-{n:02d}" for n in range(40)]
    add_certificates(context, ids, expires_at=clock.now() + 5 * DAY)
    barrier = threading.Barrier(2)
    manual: Counter[str] = Counter()
    results: list[RenewalSummary] = []
    errors: list[BaseException] = []

    def renew_by_hand() -> None:  # what POST /renew does, one request per certificate
        try:
            barrier.wait()
            for cert_id in reversed(ids):
                try:
                    with context.db.begin() as session:
                        cert = session.get_one(ManagedCertificate, cert_id)
                        start_issuance(session, cert, actor=SYSTEM_ACTOR, clock=clock, keygen_mode=KeygenMode.SERVER)
                    manual["created"] += 1
                except Conflict:
                    manual["conflict"] += 1
        except BaseException as exc:
            errors.append(exc)

    def check() -> None:
        try:
            barrier.wait()
            results.append(checker(context, batch_size=10).run())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=renew_by_hand), threading.Thread(target=check)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    (summary,) = results
    assert manual["created"] + summary.jobs_created == len(ids)
    with context.db.begin() as session:
        per_cert = Counter(session.scalars(select(Job.certificate_id)).all())
    assert set(per_cert) == set(ids)
    assert set(per_cert.values()) == {1}


def test_a_job_the_unique_index_refuses_counts_as_already_renewing(env: Any) -> None:
    context, clock = env
    now = clock.now()
    add_cert(context, "mc-first", expires_at=now + 4 * DAY)
    add_cert(context, "mc-second", expires_at=now + 5 * DAY)
    rogue_jobs = itertools.count()

    def add_an_unseen_job_for_the_second(session: Session, check: ExpiryCheck) -> None:
        # A writer the checker cannot know about: an open job for the next certificate, not yet flushed.
        if check.certificate_id == "mc-first":
            session.add(
                Job(
                    id=f"job-rogue-{next(rogue_jobs)}",
                    type=JobType.RENEWAL,
                    certificate_id="mc-second",
                    status=JobStatus.PENDING,
                    scheduled_at=now,
                    created_at=now,
                )
            )

    summary = checker(context, on_expiry_check=add_an_unseen_job_for_the_second).run()
    assert (summary.scanned, summary.jobs_created, summary.skipped_open_job, summary.marked_expiring) == (2, 1, 1, 2)
    assert [job.id for job in jobs_of(context, "mc-second")] == ["job-rogue-1"]  # the batch was redone once
    assert status_of(context, "mc-second") is S.EXPIRING
    assert actions_of(context, "mc-second") == ["certificate_expiring"]
    assert status_of(context, "mc-first") is S.RENEWAL_IN_PROGRESS


def test_profile_requiring_approval_gets_an_awaiting_approval_job(env: Any) -> None:
    context, clock = env
    add_profile(context, "prof-gated", requires_approval=True)
    add_cert(context, "mc-gated", expires_at=clock.now() + 5 * DAY, profile="prof-gated")
    summary = checker(context).run()
    assert (summary.jobs_created, summary.awaiting_approval) == (1, 1)
    (job,) = jobs_of(context, "mc-gated")
    assert job.status is JobStatus.AWAITING_APPROVAL
    assert status_of(context, "mc-gated") is S.EXPIRING  # moves on when approved
    assert checker(context).run().skipped_open_job == 1


def test_agent_keygen_mode_waits_for_a_csr(env: Any) -> None:
    context, clock = env
    add_cert(context, "mc-agent", expires_at=clock.now() + 5 * DAY)
    assert checker(context, KeygenMode.AGENT).run().jobs_created == 1
    assert jobs_of(context, "mc-agent")[0].status is JobStatus.AWAITING_CSR


def test_pending_certificate_with_an_expiry_is_renewed_without_a_status_of_its_own(env: Any) -> None:
    context, clock = env
    add_cert(context, "mc-pending", status=S.PENDING, expires_at=clock.now() + 5 * DAY)
    add_cert(context, "mc-pending-past", status=S.PENDING, expires_at=clock.now() - DAY)
    summary = checker(context).run()
    assert (summary.marked_expiring, summary.marked_expired, summary.jobs_created) == (0, 0, 1)
    assert status_of(context, "mc-pending") is S.RENEWAL_IN_PROGRESS
    assert status_of(context, "mc-pending-past") is S.PENDING


def test_every_candidate_is_processed_in_batches(env: Any) -> None:
    context, clock = env
    ids = [f"mc-bulk-{n:04d}" for n in range(1100)]
    add_certificates(context, ids, expires_at=clock.now() + 5 * DAY)
    summary = checker(context).run()
    assert (summary.scanned, summary.marked_expiring, summary.jobs_created, summary.batches) == (1100, 1100, 1100, 3)
    with context.db.begin() as session:
        renewing = session.scalars(
            select(ManagedCertificate.id).where(ManagedCertificate.status == S.RENEWAL_IN_PROGRESS)
        ).all()
        jobs = session.scalars(select(Job.certificate_id)).all()
    assert sorted(renewing) == sorted(jobs) == ids


def test_deadline_stops_between_batches_and_the_next_run_finishes(env: Any) -> None:
    context, clock = env
    add_policy(context, "rp-manual", auto_renew=False)
    ids = [f"mc-slow-{n:03d}" for n in range(250)]
    add_certificates(context, ids, expires_at=clock.now() + 5 * DAY, policy="rp-manual")
    ticks = itertools.count()
    # One monotonic second per look at the clock: the budget lasts for exactly one check.
    deadline = Deadline(lambda: float(next(ticks)), timedelta(seconds=1.5))

    cut = checker(context, batch_size=100).run(deadline)
    assert (cut.finished, cut.batches, cut.scanned, cut.marked_expiring) == (False, 1, 100, 100)

    rest = checker(context, batch_size=100).run(Deadline.never())
    assert (rest.finished, rest.batches, rest.scanned, rest.marked_expiring) == (True, 3, 250, 150)

    expired = Deadline(lambda: 0.0, timedelta(0))
    assert checker(context).run(expired) == RenewalSummary(finished=False)


def test_two_checkers_at_once_create_one_job_per_certificate(env: Any) -> None:
    context, clock = env
    ids = [f"mc-race-{n:03d}" for n in range(120)]
    add_certificates(context, ids, expires_at=clock.now() + 5 * DAY)
    barrier = threading.Barrier(2)
    summaries: list[RenewalSummary] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            summaries.append(checker(context, batch_size=40).run())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(s.jobs_created for s in summaries) == 120
    with context.db.begin() as session:
        per_cert = Counter(session.scalars(select(Job.certificate_id)).all())
        expiring_audits = Counter(
            session.scalars(select(AuditEvent.resource_id).where(AuditEvent.action == "certificate_expiring")).all()
        )
    assert set(per_cert) == set(ids)
    assert set(per_cert.values()) == {1}
    assert set(expiring_audits.values()) == {1}


def test_expiry_hook_sees_every_checked_certificate(env: Any) -> None:
    context, clock = env
    add_cert(context, "mc-hook-window", expires_at=clock.now() + 14 * DAY + timedelta(hours=12))
    add_cert(context, "mc-hook-expired", status=S.FAILED, expires_at=clock.now() - DAY)
    add_cert(context, "mc-hook-quiet", expires_at=clock.now() + 31 * DAY)
    seen: list[ExpiryCheck] = []
    checker(context, on_expiry_check=lambda session, check: seen.append(check)).run()
    by_id = {check.certificate_id: check for check in seen}
    assert set(by_id) == {"mc-hook-window", "mc-hook-expired", "mc-hook-quiet"}
    window = by_id["mc-hook-window"]
    assert (window.status, window.days_left, window.alert_thresholds_days) == (S.EXPIRING, 14.5, (30, 14, 7, 0))
    assert window.renewal_job_id == jobs_of(context, "mc-hook-window")[0].id
    assert (by_id["mc-hook-expired"].status, by_id["mc-hook-expired"].renewal_job_id) == (S.EXPIRED, None)
    assert by_id["mc-hook-quiet"].status is S.ACTIVE


def test_short_lived_certificates_expire_when_their_time_is_up(env: Any) -> None:
    context, clock = env
    now = clock.now()
    add_profile(context, "prof-short", allow_short_lived=True, max_ttl_seconds=600)
    add_profile(context, "prof-long", max_ttl_seconds=600)  # a TTL cap alone is not short-lived
    short = {"profile": "prof-short", "lifetime": timedelta(minutes=10)}
    add_cert(context, "mc-sl-active", expires_at=now + timedelta(minutes=5), **short)
    add_cert(context, "mc-sl-expiring", status=S.EXPIRING, expires_at=now + timedelta(minutes=5), **short)
    add_cert(context, "mc-sl-later", expires_at=now + timedelta(minutes=9), **short)
    add_cert(context, "mc-sl-renewing", status=S.RENEWAL_IN_PROGRESS, expires_at=now, **short)
    add_cert(context, "mc-long", expires_at=now, profile="prof-long")
    add_cert(context, "mc-none", expires_at=now)

    assert expire_short_lived(context.db, clock).expired == 0
    clock.advance(timedelta(minutes=5))
    sweep = expire_short_lived(context.db, clock, Deadline.never())
    assert (sweep.expired, sweep.batches, sweep.finished) == (2, 1, True)
    assert status_of(context, "mc-sl-active") is status_of(context, "mc-sl-expiring") is S.EXPIRED
    for untouched, status in [
        ("mc-sl-later", S.ACTIVE),
        ("mc-sl-renewing", S.RENEWAL_IN_PROGRESS),
        ("mc-long", S.ACTIVE),
        ("mc-none", S.ACTIVE),
    ]:
        assert status_of(context, untouched) is status
    (event,) = audit_of(context, "mc-sl-expiring")
    assert (event.action, event.details["previous_status"]) == ("short_lived_cert_expired", "Expiring")
    assert expire_short_lived(context.db, clock).expired == 0


def test_short_lived_expiry_works_in_batches_and_honours_the_deadline(env: Any) -> None:
    context, clock = env
    add_profile(context, "prof-short", allow_short_lived=True, max_ttl_seconds=300)
    ids = [f"mc-sl-{n:03d}" for n in range(250)]
    add_certificates(context, ids, expires_at=clock.now(), lifetime=timedelta(minutes=5), profile="prof-short")
    ticks = itertools.count()
    cut = expire_short_lived(
        context.db, clock, Deadline(lambda: float(next(ticks)), timedelta(seconds=1.5)), batch_size=100
    )
    assert (cut.expired, cut.batches, cut.finished) == (100, 1, False)
    rest = expire_short_lived(context.db, clock, batch_size=100)
    assert (rest.expired, rest.batches, rest.finished) == (150, 2, True)
    with context.db.begin() as session:
        audited = session.scalars(select(AuditEvent.resource_id).where(AuditEvent.action == "short_lived_cert_expired"))
        assert sorted(audited) == ids
