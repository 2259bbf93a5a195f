"""`POST /agents/{id}/csr`: the agent made the key; the server signs its CSR (core.md §6.4).

Read, sign, store: the signature happens outside any transaction, and the job is re-checked under its
lock before the version is stored, so a job cancelled meanwhile is never completed. A crash while
signing leaves the job AwaitingCSR and the agent simply submits again on its next poll.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from certctl.agents.deployments import queue_deployments
from certctl.agents.outcomes import Outcomes
from certctl.agents.service import agent_actor
from certctl.agents.store import AgentStore
from certctl.agents.work import mapped_to_agent
from certctl.audit.service import AuditRecorder
from certctl.certificates.models import CertificateStatus, CertificateVersion
from certctl.certificates.processor import profile_rules
from certctl.certificates.store import CertificateStore
from certctl.certificates.versions import version_row
from certctl.clock import Clock
from certctl.db.engine import Database
from certctl.errors import CertctlError, Conflict, Forbidden, UpstreamFailed, ValidationFailed
from certctl.ids import new_id
from certctl.issuers.connectors import ConnectorRegistry
from certctl.jobs.models import Job, JobStatus
from certctl.jobs.queue import (
    ISSUANCE_JOB_TYPES,
    count_waiting_attempt,
    record_success,
)
from certctl.jobs.store import JobStore
from certctl.pki.connector import IssuedCertificate, IssueRequest
from certctl.pki.csr import load_csr
from certctl.pki.errors import IssuerError, PermanentIssuerError
from certctl.pki.profile_check import ProfileRules

log = logging.getLogger("certctl.agents")


class IssuerUnavailable(UpstreamFailed):
    """The issuer failed for a reason a retry may fix (HTTP 502); the job follows the retry rules."""


@dataclass(frozen=True, slots=True)
class SignedCSR:
    job_id: str
    version_id: str


@dataclass(frozen=True, slots=True)
class _Pending:
    job_id: str
    attempts: int
    certificate_id: str
    issuer_id: str
    common_name: str
    sans: tuple[str, ...]
    rules: ProfileRules | None


class CsrSigner:
    def __init__(self, db: Database, clock: Clock, connectors: ConnectorRegistry, outcomes: Outcomes) -> None:
        self._db, self._clock, self._connectors, self._outcomes = db, clock, connectors, outcomes

    def submit(self, agent_id: str, certificate_id: str, csr_pem: str) -> SignedCSR:
        """Sign the agent's CSR for the certificate's open AwaitingCSR job.

        Raises ValidationFailed (bad CSR or the profile rejects it: the job fails for good), Forbidden
        (not one of the agent's certificates), NotFound, Conflict (no job waits for a CSR), AgentRetired,
        IssuerUnavailable (transient issuer failure: the job retries).
        """
        try:
            load_csr(csr_pem)  # cheap checks first: nothing is touched for a malformed request
        except PermanentIssuerError as exc:
            raise ValidationFailed(str(exc)) from exc
        pending = self._pending(agent_id, certificate_id)
        try:
            issued = self._connectors.get(pending.issuer_id).issue(
                IssueRequest(
                    common_name=pending.common_name,
                    sans=pending.sans,
                    csr_pem=csr_pem,
                    max_ttl_seconds=pending.rules.max_ttl_seconds if pending.rules else 0,
                    must_staple=pending.rules.must_staple if pending.rules else False,
                    profile=pending.rules,
                )
            )
        except PermanentIssuerError as exc:
            self._fail(pending, str(exc), permanent=True)
            raise ValidationFailed(f"CSR rejected: {exc}") from exc
        except (IssuerError, CertctlError) as exc:
            self._fail(pending, str(exc), permanent=False)
            raise IssuerUnavailable(f"issuer failed, the job will retry: {exc}") from exc
        return self._store(agent_id, pending, issued, csr_pem)

    def _pending(self, agent_id: str, certificate_id: str) -> _Pending:
        with self._db.read() as session:
            AgentStore(session).live(agent_id)
            cert = CertificateStore(session).get(certificate_id)
            if not mapped_to_agent(session, cert.id, agent_id):
                raise Forbidden(f"certificate {cert.id} is not deployed to any target of agent {agent_id}")
            job = _awaiting_csr(session, cert.id)
            if job is None:
                raise Conflict(f"certificate {cert.id} has no job waiting for a CSR; renew it first")
            return _Pending(
                job_id=job.id,
                attempts=job.attempts,
                certificate_id=cert.id,
                issuer_id=cert.issuer_id,
                common_name=cert.common_name,
                sans=tuple(cert.sans),
                rules=profile_rules(session, cert),
            )

    def _store(self, agent_id: str, pending: _Pending, issued: IssuedCertificate, csr_pem: str) -> SignedCSR:
        notifier = self._outcomes.notifier(self._clock)
        now = self._clock.now()
        with self._db.begin() as session:
            job = self._still_waiting(session, pending)
            cert = CertificateStore(session).get(pending.certificate_id)
            version = CertificateVersion(
                **version_row(
                    issued,
                    version_id=new_id("certver"),
                    certificate_id=cert.id,
                    csr_pem=csr_pem,
                    encrypted_private_key=None,
                    created_at=now,
                )
            )
            session.add(version)
            _start_attempt(job, agent_id, now)
            job.version_id = version.id
            record_success(job, now)
            if cert.status not in (CertificateStatus.ARCHIVED, CertificateStatus.REVOKED):
                cert.status = CertificateStatus.ACTIVE
            cert.expires_at, cert.last_renewal_at, cert.updated_at = issued.not_after, now, now
            session.flush()
            notifier.renewed(session, [(cert, job)])
            queue_deployments(session, cert, now, version_id=version.id, trigger="csr_signed")
            audit = AuditRecorder(session, self._clock)
            details = {"job_id": job.id, "version_id": version.id, "serial": issued.serial}
            audit.record(agent_actor(agent_id), "csr_submitted", "certificate", cert.id, details)
            audit.record(
                agent_actor(agent_id),
                "renewal_job_completed",
                "certificate",
                cert.id,
                details | {"not_after": issued.not_after.isoformat()},
            )
            result = SignedCSR(job_id=job.id, version_id=version.id)
        self._outcomes.send(notifier)
        return result

    def _fail(self, pending: _Pending, error: str, *, permanent: bool) -> None:
        """Record a failed signing attempt on the job (if it is still the one waiting)."""
        log.warning("agents.csr_failed", extra={"job_id": pending.job_id, "error": error, "permanent": permanent})
        notifier = self._outcomes.notifier(self._clock)
        now = self._clock.now()
        with self._db.begin() as session:
            found = JobStore(session).lock(pending.job_id)
            if found is None or found[0].status is not JobStatus.AWAITING_CSR:
                return
            job, retry_base = found
            self._outcomes.fail_waiting_issuance(session, job, error, now, retry_base, notifier, permanent=permanent)
        self._outcomes.send(notifier)

    def _still_waiting(self, session: Session, pending: _Pending) -> Job:
        found = JobStore(session).lock(pending.job_id)
        if found is None or found[0].status is not JobStatus.AWAITING_CSR or found[0].attempts != pending.attempts:
            raise Conflict(f"job {pending.job_id} no longer waits for a CSR (cancelled or answered meanwhile)")
        return found[0]


def _awaiting_csr(session: Session, certificate_id: str) -> Job | None:
    for job in CertificateStore(session).open_issuance_jobs(certificate_id):
        if job.type in ISSUANCE_JOB_TYPES and job.status is JobStatus.AWAITING_CSR:
            return job
    return None


def _start_attempt(job: Job, agent_id: str, now: datetime) -> None:
    count_waiting_attempt(job)
    job.status, job.started_at, job.claimed_by = JobStatus.RUNNING, now, agent_id
