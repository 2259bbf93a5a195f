"""A server-keygen app on each database, with the issuance processor that signs with the local CA."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from certctl.certificates.processor import IssuanceProcessor, mark_certificate_failed
from certctl.clock import FrozenClock
from certctl.context import AppContext
from certctl.jobs.service import JobQueue
from tests.conftest import client_for
from tests.factories import seed_inventory

BASE = {"owner_id": "o-alice", "team_id": "t-web", "issuer_id": "iss-local", "renewal_policy_id": "rp-default"}


@dataclass
class Revocations:
    client: TestClient
    context: AppContext
    clock: FrozenClock
    queue: JobQueue
    processor: IssuanceProcessor
    heard: list[str] = field(default_factory=list)  # issuer ids the listener was called with

    def create(self, name: str, **fields: Any) -> str:
        body = {"name": name, "common_name": f"{name}.example.com"} | BASE | fields
        response = self.client.post("/api/v1/certificates", json=body)
        assert response.status_code == 201, response.text
        cert_id: str = response.json()["id"]
        return cert_id

    def issue(self, name: str, **fields: Any) -> str:
        """A certificate the local CA has issued (status Active, one version)."""
        cert_id = self.create(name, **fields)
        self.processor.run(self.clock.now())
        assert self.client.get(f"/api/v1/certificates/{cert_id}").json()["status"] == "Active"
        return cert_id

    def jobs(self, cert_id: str) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self.client.get("/api/v1/jobs", params={"certificate_id": cert_id}).json()["data"]
        return data


@pytest.fixture
def rev(context_factory: Callable[..., AppContext]) -> Iterator[Revocations]:
    clock = FrozenClock()
    context = context_factory(clock, keygen_mode="server")
    seed_inventory(context)
    queue = JobQueue(context.db, clock, on_terminal_failure=mark_certificate_failed)
    processor = IssuanceProcessor(context.db, clock, context.cipher, context.connectors, queue, worker_id="w1")
    with client_for(context) as client:
        state = Revocations(client, context, clock, queue, processor)
        context.revocations.add_listener(state.heard.append)
        yield state
