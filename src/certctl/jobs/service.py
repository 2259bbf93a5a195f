"""The job queue service: claims, attempt results, retries, crash recovery, timeouts, cancel and manual retry.

Each method owns its transaction (STYLE.md §5); sweeps work through every matching row in batches, one
transaction per batch, and stop early only when their deadline says so (reported, never silent).
Audit actions: `job_retry`, `job_lease_expired`, `job_timeout`, `job_offline_agent_reap`,
`job_cancelled`, `job_manual_retry`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from certctl.audit.service import AuditRecorder
from certctl.clock import Clock
from certctl.db.engine import Database
from certctl.errors import NotFound
from certctl.jobs.models import Job, JobStatus, JobType
from certctl.jobs.queue import (
    CANCELLABLE_STATUSES,
    DEFAULT_AGENT_HEARTBEAT_TIMEOUT,
    DEFAULT_AWAITING_APPROVAL_TIMEOUT,
    DEFAULT_AWAITING_CSR_TIMEOUT,
    DEFAULT_RETRY_CAP,
    ISSUANCE_JOB_TYPES,
    MANUAL_RETRY_STATUSES,
    SERVER_JOB_TYPES,
    AttemptOutcome,
    AttemptResult,
    JobStateConflict,
    count_waiting_attempt,
    format_hours,
    holds_lease,
    is_terminally_failed,
    record_failure,
    record_success,
    record_terminal_failure,
    waiting_since,
)
from certctl.jobs.store import JobStore, JobWithBase
from certctl.scheduler.deadline import Deadline
from certctl.security.roles import SYSTEM_ACTOR, Actor

log = logging.getLogger("certctl.jobs")

DEFAULT_BATCH_SIZE = 200
RESOURCE_TYPE = "job"

# Called in the failing transaction for every job that has just failed for good, so the integration can
# mark the certificate Failed, expire an approval request and queue a RenewalFailure/DeploymentFailure
# notification row, all or nothing with the job's own change (core.md §3.2, STYLE.md §5.4).
TerminalFailureHook = Callable[[Session, Job, datetime], None]


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one sweep did. `finished` is False when the deadline stopped it with rows possibly left."""

    changed: int = 0
    retry_scheduled: int = 0
    terminal: int = 0
    batches: int = 0
    finished: bool = True

    def __add__(self, other: SweepResult) -> SweepResult:
        return SweepResult(
            changed=self.changed + other.changed,
            retry_scheduled=self.retry_scheduled + other.retry_scheduled,
            terminal=self.terminal + other.terminal,
            batches=self.batches + other.batches,
            finished=self.finished and other.finished,
        )


@dataclass(frozen=True, slots=True)
class _Batch:
    size: int
    changed: int = 0
    retry_scheduled: int = 0
    terminal: int = 0


class JobQueue:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        retry_backoff_cap: timedelta = DEFAULT_RETRY_CAP,
        awaiting_csr_timeout: timedelta = DEFAULT_AWAITING_CSR_TIMEOUT,
        awaiting_approval_timeout: timedelta = DEFAULT_AWAITING_APPROVAL_TIMEOUT,
        agent_heartbeat_timeout: timedelta = DEFAULT_AGENT_HEARTBEAT_TIMEOUT,
        batch_size: int = DEFAULT_BATCH_SIZE,
        on_terminal_failure: TerminalFailureHook | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._db, self._clock = db, clock
        self.retry_backoff_cap = retry_backoff_cap
        self.awaiting_csr_timeout = awaiting_csr_timeout
        self.awaiting_approval_timeout = awaiting_approval_timeout
        self.agent_heartbeat_timeout = agent_heartbeat_timeout
        self.batch_size = batch_size
        self._on_terminal_failure = on_terminal_failure

    # -- reads -------------------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        """Raises NotFound."""
        with self._db.begin() as session:
            return JobStore(session).get(job_id)

    # -- the worker's side: claim, heartbeat, end the attempt ---------------------------------------------

    def claim(
        self,
        worker_id: str,
        now: datetime,
        lease: timedelta,
        limit: int,
        types: Collection[JobType] = SERVER_JOB_TYPES,
    ) -> list[Job]:
        """Claim up to `limit` due Pending server jobs: each becomes Running, leased to `worker_id` until
        `now + lease`, with `attempts` + 1 and `started_at = now`. Jobs bound to an agent are never taken.

        Raises ValueError for agent-routed types or a limit below 1.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if not types or not set(types) <= SERVER_JOB_TYPES:
            raise ValueError(f"the server claims only {sorted(t.value for t in SERVER_JOB_TYPES)} jobs")
        with self._db.begin() as session:
            return JobStore(session).claim(worker_id, now, lease, limit, types)

    def extend_lease(self, job_id: str, worker_id: str, now: datetime, lease: timedelta) -> bool:
        """Push a long attempt's lease to `now + lease`; False when the claim is no longer the worker's."""
        with self._db.begin() as session:
            return JobStore(session).extend_lease(job_id, worker_id, now + lease)

    def complete(self, job_id: str, worker_id: str, now: datetime, *, attempt: int | None = None) -> AttemptResult:
        """End the worker's attempt as Completed. A worker whose claim is gone (lease reclaimed, job
        cancelled, or, with `attempt`, a later attempt running) gets NOT_LEASE_HOLDER and changes nothing;
        a lease that has run out but not yet been reclaimed still counts as held.

        Raises NotFound.
        """
        with self._db.begin() as session:
            job, _ = self._lock(JobStore(session), job_id)
            if not holds_lease(job, worker_id, attempt):
                return self._stale(job, worker_id, "complete")
            return AttemptResult.of(record_success(job, now), job)

    def fail(
        self,
        job_id: str,
        worker_id: str,
        error: str,
        now: datetime,
        base_backoff: timedelta | None = None,
        *,
        attempt: int | None = None,
    ) -> AttemptResult:
        """End the worker's attempt as failed: Failed with `next_retry_at = now + retry_delay(...)` while
        attempts remain, else terminal (next_retry_at null, terminal hook called). `base_backoff` defaults
        to the certificate's renewal policy `retry_interval_seconds` (300 s without one).

        Same lease rule as `complete`. Raises NotFound.
        """
        with self._db.begin() as session:
            job, policy_base = self._lock(JobStore(session), job_id)
            if not holds_lease(job, worker_id, attempt):
                return self._stale(job, worker_id, "fail")
            outcome = record_failure(job, error, now, base_backoff or policy_base, self.retry_backoff_cap)
            self._after_failure(session, job, outcome, now)
            return AttemptResult.of(outcome, job)

    # -- loops --------------------------------------------------------------------------------------------

    def retry_due(self, now: datetime, deadline: Deadline | None = None) -> SweepResult:
        """Move every Failed job with `next_retry_at ≤ now` back to Pending (scheduled now), audit `job_retry`.

        An Issuance/Renewal retry whose certificate meanwhile got another open job cannot reopen (one open
        job per certificate): it is made terminal with the reason in `last_error`, counted as `terminal`.
        """

        def batch(session: Session, store: JobStore) -> _Batch:
            rows = store.due_for_retry(now, self.batch_size)
            audit = AuditRecorder(session, self._clock)
            busy = store.certificates_with_open_issuance(
                {job.certificate_id for job, _ in rows if job.type in ISSUANCE_JOB_TYPES and job.certificate_id}
            )
            changed = superseded = 0
            for job, _ in rows:
                if job.type in ISSUANCE_JOB_TYPES and job.certificate_id is not None:
                    if job.certificate_id in busy:
                        job.next_retry_at = None
                        job.last_error = f"retry dropped: certificate {job.certificate_id} has another open job"
                        log.warning("job.retry_dropped", extra={"job_id": job.id, "certificate_id": job.certificate_id})
                        superseded += 1
                        continue
                    busy.add(job.certificate_id)
                # An issuance bound to an agent waits for that agent's CSR again; the server never claims it.
                agent_keygen = job.type in ISSUANCE_JOB_TYPES and job.agent_id is not None
                job.status = JobStatus.AWAITING_CSR if agent_keygen else JobStatus.PENDING
                job.scheduled_at = now
                job.next_retry_at = None
                audit.record(
                    SYSTEM_ACTOR,
                    "job_retry",
                    RESOURCE_TYPE,
                    job.id,
                    {"attempts": job.attempts, "max_attempts": job.max_attempts, "type": job.type.value},
                )
                changed += 1
            return _Batch(size=len(rows), changed=changed, terminal=superseded)

        return self._sweep("retry_due", batch, deadline)

    def reclaim_expired_leases(self, now: datetime, deadline: Deadline | None = None) -> SweepResult:
        """Crash recovery: a Running server job whose lease ended before `now` counts as a failed attempt
        ("lease expired: worker X stopped responding") and follows the retry rules; audit `job_lease_expired`.
        """

        def batch(session: Session, store: JobStore) -> _Batch:
            rows = store.expired_leases(now, self.batch_size)
            return self._fail_rows(
                session,
                rows,
                now,
                action="job_lease_expired",
                error=lambda job: f"lease expired: worker {job.claimed_by} stopped responding",
            )

        return self._sweep("reclaim_expired_leases", batch, deadline)

    def time_out_waiting_jobs(self, now: datetime, deadline: Deadline | None = None) -> SweepResult:
        """AwaitingCSR longer than `awaiting_csr_timeout` → a failed attempt (retry rules); AwaitingApproval
        longer than `awaiting_approval_timeout` → terminal Failed. Both audit `job_timeout`.
        """
        csr_limit, approval_limit = self.awaiting_csr_timeout, self.awaiting_approval_timeout

        def csr_batch(session: Session, store: JobStore) -> _Batch:
            rows = store.waiting_since_before(JobStatus.AWAITING_CSR, now - csr_limit, self.batch_size)
            for job, _ in rows:
                count_waiting_attempt(job)
            return self._fail_rows(
                session,
                rows,
                now,
                action="job_timeout",
                error=lambda job: f"timed out: no CSR received within {format_hours(csr_limit)}",
                details=lambda job: {"timeout": "awaiting_csr", "waiting_since": waiting_since(job).isoformat()},
            )

        def approval_batch(session: Session, store: JobStore) -> _Batch:
            rows = store.waiting_since_before(JobStatus.AWAITING_APPROVAL, now - approval_limit, self.batch_size)
            return self._fail_rows(
                session,
                rows,
                now,
                action="job_timeout",
                error=lambda job: f"timed out: approval not granted within {format_hours(approval_limit)}",
                details=lambda job: {"timeout": "awaiting_approval", "waiting_since": waiting_since(job).isoformat()},
                terminal=True,
            )

        csr = self._sweep("timeout_awaiting_csr", csr_batch, deadline)
        if not csr.finished:
            return csr + SweepResult(finished=False)
        return csr + self._sweep("timeout_awaiting_approval", approval_batch, deadline)

    def reap_offline_agent_jobs(self, now: datetime, deadline: Deadline | None = None) -> SweepResult:
        """Running agent jobs whose agent has been silent longer than `agent_heartbeat_timeout` count as a
        failed attempt (retry rules); audit `job_offline_agent_reap`.
        """
        silence = self.agent_heartbeat_timeout

        def batch(session: Session, store: JobStore) -> _Batch:
            rows = store.running_on_silent_agents(now - silence, self.batch_size)
            return self._fail_rows(
                session,
                rows,
                now,
                action="job_offline_agent_reap",
                error=lambda job: f"agent {job.agent_id} sent no heartbeat for {silence.total_seconds():g}s",
                details=lambda job: {"agent_id": job.agent_id},
            )

        return self._sweep("reap_offline_agent_jobs", batch, deadline)

    # -- operator actions ---------------------------------------------------------------------------------

    def cancel(self, job_id: str, actor: Actor) -> Job:
        """Pending, AwaitingCSR, AwaitingApproval or Running → Cancelled, audit `job_cancelled`. A worker or
        agent still running it finds its claim gone when it reports.

        Raises NotFound, JobStateConflict (409) from any other status.
        """
        now = self._clock.now()
        with self._db.begin() as session:
            job, _ = self._lock(JobStore(session), job_id)
            if job.status not in CANCELLABLE_STATUSES:
                raise JobStateConflict(job.id, job.status, "cancel")
            previous = job.status
            job.status = JobStatus.CANCELLED
            job.completed_at = now
            job.lease_until = None
            job.next_retry_at = None
            AuditRecorder(session, self._clock).record(
                actor, "job_cancelled", RESOURCE_TYPE, job.id, {"previous_status": previous.value}
            )
            return job

    def manual_retry(self, job_id: str, actor: Actor, *, resume_status: JobStatus = JobStatus.PENDING) -> Job:
        """Grant a terminally failed job one more attempt (`max_attempts = attempts + 1`) and reopen it as
        `resume_status` (Pending, or AwaitingCSR for agent keygen), scheduled now; audit `job_manual_retry`.

        Raises NotFound; JobStateConflict (409) unless Failed with attempts exhausted, or while another
        Issuance/Renewal job is open for the certificate.
        """
        if resume_status not in MANUAL_RETRY_STATUSES:
            raise ValueError("a manual retry resumes as Pending or AwaitingCSR")
        now = self._clock.now()
        with self._db.begin() as session:
            store = JobStore(session)
            job, _ = self._lock(store, job_id)
            if not is_terminally_failed(job):
                reason = "only a failed job with its attempts exhausted can be retried manually"
                raise JobStateConflict(job.id, job.status, "retry", reason)
            cert_id = job.certificate_id
            if job.type in ISSUANCE_JOB_TYPES and cert_id and (other := store.open_issuance_job(cert_id)):
                raise JobStateConflict(
                    job.id, job.status, "retry", f"job {other} is already open for certificate {job.certificate_id}"
                )
            job.max_attempts = job.attempts + 1
            job.status = resume_status
            job.scheduled_at = now
            job.lease_until = None
            AuditRecorder(session, self._clock).record(
                actor,
                "job_manual_retry",
                RESOURCE_TYPE,
                job.id,
                {"attempts": job.attempts, "max_attempts": job.max_attempts, "status": resume_status.value},
            )
            store.flush()  # a racing open job surfaces here as a Conflict, not at commit
            return job

    # -- helpers ------------------------------------------------------------------------------------------

    def _lock(self, store: JobStore, job_id: str) -> JobWithBase:
        found = store.lock(job_id)
        if found is None:
            raise NotFound("job", job_id)
        return found

    def _stale(self, job: Job, worker_id: str, action: str) -> AttemptResult:
        log.warning(
            "job.stale_worker",
            extra={"job_id": job.id, "worker": worker_id, "action": action, "holder": job.claimed_by},
        )
        return AttemptResult.of(AttemptOutcome.NOT_LEASE_HOLDER, job)

    def _after_failure(self, session: Session, job: Job, outcome: AttemptOutcome, now: datetime) -> None:
        if outcome is AttemptOutcome.FAILED_TERMINAL:
            log.warning(
                "job.failed_terminal",
                extra={"job_id": job.id, "attempts": job.attempts, "error": job.last_error},
            )
            if self._on_terminal_failure is not None:
                self._on_terminal_failure(session, job, now)

    def _fail_rows(
        self,
        session: Session,
        rows: Sequence[JobWithBase],
        now: datetime,
        *,
        action: str,
        error: Callable[[Job], str],
        details: Callable[[Job], dict[str, object]] | None = None,
        terminal: bool = False,
    ) -> _Batch:
        audit = AuditRecorder(session, self._clock)
        retry_scheduled = terminal_count = 0
        for job, base in rows:
            message = error(job)
            if terminal:
                outcome = record_terminal_failure(job, message, now)
            else:
                outcome = record_failure(job, message, now, base, self.retry_backoff_cap)
            self._after_failure(session, job, outcome, now)
            retried = outcome is AttemptOutcome.RETRY_SCHEDULED
            retry_scheduled += retried
            terminal_count += not retried
            entry: dict[str, object] = {
                "error": message,
                "attempts": job.attempts,
                "max_attempts": job.max_attempts,
                "next_retry_at": job.next_retry_at.isoformat() if job.next_retry_at else None,
            }
            if details is not None:
                entry |= details(job)
            audit.record(SYSTEM_ACTOR, action, RESOURCE_TYPE, job.id, entry)
        return _Batch(size=len(rows), changed=len(rows), retry_scheduled=retry_scheduled, terminal=terminal_count)

    def _sweep(self, name: str, batch: Callable[[Session, JobStore], _Batch], deadline: Deadline | None) -> SweepResult:
        # Every batch moves each row it selects out of the selection, so the loop always progresses; a
        # short batch means nothing is left (rows locked by another replica are that replica's to finish).
        total = SweepResult()
        while True:
            if deadline is not None and deadline.expired:
                log.warning("jobs.sweep_deadline", extra={"sweep": name, "changed": total.changed})
                return total + SweepResult(finished=False)
            with self._db.begin() as session:
                done = batch(session, JobStore(session))
            total += SweepResult(
                changed=done.changed,
                retry_scheduled=done.retry_scheduled,
                terminal=done.terminal,
                batches=1 if done.size else 0,
            )
            if done.size < self.batch_size:
                return total
