from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from certctl.certificates.models import CertificateStatus, ManagedCertificate
from certctl.clock import FrozenClock
from certctl.db.engine import Database
from certctl.errors import NotFound
from certctl.jobs.models import Job, JobStatus
from certctl.jobs.queue import AttemptOutcome
from certctl.jobs.service import JobQueue
from tests.jobs.factories import add_job, load_job

LEASE = timedelta(minutes=5)
BASE = timedelta(seconds=60)  # the test policy's retry_interval_seconds


def _claim_one(queue: JobQueue, clock: FrozenClock, worker: str = "worker-a") -> Job:
    [job] = queue.claim(worker, clock.now(), LEASE, limit=1)
    return job


def test_the_lease_holder_completes_its_attempt(queue: JobQueue, db: Database, clock: FrozenClock, cert: str) -> None:
    job_id = add_job(db, cert, clock.now())
    _claim_one(queue, clock)
    clock.advance(timedelta(seconds=40))

    result = queue.complete(job_id, "worker-a", clock.now())

    assert result.outcome is AttemptOutcome.COMPLETED
    stored = load_job(db, job_id)
    assert (stored.status, stored.completed_at, stored.lease_until) == (JobStatus.COMPLETED, clock.now(), None)
    assert stored.attempts == 1


def test_failures_back_off_exponentially_then_fail_for_good(
    queue: JobQueue, db: Database, clock: FrozenClock, cert: str
) -> None:
    job_id = add_job(db, cert, clock.now(), max_attempts=3)
    delays = []
    for attempt in (1, 2, 3):
        job = _claim_one(queue, clock)
        assert job.attempts == attempt
        result = queue.fail(job_id, "worker-a", f"CA said no ({attempt})", clock.now())
        stored = load_job(db, job_id)
        assert stored.status is JobStatus.FAILED
        assert stored.last_error == f"CA said no ({attempt})"
        assert stored.completed_at == clock.now()
        if stored.next_retry_at is not None:
            delays.append(stored.next_retry_at - clock.now())
            clock.advance(stored.next_retry_at - clock.now())
            assert queue.retry_due(clock.now()).changed == 1

    assert delays == [BASE, 2 * BASE]
    assert result.outcome is AttemptOutcome.FAILED_TERMINAL
    assert (result.attempts, result.next_retry_at) == (3, None)
    clock.advance(timedelta(days=2))
    assert queue.retry_due(clock.now()).changed == 0
    assert load_job(db, job_id).status is JobStatus.FAILED


def test_backoff_takes_an_explicit_base_and_is_capped(db: Database, clock: FrozenClock, cert: str) -> None:
    queue = JobQueue(db, clock, retry_backoff_cap=timedelta(minutes=30))
    job_id = add_job(db, cert, clock.now(), attempts=5, max_attempts=10)
    _claim_one(queue, clock)  # attempt 6: 10 min * 2^5 = 320 min, capped at 30

    result = queue.fail(job_id, "worker-a", "boom", clock.now(), base_backoff=timedelta(minutes=10))

    assert result.outcome is AttemptOutcome.RETRY_SCHEDULED
    assert result.next_retry_at == clock.now() + timedelta(minutes=30)


def test_a_worker_that_does_not_hold_the_lease_cannot_end_the_attempt(
    queue: JobQueue, db: Database, clock: FrozenClock, cert: str
) -> None:
    job_id = add_job(db, cert, clock.now())
    _claim_one(queue, clock, "worker-a")

    for result in (
        queue.complete(job_id, "worker-b", clock.now()),
        queue.fail(job_id, "worker-b", "not mine", clock.now()),
        queue.complete(job_id, "worker-a", clock.now(), attempt=2),  # an older or newer attempt's token
    ):
        assert result.outcome is AttemptOutcome.NOT_LEASE_HOLDER
        assert not result.outcome.accepted
        assert (result.status, result.claimed_by) == (JobStatus.RUNNING, "worker-a")
    assert load_job(db, job_id).status is JobStatus.RUNNING
    assert queue.complete(job_id, "worker-a", clock.now(), attempt=1).outcome is AttemptOutcome.COMPLETED


def test_ending_an_attempt_of_an_unknown_job_is_not_found(queue: JobQueue, clock: FrozenClock) -> None:
    with pytest.raises(NotFound):
        queue.complete("job-missing", "worker-a", clock.now())
    with pytest.raises(NotFound):
        queue.fail("job-missing", "worker-a", "x", clock.now())


def test_the_terminal_failure_hook_runs_in_the_failing_transaction(db: Database, clock: FrozenClock, cert: str) -> None:
    seen: list[tuple[str, datetime]] = []

    def mark_certificate_failed(session: Session, job: Job, now: datetime) -> None:
        seen.append((job.id, now))
        certificate = session.get(ManagedCertificate, job.certificate_id)
        assert certificate is not None
        certificate.status = CertificateStatus.FAILED

    queue = JobQueue(db, clock, on_terminal_failure=mark_certificate_failed)
    job_id = add_job(db, cert, clock.now(), max_attempts=1)
    _claim_one(queue, clock)

    assert queue.fail(job_id, "worker-a", "boom", clock.now()).outcome is AttemptOutcome.FAILED_TERMINAL
    assert seen == [(job_id, clock.now())]
    with db.begin() as session:
        certificate = session.get(ManagedCertificate, cert)
        assert certificate is not None
        assert certificate.status is CertificateStatus.FAILED


def test_a_long_attempt_extends_its_lease(queue: JobQueue, db: Database, clock: FrozenClock, cert: str) -> None:
    job_id = add_job(db, cert, clock.now())
    _claim_one(queue, clock)
    clock.advance(timedelta(minutes=4))

    assert queue.extend_lease(job_id, "worker-a", clock.now(), LEASE)
    assert not queue.extend_lease(job_id, "worker-b", clock.now(), LEASE)
    assert load_job(db, job_id).lease_until == clock.now() + LEASE
    clock.advance(timedelta(minutes=6))
    assert queue.reclaim_expired_leases(clock.now()).changed == 1
    assert not queue.extend_lease(job_id, "worker-a", clock.now(), LEASE)
