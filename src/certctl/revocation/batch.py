"""The set-based core both single and bulk revocation run: a few statements per batch, whatever its size.

In the caller's transaction, for the certificates given (already locked): open jobs cancelled (one
UPDATE), status Revoked (one UPDATE), ledger rows (one INSERT), Revocation jobs (one INSERT), the issuers'
revocation_revision bumped (one UPDATE), then an audit row and the notification rows per certificate,
written by one flush.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from certctl.audit.service import AuditRecorder
from certctl.certificates.models import CertificateStatus, ManagedCertificate
from certctl.clock import FrozenClock
from certctl.ids import new_id
from certctl.jobs.models import Job, JobStatus, JobType
from certctl.jobs.store import JobStore
from certctl.notifications.lifecycle import LifecycleNotifier
from certctl.revocation.store import RevocationStore
from certctl.security.roles import Actor

# Revoked is final, Archived is gone: neither is revoked (again).
FINAL_STATUSES: Collection[CertificateStatus] = frozenset({CertificateStatus.REVOKED, CertificateStatus.ARCHIVED})
REVOCATION_JOB_ATTEMPTS = 5  # telling the issuer is retried with the queue's backoff
CANCEL_REASON = "certificate revoked"


@dataclass(frozen=True, slots=True)
class Revoked:
    certificate_id: str
    issuer_id: str
    serial: str
    reason: str
    revoked_at: datetime
    job_id: str


@dataclass
class BatchResult:
    revoked: list[Revoked] = field(default_factory=list)
    final: list[str] = field(default_factory=list)  # already Revoked or Archived
    no_version: list[str] = field(default_factory=list)  # never issued: no serial to revoke

    @property
    def issuer_ids(self) -> set[str]:
        return {r.issuer_id for r in self.revoked}


def revoke_batch(
    session: Session,
    certs: Sequence[ManagedCertificate],
    *,
    reason: str,
    actor: Actor,
    now: datetime,
    notifier: LifecycleNotifier,
    short_lived_profiles: Collection[str],
) -> BatchResult:
    """Revoke every certificate of `certs` that can be; `reason` is a canonical name (reasons.parse_reason).

    The ledger row names the serial of each certificate's latest version (canonical form). A serial the
    ledger already holds for that issuer is not added twice. Audit: `certificate_revoked` per certificate.
    """
    result = BatchResult()
    store = RevocationStore(session)
    result.final = [cert.id for cert in certs if cert.status in FINAL_STATUSES]
    open_certs = [cert for cert in certs if cert.status not in FINAL_STATUSES]
    latest = store.latest_versions([cert.id for cert in open_certs])
    result.no_version = [cert.id for cert in open_certs if cert.id not in latest]
    revocable = [cert for cert in open_certs if cert.id in latest]
    if not revocable:
        return result
    ids = [cert.id for cert in revocable]

    JobStore(session).cancel_open(Job.certificate_id.in_(ids), now, CANCEL_REASON)
    session.execute(
        update(ManagedCertificate)
        .where(ManagedCertificate.id.in_(ids))
        .values(status=CertificateStatus.REVOKED, revoked_at=now, revocation_reason=reason, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    known = store.already_revoked({(cert.issuer_id, latest[cert.id].serial) for cert in revocable})
    ledger: list[dict[str, Any]] = []
    jobs: list[dict[str, Any]] = []
    for cert in revocable:
        version = latest[cert.id]
        key = (cert.issuer_id, version.serial)
        if key not in known:
            known.add(key)
            ledger.append(
                {
                    "id": new_id("rev"),
                    "certificate_id": cert.id,
                    "issuer_id": cert.issuer_id,
                    "serial_number": version.serial,
                    "reason": reason,
                    "revoked_by": actor.name,
                    "revoked_at": now,
                    "not_after": version.not_after,
                    "short_lived": cert.certificate_profile_id in short_lived_profiles,
                    "issuer_notified": False,
                }
            )
        job_id = new_id("job")
        jobs.append(
            {
                "id": job_id,
                "type": JobType.REVOCATION,
                "certificate_id": cert.id,
                "version_id": version.version_id,
                "status": JobStatus.PENDING,
                "attempts": 0,
                "max_attempts": REVOCATION_JOB_ATTEMPTS,
                "scheduled_at": now,
                "created_at": now,
            }
        )
        result.revoked.append(Revoked(cert.id, cert.issuer_id, version.serial, reason, now, job_id))
    store.add_many(ledger)
    session.execute(insert(Job), jobs)
    store.bump_revision(result.issuer_ids)

    audit = AuditRecorder(session, FrozenClock(now))
    with session.no_autoflush:  # the notifier reads owners: flush the new rows once, below
        for cert, done in zip(revocable, result.revoked, strict=True):
            audit.record(
                actor,
                "certificate_revoked",
                "certificate",
                cert.id,
                {"reason": reason, "serial": done.serial, "issuer_id": cert.issuer_id, "job_id": done.job_id},
            )
        notifier.revoked(session, revocable, reason)
    session.flush()
    return result
