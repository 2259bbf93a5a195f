"""Agent queries."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Select, func, select, update

from certctl.agents.models import Agent, AgentStatus
from certctl.certificates.models import CertificateTargetMapping
from certctl.db.store import Store
from certctl.errors import Gone
from certctl.jobs.models import Job
from certctl.jobs.queue import OPEN_STATUSES
from certctl.targets.models import DeploymentTarget


class AgentRetired(Gone):
    """The agent has been retired: heartbeats and polls are answered 410 Gone."""

    def __init__(self, agent: Agent) -> None:
        reason = f": {agent.retired_reason}" if agent.retired_reason else ""
        super().__init__(f"Agent has been retired{reason}")


class AgentStore(Store[Agent]):
    model = Agent
    kind = "agent"

    def live(self, agent_id: str) -> Agent:
        """The agent, for a request it makes itself; raises NotFound, or AgentRetired once it is retired."""
        agent = self.get(agent_id)
        if agent.retired_at is not None:
            raise AgentRetired(agent)
        return agent

    def by_credential_hash(self, digest: str) -> Agent | None:
        return self.session.scalars(select(Agent).where(Agent.api_key_hash == digest).limit(1)).first()

    def name_taken(self, name: str) -> bool:
        return self.any(select(Agent.id).where(Agent.name == name))

    def listing(self, *, retired: bool) -> Select[Agent]:
        condition = Agent.retired_at.is_not(None) if retired else Agent.retired_at.is_(None)
        return select(Agent).where(condition).order_by(Agent.registered_at.desc(), Agent.id.desc())

    def lock(self, agent_id: str) -> Agent | None:
        stmt = select(Agent).where(Agent.id == agent_id).execution_options(populate_existing=True)
        if self.session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        return self.session.scalars(stmt).first()

    def dependency_counts(self, agent_id: str) -> dict[str, int]:
        """What still hangs on the agent (core.md §2.5): live targets, certificates deployed through
        them, and open jobs."""
        live_targets = select(DeploymentTarget.id).where(
            DeploymentTarget.agent_id == agent_id, DeploymentTarget.retired_at.is_(None)
        )
        targets = self.session.scalar(select(func.count()).select_from(live_targets.subquery())) or 0
        certificates = (
            self.session.scalar(
                select(func.count(func.distinct(CertificateTargetMapping.certificate_id))).where(
                    CertificateTargetMapping.target_id.in_(live_targets)
                )
            )
            or 0
        )
        jobs = (
            self.session.scalar(
                select(func.count()).where(Job.agent_id == agent_id, Job.status.in_(list(OPEN_STATUSES)))
            )
            or 0
        )
        return {"active_targets": targets, "active_certificates": certificates, "pending_jobs": jobs}

    def mark_silent_offline(self, cutoff: datetime) -> int:
        """Online agents whose last heartbeat is before `cutoff` become Offline; returns how many."""
        stmt = (
            update(Agent)
            .where(
                Agent.status != AgentStatus.OFFLINE,
                Agent.retired_at.is_(None),
                Agent.last_heartbeat_at.is_not(None),
                Agent.last_heartbeat_at < cutoff,
            )
            .values(status=AgentStatus.OFFLINE)
            .execution_options(synchronize_session=False)
        )
        return cast(CursorResult[Any], self.session.execute(stmt)).rowcount
