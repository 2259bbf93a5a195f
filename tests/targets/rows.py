"""Agents cannot be registered through the API yet: tests insert them straight into the database."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from certctl.agents.models import Agent
from certctl.certificates.models import CertificateTargetMapping
from certctl.context import AppContext


def insert_agent(context: AppContext, agent_id: str, *, retired: bool = False) -> str:
    now = datetime.now(UTC)
    with context.db.begin() as session:
        session.add(
            Agent(
                id=agent_id,
                name=agent_id,
                hostname=f"{agent_id}.example.com",
                registered_at=now,
                api_key_hash="ab" * 32,
                retired_at=now if retired else None,
                retired_reason="decommissioned" if retired else None,
            )
        )
    return agent_id


def map_certificate(context: AppContext, cert_id: str, target_id: str) -> None:
    with context.db.begin() as session:
        session.add(CertificateTargetMapping(certificate_id=cert_id, target_id=target_id, created_at=datetime.now(UTC)))


def mappings_of(context: AppContext, target_id: str) -> int:
    with context.db.begin() as session:
        stmt = select(func.count()).where(CertificateTargetMapping.target_id == target_id)
        return session.scalar(stmt) or 0
