"""Server key generation: the processor's issuance queues the deployment, and only the owning agent
receives the key (core.md §6.7)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from certctl.audit.models import AuditEvent
from certctl.clock import FrozenClock
from certctl.context import AppContext
from certctl.worker import build_background
from tests.agents.conftest import Plane
from tests.conftest import client_for
from tests.factories import seed_inventory


@pytest.fixture
def server_plane(context_factory: Any) -> Iterator[Plane]:
    clock = FrozenClock()
    context: AppContext = context_factory(clock, keygen_mode="server")
    seed_inventory(context)
    with client_for(context, "operator") as operator:
        built = Plane(context=context, clock=clock, operator=operator)
        yield built
        for client in built.clients:
            client.__exit__(None, None, None)


def test_a_server_made_key_reaches_only_the_agent_that_deploys_it(server_plane: Plane) -> None:
    plane = server_plane
    agent, other = plane.register("edge-1"), plane.register("edge-2")
    cert = plane.certificate("web", [plane.target(agent)])
    background = build_background(plane.context)
    assert background.processor.run(plane.clock.now()).completed == 1
    [issuance] = plane.jobs(cert["id"], "Issuance")
    assert issuance["version_id"] is not None

    [deployment] = agent.poll()
    assert (deployment["type"], deployment["version_id"]) == ("Deployment", issuance["version_id"])
    assert deployment["private_key_available"] is True
    pickup = agent.client.get(f"/api/v1/agents/{agent.id}/certificates/{cert['id']}").json()
    key = serialization.load_pem_private_key(pickup["private_key_pem"].encode(), password=None)
    leaf = x509.load_pem_x509_certificate(pickup["certificate_pem"].encode())
    assert leaf.public_key() == key.public_key()
    assert other.client.get(f"/api/v1/agents/{other.id}/certificates/{cert['id']}").status_code == 403
    assert "PRIVATE KEY" not in plane.operator.get(f"/api/v1/certificates/{cert['id']}/versions").text
    with plane.context.db.begin() as session:
        delivered = session.scalars(select(AuditEvent.actor).where(AuditEvent.action == "private_key_delivered"))
        assert list(delivered) == [agent.id]
