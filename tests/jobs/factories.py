"""Rows a job needs (team, owner, issuer, renewal policy, certificate), inserted through the models."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select

from certctl.agents.models import Agent, AgentStatus
from certctl.audit.models import AuditEvent
from certctl.certificates.models import ManagedCertificate
from certctl.db.engine import Database
from certctl.ids import new_id
from certctl.issuers.models import Issuer, IssuerType
from certctl.jobs.models import Job, JobStatus, JobType
from certctl.org.models import Owner, Team
from certctl.policies.models import RenewalPolicy

POLICY_ID = "rp-jobs"


def seed_certificates(db: Database, now: datetime, count: int = 1, *, retry_interval_seconds: int = 60) -> list[str]:
    """`count` managed certificates under one policy; returns their IDs."""
    stamps = {"created_at": now, "updated_at": now}
    with db.begin() as session:
        if session.get(RenewalPolicy, POLICY_ID) is None:
            # No relationships are mapped, so the unit of work cannot order these inserts: flush each.
            for row in (
                Team(id="team-jobs", name="jobs", **stamps),
                Owner(id="o-jobs", name="Jobs Owner", team_id="team-jobs", **stamps),
                Issuer(id="iss-jobs", name="jobs-ca", type=IssuerType.GENERIC_CA, **stamps),
                RenewalPolicy(id=POLICY_ID, name="jobs", retry_interval_seconds=retry_interval_seconds, **stamps),
            ):
                session.add(row)
                session.flush()
        ids = [new_id("mc") for _ in range(count)]
        session.execute(
            insert(ManagedCertificate),
            [
                {
                    "id": cert_id,
                    "name": cert_id,
                    "common_name": f"{cert_id}.example.test",
                    "owner_id": "o-jobs",
                    "team_id": "team-jobs",
                    "issuer_id": "iss-jobs",
                    "renewal_policy_id": POLICY_ID,
                    **stamps,
                }
                for cert_id in ids
            ],
        )
    return ids


def add_agent(db: Database, now: datetime, *, last_heartbeat_at: datetime | None) -> str:
    agent_id = new_id("ag")
    with db.begin() as session:
        session.add(
            Agent(
                id=agent_id,
                name=agent_id,
                hostname="host.example.test",
                status=AgentStatus.ONLINE,
                last_heartbeat_at=last_heartbeat_at,
                registered_at=now - timedelta(days=1),
                api_key_hash="0" * 64,
            )
        )
    return agent_id


def add_job(
    db: Database,
    certificate_id: str,
    now: datetime,
    *,
    type: JobType = JobType.RENEWAL,
    status: JobStatus = JobStatus.PENDING,
    scheduled_at: datetime | None = None,
    **fields: Any,
) -> str:
    job_id = fields.pop("id", None) or new_id("job")
    with db.begin() as session:
        session.add(
            Job(
                id=job_id,
                type=type,
                certificate_id=certificate_id,
                status=status,
                scheduled_at=scheduled_at or now,
                created_at=now,
                **fields,
            )
        )
    return job_id


def add_pending_jobs(db: Database, certificate_ids: list[str], now: datetime, **fields: Any) -> list[str]:
    """One Pending Renewal job per certificate, in one statement."""
    ids = [new_id("job") for _ in certificate_ids]
    with db.begin() as session:
        session.execute(
            insert(Job),
            [
                {
                    "id": job_id,
                    "type": JobType.RENEWAL,
                    "certificate_id": cert_id,
                    "status": JobStatus.PENDING,
                    "scheduled_at": now,
                    "created_at": now,
                    **fields,
                }
                for job_id, cert_id in zip(ids, certificate_ids, strict=True)
            ],
        )
    return ids


def load_job(db: Database, job_id: str) -> Job:
    with db.begin() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def audit_actions(db: Database, resource_id: str | None = None) -> list[str]:
    stmt = select(AuditEvent.action).order_by(AuditEvent.timestamp, AuditEvent.id)
    if resource_id is not None:
        stmt = stmt.where(AuditEvent.resource_id == resource_id)
    with db.begin() as session:
        return list(session.scalars(stmt))
