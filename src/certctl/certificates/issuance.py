"""Starting issuance and renewal: the job a certificate waits on, per key-generation mode and profile."""

from __future__ import annotations

from sqlalchemy.orm import Session

from certctl.audit.service import AuditRecorder
from certctl.certificates.models import CertificateStatus, ManagedCertificate
from certctl.certificates.store import CertificateStore
from certctl.clock import Clock
from certctl.config import KeygenMode
from certctl.errors import Conflict, ValidationFailed
from certctl.ids import new_id
from certctl.jobs.models import Job, JobStatus, JobType
from certctl.policies.models import RenewalPolicy
from certctl.profiles.models import CertificateProfile
from certctl.security.roles import Actor
from certctl.targets.models import DeploymentTarget

NOT_RENEWABLE = frozenset({CertificateStatus.ARCHIVED, CertificateStatus.REVOKED})


def start_issuance(
    session: Session,
    cert: ManagedCertificate,
    *,
    actor: Actor,
    clock: Clock,
    keygen_mode: KeygenMode,
    force: bool = False,
    trigger: str = "manual",
    brand_new: bool = False,
    known_without_open_job: bool = False,
    flush: bool = True,
) -> Job:
    """Create the Issuance (never issued) or Renewal job and move the certificate along (core.md §3.1).

    What the caller already knows saves queries: `brand_new` (inserted in this transaction: no job, no
    version); `known_without_open_job` (the caller checked under a lock). With `flush=False` the rows are
    written at the caller's next flush, so a batch of renewals goes out as a few multi-row statements.
    """
    if cert.status in NOT_RENEWABLE:
        raise ValidationFailed(f"certificate {cert.id} is {cert.status.value} and cannot be renewed")
    store = CertificateStore(session)
    now = clock.now()
    open_jobs = [] if brand_new or known_without_open_job else store.open_issuance_jobs(cert.id)
    if open_jobs:
        if not force:
            raise Conflict(
                f"certificate {cert.id} already has an open {open_jobs[0].type.value} job "
                f"{open_jobs[0].id}; use force to replace it"
            )
        for job in open_jobs:
            job.status, job.completed_at = JobStatus.CANCELLED, now
            job.last_error = "superseded by a forced renewal"
        store.flush()  # the partial unique index allows one open job: cancel before inserting
    policy = session.get(RenewalPolicy, cert.renewal_policy_id)
    profile = session.get(CertificateProfile, cert.certificate_profile_id) if cert.certificate_profile_id else None
    # An expiry comes only from a stored version (issued or imported): no query needed then.
    never_issued = brand_new or (cert.expires_at is None and store.latest_version(cert.id) is None)
    status = first_job_status(profile is not None and profile.requires_approval, keygen_mode)
    job = Job(
        id=new_id("job"),
        type=JobType.ISSUANCE if never_issued else JobType.RENEWAL,
        certificate_id=cert.id,
        agent_id=_owning_agent(session, cert.id) if keygen_mode is KeygenMode.AGENT else None,
        status=status,
        attempts=0,
        max_attempts=max_attempts_for(policy.max_retries if policy is not None else None),
        scheduled_at=now,
        created_at=now,
    )
    session.add(job)
    if status is not JobStatus.AWAITING_APPROVAL:
        cert.status = CertificateStatus.RENEWAL_IN_PROGRESS
    cert.updated_at = now
    if flush:
        store.flush()
    AuditRecorder(session, clock).record(
        actor, "renewal_job_created", "certificate", cert.id, job_created_details(job.id, job.type, status, trigger)
    )
    return job


def first_job_status(requires_approval: bool, keygen_mode: KeygenMode) -> JobStatus:
    """Where an Issuance or Renewal job starts: waiting for approval (the profile asks for it), for the
    agent's CSR (agent key generation), or ready for the server."""
    if requires_approval:
        return JobStatus.AWAITING_APPROVAL
    return JobStatus.AWAITING_CSR if keygen_mode is KeygenMode.AGENT else JobStatus.PENDING


def max_attempts_for(max_retries: int | None) -> int:
    """Attempts an issuance job gets: the renewal policy's retries plus the first (3 without a policy)."""
    return max_retries + 1 if max_retries is not None else 3


def job_created_details(job_id: str, job_type: JobType, status: JobStatus, trigger: str) -> dict[str, str]:
    """The details of the `renewal_job_created` audit row."""
    return {"job_id": job_id, "job_type": job_type.value, "job_status": status.value, "renewal_trigger": trigger}


def _owning_agent(session: Session, certificate_id: str) -> str | None:
    """In agent key-generation mode every mapped target belongs to one agent; that agent makes the key."""
    store = CertificateStore(session)
    target_ids = store.target_ids([certificate_id])[certificate_id]
    if not target_ids:
        return None
    target = session.get(DeploymentTarget, target_ids[0])
    return target.agent_id if target is not None else None
