"""Rows the tests need as background (inserted directly, not through the API under test)."""

from __future__ import annotations

from datetime import datetime

from certctl.agents.models import Agent, AgentStatus
from certctl.context import AppContext
from certctl.issuers.models import Issuer, IssuerType
from certctl.org.models import Owner, Team
from certctl.profiles.models import CertificateProfile
from certctl.targets.models import DeploymentTarget, TargetType


def seed_inventory(context: AppContext) -> None:
    """Team t-web, owner o-alice, issuer iss-local (local CA); rp-default exists from the baseline seed."""
    now = context.clock.now()
    with context.db.begin() as session:
        session.add(Team(id="t-web", name="web", created_at=now, updated_at=now))
        session.flush()
        session.add(
            Owner(
                id="o-alice", name="Alice", email="alice@example.com", team_id="t-web", created_at=now, updated_at=now
            )
        )
        session.add(
            Issuer(
                id="iss-local", name="Local CA", type=IssuerType.GENERIC_CA, config={}, created_at=now, updated_at=now
            )
        )


def add_profile(context: AppContext, profile_id: str, *, requires_approval: bool = False) -> None:
    now = context.clock.now()
    with context.db.begin() as session:
        session.add(
            CertificateProfile(
                id=profile_id, name=profile_id, requires_approval=requires_approval, created_at=now, updated_at=now
            )
        )


def add_agent(context: AppContext, agent_id: str, *, retired_at: datetime | None = None) -> None:
    now = context.clock.now()
    with context.db.begin() as session:
        session.add(
            Agent(
                id=agent_id,
                name=agent_id,
                hostname=f"{agent_id}.example.com",
                status=AgentStatus.ONLINE,
                registered_at=now,
                api_key_hash="0" * 64,
                retired_at=retired_at,
            )
        )


def add_target(context: AppContext, target_id: str, agent_id: str, *, retired: bool = False) -> None:
    now = context.clock.now()
    with context.db.begin() as session:
        session.add(
            DeploymentTarget(
                id=target_id,
                name=target_id,
                type=TargetType.NGINX,
                agent_id=agent_id,
                config={},
                retired_at=now if retired else None,
                created_at=now,
                updated_at=now,
            )
        )
