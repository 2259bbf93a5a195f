"""The job queue's singleton loops, ready for `Scheduler` (core.md §7.1): retry and timeout reaper.

The job processor loop (claim → dispatch by type) runs on every replica and arrives with the processors.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from certctl.jobs.service import JobQueue, SweepResult
from certctl.scheduler.deadline import Deadline
from certctl.scheduler.runner import Loop

JOB_RETRY_LOOP = "job-retry"
JOB_TIMEOUT_LOOP = "job-timeout"


def job_queue_loops(
    queue: JobQueue,
    *,
    retry_interval: timedelta = timedelta(minutes=5),  # CERTCTL_SCHEDULER_RETRY_INTERVAL
    retry_timeout: timedelta = timedelta(minutes=2),
    timeout_interval: timedelta = timedelta(minutes=10),  # CERTCTL_JOB_TIMEOUT_INTERVAL
    timeout_timeout: timedelta = timedelta(minutes=4),
) -> list[Loop]:
    def retry(now: datetime, deadline: Deadline) -> dict[str, SweepResult]:
        # Crash recovery first, so a job whose worker died is retried on the same pass once due.
        reclaimed = queue.reclaim_expired_leases(now, deadline)
        return {"reclaimed": reclaimed, "retried": queue.retry_due(now, deadline)}

    def reap(now: datetime, deadline: Deadline) -> dict[str, SweepResult]:
        timed_out = queue.time_out_waiting_jobs(now, deadline)
        return {"timed_out": timed_out, "offline_agent": queue.reap_offline_agent_jobs(now, deadline)}

    return [
        Loop(JOB_RETRY_LOOP, retry_interval, retry_timeout, retry, singleton=True),
        Loop(JOB_TIMEOUT_LOOP, timeout_interval, timeout_timeout, reap, singleton=True),
    ]
