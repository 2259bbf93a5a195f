"""Job queries. The claim is one statement; every other change locks the rows it reads first.

Row locks: on PostgreSQL `FOR UPDATE` (with `SKIP LOCKED` for sweeps, so replicas share the work); SQLite
has no row locks, but every transaction there begins with `BEGIN IMMEDIATE` (db/engine.py) and so runs
alone. The lock clause is added on PostgreSQL only, so what runs on SQLite is exactly what is written.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Select, and_, func, or_, select, update
from sqlalchemy.orm import Session

from certctl.agents.models import Agent
from certctl.certificates.models import ManagedCertificate
from certctl.db import models as _every_table  # noqa: F401  (Job's foreign keys resolve only once all are mapped)
from certctl.db.store import Store
from certctl.jobs.models import Job, JobStatus, JobType
from certctl.jobs.queue import DEFAULT_RETRY_BASE, ISSUANCE_JOB_TYPES, OPEN_STATUSES
from certctl.policies.models import RenewalPolicy

# A job with its retry base: the certificate's renewal policy `retry_interval_seconds`.
JobWithBase = tuple[Job, timedelta]


class JobStore(Store[Job]):
    model = Job
    kind = "job"

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self._postgres = session.get_bind().dialect.name == "postgresql"

    def claim(
        self, worker_id: str, now: datetime, lease: timedelta, limit: int, types: Collection[JobType]
    ) -> list[Job]:
        """Take up to `limit` due, unbound Pending jobs of `types` for `worker_id`, oldest first.

        One statement, WITH picked AS MATERIALIZED (SELECT id … [FOR UPDATE SKIP LOCKED]) UPDATE … WHERE
        id IN (SELECT id FROM picked) RETURNING … (stack.md §B.4.5). A SELECT-then-UPDATE pair without
        the lock claimed 470 times for 300 jobs with two PostgreSQL worker processes (tests/jobs/test_claim.py).
        """
        candidates = (
            select(Job.id)
            .where(
                Job.status == JobStatus.PENDING,
                Job.scheduled_at <= now,
                Job.agent_id.is_(None),
                Job.type.in_(list(types)),
            )
            .order_by(Job.scheduled_at, Job.id)
            .limit(limit)
        )
        if self._postgres:
            candidates = candidates.with_for_update(skip_locked=True)
        # MATERIALIZED: PostgreSQL may plan a plain `IN (subquery)` as a nested loop that rescans the
        # subquery; a rescan skips the rows this statement has just updated, and the LIMIT then lets
        # further rows through (seen: 3 claimed with limit 2). A materialized CTE is evaluated once.
        picked = candidates.cte("picked").prefix_with("MATERIALIZED")
        stmt = (
            update(Job)
            # The repeated status test costs nothing and keeps the statement safe on its own.
            .where(Job.id.in_(select(picked.c.id)), Job.status == JobStatus.PENDING)
            .values(
                status=JobStatus.RUNNING,
                claimed_by=worker_id,
                lease_until=now + lease,
                attempts=Job.attempts + 1,
                started_at=now,
            )
            .returning(Job)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        claimed = list(self.session.scalars(stmt))
        claimed.sort(key=lambda job: (job.scheduled_at, job.id))
        return claimed

    def claim_for_agent(self, agent_id: str, now: datetime, limit: int) -> list[Job]:
        """Take the agent's due Pending Deployment/Validation jobs: Running, claimed by the agent, attempts
        + 1 (core.md §6.3). Same single statement as `claim`, so two replicas never hand a job out twice."""
        candidates = _due_for_agent(select(Job.id), agent_id, now, limit)
        if self._postgres:
            candidates = candidates.with_for_update(skip_locked=True)
        picked = candidates.cte("picked").prefix_with("MATERIALIZED")
        stmt = (
            update(Job)
            .where(Job.id.in_(select(picked.c.id)), Job.status == JobStatus.PENDING)
            .values(status=JobStatus.RUNNING, claimed_by=agent_id, attempts=Job.attempts + 1, started_at=now)
            .returning(Job)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        claimed = list(self.session.scalars(stmt))
        claimed.sort(key=lambda job: (job.scheduled_at, job.id))
        return claimed

    def due_for_agent(self, agent_id: str, now: datetime, limit: int = 50) -> list[Job]:
        """What `claim_for_agent` would take, left Pending."""
        return list(self.session.scalars(_due_for_agent(select(Job), agent_id, now, limit)))

    def extend_lease(self, job_id: str, worker_id: str, lease_until: datetime) -> bool:
        stmt = (
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.claimed_by == worker_id)
            .values(lease_until=lease_until)
            .execution_options(synchronize_session=False)
        )
        return cast(CursorResult[Any], self.session.execute(stmt)).rowcount == 1

    def lock(self, job_id: str) -> JobWithBase | None:
        """The job, locked until the transaction ends, with its retry base; None when unknown."""
        rows = self._locked(self._with_base().where(Job.id == job_id), skip_locked=False)
        return rows[0] if rows else None

    def due_for_retry(self, now: datetime, limit: int) -> list[JobWithBase]:
        stmt = (
            self._with_base()
            .where(Job.status == JobStatus.FAILED, Job.next_retry_at.is_not(None), Job.next_retry_at <= now)
            .order_by(Job.next_retry_at, Job.id)
            .limit(limit)
        )
        return self._locked(stmt)

    def expired_leases(self, now: datetime, limit: int) -> list[JobWithBase]:
        """Running server jobs whose worker let the lease run out (agent jobs have their own reaper)."""
        stmt = (
            self._with_base()
            .where(
                Job.status == JobStatus.RUNNING,
                Job.agent_id.is_(None),
                Job.lease_until.is_not(None),
                Job.lease_until < now,
            )
            .order_by(Job.lease_until, Job.id)
            .limit(limit)
        )
        return self._locked(stmt)

    def waiting_since_before(self, status: JobStatus, cutoff: datetime, limit: int) -> list[JobWithBase]:
        """Jobs in `status` whose wait began before `cutoff` (see queue.waiting_since)."""
        attempt_started_later = and_(Job.started_at.is_not(None), Job.started_at > Job.scheduled_at)
        stmt = (
            self._with_base()
            .where(
                Job.status == status,
                or_(
                    and_(attempt_started_later, Job.started_at < cutoff),
                    and_(~attempt_started_later, Job.scheduled_at < cutoff),
                ),
            )
            .order_by(Job.scheduled_at, Job.id)
            .limit(limit)
        )
        return self._locked(stmt)

    def running_on_silent_agents(self, cutoff: datetime, limit: int) -> list[JobWithBase]:
        """Running agent jobs whose agent's last heartbeat (or registration, if none) is before `cutoff`."""
        stmt = (
            self._with_base()
            .join(Agent, Agent.id == Job.agent_id)
            .where(
                Job.status == JobStatus.RUNNING,
                or_(
                    Agent.last_heartbeat_at < cutoff,
                    and_(Agent.last_heartbeat_at.is_(None), Agent.registered_at < cutoff),
                ),
            )
            .order_by(Job.started_at, Job.id)
            .limit(limit)
        )
        return self._locked(stmt)

    def certificates_with_open_issuance(self, certificate_ids: Collection[str]) -> set[str]:
        """Which of these certificates already have an open Issuance/Renewal job (the unique index's rule)."""
        if not certificate_ids:
            return set()
        stmt = select(Job.certificate_id).where(
            Job.certificate_id.in_(list(certificate_ids)),
            Job.type.in_(list(ISSUANCE_JOB_TYPES)),
            Job.status.in_(list(OPEN_STATUSES)),
        )
        return set(self.session.scalars(stmt))

    def cancel_open(self, match: ColumnElement[bool], now: datetime, reason: str) -> int:
        """Cancel every open job (Pending, AwaitingCSR, AwaitingApproval, Running) that `match` selects, e.g.
        `Job.certificate_id.in_(ids)`, in one UPDATE; returns how many. A worker or agent still holding one
        finds its claim gone. Jobs already loaded in the session are not refreshed."""
        stmt = (
            update(Job)
            .where(match, Job.status.in_(list(OPEN_STATUSES)))
            .values(
                status=JobStatus.CANCELLED, completed_at=now, lease_until=None, next_retry_at=None, last_error=reason
            )
            .execution_options(synchronize_session=False)
        )
        return cast(CursorResult[Any], self.session.execute(stmt)).rowcount

    def open_issuance_job(self, certificate_id: str) -> str | None:
        stmt = select(Job.id).where(
            Job.certificate_id == certificate_id,
            Job.type.in_(list(ISSUANCE_JOB_TYPES)),
            Job.status.in_(list(OPEN_STATUSES)),
        )
        return self.session.scalars(stmt.limit(1)).first()

    def _with_base(self) -> Select[Job, int]:
        default = int(DEFAULT_RETRY_BASE.total_seconds())
        return (
            select(Job, func.coalesce(RenewalPolicy.retry_interval_seconds, default))
            .outerjoin(ManagedCertificate, ManagedCertificate.id == Job.certificate_id)
            .outerjoin(RenewalPolicy, RenewalPolicy.id == ManagedCertificate.renewal_policy_id)
        )

    def _locked(self, stmt: Select[Job, int], *, skip_locked: bool = True) -> list[JobWithBase]:
        if self._postgres:
            # OF jobs: the certificate and policy rows are read, not locked (and sit on an outer join).
            stmt = stmt.with_for_update(of=Job, skip_locked=skip_locked)
        stmt = stmt.execution_options(populate_existing=True)
        return [(job, timedelta(seconds=seconds)) for job, seconds in self.session.execute(stmt)]


def _due_for_agent(stmt: Select[Any], agent_id: str, now: datetime, limit: int) -> Select[Any]:
    return (
        stmt.where(
            Job.status == JobStatus.PENDING,
            Job.agent_id == agent_id,
            Job.type.in_([JobType.DEPLOYMENT, JobType.VALIDATION]),
            Job.scheduled_at <= now,
        )
        .order_by(Job.scheduled_at, Job.id)
        .limit(limit)
    )
