"""Revocation jobs: tell the issuer's connector a serial is revoked (`IssuerConnector.revoke`).

The ledger is authoritative for our own CRL and OCSP; this job is what reaches a CA that keeps its own
list. Success sets the ledger row's issuer_notified; a failure is retried with the queue's backoff, and a
connector that can never accept the request (PermanentIssuerError) fails the job for good at once.
The issuance processor runs this alongside its issuance batches (certificates/processor.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from certctl.audit.service import AuditRecorder
from certctl.clock import Clock
from certctl.db.engine import Database
from certctl.errors import CertctlError
from certctl.issuers.connectors import ConnectorRegistry
from certctl.jobs.models import JobType
from certctl.jobs.queue import holds_lease, record_success
from certctl.jobs.service import JobQueue
from certctl.jobs.store import JobStore
from certctl.pki.errors import PermanentIssuerError
from certctl.revocation.reasons import reason_flag
from certctl.revocation.store import RevocationStore
from certctl.scheduler.deadline import Deadline
from certctl.security.roles import SYSTEM_ACTOR

log = logging.getLogger("certctl.revocation")
REVOCATION_TYPES = frozenset({JobType.REVOCATION})


@dataclass(frozen=True, slots=True)
class _Notice:
    job_id: str
    attempt: int
    revocation_id: str
    issuer_id: str
    serial: str
    reason: str


@dataclass
class RevocationJobSummary:
    claimed: int = 0
    completed: int = 0
    failed: int = 0


class RevocationJobs:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        connectors: ConnectorRegistry,
        queue: JobQueue,
        *,
        worker_id: str,
        lease: timedelta = timedelta(minutes=2),
        batch: int = 25,
    ) -> None:
        self._db, self._clock, self._connectors, self._queue = db, clock, connectors, queue
        self._worker_id, self._lease, self._batch = worker_id, lease, batch

    def run(self, deadline: Deadline | None = None) -> RevocationJobSummary:
        """Claim and process due Revocation jobs until none are left or the deadline passes."""
        summary = RevocationJobSummary()
        while deadline is None or not deadline.expired:
            jobs = self._queue.claim(
                self._worker_id, self._clock.now(), self._lease, self._batch, types=REVOCATION_TYPES
            )
            if not jobs:
                break
            summary.claimed += len(jobs)
            for job in jobs:
                if self._process(job.id, job.attempts, job.certificate_id):
                    summary.completed += 1
                else:
                    summary.failed += 1
        return summary

    def _process(self, job_id: str, attempt: int, certificate_id: str | None) -> bool:
        with self._db.read() as session:
            row = RevocationStore(session).latest_for_certificate(certificate_id or "")
            notice = (
                None if row is None else _Notice(job_id, attempt, row.id, row.issuer_id, row.serial_number, row.reason)
            )
        if notice is None:
            self._fail(job_id, attempt, f"certificate {certificate_id} has no revocation to report", permanent=True)
            return False
        try:
            self._connectors.get(notice.issuer_id).revoke(notice.serial, reason_flag(notice.reason))
        except PermanentIssuerError as exc:
            self._fail(job_id, attempt, str(exc), permanent=True)
            return False
        except (CertctlError, NotImplementedError, ValueError) as exc:
            self._fail(job_id, attempt, str(exc) or type(exc).__name__, permanent=False)
            return False
        return self._complete(notice)

    def _complete(self, notice: _Notice) -> bool:
        now = self._clock.now()
        with self._db.begin() as session:
            found = JobStore(session).lock(notice.job_id)
            if found is None or not holds_lease(found[0], self._worker_id, notice.attempt):
                log.warning("revocation.lease_lost", extra={"job_id": notice.job_id, "worker": self._worker_id})
                return False
            job = found[0]
            record_success(job, now)
            RevocationStore(session).mark_issuer_notified(notice.revocation_id)
            AuditRecorder(session, self._clock).record(
                SYSTEM_ACTOR,
                "revocation_issuer_notified",
                "certificate",
                job.certificate_id or "",
                {"job_id": job.id, "issuer_id": notice.issuer_id, "serial": notice.serial, "reason": notice.reason},
            )
        return True

    def _fail(self, job_id: str, attempt: int, error: str, *, permanent: bool) -> None:
        log.warning("revocation.issuer_not_notified", extra={"job_id": job_id, "error": error, "permanent": permanent})
        if permanent:
            with self._db.begin() as session:
                found = JobStore(session).lock(job_id)
                if found is not None and holds_lease(found[0], self._worker_id, attempt):
                    found[0].max_attempts = found[0].attempts  # no retry can fix it: spend the rest
        self._queue.fail(job_id, self._worker_id, error, self._clock.now(), attempt=attempt)
