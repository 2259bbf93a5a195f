"""Deployment jobs: one per mapped target whenever a certificate gets a new version, and on demand
(core.md §6.5). Each job is bound to the target's agent and pinned to the version it installs."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from certctl.agents.models import Agent
from certctl.audit.service import AuditRecorder
from certctl.certificates.models import CertificateStatus, CertificateTargetMapping, ManagedCertificate
from certctl.certificates.store import CertificateStore
from certctl.clock import FrozenClock
from certctl.errors import Conflict
from certctl.ids import new_id
from certctl.jobs.models import Job, JobStatus, JobType
from certctl.security.roles import SYSTEM_ACTOR, Actor
from certctl.targets.models import DeploymentTarget

DEFAULT_DEPLOY_ATTEMPTS = 3


def deployable_targets(
    session: Session, certificate_ids: Collection[str], only: Collection[str] | None = None
) -> dict[str, list[DeploymentTarget]]:
    """Each certificate's mapped targets that can take a deployment (enabled, not retired, agent not
    retired), in one query; certificates without any are left out."""
    stmt = (
        select(CertificateTargetMapping.certificate_id, DeploymentTarget)
        .join(CertificateTargetMapping, CertificateTargetMapping.target_id == DeploymentTarget.id)
        .join(Agent, Agent.id == DeploymentTarget.agent_id)
        .where(
            CertificateTargetMapping.certificate_id.in_(list(certificate_ids)),
            DeploymentTarget.enabled.is_(True),
            DeploymentTarget.retired_at.is_(None),
            Agent.retired_at.is_(None),
        )
        .order_by(DeploymentTarget.id)
    )
    if only is not None:
        stmt = stmt.where(DeploymentTarget.id.in_(list(only)))
    found: dict[str, list[DeploymentTarget]] = {}
    for certificate_id, target in session.execute(stmt):
        found.setdefault(certificate_id, []).append(target)
    return found


def queue_deployments(
    session: Session,
    cert: ManagedCertificate,
    now: datetime,
    *,
    version_id: str | None = None,
    target_ids: Collection[str] | None = None,
    actor: Actor = SYSTEM_ACTOR,
    trigger: str = "issued",
) -> list[Job]:
    """Create a Pending Deployment job per deployable target (all mapped ones, or `target_ids`).

    A deployment still waiting for the same target is superseded: the newest version is what counts.
    `version_id` defaults to the certificate's latest version; without any version nothing is queued.
    """
    if _final(cert, trigger):
        return []
    targets = deployable_targets(session, [cert.id], target_ids).get(cert.id, [])
    return _queue(session, cert, targets, now, version_id=version_id, actor=actor, trigger=trigger)


def queue_issued_deployments(session: Session, issued: Sequence[tuple[ManagedCertificate, Job]], now: datetime) -> None:
    """`queue_deployments` for a batch of (certificate, the job that issued its new version), with one query
    for the targets of them all: most issued certificates have none, and then that query is all it costs."""
    targets = deployable_targets(session, [cert.id for cert, _ in issued])
    for cert, job in issued:
        if cert.id in targets and not _final(cert, "issued"):
            _queue(
                session, cert, targets[cert.id], now, version_id=job.version_id, actor=SYSTEM_ACTOR, trigger="issued"
            )


def _final(cert: ManagedCertificate, trigger: str) -> bool:
    """Revoked and Archived are final: never installed again. Asked for by hand, say so; otherwise skip."""
    if cert.status not in (CertificateStatus.REVOKED, CertificateStatus.ARCHIVED):
        return False
    if trigger == "manual":
        raise Conflict(f"certificate {cert.id} is {cert.status.value}; it can no longer be deployed")
    return True


def _queue(
    session: Session,
    cert: ManagedCertificate,
    targets: list[DeploymentTarget],
    now: datetime,
    *,
    version_id: str | None,
    actor: Actor,
    trigger: str,
) -> list[Job]:
    if not targets:
        return []  # the common case for an unmapped certificate: one query, nothing else
    if version_id is None:
        latest = CertificateStore(session).latest_version(cert.id)
        if latest is None:
            return []
        version_id = latest.id
    session.execute(
        update(Job)
        .where(
            Job.certificate_id == cert.id,
            Job.type == JobType.DEPLOYMENT,
            Job.status == JobStatus.PENDING,
            Job.target_id.in_([target.id for target in targets]),
        )
        .values(status=JobStatus.CANCELLED, completed_at=now, last_error=f"superseded by version {version_id}")
        .execution_options(synchronize_session=False)
    )
    audit = AuditRecorder(session, FrozenClock(now))
    jobs = []
    for target in targets:
        job = Job(
            id=new_id("job"),
            type=JobType.DEPLOYMENT,
            certificate_id=cert.id,
            target_id=target.id,
            agent_id=target.agent_id,
            version_id=version_id,
            status=JobStatus.PENDING,
            attempts=0,
            max_attempts=DEFAULT_DEPLOY_ATTEMPTS,
            scheduled_at=now,
            created_at=now,
        )
        session.add(job)
        jobs.append(job)
        audit.record(
            actor,
            "deployment_job_created",
            "certificate",
            cert.id,
            {
                "job_id": job.id,
                "target_id": target.id,
                "agent_id": target.agent_id,
                "version_id": version_id,
                "trigger": trigger,
            },
        )
    return jobs


def queue_validation(session: Session, target: DeploymentTarget, now: datetime, actor: Actor) -> Job:
    """A Validation job for the target's agent: it builds the connector and checks the target for real
    (paths writable, validate command passing) without deploying anything. Raises Conflict when the
    target or its agent is retired or the target is disabled."""
    agent = session.get(Agent, target.agent_id)
    if agent is None or agent.retired_at is not None:
        raise Conflict(f"assigned agent {target.agent_id} is retired; no agent can test target {target.id}")
    if target.retired_at is not None:
        raise Conflict(f"target {target.id} is retired")
    job = Job(
        id=new_id("job"),
        type=JobType.VALIDATION,
        certificate_id=None,
        target_id=target.id,
        agent_id=target.agent_id,
        status=JobStatus.PENDING,
        attempts=0,
        max_attempts=1,  # a test is asked again by the operator, never retried behind their back
        scheduled_at=now,
        created_at=now,
    )
    session.add(job)
    AuditRecorder(session, FrozenClock(now)).record(
        actor, "target_test_requested", "target", target.id, {"job_id": job.id, "agent_id": target.agent_id}
    )
    return job


def last_deployments(session: Session, certificate_id: str) -> list[tuple[DeploymentTarget, Job | None]]:
    """Each mapped target with the certificate's newest Deployment job on it (None: never deployed)."""
    mapped = select(CertificateTargetMapping.target_id).where(CertificateTargetMapping.certificate_id == certificate_id)
    targets = session.scalars(
        select(DeploymentTarget).where(DeploymentTarget.id.in_(mapped)).order_by(DeploymentTarget.name)
    ).all()
    newest: dict[str, Job] = {}
    jobs = session.scalars(
        select(Job)
        .where(Job.certificate_id == certificate_id, Job.type == JobType.DEPLOYMENT, Job.target_id.in_(mapped))
        .order_by(Job.created_at, Job.id)
    )
    for job in jobs:
        if job.target_id is not None:
            newest[job.target_id] = job
    return [(target, newest.get(target.id)) for target in targets]
