"""Agents with the facts the group rules look at, inserted straight into the database."""

from __future__ import annotations

from certctl.agents.models import Agent, AgentStatus
from certctl.context import AppContext


def insert_agent(
    context: AppContext,
    agent_id: str,
    *,
    os: str = "linux",
    architecture: str = "amd64",
    ip_address: str = "",
    version: str = "",
    retired: bool = False,
) -> str:
    now = context.clock.now()
    with context.db.begin() as session:
        session.add(
            Agent(
                id=agent_id,
                name=agent_id,
                hostname=f"{agent_id}.example.com",
                status=AgentStatus.ONLINE,
                registered_at=now,
                os=os,
                architecture=architecture,
                ip_address=ip_address,
                version=version,
                api_key_hash="ab" * 32,
                retired_at=now if retired else None,
                retired_reason="decommissioned" if retired else None,
            )
        )
    return agent_id
