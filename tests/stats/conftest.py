"""Fixtures for the stats tests: a seeded context on a frozen clock, an app with the stats router, rows in bulk."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import insert

from certctl.agents.models import Agent, AgentStatus
from certctl.app import create_app
from certctl.certificates.models import CertificateStatus, ManagedCertificate
from certctl.clock import FrozenClock
from certctl.context import AppContext
from certctl.jobs.models import Job, JobStatus, JobType
from tests.conftest import API_KEYS
from tests.factories import seed_inventory

CERT_DEFAULTS = {"owner_id": "o-alice", "team_id": "t-web", "issuer_id": "iss-local", "renewal_policy_id": "rp-default"}


@pytest.fixture
def ctx(context_factory: Callable[..., AppContext], clock: FrozenClock) -> AppContext:
    context = context_factory(clock=clock)
    seed_inventory(context)
    return context


def stats_app(context: AppContext) -> FastAPI:
    return create_app(context)


def stats_client(context: AppContext, role: str | None = "admin", app: FastAPI | None = None) -> TestClient:
    headers = {"Authorization": f"Bearer {API_KEYS[role][0]}"} if role else {}
    return TestClient(app or stats_app(context), headers=headers, base_url="https://testserver")


@pytest.fixture
def api(ctx: AppContext) -> Iterator[TestClient]:
    with stats_client(ctx) as client:
        yield client


def add_certificates(
    context: AppContext,
    count: int,
    *,
    prefix: str,
    status: CertificateStatus = CertificateStatus.ACTIVE,
    expires_at: datetime | None = None,
    created_at: datetime | None = None,
) -> list[str]:
    """`count` certificates in one bulk INSERT; returns their ids (`<prefix>-<n>`)."""
    now = context.clock.now()
    ids = [f"{prefix}-{n}" for n in range(count)]
    rows: Sequence[dict[str, Any]] = [
        CERT_DEFAULTS
        | {
            "id": ident,
            "name": ident,
            "common_name": f"{ident}.example.com",
            "status": status,
            "expires_at": expires_at,
            "created_at": created_at or now,
            "updated_at": now,
        }
        for ident in ids
    ]
    with context.db.begin() as session:
        session.execute(insert(ManagedCertificate), rows)
    return ids


def add_jobs(
    context: AppContext,
    certificate_id: str,
    count: int,
    *,
    prefix: str,
    status: JobStatus,
    next_retry_at: datetime | None = None,
    completed_at: datetime | None = None,
) -> None:
    now = context.clock.now()
    rows = [
        {
            "id": f"{prefix}-{n}",
            "type": JobType.DEPLOYMENT,
            "certificate_id": certificate_id,
            "status": status,
            "scheduled_at": now,
            "next_retry_at": next_retry_at,
            "completed_at": completed_at,
            "created_at": now,
        }
        for n in range(count)
    ]
    with context.db.begin() as session:
        session.execute(insert(Job), rows)


def add_heartbeating_agent(
    context: AppContext, agent_id: str, last_heartbeat_at: datetime | None, *, retired: bool = False
) -> None:
    now = context.clock.now()
    with context.db.begin() as session:
        session.add(
            Agent(
                id=agent_id,
                name=agent_id,
                hostname=f"{agent_id}.example.com",
                status=AgentStatus.ONLINE,
                last_heartbeat_at=last_heartbeat_at,
                registered_at=now - timedelta(days=1),
                api_key_hash="0" * 64,
                retired_at=now if retired else None,
            )
        )
