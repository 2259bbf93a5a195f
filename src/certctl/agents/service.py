"""Agents as the control plane keeps them: registration with a per-agent credential, heartbeats,
credential rotation, retirement and the Online/Offline sweep (core.md §2.5, §6.1, §6.6).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from certctl.agents.credentials import SENTINEL_AGENT_IDS, new_agent_key
from certctl.agents.models import Agent, AgentStatus
from certctl.agents.store import AgentRetired, AgentStore
from certctl.audit.service import AuditRecorder
from certctl.clock import Clock
from certctl.db.engine import Database
from certctl.db.store import Page, PageRequest
from certctl.errors import AlreadyExists, Conflict, Forbidden, NotFound, ValidationFailed
from certctl.ids import new_id
from certctl.jobs.models import Job
from certctl.jobs.store import JobStore
from certctl.security.apikeys import hash_key
from certctl.security.roles import Actor, ActorType, Role
from certctl.targets.models import DeploymentTarget

RESOURCE_TYPE = "agent"
HEARTBEAT_FIELDS = ("version", "hostname", "os", "architecture", "ip_address")


class RetirementBlocked(Conflict):
    """409 `blocked_by_dependencies`, with the counts that block it."""

    def __init__(self, agent_id: str, counts: Mapping[str, int]) -> None:
        super().__init__(
            f"agent {agent_id} still has {counts['active_targets']} active target(s), "
            f"{counts['active_certificates']} certificate(s) and {counts['pending_jobs']} open job(s); "
            "retire with force=true and a reason to cascade"
        )
        self.counts = dict(counts)


@dataclass(frozen=True, slots=True)
class Registered:
    agent: Agent
    api_key: str  # returned once, never stored


@dataclass(frozen=True, slots=True)
class Retirement:
    retired_at: datetime
    already_retired: bool
    cascade: bool
    counts: Mapping[str, int]


def agent_actor(agent_id: str) -> Actor:
    """The identity behind a per-agent credential; the middleware confines it to its own routes."""
    return Actor(name=agent_id, role=Role.OPERATOR, actor_type=ActorType.AGENT)


class AgentService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db, self._clock = db, clock

    # -- reads --------------------------------------------------------------------------------------------

    def get(self, agent_id: str) -> Agent:
        with self._db.read() as session:
            return AgentStore(session).get(agent_id)

    def list(self, request: PageRequest, *, retired: bool = False) -> Page[Agent]:
        with self._db.read() as session:
            store = AgentStore(session)
            return store.paginate(store.listing(retired=retired), request)

    def authenticate(self, presented: str) -> Actor | None:
        """The agent whose credential this is (retired agents included: they must hear 410, not 401)."""
        digest = hash_key(presented)
        with self._db.read() as session:
            agent = AgentStore(session).by_credential_hash(digest)
            if agent is None or not hmac.compare_digest(agent.api_key_hash, digest):
                return None
            return agent_actor(agent.id)

    # -- changes ------------------------------------------------------------------------------------------

    def register(self, name: str, hostname: str, details: Mapping[str, str], actor: Actor) -> Registered:
        """Raises ValidationFailed (name/hostname missing or too long) or AlreadyExists (name taken)."""
        name, hostname = name.strip(), hostname.strip()
        if not name or len(name) > 128:
            raise ValidationFailed("name is required (at most 128 characters)")
        if not hostname or len(hostname) > 255:
            raise ValidationFailed("hostname is required (at most 255 characters)")
        key, digest = new_agent_key()
        now = self._clock.now()
        with self._db.begin() as session:
            store = AgentStore(session)
            if store.name_taken(name):
                raise AlreadyExists("agent", "name", name)
            agent = Agent(
                id=new_id("agent"),
                name=name,
                hostname=hostname,
                status=AgentStatus.ONLINE,
                registered_at=now,
                last_heartbeat_at=now,
                api_key_hash=digest,
                **{field: details.get(field, "")[:64] for field in HEARTBEAT_FIELDS if field != "hostname"},
            )
            store.add(agent)
            AuditRecorder(session, self._clock).record(
                actor, "agent_registered", RESOURCE_TYPE, agent.id, {"name": name, "hostname": hostname}
            )
        return Registered(agent=agent, api_key=key)

    def heartbeat(self, agent_id: str, details: Mapping[str, str]) -> Agent:
        """Online again, with whatever host details were sent. Raises NotFound, AgentRetired."""
        with self._db.begin() as session:
            agent = AgentStore(session).live(agent_id)
            for field in HEARTBEAT_FIELDS:
                if value := details.get(field, "").strip():
                    setattr(agent, field, value[:255] if field == "hostname" else value[:64])
            agent.last_heartbeat_at = self._clock.now()
            if agent.status is AgentStatus.OFFLINE:
                agent.status = AgentStatus.ONLINE
            return agent

    def rotate_key(self, agent_id: str, actor: Actor) -> Registered:
        """A new credential replaces the old one at once (the old one stops working)."""
        key, digest = new_agent_key()
        with self._db.begin() as session:
            agent = AgentStore(session).get(agent_id)
            if agent.id in SENTINEL_AGENT_IDS:
                raise Forbidden(f"agent {agent_id} is a built-in server-side agent and has no credential")
            if agent.retired_at is not None:
                raise AgentRetired(agent)
            agent.api_key_hash = digest
            AuditRecorder(session, self._clock).record(actor, "agent_key_rotated", RESOURCE_TYPE, agent.id, {})
        return Registered(agent=agent, api_key=key)

    def retire(self, agent_id: str, actor: Actor, *, force: bool = False, reason: str = "") -> Retirement:
        """Soft retirement (core.md §6.6). With dependencies it needs `force` and a reason, and then
        retires the agent's targets and cancels its open jobs in the same transaction.

        Raises Forbidden (sentinel), NotFound, ValidationFailed (force without reason), RetirementBlocked.
        """
        if agent_id in SENTINEL_AGENT_IDS:
            raise Forbidden(f"agent {agent_id} is a built-in server-side agent and cannot be retired")
        reason = reason.strip()
        if force and not reason:
            raise ValidationFailed("reason is required when force=true")
        now = self._clock.now()
        with self._db.begin() as session:
            store = AgentStore(session)
            agent = store.lock(agent_id)
            if agent is None:
                raise NotFound("agent", agent_id)
            if agent.retired_at is not None:
                return Retirement(agent.retired_at, already_retired=True, cascade=False, counts={})
            counts = store.dependency_counts(agent_id)
            blocked = any(counts.values())
            if blocked and not force:
                raise RetirementBlocked(agent_id, counts)
            agent.retired_at, agent.retired_reason = now, reason or None
            agent.status = AgentStatus.OFFLINE
            audit = AuditRecorder(session, self._clock)
            audit.record(actor, "agent_retired", RESOURCE_TYPE, agent.id, {"reason": reason, "force": force, **counts})
            if blocked:
                self._cascade(session, agent, now, reason)
                audit.record(actor, "agent_retirement_cascaded", RESOURCE_TYPE, agent.id, dict(counts))
            return Retirement(now, already_retired=False, cascade=blocked, counts=counts)

    def mark_silent_offline(self, interval: timedelta) -> int:
        """The agent-health loop: Online agents not heard from within `interval` become Offline."""
        with self._db.begin() as session:
            return AgentStore(session).mark_silent_offline(self._clock.now() - interval)

    def _cascade(self, session: Session, agent: Agent, now: datetime, reason: str) -> None:
        session.execute(
            update(DeploymentTarget)
            .where(DeploymentTarget.agent_id == agent.id, DeploymentTarget.retired_at.is_(None))
            .values(retired_at=now, retired_reason=reason, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        JobStore(session).cancel_open(Job.agent_id == agent.id, now, f"agent {agent.id} retired: {reason}")
