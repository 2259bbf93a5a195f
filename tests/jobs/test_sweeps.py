from __future__ import annotations

from datetime import timedelta

from certctl.clock import FrozenClock
from certctl.db.engine import Database
from certctl.jobs.models import JobStatus, JobType
from certctl.jobs.queue import AttemptOutcome
from certctl.jobs.service import JobQueue
from certctl.scheduler.deadline import Deadline
from tests.jobs.factories import add_agent, add_job, audit_actions, load_job, seed_certificates

LEASE = timedelta(minutes=5)


def test_retry_due_reopens_only_jobs_whose_retry_time_has_come(
    queue: JobQueue, db: Database, clock: FrozenClock
) -> None:
    now = clock.now()
    certs = seed_certificates(db, now, 4)
    failed = {"status": JobStatus.FAILED, "attempts": 1, "claimed_by": "w"}
    due = add_job(db, certs[0], now, next_retry_at=now - timedelta(seconds=1), **failed)
    exactly_due = add_job(db, certs[1], now, next_retry_at=now, **failed)
    not_yet = add_job(db, certs[2], now, next_retry_at=now + timedelta(seconds=1), **failed)
    terminal = add_job(db, certs[3], now, next_retry_at=None, **failed)

    result = queue.retry_due(now)

    assert (result.changed, result.finished) == (2, True)
    for job_id in (due, exactly_due):
        job = load_job(db, job_id)
        assert (job.status, job.scheduled_at, job.next_retry_at, job.attempts) == (JobStatus.PENDING, now, None, 1)
        assert audit_actions(db, job_id) == ["job_retry"]
    assert load_job(db, not_yet).status is JobStatus.FAILED
    assert load_job(db, terminal).status is JobStatus.FAILED
    assert audit_actions(db, not_yet) == audit_actions(db, terminal) == []


def test_retry_due_works_through_more_rows_than_one_batch(db: Database, clock: FrozenClock) -> None:
    now = clock.now()
    queue = JobQueue(db, clock, batch_size=7)
    certs = seed_certificates(db, now, 23)
    for cert in certs:
        add_job(db, cert, now, status=JobStatus.FAILED, attempts=1, next_retry_at=now - timedelta(minutes=1))

    result = queue.retry_due(now)

    assert (result.changed, result.batches, result.finished) == (23, 4, True)
    assert len(queue.claim("w", now, LEASE, limit=100)) == 23
    assert audit_actions(db).count("job_retry") == 23


def test_a_sweep_stops_at_its_deadline_and_says_so(db: Database, clock: FrozenClock) -> None:
    now = clock.now()
    queue = JobQueue(db, clock, batch_size=2)
    for cert in seed_certificates(db, now, 5):
        add_job(db, cert, now, status=JobStatus.FAILED, attempts=1, next_retry_at=now)
    readings = iter([0.0, 0.0, 100.0])  # set, first check (in time), second check (past the budget)
    deadline = Deadline(lambda: next(readings), timedelta(seconds=10))

    result = queue.retry_due(now, deadline)

    assert (result.changed, result.finished) == (2, False)
    assert queue.retry_due(now).changed == 3


def test_a_retry_never_reopens_a_second_open_job_for_one_certificate(
    queue: JobQueue, db: Database, clock: FrozenClock, cert: str
) -> None:
    now = clock.now()
    older = add_job(db, cert, now, status=JobStatus.FAILED, attempts=1, next_retry_at=now)
    newer = add_job(db, cert, now, status=JobStatus.FAILED, attempts=1, next_retry_at=now + timedelta(seconds=1))
    clock.advance(timedelta(seconds=1))

    result = queue.retry_due(clock.now())

    assert (result.changed, result.terminal) == (1, 1)
    assert load_job(db, older).status is JobStatus.PENDING
    dropped = load_job(db, newer)
    assert (dropped.status, dropped.next_retry_at) == (JobStatus.FAILED, None)
    assert dropped.last_error is not None
    assert "another open job" in dropped.last_error


def test_an_expired_lease_counts_as_a_failed_attempt_and_the_stale_worker_is_refused(
    queue: JobQueue, db: Database, clock: FrozenClock, cert: str
) -> None:
    job_id = add_job(db, cert, clock.now())
    queue.claim("worker-a", clock.now(), LEASE, limit=1)
    clock.advance(LEASE)
    assert queue.reclaim_expired_leases(clock.now()).changed == 0  # lease_until == now: still held
    clock.advance(timedelta(seconds=1))

    result = queue.reclaim_expired_leases(clock.now())

    assert (result.changed, result.retry_scheduled) == (1, 1)
    job = load_job(db, job_id)
    assert (job.status, job.attempts) == (JobStatus.FAILED, 1)
    assert job.last_error == "lease expired: worker worker-a stopped responding"
    assert job.next_retry_at == clock.now() + timedelta(seconds=60)
    assert audit_actions(db, job_id) == ["job_lease_expired"]
    assert queue.complete(job_id, "worker-a", clock.now()).outcome is AttemptOutcome.NOT_LEASE_HOLDER

    clock.advance(timedelta(seconds=60))
    queue.retry_due(clock.now())
    [again] = queue.claim("worker-b", clock.now(), LEASE, limit=1)
    assert again.attempts == 2
    assert queue.complete(job_id, "worker-a", clock.now()).outcome is AttemptOutcome.NOT_LEASE_HOLDER
    assert queue.complete(job_id, "worker-b", clock.now()).outcome is AttemptOutcome.COMPLETED


def test_a_lease_that_expires_on_the_last_attempt_fails_the_job_for_good(
    queue: JobQueue, db: Database, clock: FrozenClock, cert: str
) -> None:
    job_id = add_job(db, cert, clock.now(), attempts=2, max_attempts=3)
    queue.claim("worker-a", clock.now(), LEASE, limit=1)
    clock.advance(LEASE + timedelta(seconds=1))

    assert queue.reclaim_expired_leases(clock.now()).terminal == 1
    job = load_job(db, job_id)
    assert (job.status, job.attempts, job.next_retry_at) == (JobStatus.FAILED, 3, None)


def test_reclaim_leaves_live_leases_and_agent_jobs_alone(queue: JobQueue, db: Database, clock: FrozenClock) -> None:
    now = clock.now()
    certs = seed_certificates(db, now, 2)
    agent = add_agent(db, now, last_heartbeat_at=now)
    live = add_job(db, certs[0], now)
    queue.claim("worker-a", now, timedelta(hours=1), limit=1)
    agent_job = add_job(
        db, certs[1], now, type=JobType.DEPLOYMENT, agent_id=agent, status=JobStatus.RUNNING,
        attempts=1, lease_until=now - timedelta(minutes=1),
    )  # fmt: skip
    clock.advance(timedelta(minutes=10))

    assert queue.reclaim_expired_leases(clock.now()).changed == 0
    assert load_job(db, live).status is JobStatus.RUNNING
    assert load_job(db, agent_job).status is JobStatus.RUNNING


def test_waits_that_time_out_fail_with_the_retry_rules_or_for_good(
    queue: JobQueue, db: Database, clock: FrozenClock
) -> None:
    now = clock.now()
    certs = seed_certificates(db, now, 4)
    csr_old = add_job(db, certs[0], now, status=JobStatus.AWAITING_CSR, scheduled_at=now - timedelta(hours=25))
    csr_claimed_old = add_job(
        db, certs[1], now, status=JobStatus.AWAITING_CSR, attempts=1,
        scheduled_at=now - timedelta(hours=30), started_at=now - timedelta(hours=24, minutes=1),
    )  # fmt: skip
    csr_recent = add_job(
        db, certs[2], now, status=JobStatus.AWAITING_CSR, attempts=1,
        scheduled_at=now - timedelta(hours=30), started_at=now - timedelta(hours=23),
    )  # fmt: skip
    approval_old = add_job(
        db, certs[3], now, status=JobStatus.AWAITING_APPROVAL, scheduled_at=now - timedelta(hours=169)
    )

    result = queue.time_out_waiting_jobs(now)

    assert (result.changed, result.retry_scheduled, result.terminal) == (3, 2, 1)
    for job_id in (csr_old, csr_claimed_old):  # each wait is one attempt, counted once
        job = load_job(db, job_id)
        assert (job.status, job.attempts, job.next_retry_at) == (JobStatus.FAILED, 1, now + timedelta(seconds=60))
        assert job.last_error == "timed out: no CSR received within 24h"
    assert load_job(db, csr_recent).status is JobStatus.AWAITING_CSR
    approval = load_job(db, approval_old)
    assert (approval.status, approval.next_retry_at, approval.attempts) == (JobStatus.FAILED, None, 0)
    assert approval.last_error == "timed out: approval not granted within 168h"
    assert audit_actions(db).count("job_timeout") == 3


def test_running_jobs_of_a_silent_agent_are_reaped(queue: JobQueue, db: Database, clock: FrozenClock) -> None:
    now = clock.now()
    certs = seed_certificates(db, now, 2)
    silent = add_agent(db, now, last_heartbeat_at=now - timedelta(minutes=6))
    alive = add_agent(db, now, last_heartbeat_at=now - timedelta(minutes=1))
    running = {"type": JobType.DEPLOYMENT, "status": JobStatus.RUNNING, "attempts": 1, "started_at": now}
    reaped = add_job(db, certs[0], now, agent_id=silent, **running)
    kept = add_job(db, certs[1], now, agent_id=alive, **running)

    assert queue.reap_offline_agent_jobs(now).changed == 1
    job = load_job(db, reaped)
    assert (job.status, job.next_retry_at) == (JobStatus.FAILED, now + timedelta(seconds=60))
    assert job.last_error is not None
    assert silent in job.last_error
    assert audit_actions(db, reaped) == ["job_offline_agent_reap"]
    assert load_job(db, kept).status is JobStatus.RUNNING
