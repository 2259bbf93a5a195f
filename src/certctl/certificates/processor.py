"""Server-side issuance: claimed Issuance/Renewal jobs are signed by the issuer's connector.

In server key-generation mode the key is made here and stored encrypted with the version; it is never
returned by any list or get endpoint (core.md §6.7). Agent-mode jobs wait in AwaitingCSR and are not
claimed here.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from certctl.audit.service import AUDIT_EVENTS, AuditRecorder, audit_row
from certctl.certificates.models import CertificateStatus, CertificateVersion, ManagedCertificate
from certctl.certificates.versions import version_row
from certctl.clock import Clock, FrozenClock
from certctl.db.engine import Database
from certctl.errors import CertctlError
from certctl.ids import new_id
from certctl.issuers.connectors import ConnectorRegistry
from certctl.jobs.models import Job, JobType
from certctl.jobs.queue import holds_lease, record_success
from certctl.jobs.service import JobQueue
from certctl.jobs.store import JobStore
from certctl.pki.connector import IssuedCertificate, IssuerConnector, IssueRequest
from certctl.pki.errors import IssuerError, PermanentIssuerError
from certctl.pki.keygen import generate_key_and_csr
from certctl.pki.keys import KeyAlgorithm
from certctl.pki.profile_check import ProfileRules
from certctl.profiles.models import CertificateProfile
from certctl.revocation.jobs import RevocationJobs
from certctl.scheduler.deadline import Deadline
from certctl.security.encryption import ConfigCipher
from certctl.security.roles import SYSTEM_ACTOR

log = logging.getLogger("certctl.issuance")
VERSIONS: Table = CertificateVersion.__table__  # type: ignore[assignment]  # a mapped class's table is a Table
ISSUANCE_TYPES = frozenset({JobType.ISSUANCE, JobType.RENEWAL})
# Preference order when a profile allows several key types: the first the profile accepts wins.
_KEY_PREFERENCE = (
    KeyAlgorithm.ECDSA_P256,
    KeyAlgorithm.ECDSA_P384,
    KeyAlgorithm.RSA_2048,
    KeyAlgorithm.RSA_3072,
    KeyAlgorithm.RSA_4096,
)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class ProcessSummary:
    claimed: int = 0
    completed: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Work:
    job_id: str
    attempt: int
    common_name: str
    sans: tuple[str, ...]
    issuer_id: str
    rules: ProfileRules | None
    renews_order_id: str | None


@dataclass(frozen=True, slots=True)
class _Failure:
    job_id: str
    attempt: int
    error: str


@dataclass(frozen=True, slots=True)
class _Signed:
    work: _Work
    issued: IssuedCertificate
    csr_pem: str
    encrypted_key: bytes


# Called once per storing transaction with every (certificate, job) it has just issued (notifications and
# deployments hook in here, so their rows commit with the new versions).
IssuedHook = Callable[[Session, Sequence[tuple[ManagedCertificate, Job]]], None]


class IssuanceProcessor:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        cipher: ConfigCipher,
        connectors: ConnectorRegistry,
        queue: JobQueue,
        *,
        worker_id: str | None = None,
        lease: timedelta = timedelta(minutes=2),
        batch: int = 25,
        linger: timedelta = timedelta(0),
        on_issued: IssuedHook | None = None,
    ) -> None:
        self._db, self._clock, self._cipher = db, clock, cipher
        self._on_issued = on_issued
        self._connectors, self._queue = connectors, queue
        self.worker_id = worker_id or default_worker_id()
        self._lease, self._batch, self._linger = lease, batch, linger
        self._batch_connectors: dict[str, IssuerConnector] = {}
        # Revocation jobs: the issuer hears of a revoked serial (revocation/jobs.py).
        self._revocations = RevocationJobs(
            db, clock, connectors, queue, worker_id=self.worker_id, lease=lease, batch=batch
        )

    def run(self, now: datetime, deadline: Deadline | None = None) -> ProcessSummary:
        """Claim and process due server jobs in batches until none are left or the deadline passes.

        Per batch: one transaction reads every job's certificate, signing happens outside any
        transaction, one transaction stores every result (each still checked against its lease).

        After a batch smaller than the limit the queue is drained and new jobs arrive one by one: the run
        waits `linger` before claiming again, so they are signed and stored as one batch (three
        transactions) rather than a few at a time. A lone job is not delayed; an empty claim ends the run."""
        deadline = deadline or Deadline.never()
        summary = ProcessSummary()
        revocations = self._revocations.run(deadline)
        summary.claimed, summary.completed = revocations.claimed, revocations.completed
        summary.failed = revocations.failed
        while not deadline.expired:
            jobs = self._queue.claim(self.worker_id, self._clock.now(), self._lease, self._batch, types=ISSUANCE_TYPES)
            if not jobs:
                break
            summary.claimed += len(jobs)
            signed: list[_Signed] = []
            self._batch_connectors.clear()  # re-read once per batch: an issuer edit applies to the next batch
            for work in self._load([(job.id, job.attempts) for job in jobs]):
                if isinstance(work, _Failure):
                    self._fail(work.job_id, work.attempt, work.error, permanent=True)
                    summary.failed += 1
                elif (result := self._sign(work)) is not None:
                    signed.append(result)
                else:
                    summary.failed += 1
            stored = self._store(signed)
            summary.completed += stored
            summary.failed += len(signed) - stored
            if len(jobs) < self._batch and self._linger and deadline.pause(self._linger.total_seconds()):
                break
        return summary

    def _sign(self, work: _Work) -> _Signed | None:
        """Key, CSR and certificate for one job, outside any transaction; a failure is recorded on the job."""
        try:
            connector = self._batch_connectors.get(work.issuer_id)
            if connector is None:
                connector = self._batch_connectors[work.issuer_id] = self._connectors.get(work.issuer_id)
            generated = generate_key_and_csr(work.common_name, work.sans, preferred_key_algorithm(work.rules))
            issued = connector.issue(
                IssueRequest(
                    common_name=work.common_name,
                    sans=work.sans,
                    csr_pem=generated.csr_pem,
                    max_ttl_seconds=work.rules.max_ttl_seconds if work.rules else 0,
                    must_staple=work.rules.must_staple if work.rules else False,
                    profile=work.rules,
                    renews_order_id=work.renews_order_id,
                )
            )
            encrypted_key = self._cipher.encrypt_many(generated.key.private_key_pem())
        except PermanentIssuerError as exc:
            self._fail(work.job_id, work.attempt, str(exc), permanent=True)
            return None
        except (IssuerError, CertctlError, ValueError) as exc:
            self._fail(work.job_id, work.attempt, str(exc), permanent=False)
            return None
        return _Signed(work=work, issued=issued, csr_pem=generated.csr_pem, encrypted_key=encrypted_key)

    def _store(self, results: list[_Signed]) -> int:
        """Store the versions and complete the jobs still leased to this worker; returns how many."""
        if not results:
            return 0
        issued_now: list[tuple[ManagedCertificate, Job]] = []
        versions: list[dict[str, Any]] = []
        audit: list[dict[str, Any]] = []
        with self._db.begin() as session:
            now = self._clock.now()
            locked = _jobs_with_certificates(session, [r.work.job_id for r in results], lock=True)
            for result in results:
                job, cert = locked.get(result.work.job_id, (None, None))
                if job is None or not holds_lease(job, self.worker_id, result.work.attempt):
                    log.warning("issuance.lease_lost", extra={"job_id": result.work.job_id, "worker": self.worker_id})
                    continue
                issued = result.issued
                if cert is None:
                    continue
                version = version_row(
                    issued,
                    version_id=new_id("certver"),
                    certificate_id=cert.id,
                    csr_pem=result.csr_pem,
                    encrypted_private_key=result.encrypted_key,
                    created_at=now,
                )
                versions.append(version)
                job.version_id = version["id"]  # the version this issuance produced
                record_success(job, now)
                if cert.status not in (CertificateStatus.ARCHIVED, CertificateStatus.REVOKED):
                    cert.status = CertificateStatus.ACTIVE
                cert.expires_at, cert.last_renewal_at, cert.updated_at = issued.not_after, now, now
                details = {
                    "job_id": job.id,
                    "version_id": version["id"],
                    "serial": issued.serial,
                    "not_after": issued.not_after.isoformat(),
                }
                audit.append(audit_row(SYSTEM_ACTOR, "renewal_job_completed", "certificate", cert.id, details, now))
                issued_now.append((cert, job))
            # The new rows in one INSERT per table, without the ORM's bookkeeping; the updated jobs and
            # certificates are flushed by the session.
            for table, rows in ((VERSIONS, versions), (AUDIT_EVENTS, audit)):
                if rows:
                    session.connection().execute(insert(table), rows)
            if self._on_issued is not None and issued_now:
                self._on_issued(session, issued_now)
        return len(issued_now)

    def _load(self, claimed: list[tuple[str, int]]) -> list[_Work | _Failure]:
        """What each claimed job must issue: jobs and certificates in one query (nothing locked: `_store`
        checks the lease again under lock), profiles read once each."""
        loaded: list[_Work | _Failure] = []
        with self._db.read() as session:
            rules: dict[str, ProfileRules | None] = {}
            found = _jobs_with_certificates(session, [job_id for job_id, _ in claimed], lock=False)
            for job_id, attempt in claimed:
                job, cert = found.get(job_id, (None, None))
                if job is None or not holds_lease(job, self.worker_id, attempt):
                    continue
                if cert is None or cert.status in (CertificateStatus.ARCHIVED, CertificateStatus.REVOKED):
                    loaded.append(
                        _Failure(job_id, attempt, f"certificate {job.certificate_id} can no longer be issued")
                    )
                    continue
                profile_id = cert.certificate_profile_id or ""
                if profile_id not in rules:
                    rules[profile_id] = profile_rules(session, cert)
                loaded.append(
                    _Work(
                        job_id=job.id,
                        attempt=attempt,
                        common_name=cert.common_name,
                        sans=tuple(cert.sans),
                        issuer_id=cert.issuer_id,
                        rules=rules[profile_id],
                        renews_order_id=None,
                    )
                )
        return loaded

    def _fail(self, job_id: str, attempt: int, error: str, *, permanent: bool) -> None:
        log.warning("issuance.failed", extra={"job_id": job_id, "error": error, "permanent": permanent})
        now = self._clock.now()
        if permanent:
            with self._db.begin() as session:
                found = JobStore(session).lock(job_id)
                if found is not None and holds_lease(found[0], self.worker_id, attempt):
                    # No retry can fix a bad request: spend the remaining attempts.
                    found[0].max_attempts = found[0].attempts
        self._queue.fail(job_id, self.worker_id, error, now, attempt=attempt)


def _jobs_with_certificates(
    session: Session, job_ids: list[str], *, lock: bool
) -> dict[str, tuple[Job, ManagedCertificate | None]]:
    """The jobs with their certificates, in one query; with `lock` the job rows stay locked for the rest of
    the transaction (FOR UPDATE OF jobs on PostgreSQL; SQLite's BEGIN IMMEDIATE already holds the
    database's write lock)."""
    stmt = (
        select(Job, ManagedCertificate)
        .outerjoin(ManagedCertificate, ManagedCertificate.id == Job.certificate_id)
        .where(Job.id.in_(job_ids))
        .order_by(Job.id)
    )
    if lock:
        stmt = stmt.with_for_update(of=Job)
    return {job.id: (job, cert) for job, cert in session.execute(stmt)}


def profile_rules(session: Session, cert: ManagedCertificate) -> ProfileRules | None:
    if not cert.certificate_profile_id:
        return None
    profile = session.get(CertificateProfile, cert.certificate_profile_id)
    if profile is None:
        return None
    return ProfileRules.from_mapping(
        profile.name,
        {
            "allowed_key_algorithms": profile.allowed_key_algorithms,
            "max_ttl_seconds": profile.max_ttl_seconds,
            "allowed_ekus": profile.allowed_ekus,
            "required_san_patterns": profile.required_san_patterns,
            "spiffe_uri_pattern": profile.spiffe_uri_pattern,
            "allow_short_lived": profile.allow_short_lived,
            "must_staple": profile.must_staple,
        },
    )


def preferred_key_algorithm(rules: ProfileRules | None) -> KeyAlgorithm:
    if rules is None:
        return KeyAlgorithm.ECDSA_P256
    for algorithm in _KEY_PREFERENCE:
        if any(
            rule.algorithm is algorithm.family and algorithm.size_bits >= rule.min_size
            for rule in rules.allowed_key_algorithms
        ):
            return algorithm
    return KeyAlgorithm.ECDSA_P256


def mark_certificate_failed(session: Session, job: Job, now: datetime) -> None:
    """Terminal failure of an Issuance/Renewal job: the certificate goes to Failed with the reason."""
    if job.type not in ISSUANCE_TYPES:
        return
    cert = session.get(ManagedCertificate, job.certificate_id)
    if cert is None or cert.status in (CertificateStatus.ARCHIVED, CertificateStatus.REVOKED):
        return
    cert.status, cert.updated_at = CertificateStatus.FAILED, now
    AuditRecorder(session, FrozenClock(now)).record(  # recorded at the failure's own moment
        SYSTEM_ACTOR,
        "renewal_job_failed",
        "certificate",
        cert.id,
        {"job_id": job.id, "attempts": job.attempts, "error": job.last_error or ""},
    )
