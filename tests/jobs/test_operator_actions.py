from __future__ import annotations

from datetime import timedelta

import pytest

from certctl.clock import FrozenClock
from certctl.db.engine import Database
from certctl.errors import Conflict, NotFound
from certctl.jobs.models import JobStatus, JobType
from certctl.jobs.queue import AttemptOutcome, JobStateConflict
from certctl.jobs.service import JobQueue
from certctl.security.roles import Actor, Role
from tests.jobs.factories import add_job, audit_actions, load_job, seed_certificates

ALICE = Actor(name="alice", role=Role.OPERATOR)
CANCELLABLE = {JobStatus.PENDING, JobStatus.AWAITING_CSR, JobStatus.AWAITING_APPROVAL, JobStatus.RUNNING}


def test_cancel_is_allowed_exactly_from_the_open_states(queue: JobQueue, db: Database, clock: FrozenClock) -> None:
    now = clock.now()
    certs = seed_certificates(db, now, len(JobStatus))
    jobs = {status: add_job(db, cert, now, status=status) for status, cert in zip(JobStatus, certs, strict=True)}
    clock.advance(timedelta(minutes=1))

    for status, job_id in jobs.items():
        if status in CANCELLABLE:
            cancelled = queue.cancel(job_id, ALICE)
            assert (cancelled.status, cancelled.completed_at) == (JobStatus.CANCELLED, clock.now())
            assert audit_actions(db, job_id) == ["job_cancelled"]
        else:
            with pytest.raises(JobStateConflict, match=f"cannot cancel job {job_id}") as refused:
                queue.cancel(job_id, ALICE)
            assert isinstance(refused.value, Conflict)
            assert refused.value.status is status
            assert load_job(db, job_id).status is status
            assert audit_actions(db, job_id) == []
    with pytest.raises(NotFound):
        queue.cancel("job-missing", ALICE)


def test_a_worker_finds_its_cancelled_job_gone(queue: JobQueue, db: Database, clock: FrozenClock, cert: str) -> None:
    job_id = add_job(db, cert, clock.now())
    queue.claim("worker-a", clock.now(), timedelta(minutes=5), limit=1)
    queue.cancel(job_id, ALICE)

    assert queue.fail(job_id, "worker-a", "late", clock.now()).outcome is AttemptOutcome.NOT_LEASE_HOLDER
    job = load_job(db, job_id)
    assert (job.status, job.lease_until) == (JobStatus.CANCELLED, None)


def test_manual_retry_grants_a_terminally_failed_job_one_more_attempt(
    queue: JobQueue, db: Database, clock: FrozenClock, cert: str
) -> None:
    job_id = add_job(db, cert, clock.now(), status=JobStatus.FAILED, attempts=3, max_attempts=3, last_error="no")
    clock.advance(timedelta(hours=1))

    retried = queue.manual_retry(job_id, ALICE)

    assert (retried.status, retried.max_attempts, retried.scheduled_at) == (JobStatus.PENDING, 4, clock.now())
    assert audit_actions(db, job_id) == ["job_manual_retry"]
    [claimed] = queue.claim("worker-a", clock.now(), timedelta(minutes=5), limit=1)
    assert claimed.attempts == 4
    result = queue.fail(job_id, "worker-a", "still no", clock.now())
    assert (result.outcome, result.next_retry_at) == (AttemptOutcome.FAILED_TERMINAL, None)


def test_manual_retry_is_refused_unless_attempts_are_exhausted(
    queue: JobQueue, db: Database, clock: FrozenClock
) -> None:
    now = clock.now()
    statuses = [status for status in JobStatus if status is not JobStatus.FAILED]
    certs = seed_certificates(db, now, len(statuses) + 1)
    retry_pending = add_job(db, certs[0], now, status=JobStatus.FAILED, attempts=1, next_retry_at=now)
    others = [add_job(db, cert, now, status=status) for status, cert in zip(statuses, certs[1:], strict=True)]

    for job_id in [retry_pending, *others]:
        with pytest.raises(JobStateConflict, match="cannot retry"):
            queue.manual_retry(job_id, ALICE)
    with pytest.raises(NotFound):
        queue.manual_retry("job-missing", ALICE)
    assert audit_actions(db) == []


def test_manual_retry_is_refused_while_another_job_is_open_for_the_certificate(
    queue: JobQueue, db: Database, clock: FrozenClock, cert: str
) -> None:
    now = clock.now()
    failed = add_job(db, cert, now, status=JobStatus.FAILED, attempts=3, max_attempts=3)
    open_job = add_job(db, cert, now, type=JobType.ISSUANCE, status=JobStatus.AWAITING_CSR)

    with pytest.raises(JobStateConflict, match=f"job {open_job} is already open"):
        queue.manual_retry(failed, ALICE)

    assert load_job(db, failed).status is JobStatus.FAILED


def test_manual_retry_can_resume_waiting_for_a_csr(
    queue: JobQueue, db: Database, clock: FrozenClock, cert: str
) -> None:
    job_id = add_job(db, cert, clock.now(), status=JobStatus.FAILED, attempts=1, max_attempts=1)

    assert queue.manual_retry(job_id, ALICE, resume_status=JobStatus.AWAITING_CSR).status is JobStatus.AWAITING_CSR
    clock.advance(timedelta(hours=25))
    queue.time_out_waiting_jobs(clock.now())
    job = load_job(db, job_id)
    assert (job.status, job.attempts, job.next_retry_at) == (JobStatus.FAILED, 2, None)
    with pytest.raises(ValueError, match="Pending or AwaitingCSR"):
        queue.manual_retry(job_id, ALICE, resume_status=JobStatus.RUNNING)
