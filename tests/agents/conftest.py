"""An app in agent key-generation mode with the inventory seeded, an operator client, and helpers that
play the agent's side of the protocol over the real API."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from certctl.clock import FrozenClock
from certctl.context import AppContext
from certctl.pki.keygen import generate_key_and_csr
from certctl.pki.keys import KeyAlgorithm
from tests.conftest import client_for
from tests.factories import seed_inventory

BASE = {"owner_id": "o-alice", "team_id": "t-web", "issuer_id": "iss-local", "renewal_policy_id": "rp-default"}
NGINX = {
    "cert_path": "/etc/nginx/ssl/web.crt",
    "key_path": "/etc/nginx/ssl/web.key",
    "reload_command": "nginx -s reload",
    "validate_command": "nginx -t",
}
BOOTSTRAP_TOKEN = "bootstrap-token-0123456789abcdef"


@dataclass
class AgentSession:
    """One registered agent speaking the protocol with its own credential."""

    id: str
    client: TestClient
    keys: dict[str, Any] = field(default_factory=dict)

    def poll(self) -> list[dict[str, Any]]:
        response = self.client.get(f"/api/v1/agents/{self.id}/work")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["count"] == len(body["jobs"])
        jobs: list[dict[str, Any]] = body["jobs"]
        return jobs

    def submit_csr(self, item: dict[str, Any]) -> Any:
        generated = generate_key_and_csr(item["common_name"], item["sans"], KeyAlgorithm(item["key_algorithm"]))
        self.keys[item["certificate_id"]] = generated.key
        return self.client.post(
            f"/api/v1/agents/{self.id}/csr",
            json={"csr_pem": generated.csr_pem, "certificate_id": item["certificate_id"]},
        )

    def report(self, job_id: str, status: str, **extra: Any) -> Any:
        return self.client.post(f"/api/v1/agents/{self.id}/jobs/{job_id}/status", json={"status": status} | extra)


@dataclass
class Plane:
    context: AppContext
    clock: FrozenClock
    operator: TestClient
    clients: list[TestClient] = field(default_factory=list)

    def register(self, name: str) -> AgentSession:
        response = self.operator.post("/api/v1/agents", json={"name": name, "hostname": f"{name}.example.test"})
        assert response.status_code == 201, response.text
        body = response.json()
        client = TestClient(
            self.operator.app, headers={"Authorization": f"Bearer {body['api_key']}"}, base_url="https://testserver"
        )
        client.__enter__()
        self.clients.append(client)
        return AgentSession(id=body["id"], client=client)

    def target(self, agent: AgentSession, name: str = "web", config: dict[str, Any] | None = None) -> str:
        body = {"name": name, "type": "NGINX", "agent_id": agent.id, "config": config or NGINX}
        response = self.operator.post("/api/v1/targets", json=body)
        assert response.status_code == 201, response.text
        target_id: str = response.json()["id"]
        return target_id

    def certificate(self, name: str, target_ids: list[str], **fields: Any) -> dict[str, Any]:
        body = {"name": name, "common_name": f"{name}.example.com", "target_ids": target_ids} | BASE | fields
        response = self.operator.post("/api/v1/certificates", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def jobs(self, certificate_id: str, job_type: str | None = None) -> list[dict[str, Any]]:
        params = {"certificate_id": certificate_id} | ({"type": job_type} if job_type else {})
        data: list[dict[str, Any]] = self.operator.get("/api/v1/jobs", params=params).json()["data"]
        return data


@pytest.fixture
def plane(context_factory: Any) -> Iterator[Plane]:
    clock = FrozenClock()
    context: AppContext = context_factory(clock, keygen_mode="agent", agent_bootstrap_token=BOOTSTRAP_TOKEN)
    seed_inventory(context)
    with client_for(context, "operator") as operator:
        built = Plane(context=context, clock=clock, operator=operator)
        yield built
        for client in built.clients:
            client.__exit__(None, None, None)
