"""An agent's CSR under a name-constrained issuing CA: a name outside the permitted subtree gets a 400
naming the constraint and fails the job for good; a name inside is signed with the full chain."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from certctl.clock import FrozenClock
from certctl.context import AppContext
from tests.agents.conftest import BOOTSTRAP_TOKEN, Plane
from tests.conftest import client_for
from tests.factories import seed_inventory
from tests.intermediates.helpers import load, make_root, verify_server_chain

URL = "/api/v1/issuers/iss-local/intermediates"


@pytest.fixture
def plane(context_factory: Any) -> Iterator[tuple[Plane, list[dict[str, Any]]]]:
    """Agent key-generation mode; iss-local in tree mode issuing with a CA permitted eng.corp.example only."""
    clock = FrozenClock()
    context: AppContext = context_factory(clock, keygen_mode="agent", agent_bootstrap_token=BOOTSTRAP_TOKEN)
    seed_inventory(context)
    with client_for(context) as admin, client_for(context, "operator") as operator:
        root_pem, key_pem = make_root(clock.now(), permitted=("corp.example",))
        root = admin.post(URL, json={"name": "root", "root_cert_pem": root_pem, "key_pem": key_pem}).json()
        issuing = admin.post(
            URL,
            json={
                "name": "Issuing CA 1",
                "parent_ca_id": root["id"],
                "name_constraints": [{"permitted": ["eng.corp.example"]}],
            },
        )
        assert issuing.status_code == 201, issuing.text
        switched = admin.put(
            "/api/v1/issuers/iss-local",
            json={"hierarchy_mode": "tree", "config": {"issuing_ca_id": issuing.json()["id"]}},
        )
        assert switched.status_code == 200, switched.text
        built = Plane(context=context, clock=clock, operator=operator)
        yield built, [issuing.json(), root]
        for client in built.clients:
            client.__exit__(None, None, None)


def test_a_csr_outside_the_permitted_subtree_is_refused_naming_it_and_fails_for_good(plane: Any) -> None:
    agents, _ = plane
    agent = agents.register("edge-1")
    cert = agents.certificate("evil", [agents.target(agent)], common_name="evil.example")
    [item] = agent.poll()
    refused = agent.submit_csr(item)
    assert refused.status_code == 400, refused.text
    message = refused.json()["message"]
    assert 'dNSName "evil.example" is outside the permitted subtree "eng.corp.example" of CA "Issuing CA 1"' in (
        message
    )
    [job] = agents.jobs(cert["id"])
    assert (job["status"], job["next_retry_at"]) == ("Failed", None)
    assert "eng.corp.example" in job["last_error"]
    assert agents.operator.get(f"/api/v1/certificates/{cert['id']}").json()["status"] == "Failed"
    assert agent.poll() == []  # nothing left to answer: the job does not come back
    assert agent.submit_csr(item).status_code == 409


def test_a_csr_inside_the_permitted_subtree_is_signed_with_the_full_chain(plane: Any) -> None:
    agents, (issuing, root) = plane
    agent = agents.register("edge-1")
    cert = agents.certificate("web", [agents.target(agent)], common_name="web.eng.corp.example")
    [item] = agent.poll()
    signed = agent.submit_csr(item)
    assert signed.status_code == 202, signed.text
    pickup = agent.client.get(f"/api/v1/agents/{agent.id}/certificates/{cert['id']}").json()
    leaf, *chain = load(pickup["certificate_pem"])  # leaf, then the chain up to the root
    assert leaf.public_key() == agent.keys[cert["id"]].public_key()
    assert chain == [load(issuing["cert_pem"])[0], load(root["cert_pem"])[0]]
    verify_server_chain(leaf, chain[:-1], chain[-1], agents.clock.now(), "web.eng.corp.example")
