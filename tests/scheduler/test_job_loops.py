from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from certctl.clock import FrozenClock
from certctl.db.engine import Database
from certctl.jobs.models import JobStatus
from certctl.jobs.service import JobQueue, SweepResult
from certctl.scheduler.job_loops import JOB_RETRY_LOOP, JOB_TIMEOUT_LOOP, job_queue_loops
from certctl.scheduler.runner import ManualTicks, Scheduler, TickResult
from tests.jobs.factories import add_job, load_job, seed_certificates

WAIT = 5.0


@pytest.fixture
def scheduler(db: Database, clock: FrozenClock) -> Iterator[Scheduler]:
    built = Scheduler(db, clock, job_queue_loops(JobQueue(db, clock)), holder="replica-a", ticks=ManualTicks())
    yield built
    built.stop(timeout=WAIT)


def _summary(result: TickResult) -> dict[str, SweepResult]:
    assert result.run is not None
    assert result.run.wait(WAIT)
    assert result.run.error is None
    summary = result.run.summary
    assert isinstance(summary, dict)
    return summary


def test_the_retry_loop_recovers_a_crashed_workers_job_and_requeues_it_when_due(
    scheduler: Scheduler, db: Database, clock: FrozenClock
) -> None:
    [cert] = seed_certificates(db, clock.now())
    job_id = add_job(db, cert, clock.now())
    JobQueue(db, clock).claim("worker-gone", clock.now(), timedelta(minutes=1), limit=1)
    clock.advance(timedelta(minutes=2))

    first = _summary(scheduler.tick(JOB_RETRY_LOOP))
    assert (first["reclaimed"].changed, first["retried"].changed) == (1, 0)
    clock.advance(timedelta(seconds=60))  # the policy's retry interval
    second = _summary(scheduler.run_now(JOB_RETRY_LOOP))
    assert (second["reclaimed"].changed, second["retried"].changed) == (0, 1)
    assert load_job(db, job_id).status is JobStatus.PENDING


def test_the_timeout_loop_fails_jobs_that_waited_too_long(
    scheduler: Scheduler, db: Database, clock: FrozenClock
) -> None:
    [cert] = seed_certificates(db, clock.now())
    job_id = add_job(db, cert, clock.now(), status=JobStatus.AWAITING_APPROVAL)
    clock.advance(timedelta(hours=169))

    summary = _summary(scheduler.tick(JOB_TIMEOUT_LOOP))

    assert (summary["timed_out"].terminal, summary["offline_agent"].changed) == (1, 0)
    assert load_job(db, job_id).status is JobStatus.FAILED
