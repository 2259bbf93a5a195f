"""The agent's side of the job pipeline, as the server answers it (core.md §6.3 to §6.5):
work polls, certificate pickup, job status reports and post-deploy verification reports.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Exists, exists, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from certctl.agents.models import Agent, AgentStatus
from certctl.agents.outcomes import Outcomes
from certctl.agents.service import agent_actor
from certctl.agents.store import AgentStore
from certctl.audit.service import AuditRecorder
from certctl.certificates.models import CertificateTargetMapping, CertificateVersion, ManagedCertificate
from certctl.certificates.processor import preferred_key_algorithm, profile_rules
from certctl.certificates.store import CertificateStore
from certctl.clock import Clock
from certctl.db.engine import Database
from certctl.errors import Forbidden, NotFound, ValidationFailed
from certctl.issuers.models import TestStatus
from certctl.issuers.sealing import ConfigSealer
from certctl.jobs.models import Job, JobStatus, JobType, VerificationStatus
from certctl.jobs.queue import (
    ISSUANCE_JOB_TYPES,
    AttemptOutcome,
    JobStateConflict,
    holds_lease,
    record_failure,
    record_success,
)
from certctl.jobs.store import JobStore
from certctl.notifications.lifecycle import LifecycleNotifier
from certctl.security.encryption import ConfigCipher
from certctl.security.roles import Actor, ActorType
from certctl.targets.models import DeploymentTarget

log = logging.getLogger("certctl.agents")

MAX_CLAIM = 50  # jobs handed to one agent per poll; the rest come with the next poll
REPORTABLE = frozenset({JobStatus.RUNNING, JobStatus.COMPLETED, JobStatus.FAILED})
# Three failed jobs in a row mark a heartbeating agent Degraded; one success clears it (core.md §2.5).
DEGRADED_AFTER_FAILURES = 3


@dataclass(frozen=True, slots=True)
class StatusReport:
    status: JobStatus
    error: str = ""
    result: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class VerificationReport:
    target_id: str
    expected_fingerprint: str
    actual_fingerprint: str
    verified: bool
    error: str = ""


class AgentWork:
    def __init__(self, db: Database, clock: Clock, cipher: ConfigCipher, outcomes: Outcomes) -> None:
        self._db, self._clock, self._outcomes = db, clock, outcomes
        self._cipher, self._sealer = cipher, ConfigSealer(cipher)

    # -- GET /agents/{id}/work ----------------------------------------------------------------------------

    def poll(self, agent_id: str, *, claim: bool = True) -> list[dict[str, Any]]:
        """Claim the agent's due Deployment/Validation jobs and list the AwaitingCSR jobs it must answer.
        With `claim=False` (the agent's dry run) the due jobs are listed and stay Pending.

        Raises NotFound, AgentRetired.
        """
        now = self._clock.now()
        with self._db.begin() as session:
            AgentStore(session).live(agent_id)
            jobs = JobStore(session)
            claimed = jobs.claim_for_agent(agent_id, now, MAX_CLAIM) if claim else jobs.due_for_agent(agent_id, now)
            items = [self._deployment_item(session, job) for job in claimed]
            items += self._csr_items(session, agent_id)
            return items

    def _deployment_item(self, session: Session, job: Job) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": job.id,
            "type": job.type.value,
            "status": job.status.value,
            "certificate_id": job.certificate_id,
            "target_id": job.target_id,
        }
        target = session.get(DeploymentTarget, job.target_id) if job.target_id else None
        if target is not None:
            item["target_type"] = target.type.value
            # Decrypted, for the owning agent only, over TLS; never logged (core.md §6.3).
            item["target_config"] = self._sealer.unseal(target.encrypted_config, target.config, f"target {target.id}")
        if job.type is JobType.DEPLOYMENT:
            version = session.get(CertificateVersion, job.version_id) if job.version_id else None
            if version is None and job.certificate_id is not None:
                version = CertificateStore(session).latest_version(job.certificate_id)
            if version is not None:
                item["version_id"] = version.id
                item["private_key_available"] = version.encrypted_private_key is not None
        return item

    def _csr_items(self, session: Session, agent_id: str) -> list[dict[str, Any]]:
        stmt = (
            select(Job, ManagedCertificate)
            .join(ManagedCertificate, ManagedCertificate.id == Job.certificate_id)
            .where(
                Job.status == JobStatus.AWAITING_CSR,
                Job.type.in_(list(ISSUANCE_JOB_TYPES)),
                or_(
                    Job.agent_id == agent_id,
                    Job.agent_id.is_(None) & mapped_to_agent_clause(Job.certificate_id, agent_id),
                ),
            )
            .order_by(Job.scheduled_at, Job.id)
            .limit(MAX_CLAIM)
        )
        key_algorithms: dict[str | None, str] = {}  # per profile: one rules lookup, not one per item
        items = []
        for job, cert in session.execute(stmt):
            profile_id = cert.certificate_profile_id
            if profile_id not in key_algorithms:
                key_algorithms[profile_id] = preferred_key_algorithm(profile_rules(session, cert)).value
            items.append(
                {
                    "id": job.id,
                    "type": job.type.value,
                    "status": job.status.value,
                    "certificate_id": cert.id,
                    "common_name": cert.common_name,
                    "sans": list(cert.sans),
                    "key_algorithm": key_algorithms[profile_id],
                }
            )
        return items

    # -- GET /agents/{id}/certificates/{cert_id} ----------------------------------------------------------

    def certificate(self, agent_id: str, certificate_id: str, version_id: str | None = None) -> dict[str, Any]:
        """The version to install (latest unless `version_id`), leaf then chain; the private key too when
        the server generated it. Only for certificates mapped to the agent's targets.

        Raises NotFound, Forbidden, AgentRetired.
        """
        with self._db.begin() as session:
            AgentStore(session).live(agent_id)
            cert = CertificateStore(session).get(certificate_id)
            if not mapped_to_agent(session, cert.id, agent_id):
                raise Forbidden(f"certificate {cert.id} is not deployed to any target of agent {agent_id}")
            version = session.get(CertificateVersion, version_id) if version_id else None
            if version_id and (version is None or version.certificate_id != cert.id):
                raise NotFound("certificate version", version_id)
            version = version or CertificateStore(session).latest_version(cert.id)
            if version is None:
                raise NotFound("certificate version of", cert.id)
            body: dict[str, Any] = {
                "certificate_pem": version.pem_chain,
                "version_id": version.id,
                "serial_number": version.serial_number,
                "fingerprint_sha256": version.fingerprint_sha256,
            }
            if version.encrypted_private_key is not None:
                body["private_key_pem"] = self._cipher.decrypt(version.encrypted_private_key).decode()
                AuditRecorder(session, self._clock).record(
                    agent_actor(agent_id),
                    "private_key_delivered",
                    "certificate",
                    cert.id,
                    {"version_id": version.id, "agent_id": agent_id},
                )
            return body

    # -- POST /agents/{id}/jobs/{job_id}/status -----------------------------------------------------------

    def report_status(self, agent_id: str, job_id: str, report: StatusReport) -> Job:
        """The agent's word on a job it claimed. Running is an acknowledgement; Completed and Failed end
        the attempt (Failed follows the retry rules). Raises NotFound (not this agent's job),
        ValidationFailed (status), JobStateConflict (the job is no longer running for this agent).
        """
        if report.status not in REPORTABLE:
            raise ValidationFailed("status must be Running, Completed or Failed")
        now = self._clock.now()
        notifier = self._outcomes.notifier(self._clock)
        with self._db.begin() as session:
            found = JobStore(session).lock(job_id)
            if found is None or found[0].agent_id != agent_id:
                raise NotFound("job", job_id)
            job, retry_base = found
            if job.status is JobStatus.AWAITING_CSR and report.status is JobStatus.FAILED:
                # The agent could not make a key or CSR (empty name, unwritable key directory): a failed
                # attempt, retried like any other, instead of a job that waits for the CSR timeout.
                error = report.error or "the agent could not make a CSR"
                self._outcomes.fail_waiting_issuance(session, job, error, now, retry_base, notifier)
                self._audit_report(session, agent_id, job, report)
            elif not holds_lease(job, agent_id):
                raise JobStateConflict(job.id, job.status, f"report {report.status.value} for")
            elif report.status is not JobStatus.RUNNING:
                self._end_attempt(session, agent_id, job, retry_base, report, notifier, now)
        self._outcomes.send(notifier)
        return job

    def _end_attempt(
        self,
        session: Session,
        agent_id: str,
        job: Job,
        retry_base: timedelta,
        report: StatusReport,
        notifier: LifecycleNotifier,
        now: datetime,
    ) -> None:
        """Completed or Failed from the agent holding the job: record it, count it, notify."""
        if report.result is not None:
            job.deployment_result = dict(report.result)
        agent = session.get(Agent, agent_id)
        target = session.get(DeploymentTarget, job.target_id) if job.target_id else None
        cert = session.get(ManagedCertificate, job.certificate_id) if job.certificate_id else None
        if report.status is JobStatus.COMPLETED:
            record_success(job, now)
            if job.verification_status is VerificationStatus.PENDING:
                job.verification_status = VerificationStatus.SKIPPED
            outcome = AttemptOutcome.COMPLETED
        else:
            outcome = record_failure(
                job, report.error or "the agent reported a failure", now, retry_base, self._outcomes.retry_backoff_cap
            )
        succeeded = outcome is AttemptOutcome.COMPLETED
        if agent is not None:
            session.flush()
            _track_health(session, agent, succeeded)
        if job.type is JobType.VALIDATION and target is not None:
            target.test_status = TestStatus.SUCCESS if succeeded else TestStatus.FAILED
            target.last_tested_at = now
        elif job.type is JobType.DEPLOYMENT:
            if target is not None:
                _count_deployment(target, succeeded, now)
                self._outcomes.counters.record_report(target.type.value, succeeded, report.result or {})
            if succeeded and cert is not None:
                cert.last_deployment_at = now
            if cert is not None and (succeeded or outcome is AttemptOutcome.FAILED_TERMINAL):
                notifier.deployed(
                    session,
                    cert,
                    target.name if target else job.target_id or "",
                    job.last_error if not succeeded else None,
                )
        self._audit_report(session, agent_id, job, report)

    def _audit_report(self, session: Session, agent_id: str, job: Job, report: StatusReport) -> None:
        AuditRecorder(session, self._clock).record(
            agent_actor(agent_id),
            "job_status_reported",
            "job",
            job.id,
            {
                "status": job.status.value,
                "type": job.type.value,
                "error": report.error,
                "next_retry_at": job.next_retry_at.isoformat() if job.next_retry_at else None,
            },
        )

    # -- POST /jobs/{id}/verify, GET /jobs/{id}/verification ---------------------------------------------

    def record_verification(self, job_id: str, actor: Actor, report: VerificationReport) -> Job:
        """Store the post-deploy TLS check (failures too). An agent may report only on its own jobs."""
        if not report.target_id:
            raise ValidationFailed("target_id is required")
        if report.verified and not report.actual_fingerprint:
            raise ValidationFailed("a successful verification needs actual_fingerprint")
        with self._db.begin() as session:
            found = JobStore(session).lock(job_id)
            if found is None:
                raise NotFound("job", job_id)
            job = found[0]
            if actor.actor_type is ActorType.AGENT and job.agent_id != actor.name:
                raise NotFound("job", job_id)
            if job.target_id and job.target_id != report.target_id:
                raise ValidationFailed(f"job {job.id} deploys to target {job.target_id}, not {report.target_id}")
            job.verification_status = VerificationStatus.SUCCESS if report.verified else VerificationStatus.FAILED
            job.verified_at = self._clock.now()
            job.verification_fingerprint = report.actual_fingerprint.lower() or None
            job.verification_error = report.error or (
                None if report.verified else "served certificate does not match the deployed one"
            )
            AuditRecorder(session, self._clock).record(
                actor,
                "job_verification_success" if report.verified else "job_verification_failed",
                "job",
                job.id,
                {
                    "target_id": report.target_id,
                    "expected_fingerprint": report.expected_fingerprint.lower(),
                    "actual_fingerprint": report.actual_fingerprint.lower(),
                    "error": report.error,
                },
            )
            return job


def mapped_to_agent_clause(certificate_id: InstrumentedAttribute[str | None] | str, agent_id: str) -> Exists:
    """Whether the certificate is mapped to a target of the agent: as a clause, to filter or select."""
    return exists(
        select(CertificateTargetMapping.target_id)
        .join(DeploymentTarget, DeploymentTarget.id == CertificateTargetMapping.target_id)
        .where(CertificateTargetMapping.certificate_id == certificate_id, DeploymentTarget.agent_id == agent_id)
    )


def mapped_to_agent(session: Session, certificate_id: str, agent_id: str) -> bool:
    return bool(session.scalar(select(mapped_to_agent_clause(certificate_id, agent_id))))


def _count_deployment(target: DeploymentTarget, succeeded: bool, now: datetime) -> None:
    if succeeded:
        target.deploy_success_count += 1
    else:
        target.deploy_failure_count += 1
    target.last_deploy_at = now
    target.last_deploy_status = "success" if succeeded else "failed"


def _track_health(session: Session, agent: Agent, succeeded: bool) -> None:
    """Degraded after three failed jobs in a row; a success makes a Degraded agent Online again."""
    if succeeded:
        if agent.status is AgentStatus.DEGRADED:
            agent.status = AgentStatus.ONLINE
        return
    latest = session.scalars(
        select(Job.status)
        .where(Job.agent_id == agent.id, Job.status.in_([JobStatus.COMPLETED, JobStatus.FAILED]))
        .order_by(Job.completed_at.desc(), Job.id.desc())
        .limit(DEGRADED_AFTER_FAILURES)
    ).all()
    if len(latest) == DEGRADED_AFTER_FAILURES and all(status is JobStatus.FAILED for status in latest):
        agent.status = AgentStatus.DEGRADED
