"""The job queue's rules, free of the database: who may claim what, how long to back off, how an attempt ends.

Everything here works on a `Job` row the caller has locked; `service.py` owns the transactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from certctl.errors import Conflict
from certctl.jobs.models import Job, JobStatus, JobType

# The server processor's work (core.md §3.2); Deployment and Validation belong to the owning agent.
SERVER_JOB_TYPES: frozenset[JobType] = frozenset({JobType.ISSUANCE, JobType.RENEWAL, JobType.REVOCATION})
AGENT_JOB_TYPES: frozenset[JobType] = frozenset({JobType.DEPLOYMENT, JobType.VALIDATION})
# Types covered by the one-open-job-per-certificate index (`uq_jobs_open_issuance_per_certificate`).
ISSUANCE_JOB_TYPES: frozenset[JobType] = frozenset({JobType.ISSUANCE, JobType.RENEWAL})
OPEN_STATUSES: frozenset[JobStatus] = frozenset(
    {JobStatus.PENDING, JobStatus.AWAITING_CSR, JobStatus.AWAITING_APPROVAL, JobStatus.RUNNING}
)
CANCELLABLE_STATUSES = OPEN_STATUSES
MANUAL_RETRY_STATUSES: frozenset[JobStatus] = frozenset({JobStatus.PENDING, JobStatus.AWAITING_CSR})

DEFAULT_RETRY_BASE = timedelta(seconds=300)  # jobs whose certificate has no renewal policy
DEFAULT_RETRY_CAP = timedelta(hours=24)  # CERTCTL_JOB_RETRY_BACKOFF_CAP
DEFAULT_AWAITING_CSR_TIMEOUT = timedelta(hours=24)  # CERTCTL_JOB_AWAITING_CSR_TIMEOUT
DEFAULT_AWAITING_APPROVAL_TIMEOUT = timedelta(hours=168)  # CERTCTL_JOB_AWAITING_APPROVAL_TIMEOUT
DEFAULT_AGENT_HEARTBEAT_TIMEOUT = timedelta(minutes=5)  # fixed in the original
MAX_ERROR_CHARS = 4000


class AttemptOutcome(StrEnum):
    COMPLETED = "completed"
    RETRY_SCHEDULED = "retry_scheduled"  # Failed, next_retry_at set
    FAILED_TERMINAL = "failed_terminal"  # Failed, attempts exhausted, next_retry_at null
    NOT_LEASE_HOLDER = "not_lease_holder"  # the caller's claim is gone: nothing was written

    @property
    def accepted(self) -> bool:
        return self is not AttemptOutcome.NOT_LEASE_HOLDER


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What ending an attempt did; on NOT_LEASE_HOLDER the fields describe the job as it now stands."""

    outcome: AttemptOutcome
    job_id: str
    status: JobStatus
    attempts: int
    max_attempts: int
    next_retry_at: datetime | None
    claimed_by: str | None

    @classmethod
    def of(cls, outcome: AttemptOutcome, job: Job) -> AttemptResult:
        return cls(
            outcome=outcome,
            job_id=job.id,
            status=job.status,
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            next_retry_at=job.next_retry_at,
            claimed_by=job.claimed_by,
        )


class JobStateConflict(Conflict):
    """The job's status does not allow the action (HTTP 409)."""

    def __init__(self, job_id: str, status: JobStatus, action: str, reason: str = "") -> None:
        detail = reason or f"not allowed while the job is {status.value}"
        super().__init__(f"cannot {action} job {job_id}: {detail}")
        self.job_id, self.status, self.action = job_id, status, action


def retry_delay(attempts: int, base: timedelta, cap: timedelta) -> timedelta:
    """`min(base * 2^(attempts-1), cap)`: the wait after the `attempts`-th failed attempt (core.md §3.2).

    Attempts below 1 count as 1. Raises ValueError for a base that is not positive or a negative cap.
    """
    if base <= timedelta(0):
        raise ValueError("retry base must be positive")
    if cap < timedelta(0):
        raise ValueError("retry cap must not be negative")
    # Integer microseconds, with the exponent clamped: 2^80 µs outgrows any timedelta, so the cap wins.
    exponent = min(max(attempts, 1) - 1, 80)
    base_us = base // timedelta(microseconds=1)
    cap_us = cap // timedelta(microseconds=1)
    return timedelta(microseconds=min(base_us << exponent, cap_us))


def holds_lease(job: Job, worker_id: str, attempt: int | None = None) -> bool:
    """True while `worker_id`'s claim is current: Running, claimed by it, and (if given) still that attempt."""
    return (
        job.status is JobStatus.RUNNING and job.claimed_by == worker_id and (attempt is None or job.attempts == attempt)
    )


def is_terminally_failed(job: Job) -> bool:
    return job.status is JobStatus.FAILED and job.next_retry_at is None


def record_success(job: Job, now: datetime) -> AttemptOutcome:
    job.status = JobStatus.COMPLETED
    job.completed_at = now
    job.lease_until = None
    job.next_retry_at = None
    job.last_error = None
    return AttemptOutcome.COMPLETED


def record_failure(job: Job, error: str, now: datetime, base: timedelta, cap: timedelta) -> AttemptOutcome:
    """End the current attempt as failed: retry with backoff while attempts remain, else terminal."""
    job.status = JobStatus.FAILED
    job.completed_at = now
    job.lease_until = None
    job.last_error = error[:MAX_ERROR_CHARS]
    if job.attempts < job.max_attempts:
        job.next_retry_at = now + retry_delay(job.attempts, base, cap)
        return AttemptOutcome.RETRY_SCHEDULED
    # Terminal: the null next_retry_at is what the retry loop and the UI read as "attempts exhausted".
    job.next_retry_at = None
    return AttemptOutcome.FAILED_TERMINAL


def record_terminal_failure(job: Job, error: str, now: datetime) -> AttemptOutcome:
    """Fail the job without a retry, whatever attempts remain (approval timeout)."""
    job.status = JobStatus.FAILED
    job.completed_at = now
    job.lease_until = None
    job.last_error = error[:MAX_ERROR_CHARS]
    job.next_retry_at = None
    return AttemptOutcome.FAILED_TERMINAL


def count_waiting_attempt(job: Job) -> None:
    """A wait that times out counts as one attempt; add it unless entering Running already counted it.

    A job claimed after it was last (re)scheduled has `started_at ≥ scheduled_at` and its attempt counted;
    one created or manually retried straight into AwaitingCSR has not.
    """
    if job.started_at is None or job.started_at < job.scheduled_at:
        job.attempts += 1


def waiting_since(job: Job) -> datetime:
    """When the job's current wait began: its latest attempt start or its (re)scheduling, the later."""
    if job.started_at is not None and job.started_at > job.scheduled_at:
        return job.started_at
    return job.scheduled_at


def format_hours(delta: timedelta) -> str:
    """`24h`, `1.5h`: durations as the operator configured them, for error messages."""
    value = delta.total_seconds() / 3600
    return f"{value:g}h"
