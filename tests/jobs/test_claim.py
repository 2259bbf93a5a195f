from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from certctl.clock import FrozenClock
from certctl.db.engine import Database
from certctl.jobs.models import JobStatus, JobType
from certctl.jobs.service import JobQueue
from tests.jobs.factories import add_agent, add_job, add_pending_jobs, load_job, seed_certificates

LEASE = timedelta(minutes=5)
REPO_ROOT = Path(__file__).resolve().parents[2]


def test_claim_marks_the_job_running_with_attempt_start_and_lease(
    queue: JobQueue, db: Database, clock: FrozenClock, cert: str
) -> None:
    job_id = add_job(db, cert, clock.now() - timedelta(minutes=1))
    clock.advance(timedelta(seconds=30))

    [claimed] = queue.claim("worker-a", clock.now(), LEASE, limit=10)

    assert claimed.id == job_id
    stored = load_job(db, job_id)
    assert stored.status is JobStatus.RUNNING
    assert stored.claimed_by == "worker-a"
    assert stored.attempts == 1
    assert stored.started_at == clock.now()
    assert stored.lease_until == clock.now() + LEASE
    assert (claimed.status, claimed.attempts, claimed.lease_until) == (JobStatus.RUNNING, 1, stored.lease_until)
    assert queue.claim("worker-b", clock.now(), LEASE, limit=10) == []


def test_claim_takes_only_due_jobs_oldest_first_up_to_the_limit(
    queue: JobQueue, db: Database, clock: FrozenClock
) -> None:
    now = clock.now()
    certs = seed_certificates(db, now, 4)
    late = add_job(db, certs[0], now, scheduled_at=now - timedelta(minutes=1))
    early = add_job(db, certs[1], now, scheduled_at=now - timedelta(minutes=3))
    middle = add_job(db, certs[2], now, scheduled_at=now - timedelta(minutes=2))
    future = add_job(db, certs[3], now, scheduled_at=now + timedelta(minutes=1))

    first = queue.claim("w", now, LEASE, limit=2)
    second = queue.claim("w", now, LEASE, limit=2)

    assert [job.id for job in first] == [early, middle]
    assert [job.id for job in second] == [late]
    assert load_job(db, future).status is JobStatus.PENDING


def test_agent_bound_and_agent_routed_jobs_are_never_claimed_by_the_server(
    queue: JobQueue, db: Database, clock: FrozenClock
) -> None:
    now = clock.now()
    certs = seed_certificates(db, now, 2)
    agent = add_agent(db, now, last_heartbeat_at=now)
    bound_renewal = add_job(db, certs[0], now, agent_id=agent)
    deployment = add_job(db, certs[1], now, type=JobType.DEPLOYMENT)
    validation = add_job(db, certs[1], now, type=JobType.VALIDATION)
    bound_deployment = add_job(db, certs[1], now, type=JobType.DEPLOYMENT, agent_id=agent)
    revocation = add_job(db, certs[1], now, type=JobType.REVOCATION)

    claimed = queue.claim("w", now, LEASE, limit=10)

    assert [job.id for job in claimed] == [revocation]
    for job_id in (bound_renewal, deployment, validation, bound_deployment):
        assert load_job(db, job_id).status is JobStatus.PENDING
    with pytest.raises(ValueError, match="server claims only"):
        queue.claim("w", now, LEASE, limit=10, types=[JobType.DEPLOYMENT])


def test_claim_can_be_narrowed_to_some_server_types(queue: JobQueue, db: Database, clock: FrozenClock) -> None:
    now = clock.now()
    [cert] = seed_certificates(db, now)
    renewal = add_job(db, cert, now)
    add_job(db, cert, now, type=JobType.REVOCATION)

    assert [job.id for job in queue.claim("w", now, LEASE, limit=10, types=[JobType.RENEWAL])] == [renewal]


def test_concurrent_threads_claim_every_job_exactly_once(db: Database, clock: FrozenClock) -> None:
    now = clock.now()
    job_ids = add_pending_jobs(db, seed_certificates(db, now, 300), now)
    queue = JobQueue(db, clock)
    start = threading.Barrier(6)
    claimed: list[list[str]] = [[] for _ in range(6)]
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            start.wait(timeout=10)
            while jobs := queue.claim(f"worker-{index}", now, LEASE, limit=3):
                claimed[index].extend(job.id for job in jobs)
        except BaseException as exc:  # surfaced below; a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    everything = [job_id for batch in claimed for job_id in batch]
    assert Counter(everything).most_common(1)[0][1] == 1
    assert sorted(everything) == sorted(job_ids)
    assert sum(1 for batch in claimed if batch) >= 2  # the work really was shared


def test_two_worker_processes_claim_every_job_exactly_once_on_postgresql(postgres_url: str, clock: FrozenClock) -> None:
    workers = [  # started first: their imports overlap the seeding below
        subprocess.Popen(
            [sys.executable, "-m", "tests.jobs.claim_worker", postgres_url, f"proc-{i}"],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    db = Database.from_url(postgres_url)
    try:
        now = clock.now()
        job_ids = add_pending_jobs(db, seed_certificates(db, now, 300), now)
        for worker in workers:  # both connected before either starts, so they really race
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        reports = []
        for worker in workers:
            out, _ = worker.communicate(timeout=60)
            assert worker.returncode == 0
            reports.append(json.loads(out))
        attempts = {load_job(db, job_id).attempts for job_id in job_ids[::50]}
    finally:
        db.dispose()
        for worker in workers:
            if worker.poll() is None:
                worker.kill()

    everything = [job_id for report in reports for job_id in report]
    assert len(everything) == len(set(everything)) == 300
    assert set(everything) == set(job_ids)
    assert all(reports)  # both processes got work
    assert attempts == {1}
